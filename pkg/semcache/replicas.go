package semcache

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tollgate/tollgate/internal/pglisten"
	"github.com/tollgate/tollgate/pkg/llm"
)

// Replicas sharing one PostgreSQL table.
//
// With Options.DB on PostgreSQL every replica writes its entries behind
// Store into the one semcache_entries table and keeps its own memory in
// front of it (the exact cache, the metas, an embedded index if it has
// one). Two things keep those memories in step:
//
//   - An exact lookup that finds no live entry in memory asks the table
//     for the newest live row of the exact key (one query on the index
//     semcache_entries_exact, bounded by Options.SharedLookupTimeout;
//     identical concurrent lookups share it). A row is served under the
//     same rules as an entry of this replica (its scope, tenant and model
//     must be the query's; expiry and max-age) and kept in memory as an
//     exact-only entry. Nothing negative is cached, so a miss costs that
//     one indexed query (well under a millisecond) where a miss that goes
//     upstream costs hundreds of milliseconds and money; a database error
//     or a timeout is a miss, logged at most once a minute. Rows are
//     written behind Store, so another replica finds an entry once the
//     storing replica's writer committed it: milliseconds, during which it
//     misses (and may store the same answer again, which replaces the row).
//   - Delete sends NOTIFY tollgate_semcache in the transaction that
//     deletes, so the notification is delivered when (and only if) the
//     delete commits. A listener on each replica (internal/pglisten, as
//     pkg/keys: one connection of DB's pool, run under Options.Supervisor)
//     drops the matching entries from memory and from its own vector index
//     (a shared index, Qdrant, was cleared by the deleting replica). The payload is
//     the filter (tenant, model), with the schema (replicas on other
//     schemas of the database ignore it) and the sender (which skips its
//     own); a filter too long for NOTIFY's 8,000 bytes is sent as "drop
//     everything". Notifications are lost while the listener is
//     disconnected, so after each (re)connect it compares the entries in
//     memory with the live rows of the table and drops those gone:
//     deleted, swept or replaced meanwhile. It reconnects with backoff
//     (pglisten: 100 ms doubling to 5 s).
//
// An entry replaced on another replica (same exact key, a new answer:
// Cache-Control no-cache, or max-age) is not announced: a replica that
// holds the old entry in memory serves it until it expires (its own TTL,
// never beyond), as one replica serves an entry until it is replaced, or
// until the listener's resync after a reconnection drops it. Expired entries need nothing: every
// lookup checks the expiry, and the sweeper of any replica deletes the
// rows.
const (
	notifyChannel = "tollgate_semcache"
	// DefaultSharedLookupTimeout is Options.SharedLookupTimeout's default.
	DefaultSharedLookupTimeout = 100 * time.Millisecond
	// sharedWriteTimeout bounds the writer's transactions on PostgreSQL.
	sharedWriteTimeout = 30 * time.Second
	// maxPayload keeps a notification under PostgreSQL's 8,000 bytes.
	maxPayload = 7900
	// warnInterval spaces the logs of failed table lookups.
	warnInterval  = time.Minute
	listenerName  = "semcache listener"
	resyncTimeout = 30 * time.Second
)

// peers is what a Cache on PostgreSQL does to share its table with other
// replicas: the table lookup on a miss, the notification of a delete and
// the listener.
type peers struct {
	c       *Cache
	schema  string // current_schema(): notifications from other schemas are not for us
	origin  string // random, this Cache's: its own notifications are skipped
	timeout time.Duration

	fetches singleflight.Group // identical concurrent table lookups

	// warned is when (unix ns of c.now) a failed lookup was last logged;
	// quiet counts those not logged since.
	warned atomic.Int64
	quiet  atomic.Int64

	cancel  context.CancelFunc // ends the listener's context
	stop    chan struct{}      // closed by close: no restart after a panic
	running sync.Mutex         // held while the listener runs
	halted  bool               // under running: a run starting late returns at once

	// connects counts the listener's sessions made (LISTEN issued and the
	// resync done).
	connects atomic.Int64
	hits     atomic.Int64 // exact hits served from the table
}

func newPeers(ctx context.Context, c *Cache) (*peers, error) {
	p := &peers{c: c, timeout: c.opts.SharedLookupTimeout, stop: make(chan struct{})}
	if p.timeout <= 0 {
		p.timeout = DefaultSharedLookupTimeout
	}
	if err := c.opts.DB.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&p.schema); err != nil {
		return nil, fmt.Errorf("semcache: current schema: %w", err)
	}
	var b [8]byte
	for i := range b {
		b[i] = byte(randomID())
	}
	p.origin = hex.EncodeToString(b[:])
	return p, nil
}

