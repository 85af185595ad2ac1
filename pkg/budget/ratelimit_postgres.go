package budget

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresRateStore keeps the rate limits in a PostgreSQL table that every
// replica shares: one row per key holding the tat of its rpm and of its tpm
// bucket, in microseconds since the epoch.
//
// A Take is one statement, an INSERT ... ON CONFLICT DO UPDATE ...
// RETURNING with the GCRA arithmetic in SQL: the row lock of the upsert
// makes it atomic under any interleaving of replicas, and both buckets
// being columns of one row is what makes a request charge both or neither
// (a row per bucket would need two row locks, or a charge and a refund that
// another replica could see in between).
//
// Time is the server's clock_timestamp(), not the replica's: a single clock
// for every replica, so that a replica whose clock is late cannot refill
// buckets early. Options.Now replaces it (tests).
//
// The table is UNLOGGED: no WAL for the hottest write of the gateway. A
// crash of PostgreSQL (or a failover to a standby) empties it, which
// refills every bucket: what a restart of a single gateway does today.
type PostgresRateStore struct {
	pool    *pgxpool.Pool
	table   string
	take    string // the statement
	now     func() time.Time
	timeout time.Duration
}

// PostgresRateOptions configures a PostgresRateStore.
type PostgresRateOptions struct {
	// Table is the table's name (default budget_rate_limits), a plain
	// lowercase SQL identifier.
	Table string
	// Timeout bounds a Take's round trip, waiting for a pooled
	// connection and for the key's row included (default sharedTimeout,
	// 5 s, as the budgets' round trips: a burst of one key's requests
	// across replicas queues on its row, and a tighter bound turned such
	// a queue into 503s while PostgreSQL was only busy).
	Timeout time.Duration
	// Now, when set, replaces the server's clock (tests).
	Now func() time.Time
}

var _ RateStore = (*PostgresRateStore)(nil)

var sqlIdent = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// NewPostgresRateStore returns the store of the rate limits in pool's
// database. Call CreateRateLimitTable (or the migrations) before use.
func NewPostgresRateStore(pool *pgxpool.Pool, o PostgresRateOptions) (*PostgresRateStore, error) {
	if o.Table == "" {
		o.Table = "budget_rate_limits"
	}
	if !sqlIdent.MatchString(o.Table) {
		return nil, fmt.Errorf("budget: rate limit table %q is not a plain SQL identifier", o.Table)
	}
	if o.Timeout <= 0 {
		o.Timeout = sharedTimeout
	}
	return &PostgresRateStore{pool: pool, table: o.Table, take: fmt.Sprintf(pgTake, o.Table), now: o.Now, timeout: o.Timeout}, nil
}

// CreateRateLimitTable creates the store's table if it does not exist:
// for a Table of another name (tests). The default table,
// budget_rate_limits, is migration 0009's.
func (s *PostgresRateStore) CreateRateLimitTable(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, fmt.Sprintf(pgCreate, s.table))
	if err != nil {
		return fmt.Errorf("budget: creating %s: %w", s.table, err)
	}
	return nil
}

// pgCreate is the table (as migration 0009 creates budget_rate_limits): a row per key, each bucket's tat in µs since the
// epoch, and the time and outcome of the last Take (RETURNING sees only the
// new row: ok tells a charge from a refusal).
const pgCreate = `CREATE UNLOGGED TABLE IF NOT EXISTS %s (
	key_id  text PRIMARY KEY,
	req_tat bigint NOT NULL,
	tok_tat bigint NOT NULL,
	at      bigint NOT NULL,
	ok      boolean NOT NULL
)`

// pgTake is a Take: $1 the key, $2 and $3 the costs in µs, $4 now in µs
// (NULL: the server's clock). A new key's buckets are full (tat = now). In
// ON CONFLICT DO UPDATE, r.* is the row before the update, excluded.at is
// now; every SET sees the old row, so ok and both tats come from the same
// state. The window is 60,000,000 µs (rateWindow).
const pgTake = `INSERT INTO %s AS r (key_id, req_tat, tok_tat, at, ok)
SELECT $1, c.now + CASE WHEN c.fits THEN $2::bigint ELSE 0 END, c.now + CASE WHEN c.fits THEN $3::bigint ELSE 0 END, c.now, c.fits
FROM (SELECT n.now, $2::bigint <= 60000000 AND $3::bigint <= 60000000 AS fits
	FROM (SELECT coalesce($4::bigint, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint) AS now) n) c
ON CONFLICT (key_id) DO UPDATE SET
	ok = greatest(r.req_tat, excluded.at) + $2::bigint <= excluded.at + 60000000 AND greatest(r.tok_tat, excluded.at) + $3::bigint <= excluded.at + 60000000,
	req_tat = CASE WHEN greatest(r.req_tat, excluded.at) + $2::bigint <= excluded.at + 60000000 AND greatest(r.tok_tat, excluded.at) + $3::bigint <= excluded.at + 60000000
		THEN greatest(r.req_tat, excluded.at) + $2::bigint ELSE r.req_tat END,
	tok_tat = CASE WHEN greatest(r.req_tat, excluded.at) + $2::bigint <= excluded.at + 60000000 AND greatest(r.tok_tat, excluded.at) + $3::bigint <= excluded.at + 60000000
		THEN greatest(r.tok_tat, excluded.at) + $3::bigint ELSE r.tok_tat END,
	at = excluded.at
RETURNING ok, req_tat - at, tok_tat - at`

// Take implements RateStore in one statement.
func (s *PostgresRateStore) Take(ctx context.Context, keyID string, reqCost, tokCost time.Duration) (RateTaken, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rc, tc := micros(reqCost), micros(tokCost)
	var now *int64
	if s.now != nil {
		n := s.now().UnixMicro()
		now = &n
	}
	var t RateTaken
	var req, tok int64
	if err := s.pool.QueryRow(ctx, s.take, keyID, rc, tc, now).Scan(&t.Charged, &req, &tok); err != nil {
		return RateTaken{}, err
	}
	return takenMicros(t.Charged, req, tok, rc, tc), nil
}

// micros is d in µs, rounded up: a shared store's resolution.
func micros(d time.Duration) int64 {
	return int64((d + time.Microsecond - 1) / time.Microsecond)
}

// takenMicros is a RateTaken from a shared store's answer: whether it
// charged, each bucket's tat − now after the call, and the costs, in µs.
func takenMicros(charged bool, req, tok, rc, tc int64) RateTaken {
	const window = int64(rateWindow / time.Microsecond)
	return RateTaken{
		Charged:  charged,
		ReqFits:  charged || max(req, 0)+rc <= window,
		TokFits:  charged || max(tok, 0)+tc <= window,
		ReqAhead: time.Duration(req) * time.Microsecond,
		TokAhead: time.Duration(tok) * time.Microsecond,
	}
}
