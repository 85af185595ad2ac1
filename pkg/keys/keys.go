// Package keys owns tollgate's gateway API keys: generating them, storing
// only their SHA-256 hashes in the database (SQLite embedded, or PostgreSQL
// shared by replicas), authenticating a presented secret, changing a key's
// settings (Update), and revoking. The
// secret is returned once, at creation, and never again.
//
// Every key is held in memory as well (write-through), so authenticating a
// known key is a hash and a map lookup and never touches the database; a
// revocation through this Store removes the key from memory before it
// returns, so it takes effect at once for every later request of this
// instance. Revoked keys stay in memory as revoked (revocation is final), so
// presenting one costs no query either.
//
// # Replicas (PostgreSQL)
//
// On PostgreSQL several gateways share the api_keys table, and each keeps
// its memory in step with the others' writes:
//
//   - A key created elsewhere authenticates here at once: a secret whose
//     hash is not in memory is looked up in the database (one query on the
//     unique secret_hash index; identical concurrent misses share it) before
//     it is refused. Nothing negative is cached, so no delay hides a new key;
//     the price is that each unknown secret costs that one indexed query.
//     A database error during that lookup is returned as itself, not as
//     ErrUnknown.
//   - A key revoked elsewhere stops working here within the delivery time of
//     a PostgreSQL notification (milliseconds), and in any case within
//     Options.Resync (default 5 s) while the database answers. Create and
//     Revoke send NOTIFY tollgate_keys with the key's id in the statement
//     that writes the row, so the notification is delivered exactly when
//     the write commits; a listener goroutine holding one connection of the
//     pool (LISTEN) reloads that row. Notifications are lost while the
//     listener is disconnected, so it reloads every key after each
//     (re)connect, and a full reload every Resync is the backstop that
//     bounds the delay whatever happens to the listener.
//
// LISTEN/NOTIFY rather than polling for changes: it needs no change cursor
// in the schema (revoked_at comes from each replica's own clock, which may
// be skewed, so "revoked since my last poll" would miss rows), it costs
// nothing while nothing changes, and it makes revocation near-immediate;
// the periodic full reload keeps the bound honest without relying on it.
// The channel is database-wide: stores on other schemas of the same
// database cause at most a reload that finds nothing.
//
// Revocation is final in memory: a reload that read a row before it was
// revoked never brings a revoked key back.
//
// On SQLite (one process) there is no listener and no lookup on a miss:
// the memory is the whole truth, as before.
//
// Get, List and Len answer from memory; on PostgreSQL they follow the
// other replicas with the same delays.
package keys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tollgate/tollgate/internal/migrate"
	"github.com/tollgate/tollgate/internal/pglisten"
)

// Sentinel errors.
var (
	ErrUnknown  = errors.New("unknown API key")
	ErrRevoked  = errors.New("API key revoked")
	ErrNotFound = errors.New("no such key")
)

// SecretPrefix starts every gateway key, so leaked keys are recognisable by
// secret scanners.
const SecretPrefix = "tg-"

// notifyChannel is the PostgreSQL channel carrying the id of every key
// created or revoked.
const notifyChannel = "tollgate_keys"

// DefaultResync is the default interval of the full reload on PostgreSQL:
// the bound on how long a key revoked by another replica may still
// authenticate here when notifications are lost.
const DefaultResync = 5 * time.Second

// lookupTimeout bounds the database lookup of an unknown secret, which
// has no caller context (Authenticate).
const lookupTimeout = 2 * time.Second

