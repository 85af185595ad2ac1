package router

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeClock is an injected now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func ids(d []Deployment) string {
	var s []string
	for _, x := range d {
		s = append(s, x.ID)
	}
	return strings.Join(s, ",")
}

func TestBalancerWeightedOrder(t *testing.T) {
	deps := []Deployment{{ID: "a", Weight: 3}, {ID: "b", Weight: 1}, {ID: "c"}} // c weighs 1
	b := NewBalancer(nil, nil)
	tests := []struct {
		pick float64
		want string
	}{
		{0, "a,b,c"},
		{0.59, "a,b,c"}, // a has [0, 0.6)
		{0.6, "b,a,c"},  // b has [0.6, 0.8)
		{0.79, "b,a,c"},
		{0.8, "c,a,b"},
		{0.999, "c,a,b"},
		{1.5, "c,a,b"}, // out of range picks are clamped
		{-1, "a,b,c"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.pick), func(t *testing.T) {
			if got := ids(b.Order(deps, tc.pick, nil)); got != tc.want {
				t.Errorf("Order(pick %v) = %s, want %s", tc.pick, got, tc.want)
			}
		})
	}
	if ids(deps) != "a,b,c" {
		t.Errorf("Order modified its input: %s", ids(deps))
	}
}

func TestBalancerRateLimitMovesTraffic(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	b := NewBalancer(nil, clock.now)
	deps := []Deployment{{ID: "key1", Weight: 9}, {ID: "key2", Weight: 1}}

	until := b.RateLimited("key1", 2*time.Second)
	if want := clock.now().Add(2 * time.Second); !until.Equal(want) {
		t.Errorf("RateLimited until %v, want %v", until, want)
	}
	for _, pick := range []float64{0, 0.5, 0.99} {
		if got := ids(b.Order(deps, pick, nil)); got != "key2" {
			t.Errorf("during key1's cooldown, Order(pick %v) = %s, want key2", pick, got)
		}
	}
	if u, ok := b.CoolingUntil("key1"); !ok || !u.Equal(until) {
		t.Errorf("CoolingUntil(key1) = %v, %v", u, ok)
	}
	b.Cooldown("key1", clock.now().Add(time.Second)) // shorter: ignored
	clock.advance(time.Second + time.Millisecond)
	if got := ids(b.Order(deps, 0, nil)); got != "key2" {
		t.Errorf("a cooldown was shortened: Order = %s", got)
	}
	clock.advance(time.Second)
	if got := ids(b.Order(deps, 0, nil)); got != "key1,key2" {
		t.Errorf("after the cooldown, Order = %s, want key1,key2", got)
	}
	if _, ok := b.CoolingUntil("key1"); ok {
		t.Error("still cooling after the cooldown")
	}

	// Without Retry-After, the default cooldown.
	b.RateLimited("key2", 0)
	clock.advance(DefaultRateLimitCooldown - time.Millisecond)
	if got := ids(b.Order(deps, 0.99, nil)); got != "key1" {
		t.Errorf("Order = %s, want key1 while key2 cools down", got)
	}
	b.RateLimited("key1", time.Minute)
	if got := ids(b.Order(deps, 0.5, nil)); got != "" {
		t.Errorf("Order = %s, want nothing: every deployment is cooling down", got)
	}
	if ok, why := b.Available(deps); ok || why != "rate limited" {
		t.Errorf("Available = %v, %q; want false, rate limited", ok, why)
	}
}

func TestBalancerBreakers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		br := newTestBreakers(t, BreakerConfig{Default: BreakerSettings{ConsecutiveFailures: 1, Cooldown: time.Minute}})
		b := NewBalancer(br, nil)
		deps := []Deployment{{ID: "a", Weight: 1}, {ID: "b", Weight: 2}, {ID: "c", Weight: 3}}

		call(t, br, "c", OutcomeFault) // c opens
		if got := ids(b.Order(deps, 0, nil)); got != "a,b" {
			t.Errorf("with c open, Order = %s, want a,b", got)
		}
		time.Sleep(time.Minute + 1) // c half-opens: after the healthy ones
		if got := ids(b.Order(deps, 0, nil)); got != "a,b,c" {
			t.Errorf("with c half-open, Order = %s, want a,b,c", got)
		}
		call(t, br, "a", OutcomeFault)
		call(t, br, "b", OutcomeFault)
		// Only the half-open c is left: it is the choice, whatever the pick.
		if got := ids(b.Order(deps, 0, nil)); got != "c" {
			t.Errorf("with a, b open and c half-open, Order = %s, want c", got)
		}
		if ok, _ := b.Available(deps); !ok {
			t.Error("Available = false with c half-open")
		}
		call(t, br, "c", OutcomeFault) // a failed probe: all open
		if got := ids(b.Order(deps, 0, nil)); got != "" {
			t.Errorf("all open: Order = %s, want nothing", got)
		}
		if ok, why := b.Available(deps); ok || why != "breaker open" {
			t.Errorf("Available = %v, %q; want false, breaker open", ok, why)
		}
		if ok, why := b.Available(nil); ok || why != "no deployment" {
			t.Errorf("Available(nil) = %v, %q; want false, no deployment", ok, why)
		}
	})
}

func TestBalancerOrderDoesNotAllocate(t *testing.T) {
	br := newTestBreakers(t, BreakerConfig{})
	b := NewBalancer(br, nil)
	deps := []Deployment{{ID: "a"}, {ID: "b", Weight: 2}, {ID: "c"}}
	b.RateLimited("b", time.Hour)
	var buf [8]Deployment
	allocs := testing.AllocsPerRun(100, func() { b.Order(deps, 0.3, buf[:0]) })
	if allocs != 0 {
		t.Errorf("Order allocates %v times per call", allocs)
	}
}

func TestBalancerConcurrent(t *testing.T) {
	br := newTestBreakers(t, BreakerConfig{})
	b := NewBalancer(br, nil)
	deps := []Deployment{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			var buf [3]Deployment
			for i := range 500 {
				order := b.Order(deps, float64(i%10)/10, buf[:0])
				if len(order) == 0 {
					continue
				}
				p, err := br.Allow(order[0].ID)
				if err != nil {
					continue
				}
				if (i+g)%7 == 0 {
					b.RateLimited(order[0].ID, time.Millisecond)
					p.Done(OutcomeFault, "429")
				} else {
					p.Done(OutcomeSuccess, "")
				}
			}
		})
	}
	wg.Wait()
	if got := len(br.Snapshot()); got != 3 {
		t.Errorf("%d breakers, want 3", got)
	}
	if !slices.IsSortedFunc(br.Snapshot(), func(x, y BreakerStatus) int { return strings.Compare(x.ID, y.ID) }) {
		t.Error("snapshot not sorted")
	}
}

func BenchmarkBalancerOrder(b *testing.B) {
	br, err := NewBreakers(BreakerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	bal := NewBalancer(br, nil)
	deps := []Deployment{{ID: "openai-key1", Weight: 2}, {ID: "openai-key2", Weight: 1}, {ID: "azure-eu", Weight: 1}}
	for _, d := range deps {
		br.Add(d.ID, "openai")
	}
	bal.RateLimited("openai-key2", time.Hour)
	var buf [4]Deployment
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if len(bal.Order(deps, float64(i%100)/100, buf[:0])) == 0 {
			b.Fatal("no deployment")
		}
	}
}
