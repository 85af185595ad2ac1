// Package keys owns tollgate's gateway API keys: generating them, storing
// only their SHA-256 hashes in SQLite, authenticating a presented secret, and
// revoking. The secret is returned once, at creation, and never again.
//
// Every key is held in memory as well (write-through), so authenticating a
// request is a hash and a map lookup and never touches the database; a
// revocation removes the key from memory before it returns, so it takes
// effect at once for every later request of this instance.
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
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/migrate"
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
	AllowBYOK bool       `json:"allow_byok"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
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
}

// Store is the key store. Safe for concurrent use.
type Store struct {
	db   *sql.DB
	now  func() time.Time
	rand io.Reader

	byHash sync.Map // [32]byte → *Key, active keys only: the authentication path

	mu   sync.Mutex // serialises writers and guards byID
	byID map[string]*Key
}

// Open migrates the schema (internal/migrate) and loads every key. now and rnd may be nil
// (time.Now, crypto/rand).
func Open(ctx context.Context, db *sql.DB, now func() time.Time, rnd io.Reader) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	if err := migrate.Up(ctx, db); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	s := &Store{db: db, now: now, rand: rnd, byID: map[string]*Key{}}
	rows, err := db.QueryContext(ctx, `SELECT id, secret_hash, name, hint, allowed, metadata, allow_byok, created_at, revoked_at FROM api_keys`)
	if err != nil {
		return nil, fmt.Errorf("keys: load: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k                 Key
			hash              []byte
			allowed, metadata string
			created           int64
			revoked           sql.NullInt64
		)
		if err := rows.Scan(&k.ID, &hash, &k.Name, &k.Hint, &allowed, &metadata, &k.AllowBYOK, &created, &revoked); err != nil {
			return nil, fmt.Errorf("keys: load: %w", err)
		}
		if err := json.Unmarshal([]byte(allowed), &k.AllowedModels); err != nil {
			return nil, fmt.Errorf("keys: load %s: allowed models: %w", k.ID, err)
		}
		if err := json.Unmarshal([]byte(metadata), &k.Metadata); err != nil {
			return nil, fmt.Errorf("keys: load %s: metadata: %w", k.ID, err)
		}
		k.CreatedAt = time.UnixMilli(created).UTC()
		if revoked.Valid {
			t := time.UnixMilli(revoked.Int64).UTC()
			k.RevokedAt = &t
		}
		s.byID[k.ID] = &k
		if k.RevokedAt == nil && len(hash) == sha256.Size {
			s.byHash.Store([sha256.Size]byte(hash), &k)
		}
	}
	return s, rows.Err()
}

// Create makes a key and returns it with its secret, which is not stored
// and cannot be shown again.
func (s *Store) Create(ctx context.Context, n New) (*Key, string, error) {
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
		CreatedAt:     s.now().UTC().Truncate(time.Millisecond),
	}
	for mk, mv := range n.Metadata {
		k.Metadata[mk] = mv
	}
	allowed, _ := json.Marshal(k.AllowedModels)
	metadata, _ := json.Marshal(k.Metadata)

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO api_keys (id, secret_hash, name, hint, allowed, metadata, allow_byok, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, hash[:], k.Name, k.Hint, string(allowed), string(metadata), k.AllowBYOK, k.CreatedAt.UnixMilli()); err != nil {
		return nil, "", fmt.Errorf("keys: create: %w", err)
	}
	s.byID[k.ID] = k
	s.byHash.Store(hash, k)
	return k, secret, nil
}

// Authenticate returns the active key whose secret this is.
func (s *Store) Authenticate(secret string) (*Key, error) {
	if !strings.HasPrefix(secret, SecretPrefix) {
		return nil, ErrUnknown
	}
	if k, ok := s.byHash.Load(sha256.Sum256([]byte(secret))); ok {
		return k.(*Key), nil
	}
	return nil, ErrUnknown
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

// Revoke disables a key at once. Revoking a revoked key is not an error.
func (s *Store) Revoke(ctx context.Context, id string) (*Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.byID[id]
	if !ok {
		return nil, ErrNotFound
	}
	if old.RevokedAt != nil {
		return old, nil
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	var hash []byte
	if err := s.db.QueryRowContext(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? RETURNING secret_hash`, now.UnixMilli(), id).Scan(&hash); err != nil {
		return nil, fmt.Errorf("keys: revoke: %w", err)
	}
	k := *old
	k.RevokedAt = &now
	s.byID[id] = &k
	if len(hash) == sha256.Size {
		s.byHash.Delete([sha256.Size]byte(hash))
	}
	return &k, nil
}
