package semcache

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	schema "github.com/tollgate/tollgate/internal/migrate"
	"github.com/tollgate/tollgate/pkg/llm"
)

// The cache's table, semcache_entries, is created by internal/migrate
// (version 0006_semcache), in SQLite (one process, the default) or in
// PostgreSQL (replicas: store.driver postgres). The table is the truth,
// written behind Store (writer.go): the exact cache (ristretto) holds
// decoded entries in front of it, the writer those not yet written, and the
// vector index is rebuilt from its vectors at Open. Every statement is
// written once with ? placeholders and rebound to $n for PostgreSQL at Open
// (queriesFor); the SQLite strings are the ones SQLite always ran.
//
// What replicas share on PostgreSQL (see replicas.go):
//
//   - the exact entries: an exact lookup that misses in memory asks the
//     table for the key (one indexed query, bounded by
//     Options.SharedLookupTimeout; an error or a timeout is a miss) and
//     keeps what it finds in memory. Rows are written behind, so another
//     replica sees an entry once its writer committed it (milliseconds);
//   - deletions: Delete sends NOTIFY tollgate_semcache in the transaction
//     that deletes, and every replica's listener drops the matching
//     entries from its memory and its own vector index;
//   - the semantic entries only through a shared index (Qdrant), as
//     before: an embedded index holds what its replica stored or loaded at
//     Open.
//
// Entry ids are not AUTOINCREMENT's: Store gives each entry 63 random bits
// (Options.NewID), explicitly, drawing again on the unlikely id already
// taken (Cache.newID), so that replicas with their own SQLite files sharing
// one index (Qdrant), or one PostgreSQL table, never name different entries
// by the same id. The SQLite column keeps AUTOINCREMENT (migrations are
// never edited), which accepts explicit ids; databases written before keep
// their small ids, which stay valid locally (a shared index's entry payload
// tells them apart from another replica's entry of the same id: see
// sharedEntry.describes).

// row is one persisted entry.
type row struct {
	id                                    uint64
	tenant, model, scope, exactKey, query string
	vector                                []float32
	embedder                              string
	response                              []byte
	size                                  int64 // of response, which loadLive reads only withAnswer
	answeredBy                            string
	cost                                  llm.Micros
	usage                                 []byte
	created, expires                      time.Time
}

// queries are the cache's statements in its database's dialect.
type queries struct {
	loadEntry                  string
	loadLive, loadLiveAnswered string
	insert, deleteKey, setVec  string // the writer's
	deleteFilter               string
	expiredIDs, deleteExpired  string
	// On PostgreSQL only: the newest live row of an exact key, and the ids
	// of the live rows (the listener's resync).
	exact, liveIDs string
}

const loadLiveSQL = `SELECT id, tenant, model, scope, exact_key, query, vector, embedder, length(response), created_at, expires_at, %s
		FROM semcache_entries WHERE expires_at > ? ORDER BY id`

func queriesFor(d schema.Dialect) queries {
	q := queries{
		loadEntry:        `SELECT response, answered_by, cost, usage, created_at, expires_at FROM semcache_entries WHERE id = ?`,
		loadLive:         fmt.Sprintf(loadLiveSQL, `NULL, '', 0, NULL`),
		loadLiveAnswered: fmt.Sprintf(loadLiveSQL, `response, answered_by, cost, usage`),
		insert:           insertEntrySQL,
		deleteKey:        deleteKeySQL,
		setVec:           setVectorSQL,
		deleteFilter:     `DELETE FROM semcache_entries WHERE (?1 = '' OR tenant = ?1) AND (?2 = '' OR model = ?2)`,
		expiredIDs:       `SELECT id FROM semcache_entries WHERE expires_at <= ?`,
		deleteExpired:    `DELETE FROM semcache_entries WHERE expires_at <= ?`,
	}
	if d != schema.Postgres {
		return q
	}
	// The index semcache_entries_exact (exact_key, expires_at) answers it
	// with one backward scan: the newest row of the key first.
	q.exact = `SELECT id, tenant, model, scope, response, answered_by, cost, usage, created_at, expires_at
		FROM semcache_entries WHERE exact_key = ? AND expires_at > ? ORDER BY expires_at DESC LIMIT 1`
	q.liveIDs = `SELECT id FROM semcache_entries WHERE expires_at > ?`
	// One round trip per row: the key's other rows are deleted by the
	// insert's statement (a data-modifying WITH), not by a statement of
	// their own. A row of the same id is left to ON CONFLICT.
	q.insert = `WITH replaced AS (DELETE FROM semcache_entries WHERE exact_key = ?5 AND id <> ?1) ` +
		numberedInsert(insertEntrySQL)
	q.deleteKey = ""
	for _, p := range []*string{&q.loadEntry, &q.loadLive, &q.loadLiveAnswered, &q.insert, &q.deleteKey, &q.setVec,
		&q.deleteFilter, &q.expiredIDs, &q.deleteExpired, &q.exact, &q.liveIDs} {
		*p = schema.Rebind(schema.Postgres, *p)
	}
	return q
}

