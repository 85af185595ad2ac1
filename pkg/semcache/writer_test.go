package semcache

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/sqlite"
)

// written waits until every row the caches queued is committed.
func written(t testing.TB, cs ...*Cache) {
	t.Helper()
	for _, c := range cs {
		if err := c.w.flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// holdWrites takes SQLite's write lock on env's file from another
// connection, so that the cache's writer waits (for the busy timeout) and
// nothing is committed until release.
func holdWrites(t testing.TB, env *testEnv) (release func()) {
	t.Helper()
	db, err := sqlite.Open(env.path)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin() // BEGIN IMMEDIATE: the write lock, now
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			tx.Rollback()
			db.Close()
		})
	}
	t.Cleanup(release)
	return release
}

func rowCount(t testing.TB, env *testEnv, where string, args ...any) int {
	t.Helper()
	var n int
	if err := env.db.QueryRow(`SELECT count(*) FROM semcache_entries WHERE `+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// idOf is the id of r's exact entry.
func idOf(c *Cache, r Request) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.byKey[c.Prepare(r, Controls{}).Key()]
}

// answerOf is the text lookup serves for r, "" on a miss.
func answerOf(t testing.TB, c *Cache, r Request) (string, string) {
	t.Helper()
	e, res := lookup(t, c, r, Controls{})
	if e == nil {
		return "", res.Kind
	}
	return e.Response.Choices[0].Message.Content.String(), res.Kind
}

// TestWriteBehindServesUnwritten: an entry is served (exactly and
// semantically) from the moment Store returns, while SQLite holds no row
// of it, even when the hot cache dropped its answer.
func TestWriteBehindServesUnwritten(t *testing.T) {
	tests := []struct {
		name    string
		dropHot bool
	}{
		{"answer in the hot cache", false},
		{"answer evicted: served from the writer's pending entries", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			c := env.open(t, nil)
			release := holdWrites(t, env)
			r := req(t, "t1", userBody("What is the capital of France?"))
			mustStore(t, c, r, Controls{}, answer("Paris."))
			if tt.dropHot {
				id := idOf(c, r)
				c.hot.Wait()
				c.hot.Del(id)
				c.hot.Wait()
				if _, ok := c.hot.Get(id); ok {
					t.Fatal("the hot cache still holds the entry")
				}
			}
			for _, ask := range []struct{ text, kind string }{
				{"What is the capital of France?", KindHit},
				{"what is the capital of france", KindSemanticHit},
			} {
				got, kind := answerOf(t, c, req(t, "t1", userBody(ask.text)))
				if got != "Paris." || kind != ask.kind {
					t.Errorf("%q: served %q (%s), want Paris. (%s)", ask.text, got, kind, ask.kind)
				}
			}
			if n := rowCount(t, env, "1"); n != 0 {
				t.Fatalf("%d rows while the writer cannot write: the test proves nothing", n)
			}
			release()
			written(t, c)
			if n := rowCount(t, env, "tenant = 't1'"); n != 1 {
				t.Errorf("%d rows once written, want 1", n)
			}
			if c.w.pendingEntry(idOf(c, r)) != nil {
				t.Error("the entry is still pending once written")
			}
		})
	}
}

// TestWriteBehindRestart: Close writes everything queued; a cache opened
// again on the same file serves every entry, exactly and semantically.
func TestWriteBehindRestart(t *testing.T) {
	const n = 3*maxBatchRows + 7 // several batches
	tests := []struct {
		name     string
		semantic bool
	}{
		{"exact only", false},
		{"semantic", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			edit := func(o *Options) {
				if !tt.semantic {
					o.Embedder, o.Index, o.Checker = nil, nil, nil
				}
			}
			c := env.open(t, edit)
			question := func(i int) string { return fmt.Sprintf("what is the population of city number %d", i) }
			for i := range n {
				mustStore(t, c, req(t, "t1", userBody(question(i))), Controls{}, answer(fmt.Sprint("answer ", i)))
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if got := rowCount(t, env, "1"); got != n {
				t.Fatalf("%d rows after Close, want %d", got, n)
			}
			env.index = newScanIndex()
			c = env.open(t, edit)
			for i := range n {
				if got, kind := answerOf(t, c, req(t, "t1", userBody(question(i)))); got != fmt.Sprint("answer ", i) || kind != KindHit {
					t.Fatalf("entry %d after restart: %q (%s)", i, got, kind)
				}
			}
			if tt.semantic {
				// The vectors were written with the rows: the index is
				// rebuilt from them, nothing is embedded again.
				if got := rowCount(t, env, "vector IS NOT NULL"); got != n {
					t.Errorf("%d rows with a vector, want %d", got, n)
				}
				if got := env.index.Len(); got != n {
					t.Errorf("index rebuilt with %d points, want %d", got, n)
				}
				if _, kind := answerOf(t, c, req(t, "t1", userBody("What is the population of city number 42?"))); kind != KindSemanticHit {
					t.Errorf("paraphrase after restart: %s, want a semantic hit", kind)
				}
			}
		})
	}
}

