package semcache

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

const envTestPostgres = "TOLLGATE_TEST_POSTGRES"

// pgEnv is one PostgreSQL schema of the test's own, dropped at Cleanup,
// shared by the replicas the test opens on it.
type pgEnv struct {
	admin  *sql.DB // outside the schema: terminates backends
	url    string  // with search_path set to the schema, and application_name
	schema string
	clock  *testClock
}

func newPGEnv(tb testing.TB) *pgEnv {
	tb.Helper()
	base := os.Getenv(envTestPostgres)
	if base == "" {
		tb.Skipf("%s is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable): the replica tests need PostgreSQL", envTestPostgres)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "tg_semcache_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		admin.Close()
		tb.Fatal(err)
	}
	// Registered first, so it runs after the replicas and their pools close.
	tb.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			tb.Error(err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema) // names the replicas' sessions in pg_stat_activity
	u.RawQuery = q.Encode()
	return &pgEnv{admin: admin, url: u.String(), schema: schema, clock: newTestClock()}
}

// replica opens a cache with its own pool on the schema, as another
// gateway process would: exact only unless edit sets a semantic cache.
func (env *pgEnv) replica(tb testing.TB, edit func(*Options)) *Cache {
	tb.Helper()
	// As cmd/server opens it: database/sql over a pgx pool.
	pool, err := pgxpool.New(context.Background(), env.url)
	if err != nil {
		tb.Fatal(err)
	}
	db := stdlib.OpenDBFromPool(pool)
	tb.Cleanup(func() {
		db.Close()
		pool.Close()
	})
	// A generous lookup timeout: under -race on a loaded machine a first
	// query (a new connection) may exceed the default, which would make a
	// miss the tests do not expect.
	o := Options{DB: db, TTL: time.Hour, Now: env.clock.Now, SharedLookupTimeout: 10 * time.Second}
	if edit != nil {
		edit(&o)
	}
	c, err := Open(context.Background(), o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	if !c.shared {
		tb.Fatal("a cache on PostgreSQL is not shared")
	}
	return c
}

// ownIndex makes a replica's cache semantic with an index of its own (an
// embedded index: it keeps no entries).
func ownIndex(x *scanIndex) func(*Options) {
	x.dropEntries = true
	return func(o *Options) {
		o.Embedder, o.Index, o.Checker, o.Threshold = wordsEmbedder{}, x, allowAll{}, 0.9
	}
}

// holds reports whether c has an entry for r's exact key in memory.
func holds(c *Cache, r Request) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.byKey[c.ExactKey(r)]
	return ok
}

// eventually polls cond until it holds or 10 s pass (a bound on a
// notification's delivery, not a timing assertion).
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("still not %s after 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// listening waits until c's listener has made n sessions.
func listening(tb testing.TB, c *Cache, n int64) {
	tb.Helper()
	eventually(tb, "listening", func() bool { return c.peers.connects.Load() >= n })
}

func answerText(e *Entry) string {
	if e == nil || len(e.Response.Choices) == 0 {
		return ""
	}
	return e.Response.Choices[0].Message.Content.String()
}

func TestReplicasShareExactEntries(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(shared *scanIndex) (a, b func(*Options))
	}{
		{"exact only", func(*scanIndex) (a, b func(*Options)) { return nil, nil }},
		{"own indexes", func(*scanIndex) (a, b func(*Options)) { return ownIndex(newScanIndex()), ownIndex(newScanIndex()) }},
		{"shared index", func(x *scanIndex) (a, b func(*Options)) {
			edit := func(o *Options) {
				o.Embedder, o.Index, o.Checker, o.Threshold = wordsEmbedder{}, x, allowAll{}, 0.9
			}
			return edit, edit
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newPGEnv(t)
			ea, eb := tc.edit(newScanIndex())
			a, b := env.replica(t, ea), env.replica(t, eb)
			r := req(t, "t1", userBody("What is the capital of Portugal?"))
			missAndStore(t, a, r, answer("Lisbon."))
			written(t, a)

			e, res := lookup(t, b, r, Controls{})
			if res.Kind != KindHit || answerText(e) != "Lisbon." {
				t.Fatalf("replica B: %+v %q, want the exact hit A stored", res, answerText(e))
			}
			if !holds(b, r) {
				t.Fatal("replica B did not keep the entry it read from the table")
			}
			if st := b.Stats().Replicas; st == nil || st.TableHits != 1 {
				t.Fatalf("replica B's replica status %+v, want one table hit", st)
			}
			if _, res := lookup(t, b, r, Controls{}); res.Kind != KindHit || b.Stats().Replicas.TableHits != 1 {
				t.Fatalf("replica B's second lookup: %+v, %d table hits (want a hit from memory)", res, b.Stats().Replicas.TableHits)
			}
			// Scoped like a local entry: another tenant's identical prompt
			// misses on either replica.
			other := req(t, "t2", userBody("What is the capital of Portugal?"))
			for name, c := range map[string]*Cache{"A": a, "B": b} {
				if _, res := lookup(t, c, other, Controls{}); res.Kind == KindHit {
					t.Fatalf("replica %s served tenant t1's entry to t2", name)
				}
			}
			// max-age applies to an entry read from the table.
			env.clock.Advance(10 * time.Minute)
			c := env.replica(t, eb)
			if _, res := lookup(t, c, r, Controls{MaxAge: time.Minute}); res.Kind == KindHit {
				t.Fatal("an entry older than max-age was served from the table")
			}
			if _, res := lookup(t, c, r, Controls{}); res.Kind != KindHit {
				t.Fatalf("replica C: %+v", res)
			}
		})
	}
}

