package budget

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/pkg/llm"
)

// SharedAccounts is Accounts' reserve / settle / release with the period
// counters and the reservations in PostgreSQL, so that replicas share
// keys' budgets exactly. Its semantics are Accounts': periods aligned to
// Location (Period.Window), a request charged to the periods containing
// its admission time At, Reserve all or nothing across the key's limits
// with the same 402 (*Exhausted, ErrExhausted), idempotent per request id,
// saturating arithmetic. Policies stay where they are (a PolicySource,
// e.g. the in-process *Accounts loading budget_policies); alerts and the
// ledger rows are the caller's.
//
// # Tables (migration 0007)
//
// budget_counters has a row per (key_id, period, period_start) holding
// spent and reserved, for every period (limited or not, as Accounts keeps
// counters of every period so that a limit added later starts from the
// right spend). A row per period, not per key, because a request settles
// into the periods of its admission, which after a rollover are not the
// current ones: old rows are simply not read again. budget_reservations
// has a row per request id (its primary key: idempotency is the
// constraint) with the amount, admitted_at, lease_expires_at and a state,
// held → settled | released | expired. Request ids are therefore unique
// across keys here (the gateway's are), where Accounts keeps them per key;
// settled ids are remembered until Prune deletes the rows that are over
// (Accounts, with Options.Shared, prunes those admitted more than
// max(2 × Lease, 1 h) ago; the in-process Accounts remembers each key's
// last 4096 to 8192).
//
// # Why it is exact
//
// Reserve is one statement (one round trip, atomic as any statement): it
// inserts the reservation (ON CONFLICT on request_id reactivates a
// released or expired one and otherwise does nothing, so a held or settled
// id touches no counter), then upserts the key's counter rows with the
// condition spent + reserved + amount <= limit evaluated on the row under
// its row lock (INSERT ... ON CONFLICT DO UPDATE ... WHERE): under any
// interleaving of replicas, each counter row sees reservations one after
// the other. If a limited period refused, the statement raises
// (budget_refuse, SQLSTATE TG402), which rolls all of it back, so nothing
// is held anywhere. Settle and Release are one statement each: they lock
// the reservation row, move it out of held, and adjust the counters of the
// periods containing its admission time; a second settle finds it settled
// and does nothing.
//
// Row locks are always taken in one order, so no two of these
// transactions deadlock: the reservation row first (only Reserve, Settle
// and Release wait for one, holding nothing), then counter rows sorted by
// (key_id, period, period_start).
//
// # Leases
//
// A replica that dies holding reservations leaves them held. Each has a
// lease, admitted_at + Lease (default 10 minutes: longer than any request
// may take, since the gateway bounds attempts and total time well below
// it; set it above your longest stream). ReleaseExpired, which every
// replica may run periodically and concurrently (FOR UPDATE SKIP LOCKED
// in batches: two runners never wait on or double-release the same row),
// moves expired held reservations to expired and returns their amount to
// the counters. A settle that arrives after its lease expired (a replica
// that was only slow) still charges its cost to spent, since the money
// was spent; the reserved amount was already returned by the expiry, so
// it is not subtracted again and counters never go below zero (they are
// also clamped at zero). An expired id may reserve again, like a released
// one.
//
// # Durability
//
// SharedOptions.Durability says which commits wait for PostgreSQL's WAL
// flush (synchronous_commit). Visibility and atomicity never change: other
// replicas see a commit at once, and every statement is all or nothing.
// What an asynchronous commit risks is a crash of PostgreSQL itself (not
// of a replica) forgetting the commits of its last moments (at most three
// wal_writer_delay, 600 ms by default) that no later synchronous commit
// flushed (a flush writes all the WAL before it). On this machine the
// flush (fdatasync, ~1.3 ms; PostgreSQL groups concurrent ones) is what
// bounds throughput:
//
//   - DurableSettles (the default): Settle returns once flushed, Reserve
//     does not wait. A forgotten reservation vanishes with its counter
//     increment, consistently; its Settle gets ErrNoReservation and the
//     caller charges the cost with Record. Requests admitted in that moment
//     may overrun a limit by what the forgotten reservations held, much as
//     the in-process Accounts forgets reservations when its process dies.
//   - DurableAll: Reserve waits too (about 30% fewer settled/s here).
//   - DurableNone: nothing waits. For when the ledger in PostgreSQL is the
//     durable record of a settle (as it is of Accounts': the ledger row,
//     group-committed), and the counters are rebuilt from it after a crash
//     of PostgreSQL; until then forgotten settles are missing from spent.
//
// Release and ReleaseExpired commit as the pool's sessions do
// (synchronously by default); they are rare.
//
// Times are Options.Now's (the replica's clock), stored as unix
// milliseconds; replicas' clocks must agree to well within a lease.
type SharedAccounts struct {
	pool     *pgxpool.Pool
	policies PolicySource
	loc      *time.Location
	now      func() time.Time
	lease    time.Duration
	batch    int
	// reserveCommit and settleCommit are the synchronous_commit of
	// Reserve and Settle (SharedOptions.Durability).
	reserveCommit, settleCommit string
}

