package budget

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/pkg/llm"
)

// SharedLedger is the ledger (budget_ledger) and the alert outbox
// (budget_alerts, budget_outbox) in PostgreSQL, for replicas sharing
// budgets (SharedAccounts). The tables are the SQLite store's (migrations
// 0003 to 0005); nothing here needs a migration of its own.
//
// # Group commit
//
// Append hands its rows to one writer goroutine per SharedLedger and
// waits. The writer takes every row waiting and writes them in one
// transaction: one INSERT ... SELECT FROM unnest(arrays) per
// maxSharedBatch rows, then COMMIT with synchronous_commit on whatever the
// pool's sessions say (the transaction sets it locally), so Append returns
// only once its rows are flushed to PostgreSQL's WAL: an acknowledged
// request is in the ledger after kill -9 of the replica, and after a crash
// of PostgreSQL too. While one batch commits, the next fills up, so the
// batch size follows the load: one row when idle, hundreds under a burst.
// Replicas each have their writer; their transactions only insert, so they
// never wait on each other's locks (PostgreSQL groups their WAL flushes).
//
// # Outbox
//
// ClaimOutbox and AckOutbox let every replica deliver alerts without two
// of them delivering the same one at once. A pending row is claimable when
// its next_at has passed; ClaimOutbox locks claimable rows with FOR UPDATE
// SKIP LOCKED (a concurrent claimer skips them rather than waiting) and
// moves their next_at to now + lease, which is the claim: until then no
// one else can claim them. AckOutbox marks rows delivered. A row not acked
// before its lease ends (its replica died, or its delivery failed and it
// simply lets the lease run out as a backoff) is claimable again.
//
// Delivery is therefore at least once, not exactly once: a replica that
// delivers but dies (or stalls past the lease) before its ack commits
// leaves the row to be delivered again by another. No database can close
// that gap, since the POST and the ack are not one transaction; receivers
// deduplicate by the event's id (Event.ID, in the signed payload). What
// the claim does guarantee, with replicas' clocks agreeing to well within
// a lease, is that no two replicas hold the same row at the same time, and
// that a row acked is never claimed again. Leases must be longer than a
// delivery may take (the HTTP client's timeout and then some).
//
// Times are Now's (the replica's clock) in unix milliseconds, like the
// SQLite store's.
type SharedLedger struct {
	pool *pgxpool.Pool
	now  func() time.Time

	mu     sync.Mutex // guards cur and closed; held only to append
	cur    *sharedBatch
	closed bool

	commits atomic.Int64 // transactions written, for the benchmark's rows/commit

	kick    chan struct{} // capacity 1: "there is something to write"
	stop    chan struct{}
	stopped chan struct{}
}

// SharedLedgerOptions configures a SharedLedger.
type SharedLedgerOptions struct {
	// Now is the clock of the outbox's claims and acks (default time.Now).
	Now func() time.Time
}

// maxSharedBatch is the most rows one INSERT carries; a larger batch is
// several INSERTs in the same transaction.
const maxSharedBatch = 2000

// sharedBatch is the rows and alerts of one transaction. Everyone who
// added to it waits on done and then reads err.
type sharedBatch struct {
	entries []*Entry
	alerts  []alertRow
	done    chan struct{}
	err     error
}

func newSharedBatch() *sharedBatch { return &sharedBatch{done: make(chan struct{})} }

// NewSharedLedger returns the ledger kept in pool's database, which must
// be migrated (internal/migrate), and starts its writer; Close stops it.
func NewSharedLedger(pool *pgxpool.Pool, o SharedLedgerOptions) *SharedLedger {
	if o.Now == nil {
		o.Now = time.Now
	}
	l := &SharedLedger{pool: pool, now: o.Now, cur: newSharedBatch(),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go l.run()
	return l
}

// Append writes rows to the ledger and returns once they are committed
// and flushed (nil), or the error of their transaction (none of them is
// written then), or ctx's error if it ends first (the rows are written all
// the same, or not: the caller cannot tell).
func (l *SharedLedger) Append(ctx context.Context, rows ...*Entry) error {
	if len(rows) == 0 {
		return nil
	}
	return l.add(rows, nil).wait(ctx)
}

// appendAlerts stores alerts and their deliveries (an alert whose uid is
// stored already is dropped with its deliveries), as Append does rows.
func (l *SharedLedger) appendAlerts(ctx context.Context, alerts []alertRow) error {
	if len(alerts) == 0 {
		return nil
	}
	return l.add(nil, alerts).wait(ctx)
}

func (b *sharedBatch) wait(ctx context.Context) error {
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *SharedLedger) add(entries []*Entry, alerts []alertRow) *sharedBatch {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		b := newSharedBatch()
		b.err = errClosed
		close(b.done)
		return b
	}
	b := l.cur
	b.entries = append(b.entries, entries...)
	b.alerts = append(b.alerts, alerts...)
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return b
}

