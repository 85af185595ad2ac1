-- audit: one row per admin action that changed something (pkg/audit).
-- Rows are only ever inserted. Before and after are JSON snapshots of the
-- target (never a secret), NULL when there is none (a key's creation has
-- no before). Times are unix ms, from the clock of the replica that served
-- the action; id breaks ties between rows of the same millisecond, so
-- (recorded_at, id) orders the log and pages it.
CREATE TABLE audit_log (
	id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	recorded_at BIGINT NOT NULL,
	request_id  TEXT NOT NULL,
	actor       TEXT NOT NULL,            -- "admin": the shared admin key
	actor_name  TEXT NOT NULL DEFAULT '', -- x-tollgate-actor, as sent (sanitized)
	remote_addr TEXT NOT NULL DEFAULT '',
	user_agent  TEXT NOT NULL DEFAULT '',
	action      TEXT NOT NULL,            -- key.create, key.revoke, ...
	target      TEXT NOT NULL,            -- a key id, or "cache"
	before_json TEXT,                     -- TEXT as on SQLite: stored and shown as written
	after_json  TEXT
);
CREATE INDEX audit_log_time ON audit_log (recorded_at, id);
CREATE INDEX audit_log_target ON audit_log (target, recorded_at, id);
CREATE INDEX audit_log_action ON audit_log (action, recorded_at, id);
