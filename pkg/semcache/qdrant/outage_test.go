package qdrant

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/pkg/semcache"
)

// gatedSleep is a Config.sleep that waits for the test: the connector's
// retries happen when the test says, not after a wall-clock time.
type gatedSleep struct {
	waits chan time.Duration // each wait asked for
	wake  chan struct{}      // closed: every wait returns at once
}

func newGatedSleep() *gatedSleep {
	return &gatedSleep{waits: make(chan time.Duration, 1024), wake: make(chan struct{})}
}

func (g *gatedSleep) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case g.waits <- d:
	default:
	}
	select {
	case <-g.wake:
		return true
	case <-ctx.Done():
		return false
	}
}

// waitReady polls until ix is ready, failing after a generous deadline.
func waitReady(t *testing.T, ix *Index) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ix.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 10s: %+v", ix.IndexStatus())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func found(t *testing.T, ix *Index, vec []float32) (uint64, bool) {
	t.Helper()
	hit, ok, err := ix.Search(t.Context(), "s", vec, 0.99, t0)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	return hit.ID, ok
}

// TestUnavailableAtStart: Qdrant is not listening when the index starts;
// writes made meanwhile are applied, deletes first, when it comes up, and
// searches resume only then.
func TestUnavailableAtStart(t *testing.T) {
	addr := freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	gs := newGatedSleep()
	ix, err := New(t.Context(), Config{Host: host, Port: p, Embedder: "test", Dim: 3, RetryMin: time.Millisecond, RetryMax: time.Millisecond,
		sleep: gs.sleep, jitter: func() float64 { return 0 }})
	if err != nil {
		t.Fatalf("New with Qdrant down = %v; want an unavailable index", err)
	}
	defer ix.Close()
	st := ix.IndexStatus()
	if st.Ready || !strings.Contains(st.Error, "health check "+addr) || st.Kind != "qdrant" {
		t.Fatalf("status at start %+v", st)
	}
	ctx := t.Context()
	later := t0.Add(time.Hour)
	if err := ix.Upsert(ctx, pt(1, "s", "acme", "m", vx, later), pt(3, "s", "globex", "m", vxy, later)); err != nil {
		t.Fatalf("Upsert while down = %v", err)
	}
	if err := ix.Delete(ctx, 2); err != nil {
		t.Fatalf("Delete while down = %v", err)
	}
	if n, err := ix.DeleteWhere(ctx, semcache.Filter{Tenant: "globex"}); n != 0 || err != nil {
		t.Fatalf("DeleteWhere while down = %d, %v", n, err)
	}
	if n, err := ix.DeleteExpired(ctx, t0); n != 0 || err != nil {
		t.Fatalf("DeleteExpired while down = %d, %v", n, err)
	}
	if _, _, err := ix.Search(ctx, "s", vx, 0.5, t0); !errors.Is(err, ErrNotReady) || status.Code(err) != codes.Unavailable {
		t.Fatalf("Search while down = %v, want ErrNotReady (Unavailable)", err)
	}
	if n := ix.Len(); n != 0 {
		t.Errorf("Len while down = %d", n)
	}
	st = ix.IndexStatus()
	if st.QueuedUpserts != 1 || st.QueuedDeletes != 2 {
		t.Errorf("queued %+v, want point 1 (3 dropped by its tenant's delete), id 2 and the globex filter", st)
	}

	// Qdrant comes up, holding point 2 (stored by another replica) and
	// point 4 of globex: both were deleted while this index was away.
	<-gs.waits // the connector is retrying
	_, cfg, _ := startFakeAt(t, addr)
	other, err := New(ctx, cfg)
	if err != nil || !other.Ready() {
		t.Fatalf("other replica: %v", err)
	}
	defer other.Close()
	if err := other.Upsert(ctx, pt(2, "s", "acme", "m", vy, later), pt(4, "s", "globex", "m", []float32{0, 0, 1}, later)); err != nil {
		t.Fatal(err)
	}
	close(gs.wake)
	waitReady(t, ix)

	tests := []struct {
		name string
		vec  []float32
		want uint64 // 0: none
	}{
		{name: "point queued while down is found", vec: vx, want: 1},
		{name: "point deleted by id while down is gone", vec: vy, want: 0},
		{name: "point deleted by filter while down is gone", vec: []float32{0, 0, 1}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := found(t, ix, tt.vec)
			if (tt.want == 0) == ok || (ok && id != tt.want) {
				t.Errorf("found %d (%v), want %d", id, ok, tt.want)
			}
		})
	}
	if st := ix.IndexStatus(); !st.Ready || st.Error != "" || st.QueuedUpserts+st.QueuedDeletes != 0 {
		t.Errorf("status after return %+v", st)
	}
}

