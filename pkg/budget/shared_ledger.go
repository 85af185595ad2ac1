package budget

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The ledger (budget_ledger) and the alert outbox (budget_alerts,
// budget_outbox) in PostgreSQL, for replicas (Options.Shared): the same
// tables as SQLite's, written by the Store's group-commit writer through
// commitShared. Delivery claims are Alerts.DeliverDue's (FOR UPDATE SKIP
// LOCKED); settles write their rows themselves (SharedAccounts.settle).

// maxSharedBatch is the most rows one INSERT carries; a larger batch is
// several INSERTs in the same transaction.
const maxSharedBatch = 2000

const sharedInsertEntries = `INSERT INTO budget_ledger (ts, request_id, key_id, route, requested_model, model, provider,
	prompt_tokens, completion_tokens, cached_tokens, cost, saved, estimated, unpriced, cache, status, latency_ms, attempts, judge, judge_cost,
	customer, tags, guards)
	SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
	$8::integer[], $9::integer[], $10::integer[], $11::bigint[], $12::bigint[], $13::boolean[], $14::boolean[], $15::text[],
	$16::integer[], $17::bigint[], $18::integer[], $19::text[], $20::bigint[], $21::text[], $22::text[], $23::text[])`

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

// entryColumns is rows as the 23 arrays of sharedInsertEntries.
func entryColumns(rows []*Entry) []any {
	n := len(rows)
	var (
		ts, cost, saved, latency, judgeCost             = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		reqID, key, route, reqModel, model, prov, cache = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		judge, customer, tags, guards                   = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		prompt, completion, cached, status, attempts    = make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n)
		estimated, unpriced                             = make([]bool, n), make([]bool, n)
	)
	for i, e := range rows {
		ts[i], reqID[i], key[i], route[i], reqModel[i], model[i], prov[i] = e.Time.UnixMilli(), e.RequestID, e.KeyID, e.Route, e.RequestedModel, e.Model, e.Provider
		prompt[i], completion[i], cached[i] = int32(e.PromptTokens), int32(e.CompletionTokens), int32(e.CachedTokens)
		cost[i], saved[i], estimated[i], unpriced[i] = int64(e.Cost), int64(e.Saved), e.Estimated, e.Unpriced
		cache[i], status[i], latency[i], attempts[i] = e.Cache, int32(e.Status), e.Latency.Milliseconds(), int32(e.Attempts)
		judge[i], judgeCost[i] = e.Judge, int64(e.JudgeCost)
		customer[i], tags[i], guards[i] = e.Customer, e.tagsColumn(), e.guardsColumn()
	}
	return []any{ts, reqID, key, route, reqModel, model, prov, prompt, completion, cached, cost, saved, estimated, unpriced,
		cache, status, latency, attempts, judge, judgeCost, customer, tags, guards}
}
