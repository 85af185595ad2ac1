-- keys: gateway API keys, stored as the SHA-256 of their secret.
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
