// Package migrate owns tollgate's database schema: versioned SQL files
// embedded in the binary, one directory per dialect (sqlite/, postgres/),
// applied at start by every process that opens a database.
//
// A file is named NNNN_name.sql; its version is NNNN. Both dialects carry
// the same versions under the same names, so a schema change is one new
// version written twice. A released file is never edited, only followed by
// a new one: each applied version is recorded in schema_migrations with the
// SHA-256 of its file, and a database whose record does not match the file
// (an edited migration) or that holds a version this build does not know (a
// newer tollgate migrated it) is refused at start rather than guessed at.
//
// Each migration runs in its own transaction together with its record, so a
// failed one leaves no trace and is retried at the next start. Replicas that
// start together apply each version once: on PostgreSQL the whole run holds
// a session advisory lock (pg_advisory_lock on a fixed key); on SQLite,
// which has no such lock, each migration takes the write lock first (BEGIN
// IMMEDIATE) and re-checks inside it whether another process applied the
// version meanwhile.
//
// SQLite databases written before this package kept one version per store
// in schema_versions; the first run records those steps as the versions
// they became and drops the old table (see legacy).
package migrate

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/mattn/go-sqlite3"
)

// Dialect is a database engine: the name of its directory of migrations
// and of store.driver in the configuration.
type Dialect string

// The dialects tollgate runs on.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Sentinel errors.
var (
	// ErrChecksum: an applied version's file was edited after release.
	ErrChecksum = errors.New("migration edited after it was applied")
	// ErrNewer: the database holds a version this build does not know.
	ErrNewer = errors.New("database schema is newer than this build")
)

// lockKey is the PostgreSQL advisory lock held while migrating: "tollgate"
// in ASCII, so it is recognisable in pg_locks.
const lockKey int64 = 0x746f6c6c67617465

//go:embed sqlite/*.sql postgres/*.sql
var embedded embed.FS

// Files returns tollgate's embedded migrations for the dialect.
func Files(d Dialect) (fs.FS, error) {
	switch d {
	case SQLite, Postgres:
		return fs.Sub(embedded, string(d))
	}
	return nil, fmt.Errorf("migrate: unknown dialect %q", d)
}

// DialectOf tells the dialect of db by its driver (mattn/go-sqlite3 or
// pgx's database/sql adapter).
func DialectOf(db *sql.DB) (Dialect, error) {
	switch db.Driver().(type) {
	case *sqlite3.SQLiteDriver:
		return SQLite, nil
	case *stdlib.Driver:
		return Postgres, nil
	}
	return "", fmt.Errorf("migrate: no dialect for driver %T", db.Driver())
}

// Up applies tollgate's embedded migrations to db, in the dialect of its
// driver. Every store calls it before using its tables; after the first
// call it only reads schema_migrations.
func Up(ctx context.Context, db *sql.DB) error {
	d, err := DialectOf(db)
	if err != nil {
		return err
	}
	files, err := Files(d)
	if err != nil {
		return err
	}
	return Apply(ctx, db, d, files)
}

// Migration is one versioned file.
type Migration struct {
	Version  int
	Name     string // the file name without version and extension
	SQL      string
	Checksum string // hex SHA-256 of the file
}

