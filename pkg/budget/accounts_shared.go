package budget

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/pglisten"
	"github.com/tollgate/tollgate/pkg/llm"
)

// Accounts with Options.Shared: every admission decision is
// SharedAccounts' (PostgreSQL's), so replicas enforce a key's budget
// exactly together. What stays in memory, per key, is the policy (loaded
// on first use, reloaded on NOTIFY and every PolicyResync), the alerts
// this replica fired, and a mirror of the key's counters as this
// replica's statements last left them: alerts are decided on it (an
// alert's uid makes the one stored first the only one stored, whichever
// replica crosses the threshold) and Remaining reads it.

// policyChannel carries the key id of every policy stored.
const policyChannel = "tollgate_budget_policies"

// sharedLoops are the background work of a shared Accounts: the policy
// listener and resync, and the release of expired reservations.
type sharedLoops struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// start runs the shared store's background loops (nothing without one).
func (a *Accounts) start() {
	sh := a.sharedOpts
	if sh == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.loops = &sharedLoops{cancel: cancel}
	a.loops.wg.Go(func() {
		pglisten.Run(ctx, a.db, policyChannel, "budget policies", pglisten.Handler{
			Subscribed: func(ctx context.Context) error { a.forgetPolicies(); return nil },
			Notified:   func(_ context.Context, keyID string) { a.forgetPolicy(keyID) },
		}, a.log)
	})
	a.loops.wg.Go(func() { a.every(ctx, sh.PolicyResync, func(context.Context) { a.forgetPolicies() }) })
	a.loops.wg.Go(func() {
		a.every(ctx, sh.ExpireInterval, func(ctx context.Context) {
			n, err := a.shared.ReleaseExpired(ctx)
			if err != nil && ctx.Err() == nil {
				a.log.Warn("budget: releasing expired reservations", "err", err)
			}
			if n > 0 {
				a.log.Warn("budget: released reservations whose lease expired (their replica died or stalled)", "released", n)
			}
			retain := max(2*sh.Lease, time.Hour)
			if _, err := a.shared.Prune(ctx, a.now().Add(-retain)); err != nil && ctx.Err() == nil {
				a.log.Warn("budget: pruning finished reservations", "err", err)
			}
		})
	})
}

// close stops the loops start started.
func (a *Accounts) close() {
	if a.loops != nil {
		a.loops.cancel()
		a.loops.wg.Wait()
	}
}

func (a *Accounts) every(ctx context.Context, d time.Duration, fn func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			func() {
				defer func() {
					if v := recover(); v != nil {
						a.sup.Recovered("budget shared loop", v)
					}
				}()
				fn(ctx)
			}()
		}
	}
}

// forgetPolicy makes the key's next request read its policy again.
func (a *Accounts) forgetPolicy(keyID string) {
	if v, ok := a.keys.Load(keyID); ok {
		st := v.(*keyState)
		st.mu.Lock()
		st.loaded = false
		st.mu.Unlock()
	}
}

func (a *Accounts) forgetPolicies() {
	a.keys.Range(func(_, v any) bool {
		st := v.(*keyState)
		st.mu.Lock()
		st.loaded = false
		st.mu.Unlock()
		return true
	})
}

// sharedState is the key's state with its policy as PostgreSQL has it
// (read when not loaded since it last changed). A read that fails keeps
// the policy this replica had, said in the log: the reservation that
// follows still goes through PostgreSQL, so a limit is never skipped for
// a key whose policy was ever loaded.
func (a *Accounts) sharedState(ctx context.Context, keyID string) *keyState {
	st := a.state(keyID)
	st.mu.Lock()
	loaded := st.loaded
	st.mu.Unlock()
	if loaded {
		return st
	}
	var raw string
	err := a.db.QueryRowContext(ctx, `SELECT policy FROM budget_policies WHERE key_id = $1`, keyID).Scan(&raw)
	a.defaultsMu.RLock() // a SetDefaults waits: the key gets the new defaults from it, or reads them here
	defer a.defaultsMu.RUnlock()
	p, explicit := a.defaults, false
	switch {
	case err == nil:
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			a.log.Error("budget: stored policy unreadable; keeping the one in memory", "key_id", keyID, "err", err)
			return st
		}
		explicit = true
	case !isNoRows(err):
		a.log.Warn("budget: reading a policy failed; keeping the one in memory", "key_id", keyID, "err", err)
		return st
	}
	st.mu.Lock()
	st.policy, st.explicit, st.loaded = p, explicit, true
	st.mu.Unlock()
	a.limits.set(keyID, p)
	return st
}

