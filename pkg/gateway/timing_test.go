package gateway

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/tokens"
)

// slow takes 2s to answer (a stream: to open), after failing its first
// failFirst calls after 1s each.
type slow struct {
	providers.Provider
	failFirst int32
	calls     atomic.Int32
}

func (s *slow) wait() error {
	if s.calls.Add(1) <= s.failFirst {
		time.Sleep(time.Second)
		return &llm.Error{Status: 503, Type: llm.TypeServer, Upstream: true, Retryable: true, Provider: "slow", Message: "overloaded"}
	}
	time.Sleep(2 * time.Second)
	return nil
}

func (s *slow) Chat(ctx context.Context, r *providers.Request) (*llm.ChatResponse, error) {
	if err := s.wait(); err != nil {
		return nil, err
	}
	return s.Provider.Chat(ctx, r)
}

func (s *slow) Stream(ctx context.Context, r *providers.Request) (providers.Stream, error) {
	if err := s.wait(); err != nil {
		return nil, err
	}
	return s.Provider.Stream(ctx, r)
}

// TestMetaTimesTheUpstream: Meta.Upstream is the time spent in upstream
// calls, every attempt included and backoff waits left out; FirstToken is
// set for a stream only. The clock is synctest's, so times are exact.
func TestMetaTimesTheUpstream(t *testing.T) {
	tests := []struct {
		name       string
		failFirst  int32
		stream     bool
		upstream   time.Duration
		firstToken time.Duration
	}{
		{"an answer", 0, false, 2 * time.Second, 0},
		{"a retried answer", 1, false, 3 * time.Second, 0},
		{"a stream", 0, true, 2 * time.Second, 2 * time.Second},
		{"a retried stream", 1, true, 3 * time.Second, time.Hour + 3*time.Second}, // from the request's start
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				inner, err := providers.NewSim(providers.SimConfig{Name: "slow", Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
				if err != nil {
					t.Fatal(err)
				}
				up := &slow{Provider: inner, failFirst: tt.failFirst}
				g, err := New(Options{
					Models: []*Model{{Name: "m", Spec: spec(t, "m"), Chat: true, Deployments: []Deployment{{ID: "slow/m", Provider: up, Upstream: "m"}}}},
					Tokens: tokens.NewCounter(),
					Sleep:  func(ctx context.Context, d time.Duration) error { time.Sleep(time.Hour); return nil }, // a backoff is not upstream time
				})
				if err != nil {
					t.Fatal(err)
				}
				caller := Caller{Key: &keys.Key{ID: "k"}}
				req, _ := llm.DecodeChatRequest([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
				var meta *Meta
				if tt.stream {
					st, _, err := g.Stream(context.Background(), caller, req)
					if err != nil {
						t.Fatal(err)
					}
					for {
						if _, err := st.Recv(); err == io.EOF {
							break
						} else if err != nil {
							t.Fatal(err)
						}
					}
					st.Close()
					meta = st.Meta
				} else if _, meta, err = g.Chat(context.Background(), caller, req); err != nil {
					t.Fatal(err)
				}
				if meta.Upstream != tt.upstream || meta.FirstToken != tt.firstToken {
					t.Fatalf("upstream %v, first token %v; want %v and %v", meta.Upstream, meta.FirstToken, tt.upstream, tt.firstToken)
				}
			})
		})
	}
}