// TestOutageMidRun: Qdrant fails under a ready index. Each call that meets
// the failure makes the index unavailable (searches then fail at once),
// without an error for writes, which are applied when Qdrant returns.
func TestOutageMidRun(t *testing.T) {
	later := t0.Add(time.Hour)
	tests := []struct {
		name    string
		call    func(ctx context.Context, ix *Index) error
		wantErr string // of the call itself; "" none
		// then, after Qdrant returned: the point 1 (at vx) is found or not
		found bool
	}{
		{name: "search", call: func(ctx context.Context, ix *Index) error { _, _, err := ix.Search(ctx, "s", vx, 0.5, t0); return err },
			wantErr: "qdrant: search tollgate_test_3", found: true},
		{name: "upsert", call: func(ctx context.Context, ix *Index) error { return ix.Upsert(ctx, pt(5, "s", "t", "m", vy, later)) }, found: true},
		{name: "delete", call: func(ctx context.Context, ix *Index) error { return ix.Delete(ctx, 1) }},
		{name: "delete where", call: func(ctx context.Context, ix *Index) error {
			_, err := ix.DeleteWhere(ctx, semcache.Filter{Tenant: "t"})
			return err
		}},
		{name: "delete expired", call: func(ctx context.Context, ix *Index) error {
			_, err := ix.DeleteExpired(ctx, t0)
			return err
		}, wantErr: "qdrant: delete expired", found: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gs := newGatedSleep()
			ix, f := newFakeIndex(t, func(c *Config) { c.sleep = gs.sleep })
			ctx := t.Context()
			if err := ix.Upsert(ctx, pt(1, "s", "t", "m", vx, later)); err != nil {
				t.Fatal(err)
			}
			f.setFail(func(string) error { return status.Error(codes.Unavailable, "qdrant is down") })
			err := tt.call(ctx, ix)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("call = %v, want nil (the write waits for Qdrant)", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || status.Code(err) != codes.Unavailable) {
				t.Fatalf("call = %v, want %q with the status code", err, tt.wantErr)
			}
			st := ix.IndexStatus()
			if st.Ready || !strings.Contains(st.Error, "qdrant is down") {
				t.Fatalf("status after the failure %+v", st)
			}
			calls := f.count("Query")
			if _, _, err := ix.Search(ctx, "s", vx, 0.5, t0); !errors.Is(err, ErrNotReady) {
				t.Fatalf("Search while down = %v", err)
			}
			if f.count("Query") != calls {
				t.Error("a search while down reached Qdrant")
			}
			<-gs.waits // the connector is retrying
			f.setFail(nil)
			close(gs.wake)
			waitReady(t, ix)
			if _, ok := found(t, ix, vx); ok != tt.found {
				t.Errorf("point 1 found = %v, want %v", ok, tt.found)
			}
			if tt.name == "upsert" {
				if id, ok := found(t, ix, vy); !ok || id != 5 {
					t.Errorf("the upsert made while down was not applied: %d, %v", id, ok)
				}
			}
		})
	}
}

// TestQueueIsBounded: points beyond MaxQueued are dropped and counted.
func TestQueueIsBounded(t *testing.T) {
	ix, err := New(t.Context(), Config{Host: "127.0.0.1", Port: 1, Embedder: "test", Dim: 3, MaxQueued: 2, Timeout: time.Second,
		sleep: newGatedSleep().sleep})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	later := t0.Add(time.Hour)
	for i := range 5 {
		if err := ix.Upsert(t.Context(), pt(uint64(i+1), "s", "t", "m", vx, later)); err != nil {
			t.Fatal(err)
		}
	}
	if st := ix.IndexStatus(); st.QueuedUpserts != 2 || st.DroppedUpserts != 3 {
		t.Errorf("status %+v, want 2 queued and 3 dropped", st)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name     string
		attempts int
		jitter   float64
		want     time.Duration
	}{
		{name: "first wait, no jitter: half of min", attempts: 1, jitter: 0, want: 50 * time.Millisecond},
		{name: "first wait, most jitter", attempts: 1, jitter: 0.999999999, want: 99999999},
		{name: "doubles", attempts: 3, jitter: 0, want: 200 * time.Millisecond},
		{name: "capped", attempts: 10, jitter: 0, want: 500 * time.Millisecond},
		{name: "capped far out", attempts: 1000, jitter: 1, want: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := &Index{cfg: Config{RetryMin: 100 * time.Millisecond, RetryMax: time.Second, jitter: func() float64 { return tt.jitter }}}
			if got := ix.backoff(tt.attempts); got != tt.want {
				t.Errorf("backoff(%d) = %v, want %v", tt.attempts, got, tt.want)
			}
		})
	}
}