// mirror copies counters a statement of this replica returned into the
// key's in-memory ones. Called with st.mu held.
func (st *keyState) mirror(sc sharedCounters, now time.Time, loc *time.Location) {
	st.rollover(now, loc)
	for i, p := range sc.w.at {
		if !sc.have[i] {
			continue
		}
		t := time.UnixMilli(sc.w.starts[i])
		if c := st.counterAt(p.index(), t); c != nil {
			c.spent, c.reserved = sc.cs[i].spent, sc.cs[i].reserved
		}
	}
}

func (a *Accounts) reserveShared(ctx context.Context, keyID, customer, requestID string, amount llm.Micros) (Reservation, error) {
	st := a.sharedState(ctx, keyID)
	st.mu.Lock()
	err := customerRoom(st, customer)
	st.mu.Unlock()
	if err != nil {
		return Reservation{}, err
	}
	r, err := a.shared.reserve(ctx, keyID, customer, requestID, amount)
	var ex *Exhausted
	if err == nil || errors.Is(err, ErrSettled) {
		return r, err
	}
	if !errors.As(err, &ex) {
		return r, storeUnavailable(err)
	}
	now := a.now()
	st.mu.Lock()
	account, refused := keyID, st
	if ex.Customer != "" {
		account = accountOf(keyID, ex.Customer)
		if refused = a.lockCustomer(st, keyID, ex.Customer); refused == nil { // its budgets were removed meanwhile
			st.mu.Unlock()
			return Reservation{}, err
		}
		st.mu.Unlock()
	} else {
		st.rollover(now, a.loc)
	}
	refused.rollover(now, a.loc)
	for _, l := range ex.Limits { // what PostgreSQL said when it refused
		if c := refused.counterAt(l.Period.index(), l.Start); c != nil {
			c.spent, c.reserved = l.Spent, l.Reserved
		}
	}
	alerts := refused.exhaustedAlerts(ex, now)
	webhooks := refused.policy.Webhooks
	refused.mu.Unlock()
	a.alerts.enqueue(account, alerts, webhooks)
	return Reservation{}, err
}

func (a *Accounts) settleShared(ctx context.Context, r Reservation, e Entry) error {
	e.KeyID, e.RequestID, e.Time = r.KeyID, r.RequestID, r.At
	// The charge and the ledger row commit in one statement, so after a
	// kill -9 the spend is still the sum of the rows. It commits without
	// waiting for the WAL flush, which would hold the key's counter rows
	// locked through it (every request of a busy key would queue behind
	// each flush); flushWAL then waits for one flush shared by every
	// settle of the moment, before the answer goes out.
	sc, err := a.shared.settle(ctx, r, e.Cost, &e)
	if errors.Is(err, ErrNoReservation) {
		// PostgreSQL has no hold for it (forgotten in a crash of the
		// database: see SharedAccounts, Durability): the money is spent
		// all the same.
		a.log.Warn("budget: settle found no reservation; charging the cost without one", "request_id", r.RequestID, "key_id", r.KeyID)
		sc, err = a.shared.record(ctx, r.KeyID, r.Customer, r.At, e.Cost, r.RequestID, &e)
	}
	if err != nil {
		return storeUnavailable(err)
	}
	if sc.state == "settled" {
		return nil // settled before: its row is written
	}
	if err := a.store.flushWAL(ctx); err != nil {
		return storeUnavailable(err)
	}
	st := a.state(r.KeyID)
	now := a.now()
	st.mu.Lock()
	st.mirror(sc, now, a.loc)
	var alerts []alert
	if e.Cost > r.Amount {
		alerts = st.overspendAlert(r.RequestID, &hold{amount: r.Amount, at: r.At}, e.Cost, now)
	}
	alerts = append(alerts, st.crossedAlerts(r.At, now, a.minElapsed)...)
	webhooks := st.policy.Webhooks
	custAlerts := a.mirrorCustomer(st, r.KeyID, r.Customer, sc, r.At, now)
	st.mu.Unlock()
	// The alerts follow, not waited for: lost with this replica, they are
	// decided again by the next charge of the key on any replica (an
	// alert's uid keeps it to one).
	rows := a.alerts.rows(r.KeyID, alerts, webhooks, now)
	if custAlerts != nil {
		rows = append(rows, a.alerts.rows(accountOf(r.KeyID, r.Customer), custAlerts, webhooks, now)...)
	}
	if rows != nil {
		a.store.add(nil, rows)
	}
	return nil
}

