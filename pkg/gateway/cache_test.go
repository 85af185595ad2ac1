package gateway

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/semcache"
	"github.com/tollgate/tollgate/pkg/sqlite"
	"github.com/tollgate/tollgate/pkg/tokens"
)

// gated holds every call until the test says how it ends.
type gated struct {
	providers.Provider
	calls   atomic.Int32
	release chan error // nil error: answer; else fail with it
}

func (g *gated) Chat(ctx context.Context, r *providers.Request) (*llm.ChatResponse, error) {
	g.calls.Add(1)
	select {
	case err := <-g.release:
		if err != nil {
			return nil, err
		}
		return g.Provider.Chat(ctx, r)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestCollapsedMissLeaderOutcomes: a follower waiting for an identical
// request's upstream call shares its answer and a failure of the upstream,
// but makes its own call when the leader failed for a reason of its own.
func TestCollapsedMissLeaderOutcomes(t *testing.T) {
	upstream503 := &llm.Error{Status: 503, Type: llm.TypeServer, Upstream: true, Provider: "a", Message: "overloaded"}
	tests := []struct {
		name         string
		end          func(cancelLeader context.CancelFunc, release chan error)
		leaderStatus int // 0: success
		followerKind string
		followerErr  int // 0: success
		calls        int32
	}{
		{"an answer is shared as a hit", func(_ context.CancelFunc, r chan error) { r <- nil }, 0, semcache.KindHit, 0, 1},
		{"an upstream failure is shared", func(_ context.CancelFunc, r chan error) { r <- upstream503 }, 503, "", 503, 1},
		{"the leader's client leaving is its own: the follower calls itself", func(c context.CancelFunc, r chan error) {
			c()
			r <- nil // the follower's own call
		}, llm.StatusClientClosed, semcache.KindMiss, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The database and the cache live outside the bubble: their
			// goroutines are not the test's.
			db, err := sqlite.Open(filepath.Join(t.TempDir(), "t.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			cache, err := semcache.Open(context.Background(), semcache.Options{DB: db})
			if err != nil {
				t.Fatal(err)
			}
			defer cache.Close()
			synctest.Test(t, func(t *testing.T) {
				up := &gated{Provider: sim(t, "a"), release: make(chan error, 1)}
				m := spec(t, "model-a")
				g, err := New(Options{
					Models: []*Model{{Name: "model-a", Spec: m, Chat: true, Deployments: []Deployment{{ID: "a", Provider: up, Upstream: "model-a", Backoff: router.Backoff{MaxAttempts: 1}}}}},
					Tokens: tokens.NewCounter(), Cache: cache,
				})
				if err != nil {
					t.Fatal(err)
				}
				req := func() *llm.ChatRequest {
					r, _ := llm.DecodeChatRequest([]byte(`{"model":"model-a","messages":[{"role":"user","content":"same"}]}`))
					return r
				}
				type result struct {
					meta *Meta
					err  error
				}
				leaderCtx, cancelLeader := context.WithCancel(context.Background())
				defer cancelLeader()
				leader, follower := make(chan result, 1), make(chan result, 1)
				go func() {
					_, meta, err := g.Chat(leaderCtx, Caller{Key: &keys.Key{ID: "k1"}}, req())
					leader <- result{meta, err}
				}()
				synctest.Wait() // the leader waits on its upstream call
				go func() {
					_, meta, err := g.Chat(context.Background(), Caller{Key: &keys.Key{ID: "k1"}}, req())
					follower <- result{meta, err}
				}()
				synctest.Wait() // the follower waits on the leader
				if n := up.calls.Load(); n != 1 {
					t.Fatalf("%d upstream calls before the leader ended", n)
				}
				tt.end(cancelLeader, up.release)
				l, f := <-leader, <-follower
				if got := status(l.err); got != tt.leaderStatus {
					t.Fatalf("leader: status %d (%v), want %d", got, l.err, tt.leaderStatus)
				}
				if got := status(f.err); got != tt.followerErr {
					t.Fatalf("follower: status %d (%v), want %d", got, f.err, tt.followerErr)
				}
				if f.err == nil && f.meta.Cache != tt.followerKind {
					t.Fatalf("follower served as %q, want %q", f.meta.Cache, tt.followerKind)
				}
				if n := up.calls.Load(); n != tt.calls {
					t.Fatalf("upstream calls %d, want %d", n, tt.calls)
				}
				if tt.followerKind == semcache.KindHit && (f.meta.Cost.Micros != 0 || f.meta.Saved != l.meta.Cost.Micros || f.meta.Provider != CacheProvider) {
					t.Fatalf("shared answer: cost %v saved %v (leader paid %v) provider %q", f.meta.Cost.Micros, f.meta.Saved, l.meta.Cost.Micros, f.meta.Provider)
				}
			})
		})
	}
}

func status(err error) int {
	if err == nil {
		return 0
	}
	var e *llm.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return llm.ForClient(err).Status
}
