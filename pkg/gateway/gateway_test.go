package gateway

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/tokens"
)

// switchable fails with a 503 while fail is set, and counts its calls.
type switchable struct {
	providers.Provider
	fail  atomic.Bool
	calls atomic.Int32
}

func (s *switchable) Chat(ctx context.Context, r *providers.Request) (*llm.ChatResponse, error) {
	s.calls.Add(1)
	if s.fail.Load() {
		return nil, &llm.Error{Status: 503, Type: llm.TypeServer, Upstream: true, Retryable: true, Provider: "a", Message: "overloaded"}
	}
	return s.Provider.Chat(ctx, r)
}

func sim(t *testing.T, name string) *providers.Sim {
	s, err := providers.NewSim(providers.SimConfig{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func spec(t *testing.T, name string) *router.Model {
	c, err := router.NewCatalog(router.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	m, _ := c.Lookup("sim-small")
	cp := *m
	cp.Name, cp.UpstreamModel = name, name
	return &cp
}

// TestBreakerOpensSkipsAndHalfOpensAfterCooldown runs in a synctest bubble:
// the clock is virtual, so the 30s cooldown passes without a real sleep.
func TestBreakerOpensSkipsAndHalfOpensAfterCooldown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &switchable{Provider: sim(t, "a")}
		a.fail.Store(true)
		b := sim(t, "b")
		specA, specB := spec(t, "model-a"), spec(t, "model-b")
		cat, _ := router.NewCatalog([]router.Model{*specA, *specB})
		routes, err := router.NewRoutes(cat, []router.Route{{Name: "ha", Strategy: router.StrategyPriority, Candidates: []string{"model-a", "model-b"}}})
		if err != nil {
			t.Fatal(err)
		}
		breakers, _ := router.NewBreakers(router.BreakerConfig{Default: router.BreakerSettings{ConsecutiveFailures: 3, Cooldown: 30 * time.Second, HalfOpenRequests: 1}})
		g, err := New(Options{
			Models: []*Model{
				{Name: "model-a", Spec: specA, Chat: true, Deployments: []Deployment{{ID: "a", Provider: a, Upstream: "model-a", Backoff: router.Backoff{MaxAttempts: 1}}}},
				{Name: "model-b", Spec: specB, Chat: true, Deployments: []Deployment{{ID: "b", Provider: b, Upstream: "model-b"}}},
			},
			Tokens: tokens.NewCounter(), Routes: routes, Breakers: breakers,
		})
		if err != nil {
			t.Fatal(err)
		}
		caller := Caller{Key: &keys.Key{ID: "k"}}
		req, _ := llm.DecodeChatRequest([]byte(`{"model":"ha","messages":[{"role":"user","content":"hi"}]}`))
		chat := func() *Meta {
			t.Helper()
			_, meta, err := g.Chat(context.Background(), caller, req)
			if err != nil {
				t.Fatal(err)
			}
			return meta
		}
		state := func() router.BreakerState { return breakers.State("a") }

		for i := 0; i < 3; i++ { // three faults in a row: served by the fallback
			if m := chat(); m.Model != "model-b" {
				t.Fatalf("request %d served by %s", i, m.Model)
			}
		}
		if state() != router.BreakerOpen {
			t.Fatalf("breaker %v after 3 faults, want open", state())
		}
		before := a.calls.Load()
		m := chat()
		if a.calls.Load() != before || m.Attempts != 1 {
			t.Fatalf("open breaker not skipped: %d calls, %d attempts, route %q", a.calls.Load()-before, m.Attempts, m.Route)
		}
		if h := g.Health(); h[0].State != router.BreakerOpen || h[0].HalfOpenIn <= 0 {
			t.Fatalf("health %+v", h[0])
		}

		time.Sleep(31 * time.Second) // virtual: the cooldown passes
		if state() != router.BreakerHalfOpen {
			t.Fatalf("breaker %v after the cooldown, want half-open", state())
		}
		a.fail.Store(false)
		if m := chat(); m.Model != "model-a" {
			t.Fatalf("probe not sent to the recovered model: %s", m.Model)
		}
		if state() != router.BreakerClosed {
			t.Fatalf("breaker %v after a successful probe, want closed", state())
		}
	})
}

func TestClientErrorsDoNotTripTheBreaker(t *testing.T) {
	bad := &switchable{Provider: sim(t, "a")}
	specA := spec(t, "model-a")
	breakers, _ := router.NewBreakers(router.BreakerConfig{Default: router.BreakerSettings{ConsecutiveFailures: 2}})
	g, err := New(Options{Models: []*Model{{Name: "model-a", Spec: specA, Chat: true, Deployments: []Deployment{{ID: "a", Provider: clientError{bad}, Upstream: "model-a"}}}},
		Tokens: tokens.NewCounter(), Breakers: breakers})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := llm.DecodeChatRequest([]byte(`{"model":"model-a","messages":[{"role":"user","content":"hi"}]}`))
	for i := 0; i < 5; i++ {
		_, _, err := g.Chat(context.Background(), Caller{Key: &keys.Key{ID: "k"}}, req)
		if e, ok := llm.AsError(err); !ok || e.Status != 400 {
			t.Fatalf("want the upstream's 400 passed on, got %v", err)
		}
	}
	if breakers.State("a") != router.BreakerClosed {
		t.Fatal("client errors opened the breaker")
	}
}

// clientError answers every call with an upstream 400 (the request's fault).
type clientError struct{ providers.Provider }

func (clientError) Chat(context.Context, *providers.Request) (*llm.ChatResponse, error) {
	return nil, &llm.Error{Status: 400, Type: llm.TypeInvalidRequest, Upstream: true, Provider: "a", Message: "bad tool schema"}
}