func TestReplicasDeletePropagates(t *testing.T) {
	for _, tc := range []struct {
		name   string
		filter Filter
		gone   []string // tenants whose entries B must drop from memory
		kept   []string
		// flushed: the filter matches no row but is too long to notify:
		// B drops every entry from memory and refills from the table.
		flushed bool
	}{
		{"by tenant", Filter{Tenant: "t1"}, []string{"t1"}, []string{"t2"}, false},
		{"everything", Filter{}, []string{"t1", "t2"}, nil, false},
		{"by model", Filter{Model: "gpt-4o-mini"}, []string{"t1", "t2"}, nil, false},
		{"filter too long to notify", Filter{Tenant: "t1", Model: strings.Repeat("m", 9000)}, []string{"t1", "t2"}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newPGEnv(t)
			bIndex := newScanIndex()
			a, b := env.replica(t, nil), env.replica(t, ownIndex(bIndex))
			listening(t, b, 1)
			reqs := map[string]Request{}
			for _, tenant := range []string{"t1", "t2"} {
				reqs[tenant] = req(t, tenant, userBody("What is the capital of Portugal?"))
				missAndStore(t, a, reqs[tenant], answer("Lisbon."))
			}
			written(t, a)
			for tenant, r := range reqs {
				if _, res := lookup(t, b, r, Controls{}); res.Kind != KindHit {
					t.Fatalf("%s: replica B: %+v", tenant, res)
				}
				// A point of B's own index, which the delete must reach.
				if err := bIndex.Upsert(context.Background(), Point{ID: uint64(len(tenant) + len(bIndex.points) + 1), Scope: "s-" + tenant,
					Tenant: tenant, Model: "gpt-4o-mini", Vector: make([]float32, 64), ExpiresAt: env.clock.Now().Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
			}

			if _, err := a.Delete(context.Background(), tc.filter); err != nil {
				t.Fatal(err)
			}
			for _, tenant := range tc.gone {
				eventually(t, "dropped by replica B", func() bool { return !holds(b, reqs[tenant]) })
				if _, res := lookup(t, b, reqs[tenant], Controls{}); (res.Kind == KindHit) != tc.flushed {
					t.Fatalf("%s: replica B after the delete: %+v", tenant, res)
				}
			}
			eventually(t, "deleted from B's own index", func() bool {
				bIndex.mu.Lock()
				defer bIndex.mu.Unlock()
				for _, p := range bIndex.points {
					for _, tenant := range tc.gone {
						if p.Tenant == tenant {
							return false
						}
					}
				}
				return true
			})
			for _, tenant := range tc.kept {
				if !holds(b, reqs[tenant]) {
					t.Fatalf("%s: replica B dropped an entry the filter does not match", tenant)
				}
				if _, res := lookup(t, b, reqs[tenant], Controls{}); res.Kind != KindHit {
					t.Fatalf("%s: %+v", tenant, res)
				}
			}
		})
	}
}

// terminateListeners ends the listening sessions of the schema's replicas
// from the server side, as a failover or an idle-session killer would.
func (env *pgEnv) terminateListeners(tb testing.TB, want int) {
	tb.Helper()
	var n int
	if err := env.admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND query LIKE 'LISTEN %'`, env.schema).Scan(&n); err != nil || n != want {
		tb.Fatalf("terminated %d listeners (%v), want %d", n, err, want)
	}
}

func TestReplicasListenerReconnects(t *testing.T) {
	env := newPGEnv(t)
	a, b := env.replica(t, nil), env.replica(t, nil)
	listening(t, b, 1)
	r1 := req(t, "t1", userBody("What is the capital of Portugal?"))
	r2 := req(t, "t2", userBody("What is the capital of Spain?"))
	missAndStore(t, a, r1, answer("Lisbon."))
	missAndStore(t, a, r2, answer("Madrid."))
	written(t, a)
	for _, r := range []Request{r1, r2} {
		if _, res := lookup(t, b, r, Controls{}); res.Kind != KindHit {
			t.Fatalf("replica B: %+v", res)
		}
	}

	// A delete no notification announces (as one sent while B's listener
	// is away): B finds it gone when it reconnects.
	if _, err := a.opts.DB.Exec(`DELETE FROM semcache_entries WHERE tenant = 't1'`); err != nil {
		t.Fatal(err)
	}
	listening(t, a, 1)
	env.terminateListeners(t, 2) // A's and B's
	listening(t, b, 2)
	if st := b.Stats().Replicas; st.Sessions != 2 {
		t.Fatalf("replica status %+v, want 2 sessions", st)
	}
	if holds(b, r1) {
		t.Fatal("replica B kept an entry deleted while its listener was away")
	}
	if !holds(b, r2) {
		t.Fatal("replica B's resync dropped a live entry")
	}

	// Deletes after the reconnect are notified as before.
	if _, err := a.Delete(context.Background(), Filter{Tenant: "t2"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "dropped by replica B", func() bool { return !holds(b, r2) })
	if _, res := lookup(t, b, r2, Controls{}); res.Kind == KindHit {
		t.Fatal("replica B still serves a deleted entry")
	}
}

// A table lookup that fails or times out is a miss, never an error, and
// is logged once per interval, not per lookup.
func TestReplicasLookupTimeoutIsMiss(t *testing.T) {
	env := newPGEnv(t)
	a := env.replica(t, nil)
	var logs lockedBuffer
	b := env.replica(t, func(o *Options) {
		o.SharedLookupTimeout = time.Nanosecond
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	r := req(t, "t1", userBody("What is the capital of Portugal?"))
	missAndStore(t, a, r, answer("Lisbon."))
	written(t, a)
	lookupMisses := func() {
		for range 3 {
			e, res, err := b.Lookup(context.Background(), b.Prepare(r, Controls{}))
			if err != nil || e != nil || res.Kind != KindMiss {
				t.Fatalf("got %v %+v %v, want a plain miss", e != nil, res, err)
			}
		}
	}
	lookupMisses()
	if n := strings.Count(logs.String(), "shared exact lookup failed"); n != 1 {
		t.Fatalf("%d warnings for 3 failed lookups, want 1:\n%s", n, logs.String())
	}
	env.clock.Advance(warnInterval)
	lookupMisses()
	if n := strings.Count(logs.String(), "shared exact lookup failed"); n != 2 {
		t.Fatalf("%d warnings after the interval, want 2:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "not_logged_since=2") {
		t.Errorf("the second warning does not count the 2 not logged:\n%s", logs.String())
	}
}

// lockedBuffer is a log destination safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// An entry replaced on A is served by B from memory until it expires (the
// documented bound), then B finds A's newer entry in the table.
func TestReplicasReplacedEntry(t *testing.T) {
	env := newPGEnv(t)
	a, b := env.replica(t, nil), env.replica(t, nil)
	r := req(t, "t1", userBody("What is the capital of Portugal?"))
	missAndStore(t, a, r, answer("Lisbon."))
	written(t, a)
	if e, _ := lookup(t, b, r, Controls{}); answerText(e) != "Lisbon." {
		t.Fatalf("replica B: %q", answerText(e))
	}
	env.clock.Advance(30 * time.Minute)
	mustStore(t, a, r, Controls{NoCache: true}, answer("Lisbon, of course."))
	written(t, a)
	var rows int
	if err := a.opts.DB.QueryRow(`SELECT count(*) FROM semcache_entries WHERE exact_key = $1`, a.ExactKey(r)).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("%d rows of the replaced key (%v), want 1", rows, err)
	}
	if e, _ := lookup(t, b, r, Controls{}); answerText(e) != "Lisbon." {
		t.Fatalf("replica B before the old entry expired: %q", answerText(e))
	}
	env.clock.Advance(31 * time.Minute)
	if e, res := lookup(t, b, r, Controls{}); res.Kind != KindHit || answerText(e) != "Lisbon, of course." {
		t.Fatalf("replica B after the old entry expired: %+v %q", res, answerText(e))
	}
}

// BenchmarkExactMiss is an exact-only lookup that misses, on SQLite (memory
// only) and on PostgreSQL (memory, then the shared table).
func BenchmarkExactMiss(b *testing.B) {
	for _, bm := range []string{"sqlite", "postgres"} {
		b.Run(bm, func(b *testing.B) {
			var c *Cache
			if bm == "sqlite" {
				c = newTestEnv(b).open(b, func(o *Options) { o.Embedder, o.Index, o.Checker = nil, nil, nil })
			} else {
				c = newPGEnv(b).replica(b, nil)
			}
			q := c.Prepare(req(b, "t1", benchBody), Controls{})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, res, _ := c.Lookup(ctx, q); res.Kind != KindMiss {
					b.Fatal(res)
				}
			}
		})
	}
}

// TestPostgresStatements runs the statements the replica tests do not
// reach on PostgreSQL: vectors set behind (pending entries of an own
// index), an answer read back by id, vectors loaded at Open, the sweep.
func TestPostgresStatements(t *testing.T) {
	env := newPGEnv(t)
	c := env.replica(t, ownIndex(newScanIndex()))
	ctx := context.Background()
	r := req(t, "t1", userBody("what did we decide about item 5"))
	missAndStore(t, c, r, answer("answer 5"))
	if st := c.Stats(); st.PendingEntries != 1 {
		t.Fatalf("stats %+v, want the entry pending", st)
	}
	if e, res := lookup(t, c, req(t, "t1", userBody("about item 5, what did we decide")), Controls{}); res.Kind != KindSemanticHit || answerText(e) != "answer 5" {
		t.Fatalf("paraphrase: %+v %q", res, answerText(e))
	}
	written(t, c)
	var vectored int
	if err := c.opts.DB.QueryRow(`SELECT count(*) FROM semcache_entries WHERE vector IS NOT NULL AND embedder = $1`, wordsEmbedder{}.Name()).Scan(&vectored); err != nil || vectored != 1 {
		t.Fatalf("%d rows with a vector (%v), want 1", vectored, err)
	}

	c.hot.Clear() // the answer is read back from the table by id
	if e, res := lookup(t, c, r, Controls{}); res.Kind != KindHit || answerText(e) != "answer 5" {
		t.Fatalf("exact after the hot cache was cleared: %+v %q", res, answerText(e))
	}

	x := newScanIndex()
	env.replica(t, ownIndex(x))
	if x.Len() != 1 {
		t.Fatalf("a replica opened later indexed %d points, want the stored vector", x.Len())
	}

	env.clock.Advance(2 * time.Hour)
	if n, err := c.SweepExpired(ctx); err != nil || n != 1 {
		t.Fatalf("sweep: %d %v, want 1", n, err)
	}
	var rows int
	if err := c.opts.DB.QueryRow(`SELECT count(*) FROM semcache_entries`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d rows after the sweep (%v)", rows, err)
	}
}

// BenchmarkStoreBackends is BenchmarkStore's exact case (Close timed, so
// every row is written) on SQLite and on PostgreSQL, from concurrent
// callers.
func BenchmarkStoreBackends(b *testing.B) {
	for _, bm := range []string{"sqlite", "postgres"} {
		b.Run(bm, func(b *testing.B) {
			exact := func(o *Options) { o.Embedder, o.Index, o.Checker = nil, nil, nil }
			var c *Cache
			if bm == "sqlite" {
				c = newTestEnv(b).open(b, exact)
			} else {
				c = newPGEnv(b).replica(b, exact)
			}
			resp := answer("Day 1: Alfama and the castle. Day 2: Belém. Day 3: Gulbenkian. Day 4: LX Factory.")
			ctx := context.Background()
			var n atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Plan trip number ` + strconv.FormatInt(i, 10) + ` to Lisbon."}]}`
					if err := c.Store(ctx, c.Prepare(Request{Tenant: "t1", Model: "gpt-4o-mini", Chat: chat(b, body)}, Controls{}), resp, "gpt-4o-mini", 150); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if err := c.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