// PolicySource gives each key's policy; *Accounts is one.
type PolicySource interface {
	Policy(keyID string) (Policy, bool)
}

var _ PolicySource = (*Accounts)(nil)

// SharedOptions configures a SharedAccounts.
type SharedOptions struct {
	// Location is the calendar periods are aligned to (default UTC).
	Location *time.Location
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Lease is how long a reservation is held before ReleaseExpired may
	// release it (default DefaultLease).
	Lease time.Duration
	// Durability is which commits wait for the WAL flush (default
	// DurableSettles); see "Durability".
	Durability Durability
	// ExpireBatch is how many reservations ReleaseExpired releases per
	// transaction (default 500).
	ExpireBatch int
}

// Durability is which of SharedAccounts' commits wait for PostgreSQL's
// WAL flush.
type Durability int

// The durabilities; see SharedAccounts, "Durability".
const (
	DurableSettles Durability = iota // Settle waits, Reserve does not
	DurableAll                       // Reserve and Settle wait
	DurableNone                      // nothing waits: the ledger is the durable record
)

// DefaultLease is a reservation's lease when SharedOptions.Lease is zero.
const DefaultLease = 10 * time.Minute

// NewSharedAccounts returns the accounts kept in pool's database, which
// must be migrated (internal/migrate, version 0007).
func NewSharedAccounts(pool *pgxpool.Pool, policies PolicySource, o SharedOptions) *SharedAccounts {
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.ExpireBatch <= 0 {
		o.ExpireBatch = 500
	}
	s := &SharedAccounts{pool: pool, policies: policies, loc: o.Location, now: o.Now, lease: o.Lease, batch: o.ExpireBatch,
		reserveCommit: "off", settleCommit: "on"}
	switch o.Durability {
	case DurableAll:
		s.reserveCommit = "on"
	case DurableNone:
		s.settleCommit = "off"
	}
	return s
}

// windows are the periods containing one instant, sorted by name: the
// order counter rows are locked in.
type windows struct {
	names        [len(periods)]string
	starts, ends [len(periods)]int64
	at           [len(periods)]Period
}

// sortedPeriods is periods sorted by name.
var sortedPeriods = func() [len(periods)]Period {
	p := periods
	slices.Sort(p[:])
	return p
}()

func (s *SharedAccounts) windowsAt(t time.Time) windows {
	var w windows
	for i, p := range sortedPeriods {
		w.at[i], w.names[i] = p, string(p)
		if p == Total {
			continue
		}
		start, end := p.Window(t, s.loc)
		w.starts[i], w.ends[i] = start.UnixMilli(), end.UnixMilli()
	}
	return w
}

// noLimit marks an unlimited period in the limits array.
const noLimit = -1