// Close writes what is waiting, stops the writer and refuses new rows. It
// does not close the pool.
func (l *SharedLedger) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.stopped
	return nil
}

func (l *SharedLedger) run() {
	defer close(l.stopped)
	for {
		select {
		case <-l.kick:
			l.flush()
		case <-l.stop:
			l.flush() // add refuses new rows by now: this is the last batch
			return
		}
	}
}

// flush writes the waiting batch, if any, and tells its waiters.
func (l *SharedLedger) flush() {
	l.mu.Lock()
	b := l.cur
	l.cur = newSharedBatch()
	l.mu.Unlock()
	if len(b.entries) > 0 || len(b.alerts) > 0 {
		b.err = commitShared(context.Background(), l.pool, b.entries, b.alerts)
		l.commits.Add(1)
	}
	close(b.done)
}

const sharedInsertEntries = `INSERT INTO budget_ledger (ts, request_id, key_id, route, requested_model, model, provider,
	prompt_tokens, completion_tokens, cached_tokens, cost, saved, estimated, unpriced, cache, status, latency_ms, attempts, judge, judge_cost)
	SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
	$8::integer[], $9::integer[], $10::integer[], $11::bigint[], $12::bigint[], $13::boolean[], $14::boolean[], $15::text[],
	$16::integer[], $17::bigint[], $18::integer[], $19::text[], $20::bigint[])`

// sharedInsertAlert stores an alert unless its uid is stored, and then
// its deliveries, in one statement.
const sharedInsertAlert = `WITH a AS (
	INSERT INTO budget_alerts (uid, key_id, period, period_start, event, threshold, limit_micros, created_at, payload)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (uid) DO NOTHING RETURNING id)
	INSERT INTO budget_outbox (alert_id, url, slack, body, next_at)
	SELECT a.id, d.url, d.slack, d.body, $8 FROM a CROSS JOIN unnest($10::text[], $11::boolean[], $12::text[]) AS d (url, slack, body)`

// commitShared writes ledger rows and alerts (with their deliveries) in
// one transaction and one round trip, durable once it returns nil: SharedLedger's writer and,
// with Options.Shared, the Store's.
func commitShared(ctx context.Context, pool *pgxpool.Pool, entries []*Entry, alerts []alertRow) error {
	// One round trip: pgx sends a batch with one Sync, so its statements
	// run in one implicit transaction, committed (or rolled back whole) at
	// the end, no BEGIN and COMMIT of their own.
	var batch pgx.Batch
	// The commit must wait for the WAL flush whatever the session's
	// default: durability is what Append promises.
	// txid_current gives the transaction an id, so that its commit writes
	// a commit record and waits for the WAL flush up to it even when the
	// batch holds no row: the flush Store.flushWAL waits for, which makes
	// durable every commit made before it (in any session), the
	// asynchronous settles included.
	batch.Queue(`SELECT set_config('synchronous_commit', 'on', true), txid_current()`)
	for rows := entries; len(rows) > 0; {
		n := min(len(rows), maxSharedBatch)
		batch.Queue(sharedInsertEntries, entryColumns(rows[:n])...)
		rows = rows[n:]
	}
	for i := range alerts {
		a := &alerts[i]
		urls := make([]string, len(a.deliveries))
		slack := make([]bool, len(a.deliveries))
		bodies := make([]string, len(a.deliveries))
		for j, d := range a.deliveries {
			urls[j], slack[j], bodies[j] = d.url, d.slack, string(d.body)
		}
		batch.Queue(sharedInsertAlert, a.uid, a.keyID, string(a.key.period), a.key.start, a.key.event, a.key.ppm,
			int64(a.key.limit), a.created, string(a.payload), urls, slack, bodies)
	}
	if err := pool.SendBatch(ctx, &batch).Close(); err != nil {
		return fmt.Errorf("budget: shared ledger: %w", err)
	}
	return nil
}

