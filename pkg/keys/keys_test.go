package keys

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/migrate"
	"github.com/tollgate/tollgate/internal/pgtest"
	"github.com/tollgate/tollgate/pkg/sqlite"
)

// backend is a database the store runs on. fresh makes an empty database
// for the test and returns a function opening connections (pools) to it:
// each call is what another process would open.
type backend struct {
	name  string
	fresh func(t testing.TB) func() *sql.DB
}

func backends() []backend {
	return []backend{
		{"sqlite", sqliteFresh},
		{"postgres", postgresFresh},
	}
}

// forEachBackend runs f as a subtest per backend.
func forEachBackend(t *testing.T, f func(t *testing.T, open func() *sql.DB)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { f(t, b.fresh(t)) })
	}
}

func sqliteFresh(t testing.TB) func() *sql.DB {
	path := filepath.Join(t.TempDir(), "tollgate.db")
	return func() *sql.DB {
		db, err := sqlite.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
}

// postgresFresh creates a schema of the test's own, dropped at Cleanup,
// and opens pools whose search_path is it.
func postgresFresh(t testing.TB) func() *sql.DB {
	t.Helper()
	s := pgtest.NewSchema(t)
	return func() *sql.DB { return s.DB(t) }
}

// openStore opens a store on db, closed at Cleanup (before db).
func openStore(t testing.TB, db *sql.DB, o Options) *Store {
	t.Helper()
	s, err := OpenOptions(context.Background(), db, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// bind writes a test's query in db's dialect.
func bind(t testing.TB, db *sql.DB, q string) string {
	d, err := migrate.DialectOf(db)
	if err != nil {
		t.Fatal(err)
	}
	if d == migrate.Postgres {
		return numbered(q)
	}
	return q
}

func fixedNow() time.Time { return time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC) }

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCreateAuthenticateRevokeSurvivesRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() *sql.DB) {
		ctx := context.Background()
		db := open()
		s := openStore(t, db, Options{Now: fixedNow})
		k, secret, err := s.Create(ctx, New{Name: "app", AllowedModels: []string{"sim-small"}, Metadata: map[string]string{"team": "a"}, AllowBYOK: true})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, SecretPrefix) || len(secret) < 30 || !strings.HasPrefix(secret, k.Hint) {
			t.Fatalf("secret %q hint %q", secret, k.Hint)
		}
		got, err := s.Authenticate(secret)
		if err != nil || got.ID != k.ID {
			t.Fatalf("authenticate: %v %v", got, err)
		}

		// Only the hash is stored.
		var stored []byte
		if err := db.QueryRow(bind(t, db, `SELECT secret_hash FROM api_keys WHERE id = ?`), k.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256([]byte(secret))
		if !bytes.Equal(stored, h[:]) {
			t.Fatal("stored value is not the SHA-256 of the secret")
		}
		rows, err := db.Query(`SELECT id, secret_hash, name, hint, allowed, metadata FROM api_keys`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, name, hint, allowed, metadata string
			var hash []byte
			if err := rows.Scan(&id, &hash, &name, &hint, &allowed, &metadata); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(id+string(hash)+name+hint+allowed+metadata, secret) {
				t.Fatal("secret stored in clear")
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()

		// A new store on the same database sees the key.
		s2 := openStore(t, open(), Options{Now: fixedNow})
		got2, err := s2.Authenticate(secret)
		if err != nil || got2.Name != "app" || got2.Metadata["team"] != "a" || !got2.Allows("sim-small") || got2.Allows("sim-large") || !got2.AllowBYOK {
			t.Fatalf("after restart: %+v %v", got2, err)
		}

		if _, err := s.Revoke(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(secret); !errors.Is(err, ErrUnknown) {
			t.Fatalf("revoked key still authenticates: %v", err)
		}
		if k2, _ := s.Get(k.ID); k2.RevokedAt == nil || !k2.RevokedAt.Equal(fixedNow()) {
			t.Fatalf("revocation not recorded: %+v", k2)
		}
		if again, err := s.Revoke(ctx, k.ID); err != nil || again.RevokedAt == nil {
			t.Fatalf("revoke twice: %+v %v", again, err)
		}
		if _, err := s.Revoke(ctx, "key_nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("revoke unknown: %v", err)
		}
		s3 := openStore(t, open(), Options{Now: fixedNow})
		if _, err := s3.Authenticate(secret); err == nil {
			t.Fatal("revocation lost on restart")
		}
		if k3, ok := s3.Get(k.ID); !ok || k3.RevokedAt == nil {
			t.Fatalf("revoked key after restart: %+v %v", k3, ok)
		}
	})
}

func TestAuthenticateRejects(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() *sql.DB) {
		s := openStore(t, open(), Options{Now: fixedNow})
		tests := []struct {
			name, secret string
		}{
			{"empty", ""},
			{"prefix only", "tg-"},
			{"other prefix", "sk-abc"},
			{"unknown", "tg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
			{"huge", strings.Repeat("x", 10000)},
			{"huge with prefix", "tg-" + strings.Repeat("x", 10000)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := s.Authenticate(tt.secret); !errors.Is(err, ErrUnknown) {
					t.Errorf("%v", err)
				}
			})
		}
	})
}

