-- keys: gateway API keys, stored as the SHA-256 of their secret.
CREATE TABLE api_keys (
	id          TEXT PRIMARY KEY,
	secret_hash BYTEA NOT NULL UNIQUE,
	name        TEXT NOT NULL,
	hint        TEXT NOT NULL,
	allowed     TEXT NOT NULL, -- JSON list
	metadata    TEXT NOT NULL, -- JSON object
	created_at  BIGINT NOT NULL, -- unix ms
	revoked_at  BIGINT
);
