-- budget: what replicas need beyond 0007 (PostgreSQL). An embedded SQLite
-- gateway keeps its rate limits in memory (budget.MemoryRateStore): this
-- table stays empty there and exists so both dialects have the same schema.
CREATE TABLE budget_rate_limits (
	key_id  TEXT PRIMARY KEY,
	req_tat INTEGER NOT NULL, -- µs since the epoch
	tok_tat INTEGER NOT NULL,
	at      INTEGER NOT NULL,
	ok      BOOLEAN NOT NULL
);
-- Finished reservations are pruned by admission time (SharedAccounts.Prune).
CREATE INDEX budget_reservations_done ON budget_reservations (admitted_at) WHERE state <> 'held';
