// Package audit owns tollgate's audit log: one row per admin action that
// changed something (a key created, updated or revoked, a budget policy
// set, cache entries deleted, the config reloaded), with who asked, what it
// was aimed at, JSON snapshots of the target before and after, the time and
// the request id. Rows live in the store's audit_log table (SQLite
// embedded, PostgreSQL shared by replicas), are only ever inserted, and are
// listed newest first, filtered and paged by an opaque cursor.
//
// The package stores what it is given: keeping secrets out of the
// snapshots is the caller's job (the admin API never puts a key's secret,
// its hash or the admin key in them).
package audit

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/internal/migrate"
)

// The actions the admin API records.
const (
	ActionKeyCreate    = "key.create"
	ActionKeyUpdate    = "key.update"
	ActionKeyRevoke    = "key.revoke"
	ActionBudgetUpdate = "budget.update"
	ActionCacheDelete  = "cache.delete"
	ActionConfigReload = "config.reload"
)

// Actions lists every action, for validating a filter.
var Actions = []string{ActionKeyCreate, ActionKeyUpdate, ActionKeyRevoke, ActionBudgetUpdate, ActionCacheDelete, ActionConfigReload}

// KnownAction reports whether a is one of Actions.
func KnownAction(a string) bool {
	for _, k := range Actions {
		if a == k {
			return true
		}
	}
	return false
}

// Actor is who asked for an action. The admin key is one shared secret, so
// Kind is "admin" for every admin action; Name is what the operator said
// they are (the x-tollgate-actor header: a claim, not an identity), and the
// remote address and User-Agent say where the request came from.
type Actor struct {
	Kind       string `json:"kind"`
	Name       string `json:"name,omitempty"`
	RemoteAddr string `json:"remote_addr,omitempty"`
	UserAgent  string `json:"user_agent,omitempty"`
}

// Entry is one audit row.
type Entry struct {
	ID        int64     `json:"id"` // set by the store
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id"`
	Actor     Actor     `json:"actor"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	// Before and After are JSON snapshots of the target; nil is none
	// (shown as null).
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
}

// Filter selects and pages entries. Zero fields select everything.
type Filter struct {
	Action string
	Target string
	Since  time.Time // inclusive
	Until  time.Time // exclusive
	After  Cursor    // the zero cursor: from the newest
	Limit  int       // at least 1; larger than MaxLimit is MaxLimit
}

// Page limits.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Page is one page of entries, newest first; Next is the cursor of the
// following page, nil after the last.
type Page struct {
	Entries []Entry
	Next    *Cursor
}

// Cursor is a position in the log, which is ordered by time and then by
// id, newest first. Its text form (String, ParseCursor) is opaque to
// clients.
type Cursor struct {
	ms, id int64
}

// IsZero reports whether c is the zero cursor (the newest entry first).
func (c Cursor) IsZero() bool { return c == Cursor{} }

func (c Cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.ms, 10) + "." + strconv.FormatInt(c.id, 10)))
}

// ErrBadCursor is a cursor that String did not make.
var ErrBadCursor = errors.New("audit: not a cursor")

// ParseCursor reads a cursor's text form.
func ParseCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 41 {
		return Cursor{}, ErrBadCursor
	}
	ms, id, ok := strings.Cut(string(b), ".")
	if !ok {
		return Cursor{}, ErrBadCursor
	}
	var c Cursor
	if c.ms, err = strconv.ParseInt(ms, 10, 64); err != nil {
		return Cursor{}, ErrBadCursor
	}
	if c.id, err = strconv.ParseInt(id, 10, 64); err != nil || c.id < 1 {
		return Cursor{}, ErrBadCursor
	}
	return c, nil
}

// Store is the audit log in the store's database.
type Store struct {
	db       *sql.DB
	pg       bool
	insert   string
	failures atomic.Int64
}

// Open migrates the schema (internal/migrate) and returns the log on db.
func Open(ctx context.Context, db *sql.DB) (*Store, error) {
	d, err := migrate.DialectOf(db)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if err := migrate.Up(ctx, db); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	s := &Store{db: db, pg: d == migrate.Postgres}
	s.insert = s.q(`INSERT INTO audit_log (recorded_at, request_id, actor, actor_name, remote_addr, user_agent, action, target, before_json, after_json)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	return s, nil
}