// numberedInsert names insertEntrySQL's 14 arguments ?1 to ?14, so that
// the statement wrapping it can refer to them.
func numberedInsert(q string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteString("?" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

func migrate(ctx context.Context, db *sql.DB) error {
	if err := schema.Up(ctx, db); err != nil {
		return fmt.Errorf("semcache: %w", err)
	}
	return nil
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryIDs(ctx context.Context, q queryer, query string, args ...any) ([]uint64, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("semcache: %w", err)
	}
	defer rows.Close()
	var ids []uint64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("semcache: %w", err)
		}
		ids = append(ids, uint64(id))
	}
	return ids, rows.Err()
}

// loadEntry reads one entry's answer.
func loadEntry(ctx context.Context, db *sql.DB, q *queries, id uint64) (*Entry, error) {
	var (
		resp, usage       []byte
		model             string
		cost, created, ex int64
	)
	err := db.QueryRowContext(ctx, q.loadEntry, int64(id)).
		Scan(&resp, &model, &cost, &usage, &created, &ex)
	if err != nil {
		return nil, fmt.Errorf("semcache: load entry %d: %w", id, err)
	}
	return decodeEntry(id, resp, model, llm.Micros(cost), usage, time.UnixMilli(created), time.UnixMilli(ex))
}

func decodeEntry(id uint64, resp []byte, model string, cost llm.Micros, usage []byte, created, expires time.Time) (*Entry, error) {
	e := &Entry{ID: id, Model: model, Cost: cost, CreatedAt: created.UTC(), ExpiresAt: expires.UTC()}
	var r llm.ChatResponse
	if err := json.Unmarshal(resp, &r); err != nil {
		return nil, fmt.Errorf("semcache: entry %d: response: %w", id, err)
	}
	r.Raw = resp
	e.Response = &r
	if usage != nil {
		e.Usage = new(llm.Usage)
		if err := json.Unmarshal(usage, e.Usage); err != nil {
			return nil, fmt.Errorf("semcache: entry %d: usage: %w", id, err)
		}
	}
	return e, nil
}

// loadLive calls fn for every entry not expired at now; with its answer
// (response, answered_by, cost, usage) only when withAnswer.
func loadLive(ctx context.Context, db *sql.DB, q *queries, now time.Time, withAnswer bool, fn func(*row) error) error {
	query := q.loadLive
	if withAnswer {
		query = q.loadLiveAnswered
	}
	rows, err := db.QueryContext(ctx, query, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("semcache: load: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			r                      row
			id, size, cr, ex, cost int64
			vec                    []byte
		)
		if err := rows.Scan(&id, &r.tenant, &r.model, &r.scope, &r.exactKey, &r.query, &vec, &r.embedder, &size, &cr, &ex,
			&r.response, &r.answeredBy, &cost, &r.usage); err != nil {
			return fmt.Errorf("semcache: load: %w", err)
		}
		r.id = uint64(id)
		r.vector = decodeVector(vec)
		r.size = size
		r.cost = llm.Micros(cost)
		r.created, r.expires = time.UnixMilli(cr).UTC(), time.UnixMilli(ex).UTC()
		if err := fn(&r); err != nil {
			return err
		}
	}
	return rows.Err()
}

func encodeVector(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

func decodeVector(b []byte) []float32 {
	if len(b) == 0 || len(b)%4 != 0 {
		return nil
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}
