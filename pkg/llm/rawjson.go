package llm

import (
	"encoding/json"
	"errors"
)

var errNotObject = errors.New("not a JSON object")

// SetField returns a copy of the JSON object obj with its top-level member
// key set to the JSON value val (replacing every occurrence of key, or
// appending it when absent). A nil val removes the member. Every other
// member is copied byte for byte, so fields tollgate does not know survive
// untouched at any depth. obj must be a JSON object.
func SetField(obj []byte, key string, val []byte) ([]byte, error) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, errNotObject
	}
	out := make([]byte, 0, len(obj)+len(key)+len(val)+4)
	out = append(out, '{')
	for i++; ; {
		i = skipSpace(obj, i)
		if i >= len(obj) {
			return nil, errNotObject
		}
		if obj[i] == '}' {
			break
		}
		if obj[i] == ',' {
			i++
			continue
		}
		kStart := i
		kEnd, err := skipString(obj, i)
		if err != nil {
			return nil, err
		}
		i = skipSpace(obj, kEnd)
		if i >= len(obj) || obj[i] != ':' {
			return nil, errNotObject
		}
		vEnd, err := skipValue(obj, skipSpace(obj, i+1))
		if err != nil {
			return nil, err
		}
		i = vEnd
		if keyEquals(obj[kStart:kEnd], key) {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, obj[kStart:vEnd]...)
	}
	if val != nil {
		if len(out) > 1 {
			out = append(out, ',')
		}
		b, _ := json.Marshal(key)
		out = append(out, b...)
		out = append(out, ':')
		out = append(out, val...)
	}
	return append(out, '}'), nil
}

func keyEquals(quoted []byte, key string) bool {
	if len(quoted) == len(key)+2 && string(quoted[1:len(quoted)-1]) == key {
		return true
	}
	for _, c := range quoted {
		if c == '\\' { // escaped key: decode and compare
			var s string
			return json.Unmarshal(quoted, &s) == nil && s == key
		}
	}
	return false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

func skipString(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, errNotObject
	}
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, errNotObject
}

// skipValue returns the end of the JSON value starting at i.
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errNotObject
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
		}
		return 0, errNotObject
	default: // number, true, false, null
		for i < len(b) && !isSpace(b[i]) && b[i] != ',' && b[i] != '}' && b[i] != ']' {
			i++
		}
		return i, nil
	}
}
