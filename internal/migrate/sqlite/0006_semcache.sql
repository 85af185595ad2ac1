-- semcache: cache entries (exact and semantic). Entry ids are 63 random
-- bits given explicitly by semcache.Store; AUTOINCREMENT accepts them and
-- never reuses an id of a deleted entry.
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