// Record appends e. A failure is counted (Failures) and returned: the
// caller decides what the action's answer says.
func (s *Store) Record(ctx context.Context, e Entry) error {
	if e.Action == "" || e.Time.IsZero() {
		s.failures.Add(1)
		return errors.New("audit: an entry needs an action and a time")
	}
	for _, b := range []json.RawMessage{e.Before, e.After} {
		if len(b) > 0 && !json.Valid(b) {
			s.failures.Add(1)
			return fmt.Errorf("audit: record %s %s: a snapshot is not JSON", e.Action, e.Target)
		}
	}
	if _, err := s.db.ExecContext(ctx, s.insert, e.Time.UnixMilli(), e.RequestID, e.Actor.Kind, e.Actor.Name, e.Actor.RemoteAddr,
		e.Actor.UserAgent, e.Action, e.Target, nullJSON(e.Before), nullJSON(e.After)); err != nil {
		s.failures.Add(1)
		return fmt.Errorf("audit: record %s %s: %w", e.Action, e.Target, err)
	}
	return nil
}

// Failures is how many Records failed since Open: each is an admin action
// that happened without its audit row (the caller logged it).
func (s *Store) Failures() int64 { return s.failures.Load() }

func nullJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// List returns one page of the entries f selects, newest first. It reads
// one row more than the page to know whether another page follows.
func (s *Store) List(ctx context.Context, f Filter) (Page, error) {
	limit := f.Limit
	switch {
	case limit < 1:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	var (
		where []string
		args  []any
	)
	if f.Action != "" {
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	if f.Target != "" {
		where, args = append(where, "target = ?"), append(args, f.Target)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "recorded_at >= ?"), append(args, f.Since.UnixMilli())
	}
	if !f.Until.IsZero() {
		where, args = append(where, "recorded_at < ?"), append(args, f.Until.UnixMilli())
	}
	if !f.After.IsZero() {
		where, args = append(where, "(recorded_at < ? OR (recorded_at = ? AND id < ?))"), append(args, f.After.ms, f.After.ms, f.After.id)
	}
	query := `SELECT id, recorded_at, request_id, actor, actor_name, remote_addr, user_agent, action, target, before_json, after_json FROM audit_log`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY recorded_at DESC, id DESC LIMIT " + strconv.Itoa(limit+1)
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return Page{}, fmt.Errorf("audit: list: %w", err)
	}
	defer rows.Close()
	var p Page
	for rows.Next() {
		if len(p.Entries) == limit {
			last := p.Entries[limit-1]
			p.Next = &Cursor{ms: last.Time.UnixMilli(), id: last.ID}
			break
		}
		var (
			e             Entry
			ms            int64
			before, after sql.NullString
		)
		if err := rows.Scan(&e.ID, &ms, &e.RequestID, &e.Actor.Kind, &e.Actor.Name, &e.Actor.RemoteAddr, &e.Actor.UserAgent,
			&e.Action, &e.Target, &before, &after); err != nil {
			return Page{}, fmt.Errorf("audit: list: %w", err)
		}
		e.Time = time.UnixMilli(ms).UTC()
		if before.Valid {
			e.Before = json.RawMessage(before.String)
		}
		if after.Valid {
			e.After = json.RawMessage(after.String)
		}
		p.Entries = append(p.Entries, e)
	}
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("audit: list: %w", err)
	}
	return p, nil
}

// q is query in the store's dialect: ? placeholders become PostgreSQL's
// $1, $2, ... (no query here has a ? inside a string).
func (s *Store) q(query string) string {
	if !s.pg {
		return query
	}
	return migrate.Rebind(migrate.Postgres, query)
}
