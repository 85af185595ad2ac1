-- budget: what replicas need beyond 0007.
--
-- The rate limits' GCRA state (budget.PostgresRateStore): a row per key,
-- each bucket's theoretical arrival time in µs since the epoch, and the
-- time and outcome of the last take. UNLOGGED: a crash of PostgreSQL
-- empties it, which refills every bucket (as a restart of one process
-- does), and its writes skip the WAL.
CREATE UNLOGGED TABLE IF NOT EXISTS budget_rate_limits (
	key_id  TEXT PRIMARY KEY,
	req_tat BIGINT NOT NULL,
	tok_tat BIGINT NOT NULL,
	at      BIGINT NOT NULL,
	ok      BOOLEAN NOT NULL
);
-- Reservations that are over (settled, released, expired) are kept a while
-- for idempotency, then pruned (SharedAccounts.Prune) by admission time.
CREATE INDEX budget_reservations_done ON budget_reservations (admitted_at) WHERE state <> 'held';
