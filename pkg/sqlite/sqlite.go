// Package sqlite opens tollgate's embedded SQLite database (mattn/go-sqlite3)
// with the settings every store relies on, and applies each store's schema
// migrations. Stores (keys, budgets, ledger, cache entries) own their tables;
// this package owns only the file and the migration bookkeeping.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

// Open opens (creating if needed) the database file at path in WAL mode with
// a busy timeout, so concurrent writers wait instead of failing, and foreign
// keys on. The directory is created if missing.
func Open(path string) (*sql.DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", "10000")
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", "NORMAL") // with WAL: durable across process crashes, fsync at checkpoints
	q.Set("_txlock", "immediate")   // writers take the lock at BEGIN: no deadlock-prone lock upgrades
	db, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return db, nil
}

// Migrate applies the statements of a store's schema that have not been
// applied yet, in order, each version in its own transaction. steps[i] is
// version i+1 of the named store's schema; a step is never edited once
// released, only appended.
func Migrate(ctx context.Context, db *sql.DB, store string, steps []string) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_versions (store TEXT PRIMARY KEY, version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", store, err)
	}
	var have int
	err := db.QueryRowContext(ctx, `SELECT version FROM schema_versions WHERE store = ?`, store).Scan(&have)
	if err != nil && err != sql.ErrNoRows {
		return fmt.Errorf("sqlite: migrate %s: %w", store, err)
	}
	if have > len(steps) {
		return fmt.Errorf("sqlite: the database has %s schema version %d, newer than this build knows (%d)", store, have, len(steps))
	}
	for v := have + 1; v <= len(steps); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", store, err)
		}
		if _, err := tx.ExecContext(ctx, steps[v-1]); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite: migrate %s to version %d: %w", store, v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_versions (store, version) VALUES (?, ?)
			ON CONFLICT(store) DO UPDATE SET version = excluded.version`, store, v); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite: migrate %s: %w", store, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", store, err)
		}
	}
	return nil
}