// sharedReserve inserts the reservation (reactivating a released or
// expired one), then, only if it did, upserts the key's counters in period
// order, each under the condition that the limit has room; a refusal
// raises (budget_refuse), which rolls the whole statement back. $10 is the
// transaction's synchronous_commit.
const sharedReserve = `WITH res AS (
	INSERT INTO budget_reservations AS r (request_id, key_id, amount, admitted_at, lease_expires_at, state)
	VALUES ($1, $2, $3, $4, $5, 'held')
	ON CONFLICT (request_id) DO UPDATE SET key_id = excluded.key_id, amount = excluded.amount,
		admitted_at = excluded.admitted_at, lease_expires_at = excluded.lease_expires_at,
		state = 'held', cost = NULL, settled_at = NULL, customer = excluded.customer
	WHERE r.state IN ('released', 'expired')
	RETURNING 1
), cnt AS (
	INSERT INTO budget_counters AS k (key_id, period, period_start, period_end, reserved)
	SELECT $2, p.period, p.start, p.stop, $3
	FROM unnest($6::text[], $7::bigint[], $8::bigint[], $9::bigint[]) AS p (period, start, stop, lim)
	WHERE EXISTS (SELECT 1 FROM res) AND (p.lim < 0 OR $3 <= p.lim)
	ORDER BY p.period
	ON CONFLICT (key_id, period, period_start) DO UPDATE
	SET reserved = LEAST(k.reserved::numeric + excluded.reserved, 9223372036854775807)::bigint
	WHERE ($9::bigint[])[array_position($6::text[], k.period)] < 0
		OR k.spent::numeric + k.reserved + excluded.reserved <= ($9::bigint[])[array_position($6::text[], k.period)]
	RETURNING k.period
)
SELECT r.n, CASE WHEN r.n > 0 AND c.n < cardinality($6::text[]) THEN budget_refuse(c.ok) ELSE c.n END
FROM (SELECT count(*) AS n FROM res) r,
	(SELECT count(*) AS n, coalesce(array_agg(period), '{}') AS ok FROM cnt) c,
	(SELECT set_config('synchronous_commit', $10, true)) s`

// refusedCode is the SQLSTATE budget_refuse raises.
const refusedCode = "TG402"

// Reserve holds amount against every limit of the key, atomically across
// replicas; see Accounts.Reserve for the semantics and the error.
func (s *SharedAccounts) Reserve(ctx context.Context, keyID, requestID string, amount llm.Micros) (Reservation, error) {
	return s.reserve(ctx, keyID, "", requestID, amount)
}

// ReserveFor is Reserve for a request of the key's customer: amount is
// held against the key's limits and the customer's (Policy.Customers)
// in one statement, all or nothing; see Accounts.ReserveFor.
func (s *SharedAccounts) ReserveFor(ctx context.Context, keyID, customer, requestID string, amount llm.Micros) (Reservation, error) {
	return s.reserve(ctx, keyID, customer, requestID, amount)
}

func (s *SharedAccounts) reserve(ctx context.Context, keyID, customer, requestID string, amount llm.Micros) (Reservation, error) {
	if amount < 0 {
		return Reservation{}, fmt.Errorf("budget: negative reservation %d", amount)
	}
	now := time.UnixMilli(s.now().UnixMilli()) // the stored precision
	policy, _ := s.policies.Policy(keyID)
	if customer != "" && policy.Customers != nil {
		return s.reserveCustomer(ctx, keyID, customer, requestID, amount, policy, now)
	}
	w := s.windowsAt(now)
	var limits [len(periods)]int64
	for i, p := range w.at {
		limits[i] = noLimit
		if lim, ok := policy.Limit(p); ok {
			limits[i] = int64(lim.Amount)
		}
	}
	var inserted, held int64
	err := s.pool.QueryRow(ctx, sharedReserve, requestID, keyID, int64(amount), now.UnixMilli(), now.Add(s.lease).UnixMilli(),
		w.names[:], w.starts[:], w.ends[:], limits[:], s.reserveCommit).Scan(&inserted, &held)
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == refusedCode {
		return Reservation{}, s.exhausted(ctx, keyID, amount, policy, w, strings.Split(pe.Detail, ","), now)
	}
	if err != nil {
		return Reservation{}, fmt.Errorf("budget: reserve: %w", err)
	}
	if inserted == 0 { // the id holds a reservation or was settled
		return s.existing(ctx, requestID)
	}
	return Reservation{KeyID: keyID, RequestID: requestID, Amount: amount, At: now}, nil
}

// existing is the reservation a request id already has: held, or settled
// (ErrSettled). A row that is neither (released or expired again since
// the insert) is a race with the id's own release: ask again.
func (s *SharedAccounts) existing(ctx context.Context, requestID string) (Reservation, error) {
	var r Reservation
	var amount, at int64
	var state string
	err := s.pool.QueryRow(ctx, `SELECT key_id, amount, admitted_at, state, customer FROM budget_reservations WHERE request_id = $1`,
		requestID).Scan(&r.KeyID, &amount, &at, &state, &r.Customer)
	if err != nil {
		return Reservation{}, fmt.Errorf("budget: reserve: %w", err)
	}
	switch state {
	case "held":
		r.RequestID, r.Amount, r.At = requestID, llm.Micros(amount), time.UnixMilli(at)
		return r, nil
	case "settled":
		return Reservation{}, fmt.Errorf("budget: %s: %w", requestID, ErrSettled)
	}
	return Reservation{}, fmt.Errorf("budget: reserve %s: its reservation was %s meanwhile: %w", requestID, state, ErrNoReservation)
}