// Load reads the migrations in the top directory of files, ordered by
// version. Files not ending in .sql are ignored; a .sql file whose name is
// not NNNN_name.sql, or a version given twice, is an error.
func Load(files fs.FS) ([]Migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	var ms []Migration
	for _, file := range names {
		num, name, ok := strings.Cut(strings.TrimSuffix(path.Base(file), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 || name == "" {
			return nil, fmt.Errorf("migrate: %s: the name must be NNNN_name.sql with NNNN at least 1", file)
		}
		b, err := fs.ReadFile(files, file)
		if err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		sum := sha256.Sum256(b)
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	if len(ms) == 0 {
		return nil, errors.New("migrate: no migrations")
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("migrate: version %d is given twice (%s and %s)", ms[i].Version, ms[i-1].Name, ms[i].Name)
		}
	}
	return ms, nil
}

// Apply applies every migration of files that db has not recorded, in
// version order, each in its own transaction with its record. It first
// checks every recorded version against files: an unknown one is ErrNewer,
// a changed file ErrChecksum, and nothing is applied.
func Apply(ctx context.Context, db *sql.DB, d Dialect, files fs.FS) (err error) {
	if d != SQLite && d != Postgres {
		return fmt.Errorf("migrate: unknown dialect %q", d)
	}
	ms, err := Load(files)
	if err != nil {
		return err
	}
	// One connection for the whole run: the advisory lock and the
	// hand-written BEGIN belong to a session.
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	r := &run{conn: conn, d: d}
	defer r.release()
	if d == Postgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		r.locked = true
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    BIGINT PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at BIGINT NOT NULL, -- unix ms
		checksum   TEXT NOT NULL    -- hex SHA-256 of the file
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if d == SQLite {
		if err := r.adoptLegacy(ctx, ms); err != nil {
			return err
		}
	}
	applied, err := r.applied(ctx)
	if err != nil {
		return err
	}
	if err := check(ms, applied); err != nil {
		return err
	}
	for _, m := range ms {
		if _, ok := applied[m.Version]; ok {
			continue
		}
		if err := r.apply(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// check compares the recorded versions (version → checksum) with ms.
func check(ms []Migration, applied map[int]string) error {
	known := make(map[int]Migration, len(ms))
	for _, m := range ms {
		known[m.Version] = m
	}
	versions := make([]int, 0, len(applied))
	for v := range applied {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	for _, v := range versions {
		m, ok := known[v]
		if !ok {
			return fmt.Errorf("migrate: %w: it has version %d, this build knows up to %d: run the newer tollgate, or restore a backup",
				ErrNewer, v, ms[len(ms)-1].Version)
		}
		if err := m.same(applied[v]); err != nil {
			return err
		}
	}
	return nil
}

func (m Migration) same(checksum string) error {
	if checksum != m.Checksum {
		return fmt.Errorf("migrate: %w: version %d (%s) was applied with checksum %.12s, the file has %.12s: add a new version instead",
			ErrChecksum, m.Version, m.Name, checksum, m.Checksum)
	}
	return nil
}

// run is one Apply's session.
type run struct {
	conn   *sql.Conn
	d      Dialect
	locked bool // the advisory lock is held
	bad    bool // the session's state is unknown: close it, do not pool it
}

// release unlocks and returns the connection to the pool, or closes it
// when it may still hold a lock or a transaction.
func (r *run) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r.locked {
		var ok bool
		if err := r.conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock($1)`, lockKey).Scan(&ok); err != nil || !ok {
			r.bad = true
		}
	}
	if r.bad {
		// A session lock or an open transaction must not go back to the
		// pool: ErrBadConn makes database/sql close the connection.
		_ = r.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	r.conn.Close()
}

// arg is the dialect's placeholder for the n-th argument.
func (r *run) arg(n int) string {
	if r.d == Postgres {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// begin opens a transaction by hand on the session's connection: SQLite's
// BEGIN IMMEDIATE takes the write lock at once, whatever the connection's
// _txlock, so the re-check that follows cannot be overtaken.
func (r *run) begin(ctx context.Context) error {
	stmt := "BEGIN"
	if r.d == SQLite {
		stmt = "BEGIN IMMEDIATE"
	}
	_, err := r.conn.ExecContext(ctx, stmt)
	return err
}

func (r *run) rollback() {
	// Not the caller's context: a cancelled run must still end its
	// transaction.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		r.bad = true
	}
}

// applied reads schema_migrations: version → checksum.
func (r *run) applied(ctx context.Context) (map[int]string, error) {
	rows, err := r.conn.QueryContext(ctx, `SELECT version, checksum FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer rows.Close()
	out := map[int]string{}
	for rows.Next() {
		var (
			v   int64
			sum string
		)
		if err := rows.Scan(&v, &sum); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		out[int(v)] = sum
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return out, nil
}

// apply runs m and records it in one transaction, unless another process
// recorded it first.
func (r *run) apply(ctx context.Context, m Migration) (err error) {
	if err := r.begin(ctx); err != nil {
		return fmt.Errorf("migrate: version %d (%s): %w", m.Version, m.Name, err)
	}
	defer func() {
		if err != nil {
			r.rollback()
		}
	}()
	var sum string
	err = r.conn.QueryRowContext(ctx, `SELECT checksum FROM schema_migrations WHERE version = `+r.arg(1), m.Version).Scan(&sum)
	switch {
	case err == nil: // another process applied it meanwhile
		if err := m.same(sum); err != nil {
			return err
		}
		_, err = r.conn.ExecContext(ctx, "COMMIT")
		return err
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("migrate: version %d (%s): %w", m.Version, m.Name, err)
	}
	if _, err := r.conn.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("migrate: version %d (%s): %w", m.Version, m.Name, err)
	}
	if err := r.record(ctx, m); err != nil {
		return err
	}
	if _, err := r.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("migrate: version %d (%s): commit: %w", m.Version, m.Name, err)
	}
	return nil
}

func (r *run) record(ctx context.Context, m Migration) error {
	q := fmt.Sprintf(`INSERT INTO schema_migrations (version, name, applied_at, checksum) VALUES (%s, %s, %s, %s)`,
		r.arg(1), r.arg(2), r.arg(3), r.arg(4))
	if _, err := r.conn.ExecContext(ctx, q, m.Version, m.Name, time.Now().UnixMilli(), m.Checksum); err != nil {
		return fmt.Errorf("migrate: record version %d (%s): %w", m.Version, m.Name, err)
	}
	return nil
}
