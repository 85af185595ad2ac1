package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestCheckKeys(t *testing.T) {
	const user = `"messages":[{"role":"user","content":"hi"}]`
	many := func(n int, last string) string {
		var b strings.Builder
		b.WriteString(`{"model":"m",` + user + `,"metadata":{`)
		for i := range n {
			fmt.Fprintf(&b, `"k%d":1,`, i)
		}
		b.WriteString(`"` + last + `":2}}`)
		return b.String()
	}
	tests := []struct {
		name  string
		body  string
		param string // "": the body passes
		msg   string
	}{
		{"plain", `{"model":"m",` + user + `}`, "", ""},
		{"same key in sibling objects", `{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}`, "", ""},
		{"same key at another depth", `{"model":"m",` + user + `,"metadata":{"model":"x","messages":[{"model":1}]}}`, "", ""},
		{"braces and quotes inside strings", `{"model":"}{\"model\":1,[","s":"\\",` + user + `}`, "", ""},
		{"case variants inside a raw value", `{"model":"m",` + user + `,"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":{"ID":{},"id":{}}}}}]}`, "", ""},
		{"case variants inside an unknown field", `{"model":"m",` + user + `,"metadata":{"Model":"a","MODEL":"b"}}`, "", ""},
		{"many keys", many(1000, "k1000"), "", ""},

		{"duplicate model", `{"model":"cheap",` + user + `,"model":"dear"}`, "model", `duplicate key "model" in the request body`},
		{"duplicate by escape", `{"model":"cheap",` + user + `,"mod\u0065l":"dear"}`, "model", `duplicate key "model"`},
		{"duplicate escaped both ways", `{"m\u006fdel":"a",` + user + `,"mo\u0064el":"b"}`, "model", `duplicate key "model"`},
		{"duplicate content", `{"model":"m","messages":[{"role":"user","content":"a","content":"b"}]}`, "messages[0].content", `duplicate key "content" in messages[0]`},
		{"duplicate in a later element", `{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","role":"system","content":"b"}]}`, "messages[1].role", `duplicate key "role" in messages[1]`},
		{"duplicate in a content part", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a","text":"b"}]}]}`, "messages[0].content[0].text", `duplicate key "text"`},
		{"duplicate in tool parameters", `{"model":"m",` + user + `,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","type":"string"}}}]}`, "tools[0].function.parameters.type", `duplicate key "type"`},
		{"duplicate in an unknown field", `{"model":"m",` + user + `,"extra_body":{"a":[{"b":1,"b":2}]}}`, "extra_body.a[0].b", `duplicate key "b"`},
		{"duplicate after a string ending in a backslash", `{"model":"m\\",` + user + `,"model":"n"}`, "model", `duplicate key "model"`},
		{"duplicate among many keys", many(1000, "k7"), "metadata.k7", `duplicate key "k7" in metadata`},
		{"invalid UTF-8 keys read alike", `{"model":"m",` + user + `,"metadata":{"a` + "\xff" + `":1,"a` + "\xfe" + `":2}}`, "metadata.a\uFFFD", "duplicate key \"a\uFFFD\""},
		{"customer_credentials twice", `{"model":"m",` + user + `,"customer_credentials":{"a":"k1"},"customer_credentials":{"a":"k2"}}`, "customer_credentials", `duplicate key "customer_credentials"`},

		{"model in capitals", `{"MODEL":"m",` + user + `}`, "MODEL", `unknown key "MODEL": field names are case-sensitive; did you mean "model"?`},
		{"max_tokens in capitals after max_tokens", `{"model":"m",` + user + `,"max_tokens":5,"MAX_TOKENS":5000}`, "MAX_TOKENS", `did you mean "max_tokens"?`},
		{"role in another case", `{"model":"m","messages":[{"Role":"user","content":"a"}]}`, "messages[0].Role", `did you mean "role"?`},
		{"long s folds to s", `{"model":"m",` + user + `,"ſtream":true}`, "ſtream", `did you mean "stream"?`},
		{"escaped Kelvin sign folds to k", `{"model":"m",` + user + `,"max_to\u212aens":5}`, "max_to\u212aens", `did you mean "max_tokens"?`},
		{"function name in capitals", `{"model":"m",` + user + `,"tools":[{"type":"function","function":{"NAME":"f"}}]}`, "tools[0].function.NAME", `did you mean "name"?`},
		{"customer_credentials in another case", `{"model":"m",` + user + `,"Customer_Credentials":{"a":"k"}}`, "Customer_Credentials", `did you mean "customer_credentials"?`},
		{"long key quoted clipped", `{"model":"m",` + user + `,"` + strings.Repeat("x", 5000) + `":1,"` + strings.Repeat("x", 5000) + `":2}`, strings.Repeat("x", 64) + "…(+4936 bytes)", `duplicate key "` + strings.Repeat("x", 64) + `…(+4936 bytes)"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !json.Valid([]byte(tt.body)) {
				t.Fatalf("test body is not JSON: %s", tt.body)
			}
			err := CheckKeys([]byte(tt.body), chatShape)
			if tt.param == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			e, ok := AsError(err)
			if !ok || e.Status != 400 || e.Type != TypeInvalidRequest {
				t.Fatalf("want a 400 invalid_request_error, got %#v", err)
			}
			if e.Param != tt.param || !strings.Contains(e.Message, tt.msg) {
				t.Fatalf("got param %q message %q\nwant %q containing %q", e.Param, e.Message, tt.param, tt.msg)
			}
		})
	}
}

// TestDecodeRejectsRepeatedKeys: both decoders of request bodies answer a
// repeated key with a 400 naming it, before any other check reads a value.
func TestDecodeRejectsRepeatedKeys(t *testing.T) {
	tests := []struct {
		name   string
		decode func([]byte) error
		body   string
		param  string
	}{
		{"chat", func(b []byte) error { _, err := DecodeChatRequest(b); return err },
			`{"model":"a","messages":[{"role":"user","content":"x"}],"model":"b"}`, "model"},
		{"chat through a faster unmarshaller", func(b []byte) error { _, err := DecodeChatRequestWith(b, json.Unmarshal); return err },
			`{"model":"a","messages":[{"role":"user","content":"x","content":"y"}]}`, "messages[0].content"},
		{"embeddings", func(b []byte) error { _, err := DecodeEmbeddingRequest(b); return err },
			`{"model":"a","input":"x","dimensions":8,"dimensions":100000000}`, "dimensions"},
		{"embeddings in capitals", func(b []byte) error { _, err := DecodeEmbeddingRequest(b); return err },
			`{"model":"a","INPUT":"x"}`, "INPUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := AsError(tt.decode([]byte(tt.body)))
			if !ok || e.Status != 400 || e.Param != tt.param {
				t.Fatalf("got %#v, want a 400 for %q", e, tt.param)
			}
		})
	}
}

func TestShapeOf(t *testing.T) {
	type inner struct {
		A int `json:"a"`
	}
	type Embedded struct {
		E string `json:"e"`
	}
	type outer struct {
		Embedded
		Name   string            `json:"name,omitempty"`
		Plain  int               // no tag: the Go name
		Skip   int               `json:"-"`
		Dash   int               `json:"-,"`
		Raw    json.RawMessage   `json:"raw"`
		List   []inner           `json:"list"`
		ByName map[string]*inner `json:"by_name"`
		Tags   map[string]string `json:"tags"`
		hidden int
	}
	s := ShapeOf(reflect.TypeFor[*outer]())
	var names []string
	for _, n := range s.names {
		names = append(names, string(n))
	}
	if got, want := strings.Join(names, ","), "e,name,Plain,-,raw,list,by_name,tags"; got != want {
		t.Fatalf("fields %s, want %s", got, want)
	}
	if s.fields["raw"] != nil || s.fields["tags"] != nil || s.fields["name"] != nil {
		t.Error("raw values, maps of scalars and scalars have no shape")
	}
	if l := s.fields["list"]; l == nil || l.elem == nil || l.elem.fields["a"] != nil || len(l.elem.names) != 1 {
		t.Error("list: want an array of objects with field a")
	}
	if m := s.fields["by_name"]; m == nil || !m.isMap || m.elem == nil || len(m.elem.names) != 1 {
		t.Error("by_name: want a map of objects")
	}
	if c := chatShape.fields["messages"].elem.fields["content"]; c == nil || c.elem == nil || c.elem.fields["image_url"] == nil {
		t.Error("chat content: want an array of parts with image_url")
	}
	_ = outer{}.hidden
}

// refDuplicate is the first repeated key of a valid JSON text as
// encoding/json's tokenizer reads it, or "".
func refDuplicate(body []byte) (key string, found bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	type level struct {
		obj     bool
		keys    map[string]bool
		wantKey bool
	}
	var stack []*level
	for {
		tok, err := dec.Token()
		if err == io.EOF || err != nil {
			return "", false
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.wantKey {
			k, ok := tok.(string)
			if !ok { // the object's closing brace: a value of its parent ends
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].obj {
					stack[len(stack)-1].wantKey = true
				}
				continue
			}
			if top.keys[k] {
				return k, true
			}
			top.keys[k] = true
			top.wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &level{obj: true, keys: map[string]bool{}, wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, &level{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].wantKey = true
		}
	}
}

// FuzzCheckKeys: on any JSON text CheckKeys finds a repeated key exactly
// when encoding/json's tokenizer sees one, and names it; on anything else it
// does not panic.
func FuzzCheckKeys(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"a":[{"a":1},{"a":2}]},"c":"}\"{"}`))
	f.Add([]byte(`{"a":1,"\u0061":2}`))
	f.Add([]byte(`{"a\\":1,"a\\\\":2,"a\\":3}`))
	f.Add([]byte(`[{"x":[],"y":{},"x":null}]`))
	f.Add([]byte(`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k3":3}`))
	f.Add([]byte(`{"a` + "\xff" + `":1,"a` + "\xfe" + `":2}`))
	f.Add([]byte(`{"a":"\`))
	f.Add([]byte(`{"":{},"":""}`)) // the empty key repeated: a repeat all the same
	f.Fuzz(func(t *testing.T, body []byte) {
		err := CheckKeys(body, nil)
		if !json.Valid(body) {
			return
		}
		want, found := refDuplicate(body)
		if !found {
			if err != nil {
				t.Fatalf("no repeated key, got %v for %q", err, body)
			}
			return
		}
		e, ok := AsError(err)
		if !ok {
			t.Fatalf("repeated key %q not found in %q", want, body)
		}
		if q := strconv.Quote(Clip(want, maxQuoted)); !strings.Contains(e.Message, "duplicate key "+q) {
			t.Fatalf("message %q does not name %s (body %q)", e.Message, q, body)
		}
	})
}

func TestClip(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"short", "abc", 5, "abc"},
		{"exact", "abcde", 5, "abcde"},
		{"long", "abcdefgh", 5, "abcde…(+3 bytes)"},
		{"cut inside a character", "abcdé", 5, "abcd…(+2 bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Clip(tt.in, tt.max); got != tt.want {
				t.Fatalf("Clip(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

func BenchmarkCheckKeys(b *testing.B) {
	for _, name := range []string{"short", "typical", "tools"} {
		body := []byte(benchBodies[name])
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := CheckKeys(body, chatShape); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