// TestWriteBehindOrder: deletes, sweeps and replacements issued after a
// Store are not undone by its row written later, whether or not the
// writer has written it when they come.
func TestWriteBehindOrder(t *testing.T) {
	france, italy := "What is the capital of France?", "What is the capital of Italy?"
	type stored struct{ tenant, text, answer string }
	tests := []struct {
		name   string
		stores []stored
		then   func(c *Cache, env *testEnv) error // after the stores, while the writer may still hold them
		want   map[string]string                  // question (tenant t1) → answer after a restart, "" a miss
		rows   int
	}{
		{
			name:   "delete after store: not resurrected",
			stores: []stored{{"t1", france, "Paris."}, {"t2", italy, "Rome."}},
			then: func(c *Cache, _ *testEnv) error {
				_, err := c.Delete(context.Background(), Filter{Tenant: "t1"})
				return err
			},
			want: map[string]string{france: ""},
			rows: 1,
		},
		{
			name:   "replacement keeps the newest",
			stores: []stored{{"t1", france, "Lyon."}, {"t1", italy, "Rome."}, {"t1", france, "Paris."}},
			want:   map[string]string{france: "Paris.", italy: "Rome."},
			rows:   2,
		},
		{
			name:   "sweep after store: not resurrected",
			stores: []stored{{"t1", france, "Paris."}},
			then: func(c *Cache, env *testEnv) error {
				env.clock.Advance(2 * time.Hour)
				n, err := c.SweepExpired(context.Background())
				if err == nil && n != 1 {
					err = fmt.Errorf("swept %d rows, want 1", n)
				}
				env.clock.Advance(-2 * time.Hour)
				return err
			},
			want: map[string]string{france: ""},
			rows: 0,
		},
	}
	for _, tt := range tests {
		for _, held := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/writer held %v", tt.name, held), func(t *testing.T) {
				env := newTestEnv(t)
				c := env.open(t, nil)
				release := func() {}
				if held {
					release = holdWrites(t, env)
				}
				for _, s := range tt.stores {
					mustStore(t, c, req(t, s.tenant, userBody(s.text)), Controls{}, answer(s.answer))
				}
				if held && rowCount(t, env, "1") != 0 {
					t.Fatal("rows written while the writer was held")
				}
				errc := make(chan error, 1)
				go func() {
					if tt.then == nil {
						errc <- nil
						return
					}
					errc <- tt.then(c, env)
				}()
				release()
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				if n := rowCount(t, env, "1"); n != tt.rows {
					t.Errorf("%d rows, want %d", n, tt.rows)
				}
				env.index = newScanIndex()
				c = env.open(t, nil)
				for q, want := range tt.want {
					if got, _ := answerOf(t, c, req(t, "t1", userBody(q))); got != want {
						t.Errorf("%q after restart: %q, want %q", q, got, want)
					}
				}
			})
		}
	}
}

