package llm

import (
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
