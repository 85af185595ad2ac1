package keys

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Change lists the settings Update changes: a nil field is kept as it is.
type Change struct {
	Name          *string
	AllowedModels *[]string
	Metadata      *map[string]string
	AllowBYOK     *bool
	// Guards: a pointer to nil goes back to the routes' guards, a pointer
	// to an empty list applies none.
	Guards *[]Guard
}

// Update changes the settings a Change sets and returns the key as it now
// is; it takes effect for the next request here at once, and on the other
// replicas (PostgreSQL) within the delays of the package doc. A revoked key
// is not changed (ErrRevoked), an unknown one is ErrNotFound. Two Updates
// of one key at once (on two replicas) each change only their own columns;
// for a column both set, the last write wins.
func (s *Store) Update(ctx context.Context, id string, c Change) (*Key, error) {
	return s.UpdateWith(ctx, id, c, nil)
}

// UpdateWith is Update with more writes in the same transaction: with
// (when not nil) runs in it once the key's row is written, and an error
// from it rolls everything back, the key included, and is returned as it
// is. The key's record in memory changes only once the transaction has
// committed (on PostgreSQL the other replicas are notified at the commit
// too): with must keep its own in-memory effects until then.
func (s *Store) UpdateWith(ctx context.Context, id string, c Change, with func(tx *sql.Tx) error) (*Key, error) {
	if err := s.ensure(ctx, id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.byID[id]
	switch {
	case !ok:
		return nil, ErrNotFound
	case old.RevokedAt != nil:
		return nil, ErrRevoked
	}
	// The row is written column by column (only those the change sets) and
	// read back whole: memory takes what the database now holds.
	var name, allowed, metadata, byok any // nil: NULL, the column is kept
	if c.Name != nil {
		name = *c.Name
	}
	if c.AllowedModels != nil {
		b, _ := json.Marshal(append([]string{}, (*c.AllowedModels)...))
		allowed = string(b)
	}
	if c.Metadata != nil {
		m := *c.Metadata
		if m == nil {
			m = map[string]string{}
		}
		b, _ := json.Marshal(m)
		metadata = string(b)
	}
	if c.AllowBYOK != nil {
		byok = *c.AllowBYOK
	}
	var guards any // NULL: inherit, when setGuards
	setGuards := c.Guards != nil
	if setGuards {
		guards = guardsColumn(*c.Guards)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("keys: update: %w", err)
	}
	defer tx.Rollback()
	k, h, err := scanKey(tx.QueryRowContext(ctx, s.q.update, name, allowed, metadata, byok, setGuards, guards, id))
	if errors.Is(err, sql.ErrNoRows) {
		// Revoked by another replica since this one read it.
		return nil, ErrRevoked
	}
	if err != nil {
		return nil, fmt.Errorf("keys: update: %w", err)
	}
	if with != nil {
		if err := with(tx); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("keys: update: %w", err)
	}
	return s.apply(k, h), nil
}

// sameSettings reports whether two records of one key hold the same
// settings.
func sameSettings(a, b *Key) bool {
	return a.Name == b.Name && a.AllowBYOK == b.AllowBYOK && slices.Equal(a.AllowedModels, b.AllowedModels) && maps.Equal(a.Metadata, b.Metadata) &&
		(a.Guards == nil) == (b.Guards == nil) && slices.Equal(a.Guards, b.Guards) // nil (inherit) is not [] (none)
}