// entryColumns is rows as the 20 arrays of sharedInsertEntries.
func entryColumns(rows []*Entry) []any {
	n := len(rows)
	var (
		ts, cost, saved, latency, judgeCost             = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		reqID, key, route, reqModel, model, prov, cache = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		judge                                           = make([]string, n)
		prompt, completion, cached, status, attempts    = make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n)
		estimated, unpriced                             = make([]bool, n), make([]bool, n)
	)
	for i, e := range rows {
		ts[i], reqID[i], key[i], route[i], reqModel[i], model[i], prov[i] = e.Time.UnixMilli(), e.RequestID, e.KeyID, e.Route, e.RequestedModel, e.Model, e.Provider
		prompt[i], completion[i], cached[i] = int32(e.PromptTokens), int32(e.CompletionTokens), int32(e.CachedTokens)
		cost[i], saved[i], estimated[i], unpriced[i] = int64(e.Cost), int64(e.Saved), e.Estimated, e.Unpriced
		cache[i], status[i], latency[i], attempts[i] = e.Cache, int32(e.Status), e.Latency.Milliseconds(), int32(e.Attempts)
		judge[i], judgeCost[i] = e.Judge, int64(e.JudgeCost)
	}
	return []any{ts, reqID, key, route, reqModel, model, prov, prompt, completion, cached, cost, saved, estimated, unpriced,
		cache, status, latency, attempts, judge, judgeCost}
}

// Spend is the cost of key's ledger rows admitted at or after since: what
// the replicas together charged it.
func (l *SharedLedger) Spend(ctx context.Context, keyID string, since time.Time) (llm.Micros, error) {
	var total int64
	// SUM(bigint) is numeric: cast back (a key's spend fits in micro-dollars' int64).
	err := l.pool.QueryRow(ctx, `SELECT COALESCE(SUM(cost), 0)::bigint FROM budget_ledger WHERE key_id = $1 AND ts >= $2`,
		keyID, since.UnixMilli()).Scan(&total)
	if err != nil {
		return 0, fmt.Errorf("budget: shared ledger: spend: %w", err)
	}
	return llm.Micros(total), nil
}

// OutboxItem is a claimed delivery of an alert.
type OutboxItem struct {
	ID      int64
	AlertID int64
	URL     string
	Slack   bool
	Body    []byte
	// Attempts counts the claims of the row, this one included.
	Attempts int
}

// ClaimOutbox claims up to limit pending deliveries that are due (next_at
// passed: never claimed, or their claim's lease ended), for lease: until
// then no other claimer gets them. They are returned by id. See
// "Outbox": delivery is at least once.
func (l *SharedLedger) ClaimOutbox(ctx context.Context, limit int, lease time.Duration) ([]OutboxItem, error) {
	if limit <= 0 {
		return nil, nil
	}
	now := l.now()
	rows, err := l.pool.Query(ctx, `UPDATE budget_outbox o SET next_at = $2, attempts = o.attempts + 1
		FROM (SELECT id FROM budget_outbox WHERE state = 'pending' AND next_at <= $1
			ORDER BY next_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) c
		WHERE o.id = c.id
		RETURNING o.id, o.alert_id, o.url, o.slack, o.body, o.attempts`,
		now.UnixMilli(), now.Add(lease).UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("budget: shared outbox: claim: %w", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OutboxItem, error) {
		var it OutboxItem
		var body string
		err := r.Scan(&it.ID, &it.AlertID, &it.URL, &it.Slack, &body, &it.Attempts)
		it.Body = []byte(body)
		return it, err
	})
	if err != nil {
		return nil, fmt.Errorf("budget: shared outbox: claim: %w", err)
	}
	slices.SortFunc(items, func(a, b OutboxItem) int { return int(min(max(a.ID-b.ID, -1), 1)) })
	return items, nil
}

// AckOutbox marks deliveries delivered and returns how many it marked (a
// row delivered already, e.g. acked by another replica after its lease
// ended here, is not counted). An acked row is never claimed again.
func (l *SharedLedger) AckOutbox(ctx context.Context, ids []int64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := l.pool.Exec(ctx, `UPDATE budget_outbox SET state = 'delivered', delivered_at = $2, last_error = ''
		WHERE id = ANY($1) AND state = 'pending'`, ids, l.now().UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("budget: shared outbox: ack: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