// Key is a gateway key's record. A *Key handed out is never modified: a
// change replaces it.
type Key struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	Hint          string            `json:"hint"` // the secret's first characters, for recognising it
	AllowedModels []string          `json:"allowed_models"`
	Metadata      map[string]string `json:"metadata"`
	// AllowBYOK lets requests of this key carry their own provider
	// credentials, used for that call only.
	AllowBYOK bool `json:"allow_byok"`
	// Guards, when not nil, replace the guards of every route for this
	// key's requests (guardrails.guards in the config names them; [] is
	// none); nil keeps the routes' own.
	Guards    []Guard    `json:"guards"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Guard names a configured guard a key applies, with its action when the
// key's differs from the guard's own (block, mask or log; "": the guard's).
type Guard struct {
	Name   string `json:"name"`
	Action string `json:"action,omitempty"`
}

// Allows reports whether the key may use model (an empty list allows all).
func (k *Key) Allows(model string) bool {
	if len(k.AllowedModels) == 0 {
		return true
	}
	for _, m := range k.AllowedModels {
		if m == model || m == "*" {
			return true
		}
		if strings.HasSuffix(m, "*") && strings.HasPrefix(model, strings.TrimSuffix(m, "*")) {
			return true
		}
	}
	return false
}

// New describes a key to create.
type New struct {
	Name          string
	AllowedModels []string
	Metadata      map[string]string
	AllowBYOK     bool
	// Guards, when not nil, replace the routes' guards for this key's
	// requests (see Key.Guards); the caller checks the names and actions.
	Guards []Guard
}

// Options configure OpenOptions. The zero value is valid.
type Options struct {
	Now  func() time.Time // nil: time.Now
	Rand io.Reader        // nil: crypto/rand
	// Resync is the interval of the full reload on PostgreSQL (the bound on
	// a missed revocation); 0 means DefaultResync, negative disables it
	// (tests). Unused on SQLite.
	Resync time.Duration
	// Logger receives the listener's connection errors; nil discards them.
	Logger *slog.Logger

	noListen bool // tests: no LISTEN, so only the resync propagates
}

// Store is the key store. Safe for concurrent use.
type Store struct {
	db     *sql.DB
	now    func() time.Time
	rand   io.Reader
	shared bool // PostgreSQL: other replicas write the same table
	log    *slog.Logger
	q      queries

	byHash sync.Map // [32]byte → *Key, revoked ones included: the authentication path

	mu   sync.Mutex // serialises writers and guards byID
	byID map[string]*Key
	// ticket numbers the reads of the database and this store's writes, in
	// the order they start (reads) or commit (writes); applied is the
	// ticket of what memory holds of each key. A read that started before
	// what memory holds never replaces it, so a reload racing an Update
	// (here or on another replica) cannot bring back older settings.
	ticket  uint64
	applied map[string]uint64

	misses singleflight.Group // identical concurrent lookups of an unknown hash

	stop context.CancelFunc // nil on SQLite
	wg   sync.WaitGroup     // the listener and the resync loop
}

// queries are the statements in the store's dialect.
type queries struct {
	all, byHash, byID, create, revoke, update string
}

const columns = `id, secret_hash, name, hint, allowed, metadata, allow_byok, created_at, revoked_at, guards`

func queriesFor(d migrate.Dialect) queries {
	q := queries{
		all:    `SELECT ` + columns + ` FROM api_keys`,
		byHash: `SELECT ` + columns + ` FROM api_keys WHERE secret_hash = ?`,
		byID:   `SELECT ` + columns + ` FROM api_keys WHERE id = ?`,
		create: `INSERT INTO api_keys (id, secret_hash, name, hint, allowed, metadata, allow_byok, created_at, guards) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		// COALESCE: revoking twice (here or on two replicas) keeps the
		// first time.
		revoke: `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? RETURNING secret_hash, revoked_at`,
		// A revoked key is not changed (revocation is final).
		// Only the columns given (not NULL) change, so a change never
		// writes back another replica's older value of a column it did not
		// set. guards may be set to NULL (inherit), so a flag says whether
		// it is given.
		update: `UPDATE api_keys SET name = COALESCE(?, name), allowed = COALESCE(?, allowed), metadata = COALESCE(?, metadata),
			allow_byok = COALESCE(?, allow_byok), guards = CASE WHEN ? THEN ? ELSE guards END
			WHERE id = ? AND revoked_at IS NULL RETURNING ` + columns,
	}
	if d != migrate.Postgres {
		return q
	}
	// The notification is sent by the statement that writes, so it is
	// delivered when (and only if) the write commits.
	q.create = `WITH i AS (` + q.create + ` RETURNING id) SELECT pg_notify('` + notifyChannel + `', i.id) FROM i`
	q.revoke = `WITH u AS (UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? RETURNING id, secret_hash, revoked_at)
		SELECT u.secret_hash, u.revoked_at FROM u, pg_notify('` + notifyChannel + `', u.id)`
	q.update = `WITH u AS (` + q.update + `) SELECT u.* FROM u, pg_notify('` + notifyChannel + `', u.id)`
	for _, p := range []*string{&q.all, &q.byHash, &q.byID, &q.create, &q.revoke, &q.update} {
		*p = numbered(*p)
	}
	return q
}

