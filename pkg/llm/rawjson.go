package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

var errNotObject = errors.New("not a JSON object")

// SetField returns a copy of the JSON object obj with its top-level member
// key set to the JSON value val (replacing every occurrence of key, keys
// compared after unescaping, or appending it when absent). A nil val removes the member. Every other
// member is copied byte for byte, so fields tollgate does not know survive
// untouched at any depth. obj must be a JSON object.
func SetField(obj []byte, key string, val []byte) ([]byte, error) {
	out := make([]byte, 0, len(obj)+len(key)+len(val)+4)
	out = append(out, '{')
	err := members(obj, func(k, _, member []byte) {
		if keyEquals(k, key) {
			return
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, member...)
	})
	if err != nil {
		return nil, err
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

// Field returns the value of the top-level member key of the JSON object
// obj, keys compared after unescaping ("customer\u005fcredentials" is
// customer_credentials); with several, the last, as encoding/json reads
// it. Most bodies are answered without parsing: those that hold neither
// the name nor an escape that could spell it.
func Field(obj []byte, key string) (val []byte, ok bool, err error) {
	if !mayHold(obj, key) {
		return nil, false, nil
	}
	err = members(obj, func(k, v, _ []byte) {
		if keyEquals(k, key) {
			val, ok = v, true
		}
	})
	if err != nil {
		return nil, false, err
	}
	return val, ok, nil
}

// mayHold reports whether obj may hold a key spelled key once unescaped:
// it holds key as written, or an escape that can stand for one of its
// characters (\u for any; \", \\ and \/ for those three).
func mayHold(obj []byte, key string) bool {
	if bytes.Contains(obj, []byte(key)) || bytes.Contains(obj, []byte(`\u`)) {
		return true
	}
	return strings.ContainsAny(key, `"\/`) && bytes.IndexByte(obj, '\\') >= 0
}

// members calls fn with each top-level member of the JSON object obj: its
// key with its quotes, its value, and the member as sent, from the key to
// the end of the value.
func members(obj []byte, fn func(key, val, member []byte)) error {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errNotObject
	}
	for i++; ; {
		i = skipSpace(obj, i)
		if i >= len(obj) {
			return errNotObject
		}
		if obj[i] == '}' {
			return nil
		}
		if obj[i] == ',' {
			i++
			continue
		}
		kStart := i
		kEnd, err := skipString(obj, i)
		if err != nil {
			return err
		}
		i = skipSpace(obj, kEnd)
		if i >= len(obj) || obj[i] != ':' {
			return errNotObject
		}
		vStart := skipSpace(obj, i+1)
		vEnd, err := skipValue(obj, vStart)
		if err != nil {
			return err
		}
		i = vEnd
		fn(obj[kStart:kEnd], obj[vStart:vEnd], obj[kStart:vEnd])
	}
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
	if end := stringEnd(b, i); end > 0 {
		return end, nil
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

// TakeMembers walks the top-level members of the JSON object obj once,
// calling take with each key as encoding/json reads it (escapes decoded)
// and its value; the members take claims are left out of the object it
// returns. With none claimed, obj itself is returned: nothing is copied
// or allocated. Every member kept is copied byte for byte. The first error
// of take ends the walk and is returned.
func TakeMembers(obj []byte, take func(key, val []byte) (bool, error)) ([]byte, error) {
	var out []byte // nil until a member is taken
	var terr error
	err := members(obj, func(k, v, member []byte) {
		if terr != nil {
			return
		}
		taken, err := take(unquoteKey(k), v)
		switch {
		case err != nil:
			terr = err
		case taken && out == nil:
			// Everything before this member, less the comma that led to it.
			start := cap(obj) - cap(member) // member is obj[start:…]
			out = bytes.TrimRight(append(make([]byte, 0, len(obj)), obj[:start]...), " \t\r\n")
			out = bytes.TrimSuffix(out, []byte(","))
		case !taken && out != nil:
			if last := out[len(out)-1]; last != '{' {
				out = append(out, ',')
			}
			out = append(out, member...)
		}
	})
	if terr != nil {
		return nil, terr
	}
	if err != nil || out == nil {
		return obj, err
	}
	return append(out, '}'), nil
}
