-- keys: a key may let its requests carry their own provider credentials.
ALTER TABLE api_keys ADD COLUMN allow_byok INTEGER NOT NULL DEFAULT 0;