func TestAllows(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		model   string
		want    bool
	}{
		{"empty allows all", nil, "gpt-4o", true},
		{"exact", []string{"gpt-4o"}, "gpt-4o", true},
		{"other", []string{"gpt-4o"}, "gpt-4o-mini", false},
		{"prefix wildcard", []string{"gpt-4o*"}, "gpt-4o-mini", true},
		{"star", []string{"*"}, "anything", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (&Key{AllowedModels: tt.allowed}).Allows(tt.model); got != tt.want {
				t.Fatalf("got %v", got)
			}
		})
	}
}

func TestConcurrentCreateAndAuthenticate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() *sql.DB) {
		ctx := context.Background()
		s := openStore(t, open(), Options{})
		var wg sync.WaitGroup
		secrets := make(chan string, 40)
		for i := 0; i < 40; i++ {
			wg.Go(func() {
				_, sec, err := s.Create(ctx, New{Name: "c"})
				if err != nil {
					t.Error(err)
					return
				}
				secrets <- sec
			})
		}
		wg.Wait()
		close(secrets)
		for sec := range secrets {
			if _, err := s.Authenticate(sec); err != nil {
				t.Fatal(err)
			}
		}
		if s.Len() != 40 || len(s.List()) != 40 {
			t.Fatalf("len = %d", s.Len())
		}
	})
}

