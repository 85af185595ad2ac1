package llm

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Shape is what tollgate decodes of a JSON body: the objects it reads into
// Go structs, with their fields' names and the shapes of their values. A
// nil *Shape is a value tollgate keeps raw or reads as a scalar.
//
// CheckKeys uses it: encoding/json matches a key to a field without regard
// to case (and with Unicode folding: "ſtream" is "stream"), where an
// OpenAI-compatible upstream matches exactly. A body that spells a field
// otherwise would be read one way by tollgate and another by the upstream.
type Shape struct {
	fields map[string]*Shape // the struct's fields by their JSON names
	names  [][]byte          // the same names, for the folded comparison
	elem   *Shape            // elements of an array, values of a map
	isMap  bool              // an object whose keys are data, not field names
}

var (
	shapes          sync.Map // reflect.Type → *Shape
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textType        = reflect.TypeFor[encoding.TextUnmarshaler]()
	contentType     = reflect.TypeFor[Content]()
)

// ShapeOf returns the shape encoding/json decodes into values of type t
// (pointers are followed). Types that decode themselves are raw, except the
// few of this package that hold typed objects (Content).
func ShapeOf(t reflect.Type) *Shape {
	if s, ok := shapes.Load(t); ok {
		return s.(*Shape)
	}
	s := shapeOf(t, map[reflect.Type]*Shape{})
	shapes.Store(t, s)
	return s
}

func shapeOf(t reflect.Type, seen map[reflect.Type]*Shape) *Shape {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s, ok := seen[t]; ok {
		return s
	}
	if t == contentType { // a string, or an array of parts
		return &Shape{elem: shapeOf(reflect.TypeFor[ContentPart](), seen)}
	}
	if pt := reflect.PointerTo(t); pt.Implements(unmarshalerType) || pt.Implements(textType) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		s := &Shape{fields: map[string]*Shape{}}
		seen[t] = s
		addFields(s, t, seen)
		return s
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return nil // []byte is a base64 string
		}
		if elem := shapeOf(t.Elem(), seen); elem != nil {
			return &Shape{elem: elem}
		}
	case reflect.Map:
		if elem := shapeOf(t.Elem(), seen); elem != nil {
			return &Shape{elem: elem, isMap: true}
		}
	}
	return nil
}

// addFields adds t's JSON fields to s, those of embedded structs included,
// as encoding/json sees them.
func addFields(s *Shape, t reflect.Type, seen map[reflect.Type]*Shape) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			addFields(s, ft, seen)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s.add(name, shapeOf(f.Type, seen))
	}
}

func (s *Shape) add(name string, field *Shape) {
	if _, ok := s.fields[name]; !ok {
		s.names = append(s.names, []byte(name))
	}
	s.fields[name] = field
}

// with returns a copy of s with more fields of raw values: names tollgate
// reads from the body itself (see ChatRequest).
func (s *Shape) with(names ...string) *Shape {
	out := &Shape{fields: make(map[string]*Shape, len(s.fields)+len(names)), names: append([][]byte(nil), s.names...), elem: s.elem}
	for k, v := range s.fields {
		out.fields[k] = v
	}
	for _, n := range names {
		out.add(n, nil)
	}
	return out
}

// fold returns the field name key would be read into under encoding/json's
// case-insensitive matching, when key is not spelled exactly so.
func (s *Shape) fold(key []byte) (string, bool) {
	for _, n := range s.names {
		if bytes.EqualFold(key, n) {
			return string(n), true
		}
	}
	return "", false
}

var (
	// chatShape: the chat body as decoded, and customer_credentials, which
	// the HTTP layer reads from Raw and strips before the upstream sees it.
	chatShape      = ShapeOf(reflect.TypeFor[ChatRequest]()).with("customer_credentials")
	embeddingShape = ShapeOf(reflect.TypeFor[EmbeddingRequest]())
)

// maxQuoted bounds a client's key quoted in an error message or a param.
const maxQuoted = 64

// smallObject is how many keys an object holds before its repeats are
// found through a map rather than by comparing each key with the others.
const smallObject = 16

// CheckKeys reports the first key of body that would let tollgate and an
// upstream read different requests from it, as a 400 naming its path:
//   - a key repeated in one object, at any depth, compared after
//     unescaping ("mod\u0065l" is "model"): tollgate reads the last, some
//     upstreams the first;
//   - in an object tollgate decodes (shape), a key that encoding/json would
//     read into a field spelled otherwise ("Model", "MAX_TOKENS").
//
// It is one pass over the bytes and allocates nothing for ordinary bodies.
// body must be valid JSON (the decoders check that first); on anything
// else it reports nothing or some key, and never panics.
func CheckKeys(body []byte, shape *Shape) error {
	// The open objects and arrays, and the keys of the open objects, live
	// in arrays on the stack unless the body nests or spreads further.
	var frameBuf [16]frame
	var keyBuf [64][]byte
	frames, keys := frameBuf[:0], keyBuf[:0]
	expectKey := false
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '{', '[':
			s := shape
			if n := len(frames); n > 0 {
				if top := &frames[n-1]; top.obj {
					s = top.child
				} else if top.shape != nil {
					s = top.shape.elem
				} else {
					s = nil
				}
			}
			frames = append(frames, frame{shape: s, obj: body[i] == '{', keys: len(keys)})
			expectKey = body[i] == '{'
		case '}', ']':
			if n := len(frames); n > 0 {
				keys = keys[:frames[n-1].keys]
				frames = frames[:n-1]
			}
			expectKey = false
		case ',':
			if n := len(frames); n > 0 {
				if top := &frames[n-1]; top.obj {
					expectKey = true
				} else {
					top.index++
				}
			}
		case '"':
			end := stringEnd(body, i)
			if end < 0 {
				end = len(body)
			}
			if expectKey && len(frames) > 0 && frames[len(frames)-1].obj {
				var err error
				if keys, err = checkKey(frames, keys, body[i:end]); err != nil {
					return err
				}
				expectKey = false
			}
			i = end - 1
		}
	}
	return nil
}

