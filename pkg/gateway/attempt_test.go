package gateway

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/router"
)

// TestDecide is the retry and fallback policy, one case per rule.
func TestDecide(t *testing.T) {
	upstream := func(status int, code string, retryable bool) *llm.Error {
		return &llm.Error{Status: status, Code: code, Upstream: true, Retryable: retryable, Provider: "p", Message: "m"}
	}
	backoff := router.Backoff{MaxAttempts: 3, Base: 100 * time.Millisecond, Max: time.Second}
	base := failure{attempt: 1, deployments: 1, backoff: backoff, remaining: time.Minute, rand: func() float64 { return 0.5 }}
	with := func(f func(*failure)) failure {
		c := base
		f(&c)
		return c
	}
	tests := []struct {
		name     string
		err      error
		f        failure
		act      act
		cooldown bool
		why      string
	}{
		{"the client left: return", upstream(503, "", true), with(func(f *failure) { f.ctxErr = context.Canceled }), actReturn, false, ""},
		{"the deadline passed: return", upstream(503, "", true), with(func(f *failure) { f.ctxErr = context.DeadlineExceeded }), actReturn, false, ""},
		{"a translator cannot express the request: next model", &llm.Error{Status: 400, Code: "unsupported_parameter"}, base, actNextModel, false, "400 unsupported_parameter"},
		{"an upstream 400 is the request's own fault: return", upstream(400, "invalid_request", false), base, actReturn, false, ""},
		{"an upstream 404 (model gone there): return", upstream(404, "", false), base, actReturn, false, ""},
		{"our credential refused (401): next deployment", upstream(401, "invalid_api_key", false), base, actNextDeployment, false, "401 invalid_api_key"},
		{"our credential forbidden (403): next deployment", upstream(403, "", false), base, actNextDeployment, false, "403"},
		{"a hanging deployment is not retried: next deployment", upstream(504, "upstream_timeout", true), base, actNextDeployment, false, "504 upstream_timeout"},
		{"429 with other deployments: cool down, next deployment", upstream(429, "", false), with(func(f *failure) { f.deployments = 2 }), actNextDeployment, true, "429"},
		{"429 on the only deployment: cool down, retry", upstream(429, "", false), base, actRetry, true, ""},
		{"5xx with attempts left: retry", upstream(502, "", false), base, actRetry, false, ""},
		{"retryable 4xx (408) with attempts left: retry", upstream(408, "", true), base, actRetry, false, ""},
		{"5xx with attempts spent: next deployment", upstream(503, "", true), with(func(f *failure) { f.attempt = 3 }), actNextDeployment, false, "503 after 3 attempt(s)"},
		{"a Retry-After longer than the backoff waits out: next deployment", &llm.Error{Status: 503, Upstream: true, Retryable: true, RetryAfter: time.Hour}, base, actNextDeployment, false, "503 after 1 attempt(s)"},
		{"a plain transport error: return", io.ErrUnexpectedEOF, base, actReturn, false, ""},
		{"a wrapped upstream 5xx is still an upstream 5xx: retry", errorsJoin(upstream(500, "", true)), base, actRetry, false, ""},
		{"a tollgate 5xx (not upstream, e.g. a translator bug): retry", &llm.Error{Status: 500}, base, actRetry, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decide(tt.err, tt.f)
			if d.act != tt.act || d.cooldown != tt.cooldown || d.why != tt.why {
				t.Fatalf("decide = {%v cooldown=%v why=%q}, want {%v cooldown=%v why=%q}", d.act, d.cooldown, d.why, tt.act, tt.cooldown, tt.why)
			}
			if d.act == actRetry && (d.wait <= 0 || d.wait > tt.f.remaining) {
				t.Fatalf("retry wait %v, want within (0, %v]", d.wait, tt.f.remaining)
			}
		})
	}
}

// TestDecideHonoursRetryAfter: a Retry-After within the deadline is the
// wait.
func TestDecideHonoursRetryAfter(t *testing.T) {
	err := &llm.Error{Status: 429, Upstream: true, RetryAfter: 2 * time.Second}
	d := decide(err, failure{attempt: 1, deployments: 1, backoff: router.Backoff{MaxAttempts: 3, Base: 100 * time.Millisecond, Max: 10 * time.Second},
		remaining: time.Minute, rand: func() float64 { return 0 }})
	if d.act != actRetry || d.wait < 2*time.Second {
		t.Fatalf("decide = %v after %v, want a retry after at least the 2s Retry-After", d.act, d.wait)
	}
}

func errorsJoin(err error) error { return errors.Join(err) }
