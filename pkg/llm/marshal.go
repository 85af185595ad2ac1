package llm

import (
	"bytes"
	"encoding/json"
)

// MarshalNoEscape encodes v as encoding/json does but without HTML
// escaping: prompts are full of <, > and &, and \u003c costs bytes and
// readability for nothing. Wire bodies tollgate writes itself use it.
func MarshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
