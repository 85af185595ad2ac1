// Package sqlite opens tollgate's embedded SQLite database (mattn/go-sqlite3)
// with the settings every store relies on. It owns only the file: the
// schema is internal/migrate's, which every store applies before using its
// tables.
package sqlite

import (
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
