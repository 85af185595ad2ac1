// Package pgtest gives tests the shared stores they run against: a
// PostgreSQL schema of the test's own on the server $TOLLGATE_TEST_POSTGRES
// names, and the Redis server $TOLLGATE_TEST_REDIS names. A test whose
// variable is unset skips, saying what to set, so the suite passes on a
// machine without the servers.
//
// A schema per test (rather than a database) is cheap to create, lets
// tests run at once on one server without seeing each other's rows, and
// needs no change to the code under test: the schema is the first entry of
// the connection's search_path, so unqualified names resolve there.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the database/sql driver "pgx"
)

const (
	// Env names the PostgreSQL server tests use, as a URL.
	Env = "TOLLGATE_TEST_POSTGRES"
	// RedisEnv names the Redis server tests use, as a URL.
	RedisEnv = "TOLLGATE_TEST_REDIS"
)

// URL returns $TOLLGATE_TEST_POSTGRES, or skips the test when it is unset.
func URL(tb testing.TB) string {
	tb.Helper()
	return getenv(tb, Env, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
}

// RedisURL returns $TOLLGATE_TEST_REDIS, or skips the test when it is
// unset. Tests sharing the server keep to a key prefix of their own.
func RedisURL(tb testing.TB) string {
	tb.Helper()
	return getenv(tb, RedisEnv, "redis://127.0.0.1:6379/0")
}

// getenv returns the variable, or skips the test saying what to set.
func getenv(tb testing.TB, name, example string) string {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		tb.Skipf("%s is not set (e.g. %s=%s)", name, name, example)
	}
	return v
}

// Schema is a PostgreSQL schema of one test's own.
type Schema struct {
	// Name is the schema's name, a plain SQL identifier.
	Name string
	// URL is $TOLLGATE_TEST_POSTGRES with search_path=Name added: every
	// connection opened with it (pgxpool, database/sql's "pgx", or a
	// gateway given it as store.postgres_url) works in the schema, since
	// pgx sends query parameters it does not know as run-time parameters.
	URL string
}

// NewSchema creates a fresh, uniquely named schema, dropped with
// everything in it when the test ends. It is registered for Cleanup before
// anything the test opens on it afterwards, so the drop runs after their
// Cleanups have closed them.
func NewSchema(tb testing.TB) Schema {
	tb.Helper()
	base := URL(tb)
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		tb.Fatalf("%s must be a postgres:// URL (the value is not shown: it may hold a password)", Env)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "tg_test_" + hex.EncodeToString(b[:])
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()

	admin := func(stmt string) error {
		// Not tb.Context(): it is already canceled when Cleanup runs.
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, stmt)
		return err
	}
	if err := admin(`CREATE SCHEMA ` + name); err != nil {
		tb.Fatalf("pgtest: creating schema %s: %v", name, err)
	}
	tb.Cleanup(func() {
		if err := admin(`DROP SCHEMA ` + name + ` CASCADE`); err != nil {
			tb.Errorf("pgtest: dropping schema %s: %v", name, err)
		}
	})
	return Schema{Name: name, URL: u.String()}
}

// Pool opens a pgx pool on the schema, closed when the test ends. Each call
// is a pool of its own, as another replica's would be. maxConns <= 0 keeps
// pgxpool's default.
func (s Schema) Pool(tb testing.TB, maxConns int) *pgxpool.Pool {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(s.URL)
	if err != nil {
		tb.Fatal(err)
	}
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// DB opens a database/sql pool (driver "pgx") on the schema, closed when
// the test ends (closing it earlier is fine: Close is idempotent).
func (s Schema) DB(tb testing.TB) *sql.DB {
	tb.Helper()
	db, err := sql.Open("pgx", s.URL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}