// TestWriteBehindConcurrent: stores, lookups and deletes from many
// goroutines (run with -race); every entry stored and not deleted is in
// SQLite after Close, and none deleted is.
func TestWriteBehindConcurrent(t *testing.T) {
	const workers, each = 4, 150
	env := newTestEnv(t)
	c := env.open(t, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, workers+1)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenant := fmt.Sprint("keep-", w)
			for i := range each {
				r := req(t, tenant, userBody(fmt.Sprintf("question %d of worker %d", i, w)))
				q := c.Prepare(r, Controls{})
				if _, _, err := c.Lookup(ctx, q); err != nil {
					errs <- err
					return
				}
				if err := c.Store(ctx, q, answer(fmt.Sprint(w, "/", i)), "m", 1); err != nil {
					errs <- err
					return
				}
				if e, _, err := c.Lookup(ctx, c.Prepare(r, Controls{})); err != nil || e == nil {
					errs <- fmt.Errorf("worker %d entry %d not served after Store: %v", w, i, err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // stores and deletes in its own tenant meanwhile
		defer wg.Done()
		for i := range each {
			q := c.Prepare(req(t, "gone", userBody(fmt.Sprint("doomed question ", i))), Controls{})
			if err := c.Store(ctx, q, answer("x"), "m", 1); err != nil {
				errs <- err
				return
			}
			if i%10 == 9 {
				if _, err := c.Delete(ctx, Filter{Tenant: "gone"}); err != nil {
					errs <- err
					return
				}
			}
		}
		if _, err := c.Delete(ctx, Filter{Tenant: "gone"}); err != nil {
			errs <- err
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := rowCount(t, env, "tenant LIKE 'keep-%'"); n != workers*each {
		t.Errorf("%d rows kept, want %d", n, workers*each)
	}
	if n := rowCount(t, env, "tenant = 'gone'"); n != 0 {
		t.Errorf("%d deleted rows came back", n)
	}
}

// TestWriteBehindCloseFullQueue: with SQLite held, Store fills the queue
// and then waits (backpressure); Close makes the waiting Store fail and
// writes every entry accepted before, once SQLite lets it.
func TestWriteBehindCloseFullQueue(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, func(o *Options) { o.Embedder, o.Index, o.Checker = nil, nil, nil })
	release := holdWrites(t, env)
	resp := answer("a")
	type outcome struct {
		accepted int
		err      error
	}
	done := make(chan outcome, 1)
	go func() {
		for i := 0; ; i++ {
			q := c.Prepare(req(t, "t1", userBody(fmt.Sprint("question ", i))), Controls{})
			if err := c.Store(context.Background(), q, resp, "m", 1); err != nil {
				done <- outcome{i, err}
				return
			}
		}
	}()
	for len(c.w.ops) < cap(c.w.ops) { // the queue fills up: Store waits
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	out := <-done // Close made the waiting Store give up
	if !errors.Is(out.err, errClosed) {
		t.Fatalf("the waiting Store failed with %v, want errClosed", out.err)
	}
	if out.accepted < maxQueued {
		t.Fatalf("only %d stores accepted before the queue was full", out.accepted)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if n := rowCount(t, env, "1"); n != out.accepted {
		t.Errorf("%d rows after Close, want the %d accepted", n, out.accepted)
	}
	if err := c.Store(context.Background(), c.Prepare(req(t, "t1", userBody("late")), Controls{}), resp, "m", 1); !errors.Is(err, errClosed) {
		t.Errorf("Store after Close = %v, want errClosed", err)
	}
}

// TestWriteFailureDropsBatch: a batch SQLite refuses is dropped, its
// entries forgotten and their points deleted (misses, never garbage), and
// the writer goes on.
func TestWriteFailureDropsBatch(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprint("shared index ", shared), func(t *testing.T) { testWriteFailureDropsBatch(t, shared) })
	}
}

func testWriteFailureDropsBatch(t *testing.T, shared bool) {
	env := newTestEnv(t)
	env.index.dropEntries = !shared
	c := env.open(t, nil)
	if _, err := env.db.Exec(`CREATE TRIGGER semcache_poison BEFORE INSERT ON semcache_entries
		WHEN NEW.tenant = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END`); err != nil {
		t.Fatal(err)
	}
	poison := req(t, "poison", userBody("What is the capital of France?"))
	good := req(t, "t1", userBody("What is the capital of Italy?"))
	mustStore(t, c, poison, Controls{}, answer("Paris."))
	written(t, c)
	mustStore(t, c, good, Controls{}, answer("Rome."))
	written(t, c)
	tests := []struct {
		name string
		r    Request
		want string
	}{
		{"dropped entry is a miss", poison, ""},
		{"later entry written and served", good, "Rome."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := answerOf(t, c, tt.r); got != tt.want {
				t.Errorf("served %q, want %q", got, tt.want)
			}
		})
	}
	points := 0 // an own index holds a lone entry of its scope pending, unembedded
	if shared {
		points = 1
	}
	if st := c.Stats(); st.Entries != 1 || st.IndexPoints != points {
		t.Errorf("stats %+v, want 1 entry and %d points", st, points)
	}
	if n := rowCount(t, env, "1"); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
}
