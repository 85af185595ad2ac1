-- budget: the period counters and reservations replicas share
-- (budget.SharedAccounts, PostgreSQL). An embedded SQLite gateway is one
-- process and keeps them in memory (budget.Accounts): these tables stay
-- empty there and exist so both dialects have the same schema.
CREATE TABLE budget_counters (
	key_id       TEXT NOT NULL,
	period       TEXT NOT NULL,    -- daily | weekly | monthly | total
	period_start INTEGER NOT NULL, -- unix ms; 0 for total
	period_end   INTEGER NOT NULL, -- unix ms; 0 for total
	spent        INTEGER NOT NULL DEFAULT 0,
	reserved     INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (key_id, period, period_start)
);
CREATE TABLE budget_reservations (
	request_id       TEXT PRIMARY KEY,
	key_id           TEXT NOT NULL,
	amount           INTEGER NOT NULL,
	admitted_at      INTEGER NOT NULL, -- unix ms
	lease_expires_at INTEGER NOT NULL, -- unix ms
	state            TEXT NOT NULL,    -- held | settled | released | expired
	cost             INTEGER,
	settled_at       INTEGER
);
CREATE INDEX budget_reservations_lease ON budget_reservations (lease_expires_at) WHERE state = 'held';
