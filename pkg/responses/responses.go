// Package responses owns the stored answers of OpenAI's Responses API
// (POST /v1/responses with store: true): each answer's response object and
// the conversation it ended, kept for a TTL in the store's responses table
// (SQLite embedded, PostgreSQL shared by replicas), so that GET and DELETE
// /v1/responses/{id} and a later turn's previous_response_id find them.
//
// Every row belongs to the key that made it: a lookup names the key, and
// another key's id is not found, exactly as an unknown one. Rows past their
// expiry are never served and are deleted by Sweep.
//
// The package stores what it is given: the HTTP layer decides what a
// response object and a conversation hold.
package responses

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tollgate/tollgate/internal/migrate"
	"github.com/tollgate/tollgate/internal/safe"
)

// DefaultTTL is how long a stored response is kept when Options.TTL is 0:
// OpenAI keeps them 30 days.
const DefaultTTL = 30 * 24 * time.Hour

// DefaultSweepInterval is how often expired responses are deleted when
// Options.SweepInterval is 0.
const DefaultSweepInterval = time.Hour

// ErrNotFound is an id that is unknown, expired or another key's.
var ErrNotFound = errors.New("responses: no such response")

// Stored is one stored response.
type Stored struct {
	ID      string
	KeyID   string
	Created time.Time
	// Response is the response object as it was answered.
	Response json.RawMessage
	// Context is the conversation the response ended, for a follow-up turn.
	Context json.RawMessage
}

// Options configures a Store.
type Options struct {
	TTL time.Duration // 0: DefaultTTL
	// SweepInterval is how often Start's sweeper runs (0:
	// DefaultSweepInterval).
	SweepInterval time.Duration
	Now           func() time.Time // nil: time.Now
	Logger        *slog.Logger     // nil: discarded
}

// Store keeps stored responses in the store's database.
type Store struct {
	db    *sql.DB
	ttl   time.Duration
	every time.Duration
	now   func() time.Time
	log   *slog.Logger
	stop  chan struct{}
	done  chan struct{}

	put, get, del, sweep string
}

// Open migrates the schema (internal/migrate) and returns the store on db.
func Open(ctx context.Context, db *sql.DB, o Options) (*Store, error) {
	d, err := migrate.DialectOf(db)
	if err != nil {
		return nil, fmt.Errorf("responses: %w", err)
	}
	if err := migrate.Up(ctx, db); err != nil {
		return nil, fmt.Errorf("responses: %w", err)
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{db: db, ttl: o.TTL, every: o.SweepInterval, now: o.Now, log: o.Logger}
	s.put = migrate.Rebind(d, `INSERT INTO responses (id, key_id, created_at, expires_at, response_json, context_json) VALUES (?, ?, ?, ?, ?, ?)`)
	s.get = migrate.Rebind(d, `SELECT created_at, response_json, context_json FROM responses WHERE id = ? AND key_id = ? AND expires_at > ?`)
	s.del = migrate.Rebind(d, `DELETE FROM responses WHERE id = ? AND key_id = ? AND expires_at > ?`)
	s.sweep = migrate.Rebind(d, `DELETE FROM responses WHERE expires_at <= ?`)
	return s, nil
}

// TTL is how long a stored response is kept.
func (s *Store) TTL() time.Duration { return s.ttl }

// Put stores r; it expires TTL after r.Created (now when zero).
func (s *Store) Put(ctx context.Context, r Stored) error {
	if r.ID == "" || r.KeyID == "" {
		return errors.New("responses: a stored response needs an id and a key")
	}
	if r.Created.IsZero() {
		r.Created = s.now()
	}
	if !json.Valid(r.Response) || !json.Valid(r.Context) {
		return fmt.Errorf("responses: put %s: the response or its context is not JSON", r.ID)
	}
	_, err := s.db.ExecContext(ctx, s.put, r.ID, r.KeyID, r.Created.UnixMilli(), r.Created.Add(s.ttl).UnixMilli(), string(r.Response), string(r.Context))
	if err != nil {
		return fmt.Errorf("responses: put %s: %w", r.ID, err)
	}
	return nil
}

// Get returns the key's unexpired response id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, keyID, id string) (*Stored, error) {
	var (
		created       int64
		resp, context string
	)
	err := s.db.QueryRowContext(ctx, s.get, id, keyID, s.now().UnixMilli()).Scan(&created, &resp, &context)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("responses: get: %w", err)
	}
	return &Stored{ID: id, KeyID: keyID, Created: time.UnixMilli(created), Response: json.RawMessage(resp), Context: json.RawMessage(context)}, nil
}

// Delete deletes the key's unexpired response id, or answers ErrNotFound.
func (s *Store) Delete(ctx context.Context, keyID, id string) error {
	res, err := s.db.ExecContext(ctx, s.del, id, keyID, s.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("responses: delete: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return ErrNotFound
	}
	return nil
}

// Sweep deletes every expired response and reports how many.
func (s *Store) Sweep(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.sweep, s.now().UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("responses: sweep: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// Start runs Sweep every SweepInterval under sup until Close.
func (s *Store) Start(sup *safe.Supervisor) {
	if s.stop != nil {
		return
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	sup.Go("responses sweeper", func() {
		defer close(s.done)
		t := time.NewTicker(s.every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				if n, err := s.Sweep(ctx); err != nil {
					s.log.Warn("responses: sweep", "err", err)
				} else if n > 0 {
					s.log.Debug("responses: swept expired responses", "deleted", n)
				}
				cancel()
			}
		}
	})
}

// Close stops the sweeper and waits for a sweep under way.
func (s *Store) Close() {
	if s.stop == nil {
		return
	}
	close(s.stop)
	<-s.done
	s.stop = nil
}
