package migrate

import (
	"context"
	"fmt"
)

// legacy maps the per-store schema steps of SQLite databases written before
// this package (table schema_versions(store, version): steps 1..version of
// each store applied) to the versions those steps became. The files of
// these versions hold the very statements of the old steps.
var legacy = map[string][]int{
	"keys":     {1, 2},    // api_keys; allow_byok
	"budget":   {3, 4, 5}, // policies, ledger, alerts, outbox; journal; judge columns
	"semcache": {6},       // semcache_entries
}

// adoptLegacy records the steps an older database has applied as their
// versions in schema_migrations and drops schema_versions, in one
// transaction that holds the write lock, so it happens once. A tollgate
// from before this package then stops at its first CREATE TABLE on such a
// database instead of writing to a schema it does not know.
func (r *run) adoptLegacy(ctx context.Context, ms []Migration) (err error) {
	// Every start but the first after an upgrade only reads.
	if ok, err := r.hasLegacy(ctx); err != nil || !ok {
		return err
	}
	if err := r.begin(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() {
		if err != nil {
			r.rollback()
		}
	}()
	// Again under the write lock: another process may have adopted it.
	if ok, err := r.hasLegacy(ctx); err != nil || !ok {
		if err == nil {
			_, err = r.conn.ExecContext(ctx, "COMMIT")
		}
		return err
	}
	rows, err := r.conn.QueryContext(ctx, `SELECT store, version FROM schema_versions ORDER BY store`)
	if err != nil {
		return fmt.Errorf("migrate: legacy schema_versions: %w", err)
	}
	type step struct {
		store   string
		version int
	}
	var steps []step
	for rows.Next() {
		var s step
		if err := rows.Scan(&s.store, &s.version); err != nil {
			rows.Close()
			return fmt.Errorf("migrate: legacy schema_versions: %w", err)
		}
		steps = append(steps, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate: legacy schema_versions: %w", err)
	}
	byVersion := make(map[int]Migration, len(ms))
	for _, m := range ms {
		byVersion[m.Version] = m
	}
	for _, s := range steps {
		versions, ok := legacy[s.store]
		if !ok || s.version < 0 || s.version > len(versions) {
			return fmt.Errorf("migrate: %w: legacy schema_versions has %s at version %d", ErrNewer, s.store, s.version)
		}
		for _, v := range versions[:s.version] {
			m, ok := byVersion[v]
			if !ok {
				return fmt.Errorf("migrate: legacy %s step: version %d is not among the migrations", s.store, v)
			}
			if err := r.record(ctx, m); err != nil {
				return err
			}
		}
	}
	if _, err := r.conn.ExecContext(ctx, `DROP TABLE schema_versions`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := r.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

func (r *run) hasLegacy(ctx context.Context) (bool, error) {
	var n int
	if err := r.conn.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_versions'`).Scan(&n); err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	return n > 0, nil
}