// mirrorCustomer copies the customer's counters a statement returned
// into its mirror and returns the alerts they crossed (st, the key's
// state, locked).
func (a *Accounts) mirrorCustomer(st *keyState, keyID, customer string, sc sharedCounters, at, now time.Time) []alert {
	if sc.customer == nil {
		return nil
	}
	cs := a.lockCustomer(st, keyID, customer)
	if cs == nil {
		return nil
	}
	defer cs.mu.Unlock()
	cs.mirror(*sc.customer, now, a.loc)
	return cs.crossedAlerts(at, now, a.minElapsed)
}

func (a *Accounts) releaseShared(r Reservation) {
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	if err := a.shared.Release(ctx, r); err != nil {
		// The lease releases it in the end.
		a.log.Warn("budget: release failed; the reservation is held until its lease expires", "request_id", r.RequestID, "err", err)
	}
}

func (a *Accounts) recordShared(e Entry) {
	now := a.now()
	if e.Time.IsZero() || e.Time.After(now) {
		e.Time = now
	}
	if e.Cost == 0 {
		a.store.add(&e, nil) // nothing to charge: the row follows by group commit
		return
	}
	// The charge and the row in one statement, as Settle's.
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	st := a.sharedState(ctx, e.KeyID)
	customer := ""
	st.mu.Lock()
	if st.policy.Customers != nil {
		customer = e.Customer // a customer of a key with customer budgets: its account is charged too
	}
	st.mu.Unlock()
	sc, err := a.shared.record(ctx, e.KeyID, customer, e.Time, e.Cost, e.RequestID, &e)
	cancel()
	if err != nil {
		// The row still goes to the ledger: reports stay right; the
		// key's counters miss this cost.
		a.log.Error("budget: charging a cost to the shared counters failed", "request_id", e.RequestID, "key_id", e.KeyID, "cost", e.Cost.String(), "err", err)
		a.store.add(&e, nil)
		return
	}
	st.mu.Lock()
	st.mirror(sc, now, a.loc)
	alerts := st.crossedAlerts(e.Time, now, a.minElapsed)
	webhooks := st.policy.Webhooks
	custAlerts := a.mirrorCustomer(st, e.KeyID, customer, sc, e.Time, now)
	st.mu.Unlock()
	rows := a.alerts.rows(e.KeyID, alerts, webhooks, now)
	if custAlerts != nil {
		rows = append(rows, a.alerts.rows(accountOf(e.KeyID, customer), custAlerts, webhooks, now)...)
	}
	if rows != nil {
		a.store.add(nil, rows)
	}
}

// refreshShared reads the key's current counters into the mirror (Status,
// Fits): a failed read keeps the mirror, said in the log.
func (a *Accounts) refreshShared(keyID string) *keyState {
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	st := a.sharedState(ctx, keyID)
	now := a.now()
	w := a.shared.windowsAt(now)
	cs, err := a.shared.counters(ctx, keyID, w)
	if err != nil {
		a.log.Warn("budget: reading shared counters failed; showing this replica's last view", "key_id", keyID, "err", err)
		return st
	}
	sc := sharedCounters{w: w, cs: cs}
	for i := range sc.have {
		sc.have[i] = true
	}
	st.mu.Lock()
	st.mirror(sc, now, a.loc)
	st.mu.Unlock()
	return st
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// storeUnavailable is the 503 of a shared store that failed: the request
// is refused rather than admitted unaccounted.
func storeUnavailable(err error) error {
	return &llm.Error{Status: http.StatusServiceUnavailable, Type: llm.TypeServer, Code: "budget_store_unavailable",
		Message: "tollgate could not reach the store that keeps budgets and rate limits; try again shortly", Err: err}
}
