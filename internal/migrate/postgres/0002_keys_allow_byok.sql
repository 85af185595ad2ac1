-- keys: a key may let its requests carry their own provider credentials.
-- (The same step as SQLite's, so both dialects share one version history.)
ALTER TABLE api_keys ADD COLUMN allow_byok BOOLEAN NOT NULL DEFAULT FALSE;
