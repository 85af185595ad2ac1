package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// EmbeddingRequest is a parsed POST /v1/embeddings body.
type EmbeddingRequest struct {
	Model          string         `json:"model"`
	Input          EmbeddingInput `json:"input"`
	EncodingFormat string         `json:"encoding_format,omitempty"` // "float" (default) | "base64"
	Dimensions     *int           `json:"dimensions,omitempty"`
	User           string         `json:"user,omitempty"`

	// Raw is the request body exactly as the client sent it.
	Raw json.RawMessage `json:"-"`
}

// EmbeddingInput is the input: one string, many strings, or pre-tokenised
// input (one or many arrays of token ids).
type EmbeddingInput struct {
	Texts  []string
	Tokens [][]int
	Single bool // input was a single string or a single token array
}

// Len is the number of inputs.
func (in EmbeddingInput) Len() int { return len(in.Texts) + len(in.Tokens) }

// UnmarshalJSON accepts every form OpenAI accepts.
func (in *EmbeddingInput) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	*in = EmbeddingInput{}
	if len(data) == 0 || string(data) == "null" {
		return nil
	}
	if data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		in.Texts, in.Single = []string{s}, true
		return nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("input must be a string, an array of strings or an array of token arrays")
	}
	if len(raw) == 0 {
		return nil
	}
	switch first := bytes.TrimSpace(raw[0]); {
	case len(first) > 0 && first[0] == '"':
		return json.Unmarshal(data, &in.Texts)
	case len(first) > 0 && first[0] == '[':
		return json.Unmarshal(data, &in.Tokens)
	default:
		var toks []int
		if err := json.Unmarshal(data, &toks); err != nil {
			return err
		}
		in.Tokens, in.Single = [][]int{toks}, true
		return nil
	}
}

// MarshalJSON writes the input back in the form it came in.
func (in EmbeddingInput) MarshalJSON() ([]byte, error) {
	switch {
	case in.Single && len(in.Texts) == 1:
		return json.Marshal(in.Texts[0])
	case in.Single && len(in.Tokens) == 1:
		return json.Marshal(in.Tokens[0])
	case in.Tokens != nil:
		return json.Marshal(in.Tokens)
	case in.Texts == nil:
		return []byte("[]"), nil
	}
	return json.Marshal(in.Texts)
}

// EmbeddingResponse is the answer to an embeddings request.
type EmbeddingResponse struct {
	Object string      `json:"object"`
	Data   []Embedding `json:"data"`
	Model  string      `json:"model"`
	Usage  *Usage      `json:"usage,omitempty"`

	// Raw, when set, is the upstream body in OpenAI's format, sent verbatim.
	Raw json.RawMessage `json:"-"`
}

// Embedding is one vector. Vector holds the JSON value as sent: an array of
// floats, or a base64 string of little-endian float32s when the request
// asked for encoding_format "base64".
type Embedding struct {
	Object    string          `json:"object"`
	Index     int             `json:"index"`
	Embedding json.RawMessage `json:"embedding"`
}

// DecodeEmbeddingRequest parses and validates an embeddings body.
func DecodeEmbeddingRequest(body []byte) (*EmbeddingRequest, error) {
	var req EmbeddingRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, decodeError(err)
	}
	if err := CheckKeys(body, embeddingShape); err != nil {
		return nil, err
	}
	req.Raw = body
	switch {
	case req.Model == "":
		return nil, InvalidParam("model", "you must provide a model parameter")
	case req.Input.Len() == 0:
		return nil, InvalidParam("input", "'input' must be a non-empty string or array")
	case req.Input.Len() > 2048:
		return nil, InvalidParam("input", "'input' may hold at most 2048 entries")
	}
	for i, t := range req.Input.Texts {
		if t == "" {
			return nil, InvalidParam(fmt.Sprintf("input[%d]", i), "input strings must not be empty")
		}
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		return nil, InvalidParam("encoding_format", "encoding_format must be 'float' or 'base64'")
	}
	if req.Dimensions != nil && *req.Dimensions < 1 {
		return nil, InvalidParam("dimensions", "dimensions must be at least 1")
	}
	return &req, nil
}