// exhausted builds the 402 of a refused reservation from the counters as
// they are now: the periods in ok had room, the other limited ones did not.
func (s *SharedAccounts) exhausted(ctx context.Context, keyID string, amount llm.Micros, policy Policy, w windows, ok []string, now time.Time) error {
	return s.exhaustedOf(ctx, keyID, "", amount, policy, w, ok, now)
}

// exhaustedOf is exhausted for the account of the key's customer (none:
// "") with the customer's limits as policy.
func (s *SharedAccounts) exhaustedOf(ctx context.Context, keyID, customer string, amount llm.Micros, policy Policy, w windows, ok []string, now time.Time) error {
	account := keyID
	if customer != "" {
		account = accountOf(keyID, customer)
	}
	cs, err := s.counters(ctx, account, w)
	if err != nil {
		return err
	}
	ex := &Exhausted{KeyID: keyID, Customer: customer, Requested: amount}
	for _, lim := range policy.Limits {
		i := slices.Index(sortedPeriods[:], lim.Period)
		if i < 0 || slices.Contains(ok, string(lim.Period)) {
			continue
		}
		ex.Limits = append(ex.Limits, statusOf(lim, &cs[i]))
	}
	if len(ex.Limits) == 0 { // cannot happen: a refusal names a period
		return fmt.Errorf("budget: reserve: refused without a refusing period")
	}
	ex.Remaining, _ = remainingOf(policy, w, cs)
	return ex.httpError(now)
}

