-- budget: the period counters and reservations replicas share
-- (budget.SharedAccounts). Money is micro-dollars, times unix ms.
--
-- A counter row per key, period and period start: spent (settled cost)
-- and reserved (held by requests in flight). Reserve upserts the rows of
-- the periods containing the admission time with a condition on the limit,
-- so the row lock is what makes a reservation exact across replicas.
CREATE TABLE budget_counters (
	key_id       TEXT NOT NULL,
	period       TEXT NOT NULL,   -- daily | weekly | monthly | total
	period_start BIGINT NOT NULL, -- 0 for total
	period_end   BIGINT NOT NULL, -- 0 for total: it never resets
	spent        BIGINT NOT NULL DEFAULT 0,
	reserved     BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (key_id, period, period_start)
);
-- One row per request id: its hold until settled, released, or expired
-- (the lease ran out: the replica holding it is presumed dead).
CREATE TABLE budget_reservations (
	request_id       TEXT PRIMARY KEY,
	key_id           TEXT NOT NULL,
	amount           BIGINT NOT NULL,
	admitted_at      BIGINT NOT NULL, -- the request's periods
	lease_expires_at BIGINT NOT NULL,
	state            TEXT NOT NULL,   -- held | settled | released | expired
	cost             BIGINT,          -- when settled
	settled_at       BIGINT
);
CREATE INDEX budget_reservations_lease ON budget_reservations (lease_expires_at) WHERE state = 'held';
-- Reserve's statement calls this when a limit refused, so that the error
-- rolls the whole statement back (reservation and counters) without an
-- explicit transaction; DETAIL lists the periods that had room.
CREATE FUNCTION budget_refuse(ok TEXT[]) RETURNS BIGINT LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'budget refused' USING ERRCODE = 'TG402', DETAIL = array_to_string(ok, ',');
END
$$;
