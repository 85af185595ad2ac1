package budget

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// FuzzVerifySignature: any header parses without panicking, and what Sign
// writes verifies for the same body and no other.
func FuzzVerifySignature(f *testing.F) {
	f.Add("t=1773000000,v1=00", []byte(`{}`), int64(1_773_000_000))
	f.Add(",,=,v1=,t=", []byte(nil), int64(0))
	f.Fuzz(func(t *testing.T, header string, body []byte, unix int64) {
		now := time.Unix(unix%(1<<40), 0)
		_ = VerifySignature("s", header, body, now, time.Minute)
		h := Sign("s", now, body)
		if err := VerifySignature("s", h, body, now, time.Minute); err != nil {
			t.Fatalf("own signature %q: %v", h, err)
		}
		if err := VerifySignature("s", h, append(body, 'x'), now, time.Minute); err == nil {
			t.Fatal("signature verifies another body")
		}
	})
}

// FuzzParseUSD: amounts parse without panicking, and every amount's
// decimal form parses back to itself.
func FuzzParseUSD(f *testing.F) {
	for _, s := range []string{"5", "0.25", "1e-3", "-1.5", "0.0000001", "1e400", "."} {
		f.Add(s, int64(0))
	}
	f.Fuzz(func(t *testing.T, s string, m int64) {
		_, _ = ParseUSD(s)
		m %= 1 << 53
		got, err := ParseUSD(llm.Micros(m).String())
		if err != nil || got != llm.Micros(m) {
			t.Fatalf("ParseUSD(%s) = %d, %v", llm.Micros(m), got, err)
		}
	})
}
