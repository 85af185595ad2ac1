package semcache

import (
	"strings"
	"testing"
	"time"
)

// TestSetPolicy: a running cache takes a new policy for what follows:
// cacheability (temperature bound, side-effecting tools) and the TTL of
// entries stored after it; entries stored before keep their expiry.
func TestSetPolicy(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, nil)
	hot := strings.Replace(baseBody, "0.2", "1.5", 1)
	if ok, _ := c.Cacheable(req(t, "t1", hot)); ok {
		t.Fatal("temperature 1.5 cacheable under the default bound")
	}
	two := 2.0
	if err := c.SetPolicy(Policy{TTL: time.Hour, MaxTemperature: &two, SideEffectTools: []string{"send_email"}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		body string
		want bool
	}{
		{"temperature under the new bound", hot, true},
		{"side-effecting tool result", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"function","name":"send_email","content":"ok"}]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ok, why := c.Cacheable(req(t, "t1", tt.body)); ok != tt.want {
				t.Fatalf("Cacheable = %v (%s), want %v", ok, why, tt.want)
			}
		})
	}
	if got := c.pol.Load().ttl; got != time.Hour {
		t.Fatalf("ttl %s, want 1h", got)
	}
	if err := c.SetPolicy(Policy{}); err != nil {
		t.Fatal(err)
	}
	if p := c.pol.Load(); p.ttl != DefaultTTL || p.maxTemp != DefaultMaxTemperature || p.threshold != DefaultThreshold {
		t.Fatalf("zero policy resolved to %+v, want the defaults", p)
	}
}
