package llm

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func TestSetField(t *testing.T) {
	tests := []struct {
		name string
		obj  string
		key  string
		val  string // "" removes
		want string
	}{
		{"replace", `{"model":"a","x":1}`, "model", `"b"`, `{"x":1,"model":"b"}`},
		{"append", `{"x":{"model":"deep"}}`, "model", `"b"`, `{"x":{"model":"deep"},"model":"b"}`},
		{"remove first", `{"stream_options":{"include_usage":true}, "stream":true}`, "stream_options", "", `{"stream":true}`},
		{"remove only", `{ "a" : [1,2] }`, "a", "", `{}`},
		{"empty object", ` {} `, "model", `"m"`, `{"model":"m"}`},
		{"duplicates", `{"model":"a","model":"c","n":2}`, "model", `"b"`, `{"n":2,"model":"b"}`},
		{"escaped key", `{"mod\u0065l":"a"}`, "model", `"b"`, `{"model":"b"}`},
		{"every spelling removed", `{"customer_credentials":{"a":"k"},"n":1,"customer\u005fcredentials":{"b":"k"}}`, "customer_credentials", "", `{"n":1}`},
		{"space around the colon kept", `{"a" : 1 ,"model":"x"}`, "model", "", `{"a" : 1}`},
		{"strings with braces", `{"s":"}{\"]","model":"a"}`, "model", `1`, `{"s":"}{\"]","model":1}`},
		{"unknown fields kept verbatim", `{"extra_body":{"z":[1.50,{"k":null}]},"model":"a"}`, "model", `"b"`, `{"extra_body":{"z":[1.50,{"k":null}]},"model":"b"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var val []byte
			if tt.val != "" {
				val = []byte(tt.val)
			}
			got, err := SetField([]byte(tt.obj), tt.key, val)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			var a, b any
			if err := json.Unmarshal(got, &a); err != nil {
				t.Fatalf("result is not JSON: %v", err)
			}
			_ = json.Unmarshal([]byte(tt.want), &b)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("semantic mismatch")
			}
		})
	}
	if _, err := SetField([]byte(`[1]`), "a", []byte(`1`)); err == nil {
		t.Fatal("array accepted as object")
	}
}

func TestField(t *testing.T) {
	const key = "customer_credentials"
	tests := []struct {
		name string
		obj  string
		want string // "": absent
	}{
		{"plain", `{"model":"m","customer_credentials":{"openai":"sk-1"}}`, `{"openai":"sk-1"}`},
		{"escaped underscore", `{"model":"m","customer\u005fcredentials":{"openai":"sk-1"}}`, `{"openai":"sk-1"}`},
		{"every character escaped", `{"\u0063\u0075\u0073\u0074\u006f\u006d\u0065\u0072\u005f\u0063\u0072\u0065\u0064\u0065\u006e\u0074\u0069\u0061\u006c\u0073":1}`, `1`},
		{"absent", `{"model":"m","messages":[]}`, ""},
		{"named in a string only", `{"content":"what are customer_credentials?"}`, ""},
		{"nested, not top level", `{"metadata":{"customer_credentials":{"a":"b"}}}`, ""},
		{"escapes elsewhere", `{"content":"caf\u00e9","customer_credential":1}`, ""},
		{"other case is another key", `{"Customer_Credentials":1}`, ""},
		{"the last of two", `{"customer_credentials":1,"customer_credentials":2}`, `2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			val, ok, err := Field([]byte(tt.obj), key)
			if err != nil {
				t.Fatal(err)
			}
			if ok != (tt.want != "") || string(val) != tt.want {
				t.Fatalf("Field = %s, %v; want %q", val, ok, tt.want)
			}
		})
	}
	if _, _, err := Field([]byte(`["customer_credentials"]`), key); err == nil {
		t.Fatal("array accepted as object")
	}
}

// FuzzField: Field reads a top-level member as encoding/json does.
func FuzzField(f *testing.F) {
	f.Add([]byte(`{"model":"a","mod\u0065l":"b","x":{"model":1}}`))
	f.Add([]byte(`{"content":"model \u00e9"}`))
	f.Fuzz(func(t *testing.T, obj []byte) {
		var m map[string]json.RawMessage
		if json.Unmarshal(obj, &m) != nil || m == nil {
			return
		}
		val, ok, err := Field(obj, "model")
		if err != nil {
			t.Fatalf("valid object rejected: %v", err)
		}
		want, present := m["model"]
		if ok != present || (ok && !bytes.Equal(bytes.TrimSpace(val), bytes.TrimSpace(want))) {
			t.Fatalf("Field = %q %v, encoding/json %q %v, from %q", val, ok, want, present, obj)
		}
	})
}

func FuzzSetField(f *testing.F) {
	f.Add([]byte(`{"model":"a","messages":[]}`))
	f.Add([]byte(`{"a":"\"}","b":[{"c":1}]}`))
	f.Fuzz(func(t *testing.T, obj []byte) {
		var m map[string]json.RawMessage
		if json.Unmarshal(obj, &m) != nil {
			return
		}
		got, err := SetField(obj, "model", []byte(`"x"`))
		if err != nil {
			t.Fatalf("valid object rejected: %v", err)
		}
		var m2 map[string]json.RawMessage
		if err := json.Unmarshal(got, &m2); err != nil {
			t.Fatalf("output not JSON: %v: %s", err, got)
		}
		if string(m2["model"]) != `"x"` || len(m2) != len(m)+boolInt(m["model"] == nil) {
			t.Fatalf("wrong result %s from %s", got, obj)
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