// numbered turns ? placeholders into PostgreSQL's $1, $2, ... (the
// statements here have no ? in literals).
func numbered(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Open migrates the schema (internal/migrate) and loads every key. now and
// rnd may be nil (time.Now, crypto/rand). See OpenOptions.
func Open(ctx context.Context, db *sql.DB, now func() time.Time, rnd io.Reader) (*Store, error) {
	return OpenOptions(ctx, db, Options{Now: now, Rand: rnd})
}

// OpenOptions migrates the schema (internal/migrate) and loads every key.
// On PostgreSQL it also starts the listener and the resync loop, which
// Close stops: the listener keeps one connection of db's pool for itself.
func OpenOptions(ctx context.Context, db *sql.DB, o Options) (*Store, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Resync == 0 {
		o.Resync = DefaultResync
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	d, err := migrate.DialectOf(db)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if err := migrate.Up(ctx, db); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	s := &Store{db: db, now: o.Now, rand: o.Rand, shared: d == migrate.Postgres, log: o.Logger, q: queriesFor(d), byID: map[string]*Key{}, applied: map[string]uint64{}}
	if err := s.resync(ctx); err != nil {
		return nil, err
	}
	if s.shared {
		bg, stop := context.WithCancel(context.Background())
		s.stop = stop
		if !o.noListen {
			s.wg.Go(func() { s.listen(bg) })
		}
		if o.Resync > 0 {
			s.wg.Go(func() { s.resyncEvery(bg, o.Resync) })
		}
	}
	return s, nil
}

// Close stops the PostgreSQL listener and resync loop and waits for them
// (nothing to do on SQLite). Close it before closing the database.
func (s *Store) Close() error {
	if s.stop != nil {
		s.stop()
		s.wg.Wait()
	}
	return nil
}

// scanner is a row of *sql.Rows or *sql.Row.
type scanner interface{ Scan(dest ...any) error }

// scanKey reads one row of columns.
func scanKey(r scanner) (*Key, [sha256.Size]byte, error) {
	var (
		k                 Key
		hash              []byte
		allowed, metadata string
		created           int64
		revoked           sql.NullInt64
		guards            sql.NullString
		h                 [sha256.Size]byte
	)
	if err := r.Scan(&k.ID, &hash, &k.Name, &k.Hint, &allowed, &metadata, &k.AllowBYOK, &created, &revoked, &guards); err != nil {
		return nil, h, err
	}
	if err := json.Unmarshal([]byte(allowed), &k.AllowedModels); err != nil {
		return nil, h, fmt.Errorf("key %s: allowed models: %w", k.ID, err)
	}
	if err := json.Unmarshal([]byte(metadata), &k.Metadata); err != nil {
		return nil, h, fmt.Errorf("key %s: metadata: %w", k.ID, err)
	}
	if guards.Valid { // NULL: nil, the routes' guards; '[]': none
		if err := json.Unmarshal([]byte(guards.String), &k.Guards); err != nil {
			return nil, h, fmt.Errorf("key %s: guards: %w", k.ID, err)
		}
	}
	k.CreatedAt = time.UnixMilli(created).UTC()
	if revoked.Valid {
		t := time.UnixMilli(revoked.Int64).UTC()
		k.RevokedAt = &t
	}
	if len(hash) != sha256.Size {
		return nil, h, fmt.Errorf("key %s: secret hash of %d bytes", k.ID, len(hash))
	}
	return &k, [sha256.Size]byte(hash), nil
}

// guardsColumn is a key's guards as api_keys.guards holds them: NULL for
// nil (the routes' guards), else a JSON array ('[]': none).
func guardsColumn(list []Guard) any {
	if list == nil {
		return nil
	}
	b, _ := json.Marshal(list)
	return string(b)
}

// newTicket numbers a read about to start, or a write just committed
// (callers of the latter hold s.mu).
func (s *Store) newTicket(locked bool) uint64 {
	if !locked {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	s.ticket++
	return s.ticket
}

// apply merges what this store just wrote into memory (see applyRead).
// Callers hold s.mu.
func (s *Store) apply(k *Key, hash [sha256.Size]byte) *Key {
	return s.applyRead(k, hash, s.newTicket(true))
}

// applyRead merges a key read from the database, by a read numbered
// ticket, into memory and returns the key now in effect. A read older than
// what memory holds of the key is ignored. Revocation is final: a row read before its key was
// revoked never replaces the revoked record. An active row whose settings
// differ (Update, here or on another replica) replaces the record. Callers
// hold s.mu.
func (s *Store) applyRead(k *Key, hash [sha256.Size]byte, ticket uint64) *Key {
	old, ok := s.byID[k.ID]
	if ok && ticket < s.applied[k.ID] {
		return old
	}
	s.applied[k.ID] = ticket
	if ok && (old.RevokedAt != nil || (k.RevokedAt == nil && sameSettings(old, k))) {
		return old // as revoked or as the row: keep the pointer handed out
	}
	s.byID[k.ID] = k
	s.byHash.Store(hash, k)
	return k
}

// resync reads every key and merges it into memory.
func (s *Store) resync(ctx context.Context) error {
	ticket := s.newTicket(false)
	rows, err := s.db.QueryContext(ctx, s.q.all)
	if err != nil {
		return fmt.Errorf("keys: load: %w", err)
	}
	defer rows.Close()
	type row struct {
		k *Key
		h [sha256.Size]byte
	}
	var read []row
	for rows.Next() {
		k, h, err := scanKey(rows)
		if err != nil {
			return fmt.Errorf("keys: load: %w", err)
		}
		read = append(read, row{k, h})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("keys: load: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range read {
		s.applyRead(r.k, r.h, ticket)
	}
	return nil
}

// reload reads one key by id into memory; an id this database does not
// hold (another schema's notification) is ignored.
func (s *Store) reload(ctx context.Context, id string) (*Key, error) {
	ticket := s.newTicket(false)
	k, h, err := scanKey(s.db.QueryRowContext(ctx, s.q.byID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keys: reload %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applyRead(k, h, ticket), nil
}

// Create makes a key and returns it with its secret, which is not stored
// and cannot be shown again.
func (s *Store) Create(ctx context.Context, n New) (*Key, string, error) {
	return s.CreateWith(ctx, n, nil)
}

// CreateWith is Create with with (when not nil) run, with the new key's
// id, in the transaction that writes the key's row: an error from it rolls the key back and is
// returned as it is, so POST /admin/keys stores a key and its budget
// policy all or nothing. The key exists in memory only once the
// transaction has committed.
func (s *Store) CreateWith(ctx context.Context, n New, with func(tx *sql.Tx, id string) error) (*Key, string, error) {
	var raw [24]byte
	var idRaw [8]byte
	if _, err := io.ReadFull(s.rand, raw[:]); err != nil {
		return nil, "", fmt.Errorf("keys: random: %w", err)
	}
	if _, err := io.ReadFull(s.rand, idRaw[:]); err != nil {
		return nil, "", fmt.Errorf("keys: random: %w", err)
	}
	secret := SecretPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	hash := sha256.Sum256([]byte(secret))
	k := &Key{
		ID:            "key_" + hex.EncodeToString(idRaw[:]),
		Name:          n.Name,
		Hint:          secret[:len(SecretPrefix)+4],
		AllowedModels: append([]string{}, n.AllowedModels...),
		Metadata:      map[string]string{},
		AllowBYOK:     n.AllowBYOK,
		Guards:        slices.Clone(n.Guards), // nil stays nil: inherit
		CreatedAt:     s.now().UTC().Truncate(time.Millisecond),
	}
	for mk, mv := range n.Metadata {
		k.Metadata[mk] = mv
	}
	allowed, _ := json.Marshal(k.AllowedModels)
	metadata, _ := json.Marshal(k.Metadata)

	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, "", fmt.Errorf("keys: create: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.q.create,
		k.ID, hash[:], k.Name, k.Hint, string(allowed), string(metadata), k.AllowBYOK, k.CreatedAt.UnixMilli(), guardsColumn(k.Guards)); err != nil {
		return nil, "", fmt.Errorf("keys: create: %w", err)
	}
	if with != nil {
		if err := with(tx, k.ID); err != nil {
			return nil, "", err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, "", fmt.Errorf("keys: create: %w", err)
	}
	s.byID[k.ID] = k
	s.applied[k.ID] = s.newTicket(true)
	s.byHash.Store(hash, k)
	return k, secret, nil
}

// Authenticate returns the active key whose secret this is. On PostgreSQL
// a secret not in memory is looked up in the database first (a key created
// by another replica); an error of that lookup is returned as it is.
func (s *Store) Authenticate(secret string) (*Key, error) {
	if !strings.HasPrefix(secret, SecretPrefix) {
		return nil, ErrUnknown
	}
	h := sha256.Sum256([]byte(secret))
	if v, ok := s.byHash.Load(h); ok {
		if k := v.(*Key); k.RevokedAt == nil {
			return k, nil
		}
		return nil, ErrUnknown
	}
	if !s.shared {
		return nil, ErrUnknown
	}
	v, err, _ := s.misses.Do(string(h[:]), func() (any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
		defer cancel()
		return s.lookup(ctx, h)
	})
	if err != nil {
		return nil, err
	}
	return v.(*Key), nil
}

// lookup reads the key of hash from the database into memory.
func (s *Store) lookup(ctx context.Context, hash [sha256.Size]byte) (*Key, error) {
	ticket := s.newTicket(false)
	k, h, err := scanKey(s.db.QueryRowContext(ctx, s.q.byHash, hash[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrUnknown
	}
	if err != nil {
		return nil, fmt.Errorf("keys: look up: %w", err)
	}
	s.mu.Lock()
	k = s.applyRead(k, h, ticket)
	s.mu.Unlock()
	if k.RevokedAt != nil {
		return nil, ErrUnknown
	}
	return k, nil
}

// Get returns a key by id, revoked or not.
func (s *Store) Get(id string) (*Key, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.byID[id]
	return k, ok
}

// List returns every key, oldest first.
func (s *Store) List() []*Key {
	s.mu.Lock()
	out := make([]*Key, 0, len(s.byID))
	for _, k := range s.byID {
		out = append(out, k)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Len is the number of keys, revoked included.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}

// ensure reads key id from the database when it is not in memory on
// PostgreSQL: a key another replica created may not have reached memory
// yet.
func (s *Store) ensure(ctx context.Context, id string) error {
	if !s.shared {
		return nil
	}
	s.mu.Lock()
	_, ok := s.byID[id]
	s.mu.Unlock()
	if ok {
		return nil
	}
	_, err := s.reload(ctx, id)
	return err
}

// Revoke disables a key at once (on PostgreSQL: here at once, on the other
// replicas within the bound of the package doc). Revoking a revoked key is
// not an error.
func (s *Store) Revoke(ctx context.Context, id string) (*Key, error) {
	if err := s.ensure(ctx, id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.byID[id]
	if !ok {
		return nil, ErrNotFound
	}
	if old.RevokedAt != nil {
		return old, nil
	}
	var (
		hash    []byte
		revoked int64
	)
	if err := s.db.QueryRowContext(ctx, s.q.revoke, s.now().UTC().Truncate(time.Millisecond).UnixMilli(), id).Scan(&hash, &revoked); err != nil {
		return nil, fmt.Errorf("keys: revoke: %w", err)
	}
	if len(hash) != sha256.Size {
		return nil, fmt.Errorf("keys: revoke %s: secret hash of %d bytes", id, len(hash))
	}
	k := *old
	at := time.UnixMilli(revoked).UTC()
	k.RevokedAt = &at
	return s.apply(&k, [sha256.Size]byte(hash)), nil
}

// resyncEvery reloads every key every interval until ctx ends: the bound
// on a revocation whose notification was lost.
func (s *Store) resyncEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.resync(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("keys: resync failed", "err", err)
		}
	}
}

// listen keeps a LISTEN subscription until ctx ends: after every
// (re)connection it reloads every key (the notifications sent meanwhile
// are lost), then the key of each notification.
func (s *Store) listen(ctx context.Context) {
	pglisten.Run(ctx, s.db, notifyChannel, "keys", pglisten.Handler{
		Subscribed: s.resync,
		Notified: func(ctx context.Context, id string) {
			if _, err := s.reload(ctx, id); err != nil && ctx.Err() == nil {
				// The resync bounds what this misses; the connection is fine.
				s.log.Warn("keys: reload after notification failed", "key_id", id, "err", err)
			}
		},
	}, s.log)
}