// fetched is a live row of an exact key read from the table, and the
// generation of drops (Cache.dropped) before it was read.
type fetched struct {
	r   row
	e   *Entry
	gen uint64
}

// exact looks q's exact key up in the table: the newest live row, served
// if it is q's (scope, tenant, model) and live under q's controls, and
// kept in memory. Any failure is a miss.
func (p *peers) exact(ctx context.Context, q *Query, now time.Time) *Entry {
	v, err, _ := p.fetches.Do(q.keys.exact, func() (any, error) { return p.fetch(ctx, q.keys.exact, now) })
	if err != nil {
		if ctx.Err() == nil {
			p.warn("semcache: shared exact lookup failed: served as a miss", err)
		}
		return nil
	}
	f, _ := v.(*fetched)
	if f == nil {
		return nil
	}
	r := &f.r
	if r.scope != q.keys.scope || r.tenant != q.Tenant || r.model != q.Model {
		// The key is a digest of these: a collision, or a row not written
		// by the cache. Never served across scopes.
		p.warn("semcache: shared exact lookup found a row of another scope", fmt.Errorf("entry %d", r.id))
		return nil
	}
	p.keep(f)
	if !live(&entryMeta{created: r.created, expires: r.expires}, q.Controls, now) {
		return nil
	}
	p.hits.Add(1)
	return f.e
}

// fetch reads the newest live row of key, nil when there is none.
func (p *peers) fetch(ctx context.Context, key string, now time.Time) (*fetched, error) {
	f := &fetched{gen: p.c.dropped.Load()}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var (
		r                 = &f.r
		id, cost, cr, exp int64
	)
	err := p.c.opts.DB.QueryRowContext(ctx, p.c.q.exact, key, now.UnixMilli()).
		Scan(&id, &r.tenant, &r.model, &r.scope, &r.response, &r.answeredBy, &cost, &r.usage, &cr, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r.id, r.exactKey, r.size, r.cost = uint64(id), key, int64(len(r.response)), llm.Micros(cost)
	r.created, r.expires = time.UnixMilli(cr).UTC(), time.UnixMilli(exp).UTC()
	if f.e, err = decodeEntry(r.id, r.response, r.answeredBy, r.cost, r.usage, r.created, r.expires); err != nil {
		return nil, err
	}
	return f, nil
}

// keep puts a fetched row in memory as an exact-only entry, unless a drop
// happened since it was read (the row may be deleted), memory holds it or
// a newer entry of its key already.
func (p *peers) keep(f *fetched) {
	c, r := p.c, &f.r
	m := &entryMeta{
		exactKey: r.exactKey, tenant: r.tenant, model: r.model, scope: r.scope,
		size: r.size, created: r.created, expires: r.expires,
	}
	var replaced uint64
	c.mu.Lock()
	if c.dropped.Load() != f.gen {
		c.mu.Unlock()
		return
	}
	if _, ok := c.meta[r.id]; ok {
		c.mu.Unlock()
		return
	}
	if old, ok := c.byKey[r.exactKey]; ok {
		if om := c.meta[old]; om != nil && !om.expires.Before(r.expires) {
			c.mu.Unlock()
			return
		}
		replaced = old
	}
	c.byKey[r.exactKey] = r.id
	c.meta[r.id] = m
	c.mu.Unlock()
	c.hot.Set(r.id, f.e, entryCost(f.e))
	if replaced != 0 {
		// Expired, or older than a max-age: the table's entry is newer.
		c.forget([]uint64{replaced})
		c.dropPoints(replaced)
	}
}

// dropPoints deletes entries' points from the cache's own index (a shared
// index is kept by the replica that deletes).
func (c *Cache) dropPoints(ids ...uint64) {
	if !c.semantic || c.share || c.gated || len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dropTimeout)
	defer cancel()
	if err := c.opts.Index.Delete(ctx, ids...); err != nil {
		c.log.Warn("semcache: delete points of entries dropped", "err", err)
	}
}

