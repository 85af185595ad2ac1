package gateway

import (
	"context"
	"errors"
	"testing"

	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/tokens"
)

// TestReconfigure: a deployment with the same ID and provider client keeps
// its open breaker across Reconfigure, one whose client changed starts
// closed; a table that cannot be built (a judge the gateway does not
// serve) changes nothing.
func TestReconfigure(t *testing.T) {
	settings := router.BreakerConfig{Default: router.BreakerSettings{ConsecutiveFailures: 1}}
	newTable := func(a *switchable) Table {
		br, err := router.NewBreakers(settings)
		if err != nil {
			t.Fatal(err)
		}
		return Table{Breakers: br, Models: []*Model{{Name: "model-a", Spec: spec(t, "model-a"), Chat: true,
			Deployments: []Deployment{{ID: "a", Provider: a, Upstream: "model-a", Backoff: router.Backoff{MaxAttempts: 1}}}}}}
	}
	req, _ := llm.DecodeChatRequest([]byte(`{"model":"model-a","messages":[{"role":"user","content":"hi"}]}`))
	caller := Caller{Key: &keys.Key{ID: "k"}}
	tests := []struct {
		name      string
		sameAfter bool // the reload keeps the provider client
		wantOpen  bool
	}{
		{"same client keeps the open breaker", true, true},
		{"new client starts closed", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &switchable{Provider: sim(t, "a")}
			a.fail.Store(true)
			o := Options{Tokens: tokens.NewCounter()}
			tb := newTable(a)
			o.Models, o.Breakers = tb.Models, tb.Breakers
			g, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := g.Chat(context.Background(), caller, req); err == nil {
				t.Fatal("failing upstream answered")
			}
			next := a
			if !tt.sameAfter {
				next = &switchable{Provider: sim(t, "a")}
			}
			if err := g.Reconfigure(newTable(next)); err != nil {
				t.Fatal(err)
			}
			open := g.Health()[0].State == router.BreakerOpen
			if open != tt.wantOpen {
				t.Fatalf("breaker open %v after Reconfigure, want %v", open, tt.wantOpen)
			}
			_, _, err = g.Chat(context.Background(), caller, req)
			if served := err == nil; served == tt.wantOpen {
				t.Fatalf("after Reconfigure: err %v with the breaker open %v", err, tt.wantOpen)
			}

			bad := newTable(next)
			bad.Judge = Judge{Model: "no-such-model"}
			if err := g.Reconfigure(bad); !errors.Is(err, ErrNoJudge) {
				t.Fatalf("Reconfigure with an unserved judge: %v, want ErrNoJudge", err)
			}
			if open := g.Health()[0].State == router.BreakerOpen; open != tt.wantOpen {
				t.Fatal("a failed Reconfigure changed the table")
			}
		})
	}
}
