package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/tollgate/tollgate/internal/pgtest"
)

// openSQLite opens a fresh SQLite file the way pkg/sqlite does (WAL, busy
// timeout) without its deferred-lock setting, so BEGIN IMMEDIATE is ours.
func openSQLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_busy_timeout=10000&_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func embeddedFiles(t *testing.T, d Dialect) []Migration {
	t.Helper()
	files, err := Files(d)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := Load(files)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// recorded is schema_migrations: version → name.
func recorded(t *testing.T, db *sql.DB) map[int]string {
	t.Helper()
	rows, err := db.Query(`SELECT version, name FROM schema_migrations`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int]string{}
	for rows.Next() {
		var (
			v    int
			name string
		)
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		out[v] = name
	}
	return out
}

func all(ms []Migration) map[int]string {
	out := map[int]string{}
	for _, m := range ms {
		out[m.Version] = m.Name
	}
	return out
}

// sqliteSchema describes every table (columns: name, type, not null,
// default, pk) and index, so an upgraded database can be compared with a
// fresh one whatever the text of its CREATE statements.
func sqliteSchema(t *testing.T, db *sql.DB) map[string][]string {
	t.Helper()
	rows, err := db.Query(`SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name != 'schema_migrations' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	type obj struct{ typ, name, table string }
	var objs []obj
	for rows.Next() {
		var o obj
		if err := rows.Scan(&o.typ, &o.name, &o.table); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	rows.Close()
	out := map[string][]string{}
	for _, o := range objs {
		pragma := "table_info"
		if o.typ == "index" {
			pragma = "index_info"
		}
		cols, err := db.Query(fmt.Sprintf(`SELECT * FROM pragma_%s('%s')`, pragma, o.name))
		if err != nil {
			t.Fatal(err)
		}
		names, _ := cols.Columns()
		for cols.Next() {
			vals := make([]any, len(names))
			ptrs := make([]any, len(names))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := cols.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			out[o.typ+" "+o.name+" on "+o.table] = append(out[o.typ+" "+o.name+" on "+o.table], fmt.Sprint(vals...))
		}
		cols.Close()
	}
	return out
}

func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  []int
		err   bool
	}{
		{"ordered by version", fstest.MapFS{"0002_b.sql": {Data: []byte("b")}, "0001_a.sql": {Data: []byte("a")}, "README.md": {}}, []int{1, 2}, false},
		{"no version", fstest.MapFS{"init.sql": {}}, nil, true},
		{"version zero", fstest.MapFS{"0000_init.sql": {}}, nil, true},
		{"no name", fstest.MapFS{"0001_.sql": {}}, nil, true},
		{"duplicate version", fstest.MapFS{"0001_a.sql": {}, "1_b.sql": {}}, nil, true},
		{"empty", fstest.MapFS{}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := Load(tc.files)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			var got []int
			for _, m := range ms {
				got = append(got, m.Version)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("versions = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDialectsAgree: both dialects carry the same versions under the same
// names, so a schema change is one version written twice.
func TestDialectsAgree(t *testing.T) {
	lite, pg := all(embeddedFiles(t, SQLite)), all(embeddedFiles(t, Postgres))
	if !reflect.DeepEqual(lite, pg) {
		t.Fatalf("sqlite has %v, postgres %v", lite, pg)
	}
}

// TestSQLiteUpgrade: a fresh file and databases written by earlier
// tollgates all end with every version recorded, the same schema, and
// their rows.
func TestSQLiteUpgrade(t *testing.T) {
	ctx := context.Background()
	ms := embeddedFiles(t, SQLite)
	fresh := openSQLite(t, filepath.Join(t.TempDir(), "fresh.db"))
	if err := Up(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	want := sqliteSchema(t, fresh)

	legacyV1, err := os.ReadFile("testdata/legacy_v1.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		before []string // run on the file before Up
		keys   int      // rows of api_keys afterwards
	}{
		{"fresh file", nil, 0},
		{"every store at its first step", []string{string(legacyV1)}, 1},
		{"every store at its last step", []string{string(legacyV1),
			`ALTER TABLE api_keys ADD COLUMN allow_byok INTEGER NOT NULL DEFAULT 0`,
			`CREATE TABLE budget_journal (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	applied INTEGER NOT NULL -- journal offset whose records are all in budget_ledger / budget_alerts
);`,
			`ALTER TABLE budget_ledger ADD COLUMN judge TEXT NOT NULL DEFAULT '';
ALTER TABLE budget_ledger ADD COLUMN judge_cost INTEGER NOT NULL DEFAULT 0;`,
			`UPDATE schema_versions SET version = 2 WHERE store = 'keys'`,
			`UPDATE schema_versions SET version = 3 WHERE store = 'budget'`,
		}, 1},
		{"an empty legacy table", []string{`CREATE TABLE schema_versions (store TEXT PRIMARY KEY, version INTEGER NOT NULL)`}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openSQLite(t, filepath.Join(t.TempDir(), "t.db"))
			for _, stmt := range tc.before {
				if _, err := db.Exec(stmt); err != nil {
					t.Fatal(err)
				}
			}
			for range 2 { // the second run is a no-op
				if err := Up(ctx, db); err != nil {
					t.Fatal(err)
				}
			}
			if got := recorded(t, db); !reflect.DeepEqual(got, all(ms)) {
				t.Errorf("recorded %v, want %v", got, all(ms))
			}
			if got := sqliteSchema(t, db); !reflect.DeepEqual(got, want) {
				t.Errorf("schema differs from a fresh database's:\n got %v\nwant %v", got, want)
			}
			var n int
			if err := db.QueryRow(`SELECT count(*) FROM api_keys WHERE allow_byok = 0`).Scan(&n); err != nil || n != tc.keys {
				t.Errorf("api_keys: %d rows with allow_byok 0, %v; want %d", n, err, tc.keys)
			}
			if tc.keys == 0 {
				return
			}
			var (
				name, allowed, judge string
				cost, judgeCost      int64
				hash, resp           []byte
			)
			if err := db.QueryRow(`SELECT name, allowed, secret_hash FROM api_keys WHERE id = 'key_0001'`).Scan(&name, &allowed, &hash); err != nil ||
				name != "ci" || allowed != `["gpt-4o*"]` || len(hash) != 32 {
				t.Errorf("key row: %q %q %x, %v", name, allowed, hash, err)
			}
			if err := db.QueryRow(`SELECT cost, judge, judge_cost FROM budget_ledger WHERE request_id = 'req_1'`).Scan(&cost, &judge, &judgeCost); err != nil ||
				cost != 1234 || judge != "" || judgeCost != 0 {
				t.Errorf("ledger row: %d %q %d, %v", cost, judge, judgeCost, err)
			}
			if err := db.QueryRow(`SELECT response FROM semcache_entries WHERE exact_key = 'k1'`).Scan(&resp); err != nil || string(resp) != `{"id":"c1"}` {
				t.Errorf("cache row: %q, %v", resp, err)
			}
			if err := db.QueryRow(`SELECT count(*) FROM budget_policies`).Scan(&n); err != nil || n != 1 {
				t.Errorf("policies: %d, %v", n, err)
			}
		})
	}
}

func TestSQLiteLegacyUnknown(t *testing.T) {
	for _, tc := range []struct{ name, store string }{
		{"newer step", "('keys', 3)"},
		{"unknown store", "('ratelimit', 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openSQLite(t, filepath.Join(t.TempDir(), "t.db"))
			if _, err := db.Exec(`CREATE TABLE schema_versions (store TEXT PRIMARY KEY, version INTEGER NOT NULL);
				INSERT INTO schema_versions VALUES ` + tc.store); err != nil {
				t.Fatal(err)
			}
			if err := Up(context.Background(), db); !errors.Is(err, ErrNewer) {
				t.Fatalf("err = %v, want ErrNewer", err)
			}
			if got := recorded(t, db); len(got) != 0 {
				t.Fatalf("recorded %v after a refusal", got)
			}
		})
	}
}

var (
	v1 = fstest.MapFS{
		"0001_hits.sql": {Data: []byte(`CREATE TABLE hits (n INTEGER NOT NULL);`)},
		"0002_hit.sql":  {Data: []byte(`INSERT INTO hits (n) VALUES (1);`)},
	}
	v2 = fstest.MapFS{
		"0001_hits.sql": v1["0001_hits.sql"],
		"0002_hit.sql":  v1["0002_hit.sql"],
		"0003_more.sql": {Data: []byte(`ALTER TABLE hits ADD COLUMN m INTEGER NOT NULL DEFAULT 0; INSERT INTO hits (n, m) VALUES (2, 2);`)},
	}
	edited = fstest.MapFS{
		"0001_hits.sql": v1["0001_hits.sql"],
		"0002_hit.sql":  {Data: []byte(`INSERT INTO hits (n) VALUES (10);`)},
	}
	broken = fstest.MapFS{
		"0001_hits.sql": v1["0001_hits.sql"],
		"0002_hit.sql":  v1["0002_hit.sql"],
		"0003_bad.sql":  {Data: []byte(`CREATE TABLE half (x INTEGER); INSERT INTO nowhere VALUES (1);`)},
	}
)

// engines returns a fresh database of every dialect available: SQLite
// always, PostgreSQL when TOLLGATE_TEST_POSTGRES is set.
type engine struct {
	d    Dialect
	open func(t *testing.T) (open func() *sql.DB)
}

func engines() []engine {
	return []engine{
		{SQLite, func(t *testing.T) func() *sql.DB {
			path := filepath.Join(t.TempDir(), "t.db")
			return func() *sql.DB { return openSQLite(t, path) }
		}},
		{Postgres, postgresSchema},
	}
}

// postgresSchema creates a schema of its own for the test, dropped at
// Cleanup, and returns a function opening pools whose search_path is it.
func postgresSchema(t *testing.T) func() *sql.DB {
	t.Helper()
	s := pgtest.NewSchema(t)
	return func() *sql.DB { return s.DB(t) }
}

func hits(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM hits`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestApply: what each dialect does with versions already applied, edited
// or unknown, and with a migration that fails.
func TestApply(t *testing.T) {
	ctx := context.Background()
	for _, e := range engines() {
		t.Run(string(e.d), func(t *testing.T) {
			for _, tc := range []struct {
				name  string
				runs  []fstest.MapFS // applied in turn; all but the last must succeed
				err   error          // of the last run; nil: any error is a failure
				fails bool
				hits  int
				want  []int // recorded versions
			}{
				{"fresh", []fstest.MapFS{v1}, nil, false, 1, []int{1, 2}},
				{"re-running is a no-op", []fstest.MapFS{v1, v1, v1}, nil, false, 1, []int{1, 2}},
				{"a new version", []fstest.MapFS{v1, v2}, nil, false, 2, []int{1, 2, 3}},
				{"an edited version", []fstest.MapFS{v1, edited}, ErrChecksum, true, 1, []int{1, 2}},
				{"a newer database", []fstest.MapFS{v2, v1}, ErrNewer, true, 2, []int{1, 2, 3}},
				{"a failing version leaves no trace", []fstest.MapFS{broken}, nil, true, 1, []int{1, 2}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					db := e.open(t)()
					var err error
					for i, files := range tc.runs {
						err = Apply(ctx, db, e.d, files)
						if i < len(tc.runs)-1 && err != nil {
							t.Fatalf("run %d: %v", i+1, err)
						}
					}
					switch {
					case !tc.fails && err != nil:
						t.Fatal(err)
					case tc.fails && err == nil:
						t.Fatal("no error")
					case tc.err != nil && !errors.Is(err, tc.err):
						t.Fatalf("err = %v, want %v", err, tc.err)
					}
					if got := hits(t, db); got != tc.hits {
						t.Errorf("hits = %d, want %d", got, tc.hits)
					}
					var got []int
					for v := range recorded(t, db) {
						got = append(got, v)
					}
					if len(got) != len(tc.want) {
						t.Errorf("recorded %v, want %v", got, tc.want)
					}
					if tc.name == "a failing version leaves no trace" {
						if _, err := db.Exec(`SELECT * FROM half`); err == nil {
							t.Error("the failed version's table exists")
						}
					}
				})
			}
		})
	}
}

// TestConcurrentApply: processes starting together (separate pools on one
// database) apply each version once.
func TestConcurrentApply(t *testing.T) {
	const starts = 4
	for _, e := range engines() {
		t.Run(string(e.d), func(t *testing.T) {
			open := e.open(t)
			dbs := make([]*sql.DB, starts)
			for i := range dbs {
				dbs[i] = open()
			}
			var wg sync.WaitGroup
			errs := make([]error, starts)
			for i, db := range dbs {
				wg.Go(func() { errs[i] = Apply(context.Background(), db, e.d, v2) })
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("start %d: %v", i, err)
				}
			}
			if got := hits(t, dbs[0]); got != 2 {
				t.Errorf("hits = %d, want 2: a version was applied more than once", got)
			}
		})
	}
}

// TestPostgresSchema: the embedded PostgreSQL schema applies, every table
// of the SQLite schema exists with the same columns, and starts that race
// apply it once.
func TestPostgresSchema(t *testing.T) {
	ctx := context.Background()
	open := postgresSchema(t)
	dbs := []*sql.DB{open(), open()}
	if d, err := DialectOf(dbs[0]); err != nil || d != Postgres {
		t.Fatalf("DialectOf = %q, %v", d, err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(dbs))
	for i, db := range dbs {
		wg.Go(func() { errs[i] = Up(ctx, db) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ms := embeddedFiles(t, Postgres)
	if got := recorded(t, dbs[0]); !reflect.DeepEqual(got, all(ms)) {
		t.Fatalf("recorded %v, want %v", got, all(ms))
	}
	columns := func(rows *sql.Rows, err error) map[string][]string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string][]string{}
		for rows.Next() {
			var table, col string
			if err := rows.Scan(&table, &col); err != nil {
				t.Fatal(err)
			}
			if table != "schema_migrations" {
				out[table] = append(out[table], col)
			}
		}
		return out
	}
	lite := openSQLite(t, filepath.Join(t.TempDir(), "t.db"))
	if err := Up(ctx, lite); err != nil {
		t.Fatal(err)
	}
	want := columns(lite.Query(`SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid`))
	got := columns(dbs[0].Query(`SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("postgres tables %v\nsqlite tables %v", got, want)
	}
}

// TestPostgresUpgrade: a PostgreSQL database a previous release migrated
// (versions up to 0007, with a key, a ledger row and a held reservation in
// it) is brought to the current version by Up: every later version
// recorded, the rows kept, the schema the same as a fresh database's.
func TestPostgresUpgrade(t *testing.T) {
	ctx := context.Background()
	open := postgresSchema(t)
	old, fresh := open(), pgtest.NewSchema(t).DB(t)
	files, err := Files(Postgres)
	if err != nil {
		t.Fatal(err)
	}
	prev := fstest.MapFS{}
	for _, m := range embeddedFiles(t, Postgres) {
		if m.Version > 7 {
			continue
		}
		name := fmt.Sprintf("%04d_%s.sql", m.Version, m.Name)
		body, err := fs.ReadFile(files, name)
		if err != nil {
			t.Fatal(err)
		}
		prev[name] = &fstest.MapFile{Data: body}
	}
	if len(prev) != 7 {
		t.Fatalf("the previous release had 7 versions, found %d", len(prev))
	}
	if err := Apply(ctx, old, Postgres, prev); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`INSERT INTO api_keys (id, secret_hash, name, hint, allowed, metadata, created_at, allow_byok)
			VALUES ('key_0001', '\x00', 'ci', 'tg-…', '[]', '{}', 1, false)`,
		`INSERT INTO budget_ledger (ts, request_id, key_id, route, requested_model, model, provider, prompt_tokens,
			completion_tokens, cached_tokens, cost, saved, estimated, unpriced, cache, status, latency_ms, attempts, judge, judge_cost)
			VALUES (1, 'req_1', 'key_0001', 'chat', 'm', 'm', 'p', 1, 2, 0, 1234, 0, false, false, 'miss', 200, 5, 1, '', 0)`,
		`INSERT INTO budget_reservations (request_id, key_id, amount, admitted_at, lease_expires_at, state)
			VALUES ('req_2', 'key_0001', 50, 1, 2, 'held')`,
	} {
		if _, err := old.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	for _, db := range []*sql.DB{old, fresh} {
		if err := Up(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := recorded(t, old), all(embeddedFiles(t, Postgres)); !reflect.DeepEqual(got, want) {
		t.Fatalf("recorded %v, want %v", got, want)
	}
	var cost, amount int64
	if err := old.QueryRow(`SELECT l.cost, r.amount FROM budget_ledger l, budget_reservations r
		WHERE l.request_id = 'req_1' AND r.request_id = 'req_2'`).Scan(&cost, &amount); err != nil || cost != 1234 || amount != 50 {
		t.Fatalf("rows after the upgrade: cost %d, amount %d, %v", cost, amount, err)
	}
	schema := func(db *sql.DB) []string {
		t.Helper()
		rows, err := db.Query(`SELECT table_name || '.' || column_name || ' ' || data_type FROM information_schema.columns
			WHERE table_schema = current_schema() UNION ALL
			SELECT 'index ' || indexname || ' ' || regexp_replace(indexdef, ' ON [^ ]+\.', ' ON ') FROM pg_indexes WHERE schemaname = current_schema()
			ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	if got, want := schema(old), schema(fresh); !reflect.DeepEqual(got, want) {
		t.Fatalf("upgraded schema differs from a fresh one:\n got %v\nwant %v", got, want)
	}
}
