package semcache

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Entries shared between replicas.
//
// Replicas scaled out behind one Qdrant collection each keep their own
// SQLite file. Two things make the shared index safe and useful:
//
//   - entry ids are 63 random bits (randomID), not SQLite's AUTOINCREMENT,
//     so two replicas never name different entries by the same point id;
//   - every point carries its entry (Point.Entry, encodeShared), so a
//     replica can serve an entry another replica stored: under the same
//     scope, expiry, max-age, guard and length-limit rules as its own.

// idMask keeps 63 bits: ids are positive SQLite INTEGERs.
const idMask = 1<<63 - 1

// maxIDAttempts bounds the retries on an id already taken (a 63-bit
// collision is astronomically unlikely; an injected source may force one).
const maxIDAttempts = 16

// randomID is the default Options.NewID: 64 bits from crypto/rand.
func randomID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (it crashes the program instead)
	return binary.LittleEndian.Uint64(b[:])
}

// sharedVersion is the version of the shared encoding this build writes
// and the only one it reads.
const sharedVersion = 1

// sharedEntry is the encoding of Point.Entry and Hit.Entry: JSON with a
// version, everything needed to serve and guard the entry. Response holds
// the answer byte for byte (base64 in JSON: an embedded RawMessage would be
// re-compacted and HTML-escaped).
type sharedEntry struct {
	V        int    `json:"v"`
	ID       uint64 `json:"id"`
	ExactKey string `json:"key"`
	Scope    string `json:"scope"`
	Tenant   string `json:"tenant"`
	// Model is the model or route asked for; AnsweredBy the model that
	// answered.
	Model      string          `json:"model"`
	Query      string          `json:"query"`
	Response   []byte          `json:"response"`
	AnsweredBy string          `json:"answered_by"`
	Cost       llm.Micros      `json:"cost"` // micro-dollars
	Usage      json.RawMessage `json:"usage,omitempty"`
	CreatedMS  int64           `json:"created_ms"` // unix milliseconds
	ExpiresMS  int64           `json:"expires_ms"`
}

// encodeShared encodes the entry of a stored row (its id set).
func encodeShared(r *row) ([]byte, error) {
	s := sharedEntry{
		V: sharedVersion, ID: r.id, ExactKey: r.exactKey, Scope: r.scope, Tenant: r.tenant, Model: r.model,
		Query: r.query, Response: r.response, AnsweredBy: r.answeredBy, Cost: r.cost,
		CreatedMS: r.created.UnixMilli(), ExpiresMS: r.expires.UnixMilli(),
	}
	if len(r.usage) > 0 {
		s.Usage = json.RawMessage(r.usage)
	}
	b, err := json.Marshal(&s)
	if err != nil {
		return nil, fmt.Errorf("semcache: encode entry %d: %w", r.id, err)
	}
	return b, nil
}

// decodeShared decodes and checks a shared entry; its answer is decoded by
// entry.
func decodeShared(b []byte) (*sharedEntry, error) {
	var s sharedEntry
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("semcache: shared entry: %w", err)
	}
	switch {
	case s.V != sharedVersion:
		return nil, fmt.Errorf("semcache: shared entry version %d, this build reads %d", s.V, sharedVersion)
	case s.ID == 0 || s.ID > idMask:
		return nil, fmt.Errorf("semcache: shared entry: bad id %d", s.ID)
	case s.Scope == "":
		return nil, errors.New("semcache: shared entry: no scope")
	case len(s.Response) == 0:
		return nil, fmt.Errorf("semcache: shared entry %d: no answer", s.ID)
	case s.ExpiresMS <= s.CreatedMS:
		return nil, fmt.Errorf("semcache: shared entry %d: expires before it was created", s.ID)
	}
	return &s, nil
}

func (s *sharedEntry) created() time.Time { return time.UnixMilli(s.CreatedMS).UTC() }
func (s *sharedEntry) expires() time.Time { return time.UnixMilli(s.ExpiresMS).UTC() }

// meta is what the lookup checks of the entry, as for a local one.
func (s *sharedEntry) meta() *entryMeta {
	return &entryMeta{
		exactKey: s.ExactKey, tenant: s.Tenant, model: s.Model, scope: s.Scope, query: s.Query,
		size: int64(len(s.Response)), created: s.created(), expires: s.expires(),
	}
}

// entry decodes the answer.
func (s *sharedEntry) entry() (*Entry, error) {
	var usage []byte
	if len(s.Usage) > 0 && string(s.Usage) != "null" {
		usage = s.Usage
	}
	return decodeEntry(s.ID, s.Response, s.AnsweredBy, s.Cost, usage, s.created(), s.expires())
}

// describes reports whether the shared entry is the local entry m (same
// exact key, scope and creation time). It is not when an id names two
// entries: ids of entries stored before ids were random (SQLite's 1, 2,
// 3...) may be taken by another replica's entry in a shared index.
func (s *sharedEntry) describes(m *entryMeta) bool {
	return m != nil && s.ExactKey == m.exactKey && s.Scope == m.scope && s.Tenant == m.tenant &&
		s.Query == m.query && s.CreatedMS == m.created.UnixMilli()
}

// maxRemoteMetas bounds the metas kept of other replicas' entries.
const maxRemoteMetas = 4096

// remoteMetas keeps the metas of entries decoded from a shared index's
// hits (other replicas' entries), so that each entry's query is prepared
// for the guard once, not on every lookup it is a candidate of. Bounded:
// when full, an arbitrary meta is dropped (it is prepared again if it comes
// back). Safe for concurrent use.
type remoteMetas struct {
	max int
	mu  sync.Mutex // guards m
	m   map[uint64]*entryMeta
}

// meta returns the meta of s: the one kept if it still describes s, else
// a new one, kept.
func (r *remoteMetas) meta(s *sharedEntry) *entryMeta {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.m[s.ID]; s.describes(m) && m.expires.Equal(s.expires()) {
		return m
	}
	if r.m == nil {
		r.m = map[uint64]*entryMeta{}
	}
	for id := range r.m {
		if len(r.m) < r.max {
			break
		}
		delete(r.m, id)
	}
	m := s.meta()
	r.m[s.ID] = m
	return m
}

// prune drops the metas of entries expired at now.
func (r *remoteMetas) prune(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, m := range r.m {
		if !now.Before(m.expires) {
			delete(r.m, id)
		}
	}
}