// warn logs a failed lookup, at most once per warnInterval.
func (p *peers) warn(msg string, err error) {
	now := p.c.now().UnixNano()
	last := p.warned.Load()
	if (last != 0 && now-last < int64(warnInterval)) || !p.warned.CompareAndSwap(last, now) {
		p.quiet.Add(1)
		return
	}
	p.c.log.Warn(msg, "err", err, "not_logged_since", p.quiet.Swap(0))
}

// notice is a notification's payload.
type notice struct {
	Schema string `json:"s"`
	Origin string `json:"o"`
	Tenant string `json:"t,omitempty"`
	Model  string `json:"m,omitempty"`
	// All: drop every entry (the filter did not fit).
	All bool `json:"all,omitempty"`
}

func (p *peers) payload(f Filter) string {
	b, _ := json.Marshal(notice{Schema: p.schema, Origin: p.origin, Tenant: f.Tenant, Model: f.Model})
	if len(b) > maxPayload {
		b, _ = json.Marshal(notice{Schema: p.schema, Origin: p.origin, All: true})
	}
	return string(b)
}

// delete deletes the rows f matches and tells the other replicas, in one
// transaction.
func (p *peers) delete(ctx context.Context, f Filter) (int64, error) {
	tx, err := p.c.opts.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, p.c.q.deleteFilter, f.Tenant, f.Model)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, p.payload(f)); err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

// start runs the listener under the supervisor until close.
func (p *peers) start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.c.opts.Supervisor.Loop(listenerName, p.stop, func() {
		p.running.Lock()
		defer p.running.Unlock()
		if !p.halted {
			p.listen(ctx)
		}
	})
}

// close stops the listener and waits for it (its connection goes back).
func (p *peers) close() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	close(p.stop)
	p.running.Lock()
	p.halted = true
	p.running.Unlock()
}

// listen keeps the LISTEN subscription until ctx ends (internal/pglisten,
// as pkg/keys): after every (re)connection it drops the entries deleted
// while nobody listened (resync), then applies each notification.
func (p *peers) listen(ctx context.Context) {
	pglisten.Run(ctx, p.c.opts.DB, notifyChannel, "semcache", pglisten.Handler{
		Subscribed: func(ctx context.Context) error {
			if err := p.resync(ctx); err != nil {
				return err
			}
			p.connects.Add(1)
			return nil
		},
		Notified: func(_ context.Context, payload string) { p.apply(payload) },
	}, p.c.log)
}

// apply drops what a notification names.
func (p *peers) apply(payload string) {
	var n notice
	if err := json.Unmarshal([]byte(payload), &n); err != nil {
		p.c.log.Warn("semcache: notification not understood: every entry dropped", "err", err)
		p.drop(Filter{}, true)
		return
	}
	if n.Schema != p.schema || n.Origin == p.origin {
		return
	}
	p.drop(Filter{Tenant: n.Tenant, Model: n.Model}, n.All)
}

// drop forgets the entries f matches (all: every entry) from memory and
// from the cache's own index, as Delete does on the replica that deleted.
func (p *peers) drop(f Filter, all bool) {
	c := p.c
	c.wmu.Lock() // ordered with Store and Delete, as a local Delete is
	defer c.wmu.Unlock()
	c.dropped.Add(1)
	if all {
		f = Filter{}
	}
	c.forget(c.matching(f))
	if !c.semantic || c.share || c.gated {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dropTimeout)
	defer cancel()
	if _, err := c.opts.Index.DeleteWhere(ctx, f); err != nil {
		c.log.Warn("semcache: delete points after another replica's delete", "err", err)
	}
}

// resync drops the entries in memory whose rows are no longer live in the
// table: deleted (or replaced, or swept) while no notification could
// arrive. Only entries whose rows were committed before the table is read
// are compared; those still queued are this replica's newest.
func (p *peers) resync(ctx context.Context) error {
	c := p.c
	ctx, cancel := context.WithTimeout(ctx, resyncTimeout)
	defer cancel()
	c.mu.RLock()
	held := make([]uint64, 0, len(c.meta))
	for id := range c.meta {
		held = append(held, id)
	}
	c.mu.RUnlock()
	held = c.w.committed(held)
	live, err := queryIDs(ctx, c.opts.DB, c.q.liveIDs, c.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("semcache: resync: %w", err)
	}
	in := make(map[uint64]struct{}, len(live))
	for _, id := range live {
		in[id] = struct{}{}
	}
	var gone []uint64
	for _, id := range held {
		if _, ok := in[id]; !ok {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.dropped.Add(1)
	c.forget(gone)
	c.dropPoints(gone...)
	return nil
}
