package budget

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/safe"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Accounts is the money side of the keys: their policies (stored in
// budget_policies) and, per key, the in-memory counters of every current
// period with the reservations held against them. Reserve, Settle and
// Release are exact under concurrency (see the package doc); Settle and
// Record hand the request's ledger row, with the alerts its charge
// crossed, to the Store. Safe for concurrent use.
type Accounts struct {
	db         *sql.DB // budget_policies only: the ledger tables are read through store
	loc        *time.Location
	now        func() time.Time
	defaults   Policy
	minElapsed float64  // Options.ProjectionMinElapsed
	keys       sync.Map // key id → *keyState

	policyMu sync.Mutex // serialises SetPolicy's write + publish

	// defaultsMu guards defaults (SetDefaults, defaults.go); read-held
	// while a new key's state takes them.
	defaultsMu sync.RWMutex

	limits *RateLimits // told every key's policy, for its rpm and tpm
	store  *Store
	alerts *Alerts

	// With Options.Shared (accounts_shared.go): the counters and
	// reservations are shared's; loops run the policy listener and the
	// release of expired reservations.
	sharedOpts *Shared
	shared     *SharedAccounts
	loops      *sharedLoops
	log        *slog.Logger
	sup        *safe.Supervisor
}

func newAccounts(db *sql.DB, o Options, limits *RateLimits, store *Store, alerts *Alerts) *Accounts {
	a := &Accounts{db: db, loc: o.Location, now: o.Now, defaults: o.Defaults, minElapsed: o.ProjectionMinElapsed,
		limits: limits, store: store, alerts: alerts, log: o.Logger, sup: o.Supervisor}
	if sh := o.Shared; sh != nil {
		a.sharedOpts = sh
		// The counters' commits do not wait for the WAL flush: Settle
		// then waits for a group flush (Store.flushWAL) that covers them,
		// so a settle is durable when acknowledged, at one flush per
		// group instead of one per request, and no counter row stays
		// locked through a flush.
		a.shared = NewSharedAccounts(sh.Pool, a, SharedOptions{Location: o.Location, Now: o.Now, Lease: sh.Lease, Durability: DurableNone})
	}
	return a
}