// frame is one open object or array.
type frame struct {
	shape *Shape // nil: raw, only repeats are checked
	obj   bool
	keys  int                 // an object's keys start at keys[keys]
	seen  map[string]struct{} // an object's keys once it has many
	key   []byte              // an object's current key (unescaped), for paths
	child *Shape              // the shape of that key's value
	index int                 // an array's current element
}

// checkKey checks one key (quoted: with its quotes) of the innermost
// object, frames[len(frames)-1], and adds it to keys.
func checkKey(frames []frame, keys [][]byte, quoted []byte) ([][]byte, error) {
	top := &frames[len(frames)-1]
	k := unquoteKey(quoted)
	top.key, top.child = k, nil
	if s := top.shape; s != nil {
		switch field, ok := s.fields[string(k)]; {
		case s.isMap:
			top.child = s.elem
		case ok:
			top.child = field
		default:
			if name, ok := s.fold(k); ok {
				return keys, &Error{Status: 400, Type: TypeInvalidRequest, Param: pathOf(frames),
					Message: fmt.Sprintf("unknown key %s: field names are case-sensitive; did you mean %q?", quoteClipped(k), name)}
			}
		}
	}
	own := keys[top.keys:]
	switch {
	case top.seen != nil:
		if _, dup := top.seen[string(k)]; dup {
			return keys, duplicate(frames, k)
		}
		top.seen[string(k)] = struct{}{}
	case len(own) >= smallObject:
		top.seen = make(map[string]struct{}, 2*len(own))
		for _, o := range own {
			top.seen[string(o)] = struct{}{}
		}
		if _, dup := top.seen[string(k)]; dup {
			return keys, duplicate(frames, k)
		}
		top.seen[string(k)] = struct{}{}
	default:
		for _, o := range own {
			if bytes.Equal(o, k) {
				return keys, duplicate(frames, k)
			}
		}
	}
	return append(keys, k), nil
}

func duplicate(frames []frame, k []byte) error {
	where := "the request body"
	if parent := pathOf(frames[:len(frames)-1]); parent != "" {
		where = parent
	}
	return &Error{Status: 400, Type: TypeInvalidRequest, Param: pathOf(frames),
		Message: fmt.Sprintf("duplicate key %s in %s: each key may appear only once in an object", quoteClipped(k), where)}
}

// pathOf names the value the open objects and arrays lead to:
// messages[0].content.
func pathOf(frames []frame) string {
	var b strings.Builder
	for i := range frames {
		f := &frames[i]
		if !f.obj {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(f.index))
			b.WriteByte(']')
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(Clip(string(f.key), maxQuoted))
	}
	return b.String()
}

func quoteClipped(k []byte) string { return strconv.Quote(Clip(string(k), maxQuoted)) }

// stringEnd returns the index just past the string starting at body[i]
// (a quote), or -1 when it does not end. It finds quotes with IndexByte
// and counts the backslashes before each, rather than stepping through
// every byte.
func stringEnd(body []byte, i int) int {
	for j := i + 1; ; {
		q := bytes.IndexByte(body[j:], '"')
		if q < 0 {
			return -1
		}
		q += j
		escapes := 0
		for p := q - 1; p > i && body[p] == '\\'; p-- {
			escapes++
		}
		if escapes%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
}

// unquoteKey returns the key as encoding/json reads it: escapes decoded,
// invalid UTF-8 replaced. Plain keys are returned in place, without a copy.
func unquoteKey(quoted []byte) []byte {
	if len(quoted) < 2 || quoted[len(quoted)-1] != '"' {
		return quoted
	}
	inner := quoted[1 : len(quoted)-1]
	plain := true
	for _, b := range inner {
		if b == '\\' || b >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain || (bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner)) {
		return inner
	}
	var s string
	if json.Unmarshal(quoted, &s) != nil {
		return inner
	}
	return []byte(s)
}

// Clip returns s, or its first max bytes (cut at a character boundary)
// followed by how many bytes were left out, for a client's string quoted in
// a message or a log line.
func Clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(+" + strconv.Itoa(len(s)-cut) + " bytes)"
}
