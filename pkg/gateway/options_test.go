package gateway

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/router"
)

// TestDecideUnderAConfig: a request's config changes what decide does
// with a failure, one case per rule.
func TestDecideUnderAConfig(t *testing.T) {
	upstream := func(status int) *llm.Error {
		return &llm.Error{Status: status, Upstream: true, Retryable: status >= 500, Provider: "p"}
	}
	base := failure{attempt: 1, deployments: 1, backoff: router.Backoff{MaxAttempts: 3}, remaining: time.Minute, rand: func() float64 { return 0.5 }}
	with := func(f func(*failure)) failure {
		c := base
		f(&c)
		return c
	}
	tests := []struct {
		name string
		err  error
		f    failure
		act  act
	}{
		{"retry lists the 500: retried", upstream(500), with(func(f *failure) { f.retry = &Retry{Attempts: 5, On: []int{500}} }), actRetry},
		{"retry lists the 500, attempts 5 spent (6 made): next deployment", upstream(500), with(func(f *failure) { f.retry = &Retry{Attempts: 5, On: []int{500}}; f.attempt = 6 }), actNextDeployment},
		{"retry attempts beyond the deployment's own 3", upstream(500), with(func(f *failure) { f.retry = &Retry{Attempts: 5}; f.attempt = 4 }), actRetry},
		{"retry does not list the 500: not retried", upstream(500), with(func(f *failure) { f.retry = &Retry{Attempts: 5, On: []int{429}} }), actNextDeployment},
		{"retry attempts 0: not retried", upstream(503), with(func(f *failure) { f.retry = &Retry{} }), actNextDeployment},
		{"retry lists a 400: retried though tollgate would return it", upstream(400), with(func(f *failure) { f.retry = &Retry{Attempts: 1, On: []int{400}} }), actRetry},
		{"retry defaults leave a 400 alone: return", upstream(400), with(func(f *failure) { f.retry = &Retry{Attempts: 1} }), actReturn},
		{"fallback lists the 400: next model", upstream(400), with(func(f *failure) { f.fallbackOn = []int{400} }), actNextModel},
		{"fallback lists the 404, the failure is a 400: return", upstream(400), with(func(f *failure) { f.fallbackOn = []int{404} }), actReturn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := decide(tt.err, tt.f); d.act != tt.act {
				t.Fatalf("decide = %v (%s), want %v", d.act, d.why, tt.act)
			}
		})
	}
}

// TestCourseGate: a gated step opens only on a listed upstream status;
// tollgate's own failures and other steps always move on.
func TestCourseGate(t *testing.T) {
	c := course{gated: []int{2}, on: []int{503}}
	tests := []struct {
		name   string
		si     int
		err    error
		closed bool
	}{
		{"a listed status opens the gate", 2, &llm.Error{Status: 503, Upstream: true}, false},
		{"another upstream status keeps it closed", 2, &llm.Error{Status: 500, Upstream: true}, true},
		{"tollgate's own failure opens it", 2, &llm.Error{Status: 503, Code: "no_healthy_model"}, false},
		{"no failure yet (breakers open) opens it", 2, nil, false},
		{"a step that is not gated is never closed", 1, &llm.Error{Status: 500, Upstream: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.closed(tt.si, tt.err); got != tt.closed {
				t.Fatalf("closed = %v, want %v", got, tt.closed)
			}
		})
	}
}

// TestPickTarget: a draw in [0,1) lands on each target in proportion to
// its weight.
func TestPickTarget(t *testing.T) {
	targets := []Target{{Model: "a", Weight: 0.7}, {Model: "b", Weight: 0.2}, {Model: "c", Weight: 0.1}}
	var n [3]int
	for i := range 1000 {
		n[pickTarget(targets, float64(i)/1000)]++
	}
	for i, want := range [3]int{700, 200, 100} {
		if d := n[i] - want; d < -1 || d > 1 { // a boundary may round either way
			t.Fatalf("split %v, want 700/200/100", n)
		}
	}
	if got := pickTarget(targets, 0.9999999999999999); got != 2 {
		t.Fatalf("the top of the range lands on %d", got)
	}
}
