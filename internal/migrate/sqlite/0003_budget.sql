-- budget: policies, the request ledger, alerts and their delivery outbox.
CREATE TABLE budget_policies (
	key_id     TEXT PRIMARY KEY,
	policy     TEXT NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE TABLE budget_ledger (
	id                INTEGER PRIMARY KEY,
	ts                INTEGER NOT NULL, -- unix ms the request was admitted: its period
	request_id        TEXT NOT NULL,
	key_id            TEXT NOT NULL,
	route             TEXT NOT NULL,
	requested_model   TEXT NOT NULL,
	model             TEXT NOT NULL,
	provider          TEXT NOT NULL,
	prompt_tokens     INTEGER NOT NULL,
	completion_tokens INTEGER NOT NULL,
	cached_tokens     INTEGER NOT NULL,
	cost              INTEGER NOT NULL, -- micro-dollars charged to the key
	saved             INTEGER NOT NULL, -- micro-dollars saved by the cache or a downgrade
	estimated         INTEGER NOT NULL,
	unpriced          INTEGER NOT NULL,
	cache             TEXT NOT NULL,
	status            INTEGER NOT NULL,
	latency_ms        INTEGER NOT NULL,
	attempts          INTEGER NOT NULL
);

CREATE INDEX budget_ledger_ts ON budget_ledger (ts);
CREATE TABLE budget_alerts (
	id           INTEGER PRIMARY KEY,
	uid          TEXT NOT NULL UNIQUE, -- key, period, period start, event, threshold, limit
	key_id       TEXT NOT NULL,
	period       TEXT NOT NULL,
	period_start INTEGER NOT NULL,
	event        TEXT NOT NULL,
	threshold    INTEGER NOT NULL, -- parts per million
	limit_micros INTEGER NOT NULL,
	created_at   INTEGER NOT NULL,
	payload      TEXT NOT NULL
);
CREATE TABLE budget_outbox (
	id           INTEGER PRIMARY KEY,
	alert_id     INTEGER NOT NULL REFERENCES budget_alerts (id),
	url          TEXT NOT NULL,
	slack        INTEGER NOT NULL,
	body         TEXT NOT NULL,
	state        TEXT NOT NULL DEFAULT 'pending', -- pending | delivered | failed
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_at      INTEGER NOT NULL,
	delivered_at INTEGER,
	last_error   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX budget_outbox_due ON budget_outbox (next_at) WHERE state = 'pending';
