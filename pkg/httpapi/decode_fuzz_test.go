package httpapi

import (
	"reflect"
	"testing"

	"github.com/tollgate/tollgate/pkg/llm"
)

// FuzzDecodeChatMatchesEncodingJSON: the fast decoder accepts exactly what
// encoding/json accepts and reads the same request from it.
func FuzzDecodeChatMatchesEncodingJSON(f *testing.F) {
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"caf\u00e9 \"q\""}],"stop":["a"],"n":2}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}`))
	f.Add([]byte(`{"MODEL":"m","messages":[{"role":"user","content":"\xff"}]}`))
	f.Add([]byte(`{"model":"m","model":"n","messages":[{"role":"user","content":"x"}]} `))
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, errFast := decodeChat(body)
		std, errStd := llm.DecodeChatRequest(body)
		if (errFast == nil) != (errStd == nil) {
			t.Fatalf("fast err %v, std err %v for %q", errFast, errStd, body)
		}
		if errStd != nil {
			if errFast.Error() != errStd.Error() {
				t.Fatalf("messages differ: %q vs %q", errFast, errStd)
			}
			return
		}
		fast.Raw, std.Raw = nil, nil
		if !reflect.DeepEqual(fast, std) {
			t.Fatalf("decoded differently:\nfast %+v\nstd  %+v\nfrom %q", fast, std, body)
		}
	})
}