func TestQueriesForDialect(t *testing.T) {
	tests := []struct {
		name     string
		d        migrate.Dialect
		query    func(queries) string
		contains []string
		absent   []string
	}{
		{"sqlite create keeps ?", migrate.SQLite, func(q queries) string { return q.create }, []string{"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"}, []string{"$1", "pg_notify"}},
		{"sqlite revoke", migrate.SQLite, func(q queries) string { return q.revoke }, []string{"COALESCE(revoked_at, ?) WHERE id = ?"}, []string{"$1", "pg_notify"}},
		{"postgres create numbered and notifies", migrate.Postgres, func(q queries) string { return q.create },
			[]string{"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", "pg_notify('tollgate_keys', i.id)"}, []string{"?"}},
		{"postgres revoke numbered and notifies", migrate.Postgres, func(q queries) string { return q.revoke },
			[]string{"COALESCE(revoked_at, $1) WHERE id = $2", "pg_notify('tollgate_keys', u.id)"}, []string{"?"}},
		{"postgres lookup by hash", migrate.Postgres, func(q queries) string { return q.byHash }, []string{"WHERE secret_hash = $1"}, []string{"?"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.query(queriesFor(tt.d))
			for _, c := range tt.contains {
				if !strings.Contains(got, c) {
					t.Errorf("%q lacks %q", got, c)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(got, a) {
					t.Errorf("%q has %q", got, a)
				}
			}
		})
	}
}

// replicas opens two stores on one fresh PostgreSQL database, each on a
// pool of its own, as two gateway processes would.
func replicas(t *testing.T, o Options) (a, b *Store, open func() *sql.DB) {
	t.Helper()
	open = postgresFresh(t)
	a = openStore(t, open(), o)
	b = openStore(t, open(), o)
	return a, b, open
}

func TestReplicasShareKeys(t *testing.T) {
	ctx := context.Background()
	a, b, _ := replicas(t, Options{Now: fixedNow})

	k, secret, err := a.Create(ctx, New{Name: "shared", AllowedModels: []string{"m"}})
	if err != nil {
		t.Fatal(err)
	}
	// At once: B has not heard of it, the miss goes to the database.
	got, err := b.Authenticate(secret)
	if err != nil || got.ID != k.ID || !got.Allows("m") || got.Allows("other") {
		t.Fatalf("create on A, authenticate on B: %+v %v", got, err)
	}
	if _, err := b.Authenticate(secret + "x"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown secret on B: %v", err)
	}

	if _, err := a.Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "revoked on A, refused on B", func() bool {
		_, err := b.Authenticate(secret)
		return errors.Is(err, ErrUnknown)
	})
	if bk, ok := b.Get(k.ID); !ok || bk.RevokedAt == nil {
		t.Fatalf("B's record: %+v %v", bk, ok)
	}

	// The other way round, and B lists what A created.
	k2, secret2, err := b.Create(ctx, New{Name: "from b"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "A lists B's key", func() bool {
		_, ok := a.Get(k2.ID)
		return ok && a.Len() == 2
	})
	// A revokes a key only B created.
	if _, err := a.Revoke(ctx, k2.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "revoked on A, refused on B (B's own key)", func() bool {
		_, err := b.Authenticate(secret2)
		return errors.Is(err, ErrUnknown)
	})
}

// TestReplicasRevokeWithoutNotification: with the listener off (as while
// it is disconnected) the periodic resync alone bounds the delay.
func TestReplicasRevokeWithoutNotification(t *testing.T) {
	ctx := context.Background()
	a, b, _ := replicas(t, Options{Now: fixedNow, Resync: 20 * time.Millisecond, noListen: true})
	k, secret, err := a.Create(ctx, New{Name: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authenticate(secret); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "resync removes the key revoked on A", func() bool {
		_, err := b.Authenticate(secret)
		return errors.Is(err, ErrUnknown)
	})
}

// TestResyncRevocationIsFinal: a resync applies revocations written by
// anyone (here plain SQL, no notification), and a stale active row never
// brings a revoked key back.
func TestResyncRevocationIsFinal(t *testing.T) {
	ctx := context.Background()
	open := postgresFresh(t)
	db := open()
	s := openStore(t, db, Options{Now: fixedNow, Resync: -1, noListen: true})
	k, secret, err := s.Create(ctx, New{Name: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE api_keys SET revoked_at = $1 WHERE id = $2`, fixedNow().UnixMilli(), k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(secret); err != nil {
		t.Fatalf("before the resync the memory still has it active: %v", err)
	}
	if err := s.resync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(secret); !errors.Is(err, ErrUnknown) {
		t.Fatalf("after the resync: %v", err)
	}
	// A row read before the revocation (stale) does not undo it.
	stale := *k
	s.mu.Lock()
	got := s.apply(&stale, sha256.Sum256([]byte(secret)))
	s.mu.Unlock()
	if got.RevokedAt == nil {
		t.Fatal("a stale active row replaced the revoked key")
	}
	if _, err := s.Authenticate(secret); !errors.Is(err, ErrUnknown) {
		t.Fatalf("after a stale row: %v", err)
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	db, err := sqlite.Open(filepath.Join(b.TempDir(), "k.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s, _ := Open(context.Background(), db, nil, nil)
	_, secret, _ := s.Create(context.Background(), New{Name: "b"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Authenticate(secret); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAuthenticateMiss is the price of a secret not in memory: on
// PostgreSQL one indexed query (a key another replica created, or a wrong
// one); on SQLite nothing.
func BenchmarkAuthenticateMiss(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			s := openStore(b, be.fresh(b)(), Options{})
			secret := "tg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Authenticate(secret); !errors.Is(err, ErrUnknown) {
					b.Fatal(err)
				}
			}
		})
	}
}
