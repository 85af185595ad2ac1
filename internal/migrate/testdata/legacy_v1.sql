-- A database as tollgate wrote it before internal/migrate, at the first
-- step of every store: the statements below are copied verbatim from the
-- schema variables of pkg/keys (step 1), pkg/budget (step 1) and
-- pkg/semcache (step 1) at a0537cb, with pkg/sqlite's bookkeeping
-- (schema_versions) and a few rows. api_keys has no allow_byok yet and
-- budget_ledger no judge columns; budget_journal does not exist.
CREATE TABLE schema_versions (store TEXT PRIMARY KEY, version INTEGER NOT NULL);

CREATE TABLE api_keys (
	id          TEXT PRIMARY KEY,
	secret_hash BLOB NOT NULL UNIQUE,
	name        TEXT NOT NULL,
	hint        TEXT NOT NULL,
	allowed     TEXT NOT NULL,
	metadata    TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	revoked_at  INTEGER
);
INSERT INTO schema_versions (store, version) VALUES ('keys', 1);

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
INSERT INTO schema_versions (store, version) VALUES ('budget', 1);

CREATE TABLE semcache_entries (
	id          INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: index points name entries by id
	tenant      TEXT NOT NULL,
	model       TEXT NOT NULL,    -- the model or route asked for
	scope       TEXT NOT NULL,
	exact_key   TEXT NOT NULL,
	query       TEXT NOT NULL,    -- the embedded text, for the guard; '' when not semantic
	vector      BLOB,             -- float32 little-endian; NULL when not semantic
	embedder    TEXT NOT NULL,    -- Embedder.Name() of vector
	response    BLOB NOT NULL,    -- the answer as OpenAI JSON
	answered_by TEXT NOT NULL,    -- the model that answered
	cost        INTEGER NOT NULL, -- micro-dollars the original call cost
	usage       BLOB,             -- JSON; NULL when the provider reported none
	created_at  INTEGER NOT NULL, -- unix milliseconds
	expires_at  INTEGER NOT NULL
);
CREATE INDEX semcache_entries_exact ON semcache_entries (exact_key, expires_at);
CREATE INDEX semcache_entries_expires ON semcache_entries (expires_at);
CREATE INDEX semcache_entries_tenant_model ON semcache_entries (tenant, model);
INSERT INTO schema_versions (store, version) VALUES ('semcache', 1);

-- Rows.
INSERT INTO api_keys (id, secret_hash, name, hint, allowed, metadata, created_at, revoked_at)
	VALUES ('key_0001', x'00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'ci', 'tg-abcd', '["gpt-4o*"]', '{"team":"a"}', 1700000000000, NULL);
INSERT INTO budget_policies (key_id, policy, updated_at) VALUES ('key_0001', '{"budgets":[{"period":"monthly","limit_micros":5000000}]}', 1700000000001);
INSERT INTO budget_ledger (ts, request_id, key_id, route, requested_model, model, provider, prompt_tokens, completion_tokens,
	cached_tokens, cost, saved, estimated, unpriced, cache, status, latency_ms, attempts)
	VALUES (1700000000100, 'req_1', 'key_0001', 'auto', 'auto', 'sim-small', 'sim', 12, 34, 0, 1234, 0, 0, 0, 'miss', 200, 150, 1);
INSERT INTO semcache_entries (tenant, model, scope, exact_key, query, vector, embedder, response, answered_by, cost, usage, created_at, expires_at)
	VALUES ('key_0001', 'auto', '', 'k1', 'hello', x'0000803f', 'use', '{"id":"c1"}', 'sim-small', 1234, NULL, 1700000000100, 1800000000000);