// counters reads the key's counters of the periods in w (zero where no
// row exists yet), indexed like w.
func (s *SharedAccounts) counters(ctx context.Context, keyID string, w windows) ([len(periods)]counter, error) {
	var cs [len(periods)]counter
	for i, p := range w.at {
		if p != Total {
			cs[i].start, cs[i].end = time.UnixMilli(w.starts[i]), time.UnixMilli(w.ends[i])
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT k.period, k.spent, k.reserved FROM budget_counters k
		JOIN unnest($2::text[], $3::bigint[]) AS p (period, start) ON k.period = p.period AND k.period_start = p.start
		WHERE k.key_id = $1`, keyID, w.names[:], w.starts[:])
	if err != nil {
		return cs, fmt.Errorf("budget: read counters: %w", err)
	}
	var period string
	var spent, reserved int64
	_, err = pgx.ForEachRow(rows, []any{&period, &spent, &reserved}, func() error {
		if i := slices.Index(w.names[:], period); i >= 0 {
			cs[i].spent, cs[i].reserved = llm.Micros(spent), llm.Micros(reserved)
		}
		return nil
	})
	if err != nil {
		return cs, fmt.Errorf("budget: read counters: %w", err)
	}
	return cs, nil
}

// remainingOf is the smallest room across the policy's limits.
func remainingOf(policy Policy, w windows, cs [len(periods)]counter) (llm.Micros, bool) {
	var least llm.Micros
	limited := false
	for _, lim := range policy.Limits {
		i := slices.Index(w.at[:], lim.Period)
		if i < 0 {
			continue
		}
		if r := cs[i].room(lim.Amount); !limited || r < least {
			least, limited = r, true
		}
	}
	return least, limited
}

// Fits reports whether a reservation of amount would succeed now, holding
// nothing (the downgrade path; see Accounts.Fits).
func (s *SharedAccounts) Fits(ctx context.Context, keyID string, amount llm.Micros) (bool, error) {
	policy, _ := s.policies.Policy(keyID)
	if len(policy.Limits) == 0 {
		return true, nil
	}
	w := s.windowsAt(s.now())
	cs, err := s.counters(ctx, keyID, w)
	if err != nil {
		return false, err
	}
	for _, lim := range policy.Limits {
		i := slices.Index(w.at[:], lim.Period)
		if i >= 0 && addSat(cs[i].used(), amount) > lim.Amount {
			return false, nil
		}
	}
	return true, nil
}

// Remaining is the most a request of the key could reserve now; limited
// is false when the key has no limit.
func (s *SharedAccounts) Remaining(ctx context.Context, keyID string) (remaining llm.Micros, limited bool, err error) {
	policy, _ := s.policies.Policy(keyID)
	if len(policy.Limits) == 0 {
		return 0, false, nil
	}
	w := s.windowsAt(s.now())
	cs, err := s.counters(ctx, keyID, w)
	if err != nil {
		return 0, false, err
	}
	remaining, limited = remainingOf(policy, w, cs)
	return remaining, limited, nil
}

// sharedSettle: lock the reservation; held or expired → settled; lock the
// counter rows of its periods in order; reserved -= amount (when it was
// still held), spent += cost, saturating; and, when $9 to $27 hold one
// ledger row (arrays of one; empty: none), insert it, so that the charge
// and its row commit together. It returns the state found; $8 is the
// transaction's synchronous_commit.
const sharedSettle = `WITH o AS (
	SELECT request_id, state, amount FROM budget_reservations
	WHERE request_id = $1 AND key_id = $2 AND admitted_at = $3 FOR UPDATE
), r AS (
	UPDATE budget_reservations b SET state = 'settled', cost = $4, settled_at = $5
	FROM o WHERE b.request_id = o.request_id AND o.state IN ('held', 'expired')
	RETURNING o.state AS old, o.amount
), l AS (
	SELECT k.key_id, k.period, k.period_start FROM budget_counters k
	JOIN unnest($6::text[], $7::bigint[]) AS p (period, start) ON k.period = p.period AND k.period_start = p.start
	WHERE k.key_id = ANY($28::text[]) AND EXISTS (SELECT 1 FROM r)
	ORDER BY k.key_id, k.period, k.period_start FOR UPDATE OF k
), c AS (
	UPDATE budget_counters k SET
		reserved = CASE WHEN r.old = 'held' THEN GREATEST(k.reserved - r.amount, 0) ELSE k.reserved END,
		spent = GREATEST(LEAST(k.spent::numeric + $4, 9223372036854775807), -9223372036854775808)::bigint
	FROM r, l WHERE k.key_id = l.key_id AND k.period = l.period AND k.period_start = l.period_start
	RETURNING k.key_id, k.period, k.spent, k.reserved
), led AS (
	INSERT INTO budget_ledger (ts, request_id, key_id, route, requested_model, model, provider, prompt_tokens,
		completion_tokens, cached_tokens, cost, saved, estimated, unpriced, cache, status, latency_ms, attempts, judge, judge_cost,
		customer, tags, guards)
	SELECT $3, $1, $2, e.route, e.rm, e.model, e.provider, e.pt, e.ct, e.cached, $4, e.saved, e.est, e.unp, e.cache,
		e.status, e.lat, e.att, e.judge, e.jc, e.cust, e.tags, e.guards
	FROM r, unnest($9::text[], $10::text[], $11::text[], $12::text[], $13::integer[], $14::integer[], $15::integer[],
		$16::bigint[], $17::boolean[], $18::boolean[], $19::text[], $20::integer[], $21::bigint[], $22::integer[],
		$23::text[], $24::bigint[], $25::text[], $26::text[], $27::text[])
		AS e (route, rm, model, provider, pt, ct, cached, saved, est, unp, cache, status, lat, att, judge, jc, cust, tags, guards)
)
SELECT coalesce((SELECT state FROM o), ''), coalesce((SELECT array_agg(period) FROM c), '{}'),
	coalesce((SELECT array_agg(spent) FROM c), '{}'), coalesce((SELECT array_agg(reserved) FROM c), '{}'),
	set_config('synchronous_commit', $8, true), coalesce((SELECT array_agg(key_id) FROM c), '{}')`

// Settle charges the request's actual cost to the periods containing r.At
// and drops its reservation, in one statement; see Accounts.Settle.
// Settling twice is a no-op returning nil; a request that holds no
// reservation (never reserved, or released) is ErrNoReservation. A settle
// after the lease expired charges the cost all the same. The ledger row
// is the caller's to write.
func (s *SharedAccounts) Settle(ctx context.Context, r Reservation, cost llm.Micros) error {
	_, err := s.settle(ctx, r, cost, nil)
	return err
}

// settle is Settle returning the counters it charged, as they are after
// the charge (have[i] false: period i's counter was not charged). With e,
// the same statement writes e as the request's ledger row (its key,
// request id, time and cost r's and cost): the row and the charge commit
// together, or neither does.
func (s *SharedAccounts) settle(ctx context.Context, r Reservation, cost llm.Micros, e *Entry) (sharedCounters, error) {
	w := s.windowsAt(r.At)
	var state, commit string
	var names, ids []string
	var spent, reserved []int64
	args := []any{r.RequestID, r.KeyID, r.At.UnixMilli(), int64(cost), s.now().UnixMilli(), w.names[:], w.starts[:], s.settleCommit}
	args = append(args, ledgerColumns(e)...)
	args = append(args, accountsOf(r.KeyID, r.Customer))
	err := s.pool.QueryRow(ctx, sharedSettle, args...).Scan(&state, &names, &spent, &reserved, &commit, &ids)
	if err != nil {
		return sharedCounters{}, fmt.Errorf("budget: settle %s: %w", r.RequestID, err)
	}
	switch state {
	case "held", "expired", "settled":
		cs := countersOf(w, r.KeyID, ids, names, spent, reserved)
		cs.state = state
		if r.Customer != "" {
			cust := countersOf(w, accountOf(r.KeyID, r.Customer), ids, names, spent, reserved)
			cs.customer = &cust
		}
		return cs, nil
	}
	return sharedCounters{}, fmt.Errorf("budget: settle %s: %w", r.RequestID, ErrNoReservation)
}

// sharedCounters are a key's counters of the periods of one instant as a
// statement left them, indexed like windows.
type sharedCounters struct {
	// state is what settle found the reservation in: held, expired, or
	// settled (a second settle, which charged nothing).
	state string
	w     windows
	cs    [len(periods)]counter
	have  [len(periods)]bool
	// customer: the counters of the request's customer's account, when it
	// was charged too.
	customer *sharedCounters
}

// countersOf picks the counters of account out of a statement's returned
// arrays (ids nil: every element is account's).
func countersOf(w windows, account string, ids, names []string, spent, reserved []int64) sharedCounters {
	out := sharedCounters{w: w}
	for j, name := range names {
		if ids != nil && (j >= len(ids) || ids[j] != account) {
			continue
		}
		i := slices.Index(w.names[:], name)
		if i < 0 || j >= len(spent) || j >= len(reserved) {
			continue
		}
		out.have[i] = true
		out.cs[i].spent, out.cs[i].reserved = llm.Micros(spent[j]), llm.Micros(reserved[j])
		if w.at[i] != Total {
			out.cs[i].start, out.cs[i].end = time.UnixMilli(w.starts[i]), time.UnixMilli(w.ends[i])
		}
	}
	return out
}

const sharedRelease = `WITH o AS (
	SELECT request_id, state, amount FROM budget_reservations
	WHERE request_id = $1 AND key_id = $2 AND admitted_at = $3 FOR UPDATE
), r AS (
	UPDATE budget_reservations b SET state = 'released'
	FROM o WHERE b.request_id = o.request_id AND o.state = 'held'
	RETURNING o.amount
), l AS (
	SELECT k.key_id, k.period, k.period_start FROM budget_counters k
	JOIN unnest($4::text[], $5::bigint[]) AS p (period, start) ON k.period = p.period AND k.period_start = p.start
	WHERE k.key_id = ANY($6::text[]) AND EXISTS (SELECT 1 FROM r)
	ORDER BY k.key_id, k.period, k.period_start FOR UPDATE OF k
)
UPDATE budget_counters k SET reserved = GREATEST(k.reserved - r.amount, 0)
FROM r, l WHERE k.key_id = l.key_id AND k.period = l.period AND k.period_start = l.period_start`

// Release drops the request's reservation; the id may reserve again.
// Releasing twice, a settled or an expired request does nothing.
func (s *SharedAccounts) Release(ctx context.Context, r Reservation) error {
	w := s.windowsAt(r.At)
	if _, err := s.pool.Exec(ctx, sharedRelease, r.RequestID, r.KeyID, r.At.UnixMilli(), w.names[:], w.starts[:], accountsOf(r.KeyID, r.Customer)); err != nil {
		return fmt.Errorf("budget: release %s: %w", r.RequestID, err)
	}
	return nil
}

const sharedExpire = `WITH x AS (
	SELECT request_id FROM budget_reservations
	WHERE state = 'held' AND lease_expires_at <= $1
	ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
)
UPDATE budget_reservations b SET state = 'expired' FROM x WHERE b.request_id = x.request_id
RETURNING b.key_id, b.amount, b.admitted_at, b.customer`

const sharedUnreserve = `WITH p AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS p (key_id, period, start, amount)
), l AS (
	SELECT k.key_id, k.period, k.period_start, p.amount FROM budget_counters k
	JOIN p ON k.key_id = p.key_id AND k.period = p.period AND k.period_start = p.start
	ORDER BY k.key_id, k.period, k.period_start FOR UPDATE OF k
)
UPDATE budget_counters k SET reserved = GREATEST(k.reserved::numeric - l.amount, 0)::bigint
FROM l WHERE k.key_id = l.key_id AND k.period = l.period AND k.period_start = l.period_start`

// ReleaseExpired releases the held reservations whose lease has expired
// (their replica is presumed dead) and returns how many it released. Every
// replica may run it, concurrently: each batch locks the rows it takes
// with SKIP LOCKED, so runners share the work and a reservation being
// settled or released right now is left to that.
func (s *SharedAccounts) ReleaseExpired(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := s.expireBatch(ctx)
		total += n
		if err != nil || n < s.batch {
			return total, err
		}
	}
}

type counterKey struct {
	key    string
	period string
	start  int64
}

func (s *SharedAccounts) expireBatch(ctx context.Context) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("budget: release expired: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	rows, err := tx.Query(ctx, sharedExpire, s.now().UnixMilli(), s.batch)
	if err != nil {
		return 0, fmt.Errorf("budget: release expired: %w", err)
	}
	sums := map[counterKey]llm.Micros{}
	var key, customer string
	var amount, at int64
	n := 0
	_, err = pgx.ForEachRow(rows, []any{&key, &amount, &at, &customer}, func() error {
		n++
		w := s.windowsAt(time.UnixMilli(at))
		for _, acct := range accountsOf(key, customer) { // the customer's account held it too
			for i := range w.names {
				k := counterKey{acct, w.names[i], w.starts[i]}
				sums[k] = addSat(sums[k], llm.Micros(amount))
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("budget: release expired: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	keys := make([]string, 0, len(sums))
	names := make([]string, 0, len(sums))
	starts := make([]int64, 0, len(sums))
	amounts := make([]int64, 0, len(sums))
	for k, a := range sums {
		keys, names, starts, amounts = append(keys, k.key), append(names, k.period), append(starts, k.start), append(amounts, int64(a))
	}
	if _, err := tx.Exec(ctx, sharedUnreserve, keys, names, starts, amounts); err != nil {
		return 0, fmt.Errorf("budget: release expired: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("budget: release expired: %w", err)
	}
	return n, nil
}

const sharedRecord = `WITH l AS (
	INSERT INTO budget_counters AS k (key_id, period, period_start, period_end, spent)
	SELECT a.acct, p.period, p.start, p.stop, GREATEST($2, 0)
	FROM unnest($28::text[]) AS a (acct), unnest($3::text[], $4::bigint[], $5::bigint[]) AS p (period, start, stop)
	ORDER BY a.acct, p.period
	ON CONFLICT (key_id, period, period_start) DO UPDATE
	SET spent = GREATEST(LEAST(k.spent::numeric + $2, 9223372036854775807), -9223372036854775808)::bigint
	RETURNING k.key_id, k.period, k.spent, k.reserved
), led AS (
	INSERT INTO budget_ledger (ts, request_id, key_id, route, requested_model, model, provider, prompt_tokens,
		completion_tokens, cached_tokens, cost, saved, estimated, unpriced, cache, status, latency_ms, attempts, judge, judge_cost,
		customer, tags, guards)
	SELECT $6, $7, $1, e.route, e.rm, e.model, e.provider, e.pt, e.ct, e.cached, $2, e.saved, e.est, e.unp, e.cache,
		e.status, e.lat, e.att, e.judge, e.jc, e.cust, e.tags, e.guards
	FROM unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::integer[], $13::integer[], $14::integer[],
		$15::bigint[], $16::boolean[], $17::boolean[], $18::text[], $19::integer[], $20::bigint[], $21::integer[],
		$22::text[], $23::bigint[], $24::text[], $25::text[], $26::text[])
		AS e (route, rm, model, provider, pt, ct, cached, saved, est, unp, cache, status, lat, att, judge, jc, cust, tags, guards)
)
SELECT coalesce(array_agg(period), '{}'), coalesce(array_agg(spent), '{}'), coalesce(array_agg(reserved), '{}'),
	set_config('synchronous_commit', $27, true), coalesce(array_agg(key_id), '{}') FROM l`

// Record charges a cost that went through no reservation (a failed
// request's, or one whose reservation PostgreSQL forgot: see Durability)
// to the key's periods containing at, without checking any limit: the
// money is already spent. A zero at, or one in the future, means now.
// Unlike Settle it is not idempotent: call it once per ledger row.
func (s *SharedAccounts) Record(ctx context.Context, keyID string, at time.Time, cost llm.Micros) error {
	_, err := s.record(ctx, keyID, "", at, cost, "", nil)
	return err
}

// record is Record returning the counters as the charge left them. With
// e, the same statement writes e as a ledger row (request id requestID,
// time at, cost cost), so the charge and its row commit together.
//
// With a customer (a key with customer budgets), the customer's account
// is charged too.
func (s *SharedAccounts) record(ctx context.Context, keyID, customer string, at time.Time, cost llm.Micros, requestID string, e *Entry) (sharedCounters, error) {
	if now := s.now(); at.IsZero() || at.After(now) {
		at = now
	}
	w := s.windowsAt(at)
	if cost == 0 {
		return sharedCounters{w: w}, nil
	}
	var names, ids []string
	var spent, reserved []int64
	args := append([]any{keyID, int64(cost), w.names[:], w.starts[:], w.ends[:], at.UnixMilli(), requestID}, ledgerColumns(e)...)
	args = append(args, s.settleCommit, accountsOf(keyID, customer))
	var commit string
	if err := s.pool.QueryRow(ctx, sharedRecord, args...).Scan(&names, &spent, &reserved, &commit, &ids); err != nil {
		return sharedCounters{}, fmt.Errorf("budget: record: %w", err)
	}
	sc := countersOf(w, keyID, ids, names, spent, reserved)
	if customer != "" {
		cust := countersOf(w, accountOf(keyID, customer), ids, names, spent, reserved)
		sc.customer = &cust
	}
	return sc, nil
}

// pruneBatch is how many finished reservations one statement of Prune
// deletes.
const pruneBatch = 5000

// Prune deletes the reservations that are over (settled, released,
// expired) and were admitted before before, and returns how many. Their
// request ids may then reserve again: prune well after any retry of a
// request could arrive. Every replica may run it at once.
func (s *SharedAccounts) Prune(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM budget_reservations WHERE request_id IN (
			SELECT request_id FROM budget_reservations WHERE state <> 'held' AND admitted_at < $1 LIMIT $2)`,
			before.UnixMilli(), pruneBatch)
		if err != nil {
			return total, fmt.Errorf("budget: prune reservations: %w", err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}

// ledgerColumns are e's columns other than its time, request id, key and
// cost, as the one-element arrays sharedSettle and sharedRecord take
// (empty arrays for a nil e: no row).
func ledgerColumns(e *Entry) []any {
	if e == nil {
		return []any{[]string{}, []string{}, []string{}, []string{}, []int32{}, []int32{}, []int32{},
			[]int64{}, []bool{}, []bool{}, []string{}, []int32{}, []int64{}, []int32{}, []string{}, []int64{}, []string{}, []string{}, []string{}}
	}
	return []any{[]string{e.Route}, []string{e.RequestedModel}, []string{e.Model}, []string{e.Provider},
		[]int32{int32(e.PromptTokens)}, []int32{int32(e.CompletionTokens)}, []int32{int32(e.CachedTokens)},
		[]int64{int64(e.Saved)}, []bool{e.Estimated}, []bool{e.Unpriced}, []string{e.Cache}, []int32{int32(e.Status)},
		[]int64{e.Latency.Milliseconds()}, []int32{int32(e.Attempts)}, []string{e.Judge}, []int64{int64(e.JudgeCost)},
		[]string{e.Customer}, []string{e.tagsColumn()}, []string{e.guardsColumn()}}
}