// load reads the policies, the spend of the current periods and the alerts
// already fired in them.
func (a *Accounts) load(ctx context.Context) error {
	rows, err := a.db.QueryContext(ctx, `SELECT key_id, policy FROM budget_policies`)
	if err != nil {
		return fmt.Errorf("budget: load policies: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, raw string
		if err := rows.Scan(&id, &raw); err != nil {
			return fmt.Errorf("budget: load policies: %w", err)
		}
		var p Policy
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			return fmt.Errorf("budget: load policy of %s: %w", id, err)
		}
		st := a.state(id)
		st.policy, st.explicit, st.loaded = p, true, true
		a.limits.set(id, p)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("budget: load policies: %w", err)
	}
	if a.shared != nil {
		// The counters are PostgreSQL's; alerts already stored are
		// recognised by their uid when stored again.
		return nil
	}

	// The ledger tables, read through the store: what the journal held is
	// in them.
	ledger, err := a.store.settled(ctx)
	if err != nil {
		return err
	}
	// One scan of the (key_id, ts, cost) index gives every key's total and
	// the sums since the start of each current period. TOTAL, not SUM: SUM
	// fails on integer overflow, and a ledger holding an absurd cost (an
	// upstream reporting 2^62 tokens) must still open, with that key's
	// spend saturated. TOTAL adds in a double, exact for every sum below
	// 2^53 micro-dollars ($9 billion).
	// Grouped by customer too: a key's spend is the sum of its groups',
	// and the customers of keys with customer budgets get theirs.
	starts := a.periodStarts()
	rows, err = ledger.QueryContext(ctx, `SELECT key_id, customer,
		TOTAL(CASE WHEN ts >= ?1 THEN cost ELSE 0 END),
		TOTAL(CASE WHEN ts >= ?2 THEN cost ELSE 0 END),
		TOTAL(CASE WHEN ts >= ?3 THEN cost ELSE 0 END),
		TOTAL(cost)
		FROM budget_ledger GROUP BY key_id, customer`, starts[0], starts[1], starts[2])
	if err != nil {
		return fmt.Errorf("budget: rebuild spend: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, customer string
		var sums [len(periods)]float64
		if err := rows.Scan(&id, &customer, &sums[0], &sums[1], &sums[2], &sums[3]); err != nil {
			return fmt.Errorf("budget: rebuild spend: %w", err)
		}
		st := a.state(id)
		for i := range sums {
			st.cur[i].spent = addSat(st.cur[i].spent, microsOf(sums[i]))
		}
		if customer != "" && st.policy.Customers != nil {
			cs := a.customerState(accountOf(id, customer))
			for i := range sums {
				cs.cur[i].spent = microsOf(sums[i])
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("budget: rebuild spend: %w", err)
	}

	// overspend alerts fire per request, not once per period: nothing to
	// remember of them.
	rows, err = ledger.QueryContext(ctx, `SELECT key_id, period, period_start, event, threshold, limit_micros FROM budget_alerts
		WHERE (period = 'total' OR period_start >= ?) AND event != ?`, min(starts[0], starts[1], starts[2]), EventOverspend)
	if err != nil {
		return fmt.Errorf("budget: load alerts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var k alertKey
		if err := rows.Scan(&id, &k.period, &k.start, &k.event, &k.ppm, &k.limit); err != nil {
			return fmt.Errorf("budget: load alerts: %w", err)
		}
		if !k.period.Valid() {
			continue
		}
		if _, customer := splitAccount(id); customer != "" {
			a.customerState(id).fired[k] = struct{}{}
		} else {
			a.state(id).fired[k] = struct{}{}
		}
	}
	return rows.Err()
}

// periodStarts are the starts of the current daily, weekly and monthly
// periods, unix ms.
func (a *Accounts) periodStarts() [len(periods)]int64 {
	now := a.now()
	var starts [len(periods)]int64
	for i, p := range periods[:Total.index()] {
		s, _ := p.Window(now, a.loc)
		starts[i] = s.UnixMilli()
	}
	return starts
}

// microsOf converts a sum TOTAL returned, saturating at the int64 bounds.
func microsOf(f float64) llm.Micros {
	switch {
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return llm.Micros(math.Round(f))
}

// state returns the key's in-memory state, creating it (with the default
// policy and empty counters) on first use. Every key with ledger rows or a
// stored policy was created by load, so a key created later has no spend
// yet.
func (a *Accounts) state(keyID string) *keyState {
	if st, ok := a.keys.Load(keyID); ok {
		return st.(*keyState)
	}
	a.defaultsMu.RLock() // a SetDefaults that runs after this sees the key
	defer a.defaultsMu.RUnlock()
	st := &keyState{
		policy: a.defaults,
		open:   map[string]*hold{},
		done:   map[string]struct{}{},
		fired:  map[alertKey]struct{}{},
	}
	now := a.now()
	for i, p := range periods {
		st.cur[i].start, st.cur[i].end = p.Window(now, a.loc)
	}
	actual, _ := a.keys.LoadOrStore(keyID, st)
	return actual.(*keyState)
}

// Defaults returns the policy of keys with none of their own, for the
// admin API to show or to start from.
func (a *Accounts) Defaults() Policy {
	a.defaultsMu.RLock()
	defer a.defaultsMu.RUnlock()
	return a.defaults.clone()
}

// Location is the time zone periods are aligned to.
func (a *Accounts) Location() *time.Location { return a.loc }

// Policy returns the key's policy and whether it is its own (false: the
// defaults).
func (a *Accounts) Policy(keyID string) (Policy, bool) {
	st := a.state(keyID)
	if a.shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
		st = a.sharedState(ctx, keyID)
		cancel()
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.policy.clone(), st.explicit
}

// SetPolicy validates and stores the key's policy; it applies to the next
// request. Spend so far in each period is kept: lowering a limit below it
// refuses every later request of the period; alerts already fired for an
// unchanged limit do not fire again.
func (a *Accounts) SetPolicy(ctx context.Context, keyID string, p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	p = p.clone()
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("budget: %w", err)
	}
	a.policyMu.Lock()
	defer a.policyMu.Unlock()
	if err := a.writePolicy(ctx, a.db, keyID, raw); err != nil {
		return err
	}
	if err := a.countCustomers(ctx, keyID, p); err != nil {
		return err
	}
	a.usePolicy(keyID, p)
	return nil
}

// countCustomers rebuilds the spend of the key's customers when p gives
// the key customer budgets it had none of (SQLite; a shared store's
// customer counters count from then on). Callers hold policyMu.
func (a *Accounts) countCustomers(ctx context.Context, keyID string, p Policy) error {
	if p.Customers == nil || a.shared != nil {
		return nil
	}
	st := a.state(keyID)
	st.mu.Lock()
	had := st.policy.Customers != nil
	st.mu.Unlock()
	if had {
		return nil
	}
	return a.rebuildCustomers(ctx, keyID)
}

// SetPolicyTx is SetPolicy's write made in tx, a transaction on the
// ledger's database that the caller commits or rolls back (with other
// writes: PATCH /admin/keys changes a key and its policy all or nothing).
// The policy takes effect only when the caller, once tx has ended, calls
// done with whether it committed; until then other policy changes of this
// process wait. done must be called exactly once when err is nil.
func (a *Accounts) SetPolicyTx(ctx context.Context, tx *sql.Tx, keyID string, p Policy) (done func(committed bool), err error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p = p.clone()
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("budget: %w", err)
	}
	a.policyMu.Lock()
	if err := a.writePolicy(ctx, tx, keyID, raw); err != nil {
		a.policyMu.Unlock()
		return nil, err
	}
	return func(committed bool) {
		defer a.policyMu.Unlock()
		if committed {
			if err := a.countCustomers(context.WithoutCancel(ctx), keyID, p); err != nil {
				a.log.Error("budget: rebuilding the spend of a key's customers failed; they count from now", "key_id", keyID, "err", err)
			}
			a.usePolicy(keyID, p)
		}
	}, nil
}

// execer is a *sql.DB or a *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// writePolicy stores a policy's row; on PostgreSQL it also notifies the
// other replicas (at the commit, when db is a transaction). Callers hold
// policyMu.
func (a *Accounts) writePolicy(ctx context.Context, db execer, keyID string, raw []byte) error {
	if _, err := db.ExecContext(ctx, a.store.q(`INSERT INTO budget_policies (key_id, policy, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (key_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at`),
		keyID, string(raw), a.now().UnixMilli()); err != nil {
		return fmt.Errorf("budget: set policy: %w", err)
	}
	if a.shared != nil {
		if _, err := db.ExecContext(ctx, `SELECT pg_notify($1, $2)`, policyChannel, keyID); err != nil {
			// The others' resync picks it up within PolicyResync.
			a.log.Warn("budget: notifying the other replicas of a policy failed", "key_id", keyID, "err", err)
		}
	}
	return nil
}

// usePolicy makes a stored policy the key's, here. Callers hold policyMu.
func (a *Accounts) usePolicy(keyID string, p Policy) {
	st := a.state(keyID)
	st.mu.Lock()
	st.policy, st.explicit = p, true
	if a.shared != nil {
		st.loaded = true
	}
	st.mu.Unlock()
	a.limits.set(keyID, p)
}

// Reservation is money held for one request until it is settled or
// released.
type Reservation struct {
	KeyID string
	// Customer is the customer whose budget holds the amount too ("":
	// none).
	Customer  string
	RequestID string
	Amount    llm.Micros
	// At is when the request was admitted: it is charged to the periods
	// that contain At, even if it settles after one of them ended.
	At time.Time
}

// Reserve holds amount (the request's maximum cost) against every limit of
// the key, atomically: either all limits have room for it or nothing is
// held. A request id that already holds a reservation gets that same
// reservation back (whatever amount it asks for now); a settled one gets
// ErrSettled.
//
// When a limit has no room the error is a 402 *llm.Error (type
// insufficient_quota, code budget_exceeded) whose chain holds ErrExhausted
// and an *Exhausted with the details; RetryAfter is the time until every
// refusing period has reset (none when a total budget refuses), and
// the x-tollgate-budget-remaining-usd and x-tollgate-budget-reset headers
// are set.
func (a *Accounts) Reserve(ctx context.Context, keyID, requestID string, amount llm.Micros) (Reservation, error) {
	return a.reserve(ctx, keyID, "", requestID, amount)
}

func (a *Accounts) reserve(ctx context.Context, keyID, customer, requestID string, amount llm.Micros) (Reservation, error) {
	if amount < 0 {
		return Reservation{}, fmt.Errorf("budget: negative reservation %d", amount)
	}
	if a.shared != nil {
		return a.reserveShared(ctx, keyID, customer, requestID, amount)
	}
	st := a.state(keyID)
	now := a.now()
	st.mu.Lock()
	if h, ok := st.open[requestID]; ok {
		st.mu.Unlock()
		r := Reservation{KeyID: keyID, RequestID: requestID, Amount: h.amount, At: h.at}
		if cs := st.custOpen[requestID]; cs != nil {
			r.Customer = cs.customer
		}
		return r, nil
	}
	if st.isDone(requestID) {
		st.mu.Unlock()
		return Reservation{}, fmt.Errorf("budget: %s: %w", requestID, ErrSettled)
	}
	st.rollover(now, a.loc)
	if err := customerRoom(st, customer); err != nil {
		st.mu.Unlock()
		return Reservation{}, err
	}
	if ex := st.refusal(keyID, "", amount); ex != nil {
		alerts := st.exhaustedAlerts(ex, now)
		webhooks := st.policy.Webhooks
		st.mu.Unlock()
		a.alerts.enqueue(keyID, alerts, webhooks)
		return Reservation{}, ex.httpError(now)
	}
	cs := a.lockCustomer(st, keyID, customer)
	if cs != nil {
		cs.rollover(now, a.loc)
		if ex := cs.refusal(keyID, customer, amount); ex != nil {
			if r, _ := st.remaining(); r < ex.Remaining {
				ex.Remaining = r
			}
			alerts := cs.exhaustedAlerts(ex, now)
			webhooks := cs.policy.Webhooks
			cs.mu.Unlock()
			st.mu.Unlock()
			a.alerts.enqueue(accountOf(keyID, customer), alerts, webhooks)
			return Reservation{}, ex.httpError(now)
		}
		for i := range cs.cur {
			cs.cur[i].reserved = addSat(cs.cur[i].reserved, amount)
		}
		cs.mu.Unlock()
	} else {
		customer = ""
	}
	for i := range st.cur {
		st.cur[i].reserved = addSat(st.cur[i].reserved, amount)
	}
	st.open[requestID] = &hold{amount: amount, at: now}
	if cs != nil {
		if st.custOpen == nil {
			st.custOpen = map[string]*keyState{}
		}
		st.custOpen[requestID] = cs
	}
	st.mu.Unlock()
	return Reservation{KeyID: keyID, Customer: customer, RequestID: requestID, Amount: amount, At: now}, nil
}

// refusal is the *Exhausted of a reservation of amount that some limit of
// st (a key's or a customer's account, locked) has no room for; nil when
// all have room.
func (st *keyState) refusal(keyID, customer string, amount llm.Micros) *Exhausted {
	var ex *Exhausted
	for _, lim := range st.policy.Limits {
		c := &st.cur[lim.Period.index()]
		if addSat(c.used(), amount) <= lim.Amount {
			continue
		}
		if ex == nil {
			ex = &Exhausted{KeyID: keyID, Customer: customer, Requested: amount}
		}
		ex.Limits = append(ex.Limits, statusOf(lim, c))
	}
	if ex != nil {
		ex.Remaining, _ = st.remaining()
	}
	return ex
}

// Fits reports whether a reservation of amount would succeed now, without
// holding anything: the downgrade path asks it of each cheaper candidate,
// then reserves the one it picks (which may still fail if a concurrent
// request took the room in between).
func (a *Accounts) Fits(keyID string, amount llm.Micros) bool {
	if a.shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
		defer cancel()
		a.sharedState(ctx, keyID)
		ok, err := a.shared.Fits(ctx, keyID, amount)
		return ok && err == nil
	}
	st := a.state(keyID)
	now := a.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.rollover(now, a.loc)
	for _, lim := range st.policy.Limits {
		c := &st.cur[lim.Period.index()]
		if addSat(c.used(), amount) > lim.Amount {
			return false
		}
	}
	return true
}

// Remaining is the most a request of the key could reserve now (the
// smallest room left across its limits); limited is false when the key
// has no limit. With a shared store it is as this replica's last
// statement on the key's counters left them.
func (a *Accounts) Remaining(keyID string) (remaining llm.Micros, limited bool) {
	st := a.state(keyID)
	now := a.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.rollover(now, a.loc)
	return st.remaining()
}

// Release drops the request's reservation (the upstream call failed or
// never happened). Releasing twice, or a settled request, does nothing.
// The request id may reserve again afterwards (a fallback to another
// model). Record the failure's ledger row separately.
func (a *Accounts) Release(r Reservation) {
	if a.shared != nil {
		a.releaseShared(r)
		return
	}
	st := a.state(r.KeyID)
	st.mu.Lock()
	defer st.mu.Unlock()
	h, ok := st.open[r.RequestID]
	if !ok {
		return
	}
	delete(st.open, r.RequestID)
	for i := range st.cur {
		if c := st.counterAt(i, h.at); c != nil {
			c.reserved = max(c.reserved-h.amount, 0)
		}
	}
	if cs := st.custOpen[r.RequestID]; cs != nil {
		delete(st.custOpen, r.RequestID)
		unreserveCustomer(cs, h)
	}
}

// Settle turns the request's reservation into its actual cost e.Cost,
// releasing the rest, and writes e as the request's ledger row. It returns
// once the row is committed or journaled (group commit: concurrent settles
// share one transaction or one append), so a response acknowledged after Settle returned is never
// missing from the ledger after a crash. e's KeyID, RequestID and Time are
// taken from r.
//
// Settling an already settled request is a no-op returning nil. The cost
// is charged as given to every period, even above the reservation (an
// upstream that ignored the output limit, or counted more prompt tokens
// than tollgate did): the ledger records what was spent, and a key that
// ends up over a limit is refused (402) until that period resets. A
// cost above the reservation also fires an overspend alert (a key with
// limits only).
func (a *Accounts) Settle(ctx context.Context, r Reservation, e Entry) error {
	if a.shared != nil {
		return a.settleShared(ctx, r, e)
	}
	st := a.state(r.KeyID)
	now := a.now()
	st.mu.Lock()
	h, ok := st.open[r.RequestID]
	if !ok {
		done := st.isDone(r.RequestID)
		st.mu.Unlock()
		if done {
			return nil
		}
		return fmt.Errorf("budget: settle %s: %w", r.RequestID, ErrNoReservation)
	}
	delete(st.open, r.RequestID)
	st.markDone(r.RequestID)
	st.rollover(now, a.loc)
	for i := range st.cur {
		if c := st.counterAt(i, h.at); c != nil {
			c.reserved = max(c.reserved-h.amount, 0)
			c.charge(e.Cost)
		}
	}
	var alerts []alert
	if e.Cost > h.amount {
		alerts = st.overspendAlert(r.RequestID, h, e.Cost, now)
	}
	alerts = append(alerts, st.crossedAlerts(h.at, now, a.minElapsed)...)
	webhooks := st.policy.Webhooks
	var custAlerts []alert
	var customer string
	if cs := st.custOpen[r.RequestID]; cs != nil {
		delete(st.custOpen, r.RequestID)
		cs.mu.Lock()
		custAlerts = a.chargeCustomer(cs, h, e.Cost, h.at)
		cs.mu.Unlock()
		e.Customer, customer = cs.customer, cs.customer
	}
	st.mu.Unlock()

	e.KeyID, e.RequestID, e.Time = r.KeyID, r.RequestID, h.at
	rows := a.alerts.rows(r.KeyID, alerts, webhooks, now)
	if custAlerts != nil {
		rows = append(rows, a.alerts.rows(accountOf(r.KeyID, customer), custAlerts, webhooks, now)...)
	}
	b := a.store.add(&e, rows)
	return b.wait(ctx)
}

// Record writes a ledger row that went through no reservation: a cache
// hit, a refused or failed request. It does not wait for the row to be
// committed (the next batch takes it; Close flushes). A row with a cost is
// charged to the key's periods all the same (no limit is checked: the
// money is already spent). A zero e.Time means now.
func (a *Accounts) Record(e Entry) {
	if a.shared != nil {
		a.recordShared(e)
		return
	}
	now := a.now()
	if e.Time.IsZero() || e.Time.After(now) {
		e.Time = now
	}
	var alerts []alert
	var webhooks []Webhook
	if e.Cost != 0 {
		st := a.state(e.KeyID)
		st.mu.Lock()
		st.rollover(now, a.loc)
		for i := range st.cur {
			if c := st.counterAt(i, e.Time); c != nil {
				c.charge(e.Cost)
			}
		}
		alerts = st.crossedAlerts(e.Time, now, a.minElapsed)
		webhooks = st.policy.Webhooks
		var custAlerts []alert
		if cs := a.lockCustomer(st, e.KeyID, e.Customer); cs != nil {
			custAlerts = a.chargeCustomer(cs, nil, e.Cost, e.Time)
			cs.mu.Unlock()
		}
		st.mu.Unlock()
		if custAlerts != nil {
			a.alerts.enqueue(accountOf(e.KeyID, e.Customer), custAlerts, webhooks)
		}
	}
	a.store.add(&e, a.alerts.rows(e.KeyID, alerts, webhooks, now))
}

// Status returns the key's limits and spend in the current periods.
func (a *Accounts) Status(keyID string) KeyStatus {
	st := a.state(keyID)
	if a.shared != nil {
		st = a.refreshShared(keyID)
	}
	return a.statusOf(keyID, st)
}

// Seen is Status without a round trip: with a shared store, the counters
// as this replica's own statements last left them (other replicas' charges
// since are not in them). For scrapes that visit every key.
func (a *Accounts) Seen(keyID string) KeyStatus { return a.statusOf(keyID, a.state(keyID)) }

func (a *Accounts) statusOf(keyID string, st *keyState) KeyStatus {
	now := a.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.rollover(now, a.loc)
	ks := KeyStatus{KeyID: keyID, Policy: st.policy.clone(), OwnPolicy: st.explicit, Budgets: []PeriodStatus{}}
	for _, lim := range st.policy.Limits {
		ks.Budgets = append(ks.Budgets, statusOf(lim, &st.cur[lim.Period.index()]))
	}
	for i, p := range periods {
		if lim, ok := st.policy.Limit(p); ok {
			ks.Periods = append(ks.Periods, statusOf(lim, &st.cur[i]))
			continue
		}
		c := &st.cur[i]
		ks.Periods = append(ks.Periods, PeriodStatus{Period: p, Spent: c.spent, Reserved: c.reserved, Start: c.start, ResetsAt: c.end})
	}
	return ks
}

// Exhausted details a refused reservation; it is in the chain of the
// error Reserve returns and matches errors.Is(err, ErrExhausted).
type Exhausted struct {
	KeyID string
	// Customer: the limits that refused are this customer's (Policy.Customers),
	// not the key's own.
	Customer  string
	Requested llm.Micros
	Remaining llm.Micros     // the smallest room left across all the key's limits
	Limits    []PeriodStatus // the limits that had no room
}

func (e *Exhausted) Error() string {
	l := e.Limits[0]
	if e.Customer != "" {
		return fmt.Sprintf("budget exceeded: the %s budget of the customer %q of this API key is $%s, $%s is spent and $%s reserved; this request may cost up to $%s",
			l.Period, e.Customer, l.Limit, l.Spent, l.Reserved, e.Requested)
	}
	return fmt.Sprintf("budget exceeded: the %s budget of this API key is $%s, $%s is spent and $%s reserved; this request may cost up to $%s",
		l.Period, l.Limit, l.Spent, l.Reserved, e.Requested)
}

// Is makes errors.Is(err, ErrExhausted) hold.
func (e *Exhausted) Is(target error) bool { return target == ErrExhausted }

// ResetsAt is when every refusing period has reset; zero when one of them
// is a total budget (it never resets).
func (e *Exhausted) ResetsAt() time.Time {
	var at time.Time
	for _, l := range e.Limits {
		if l.ResetsAt.IsZero() {
			return time.Time{}
		}
		if l.ResetsAt.After(at) {
			at = l.ResetsAt
		}
	}
	return at
}

// httpError is the 402 the client gets.
func (e *Exhausted) httpError(now time.Time) *llm.Error {
	h := http.Header{}
	h.Set(HeaderRemaining, e.Remaining.String())
	var retry time.Duration
	if at := e.ResetsAt(); !at.IsZero() {
		h.Set(HeaderReset, at.UTC().Format(time.RFC3339))
		retry = at.Sub(now)
	}
	return &llm.Error{Status: http.StatusPaymentRequired, Type: llm.TypeQuota, Code: "budget_exceeded",
		Message: e.Error(), RetryAfter: retry, Header: h, Err: e}
}

// Response headers about the budget.
const (
	HeaderRemaining = "x-tollgate-budget-remaining-usd" // dollars, six decimals
	HeaderReset     = "x-tollgate-budget-reset"         // RFC 3339, UTC
)
