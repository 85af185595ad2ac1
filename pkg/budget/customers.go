package budget

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Customers' budgets (Policy.Customers). A key's customer has an account
// of its own, named by the key id and the customer (accountOf): its
// counters, its alerts and, with a shared store, its rows in
// budget_counters. Its state is a keyState kept in its key's state
// (keyState.customers, not with the keys: the defaults and the rate
// limits are keys' only), whose policy holds the customer's limits as its key's policy last gave
// them, and which is only ever locked after its key's: Reserve, Settle,
// Release and Record lock the key, then the customer, so the two are
// charged together, all or nothing, and never deadlock.
//
// Only the customers of keys that have customer budgets are counted: a
// key's requests without a customer, and every request of a key without
// customer budgets, touch no customer account (no allocation, no second
// lock). The spend of each counted customer is rebuilt from the ledger at
// Open, as keys' is, and when SetPolicy gives customer budgets to a key
// that had none.

// accountSep separates the key id and the customer in an account id. No
// key id holds it (keys.Store's are key_<hex>).
const accountSep = "\x1f"

// accountOf is the account id of keyID's customer.
func accountOf(keyID, customer string) string { return keyID + accountSep + customer }

// splitAccount is the key id and the customer of an account id (customer
// "" for a key's own id).
func splitAccount(id string) (keyID, customer string) {
	keyID, customer, _ = strings.Cut(id, accountSep)
	return keyID, customer
}

// customerState returns the state of a customer's account (an account
// id, accountOf), creating it with empty counters on first use.
func (a *Accounts) customerState(account string) *keyState {
	keyID, customer := splitAccount(account)
	st := a.state(keyID)
	st.mu.Lock()
	defer st.mu.Unlock()
	return a.customerOf(st, customer)
}

// customerOf is customerState for the key's state st, locked: no account
// id is built, so a request of a known customer allocates nothing here.
func (a *Accounts) customerOf(st *keyState, customer string) *keyState {
	if cs, ok := st.customers[customer]; ok {
		return cs
	}
	cs := &keyState{open: map[string]*hold{}, done: map[string]struct{}{}, fired: map[alertKey]struct{}{}, customer: customer}
	cs.explicit = true // never the defaults
	now := a.now()
	for i, p := range periods {
		cs.cur[i].start, cs.cur[i].end = p.Window(now, a.loc)
	}
	if st.customers == nil {
		st.customers = map[string]*keyState{}
	}
	st.customers[customer] = cs
	return cs
}

// MaxCustomersPerKey bounds the customers of one key whose spend a
// process counts (each costs an account in memory): a request of a new
// customer beyond it is refused rather than letting a key holder grow
// the gateway's memory with made-up customer names.
var MaxCustomersPerKey = 100_000

// customerRoom refuses a request of a customer the key does not count
// yet when it already counts MaxCustomersPerKey. The caller holds st.mu.
func customerRoom(st *keyState, customer string) error {
	if customer == "" || st.policy.Customers == nil || len(st.customers) < MaxCustomersPerKey {
		return nil
	}
	if _, ok := st.customers[customer]; ok {
		return nil
	}
	return &llm.Error{Status: http.StatusTooManyRequests, Type: llm.TypeRateLimit, Code: "too_many_customers",
		Message: fmt.Sprintf("this key's customer budgets already count %d customers, the most one key may have; requests of a new customer are refused", MaxCustomersPerKey)}
}

// lockCustomer returns the state of the key's customer, locked, with its
// limits as the key's policy gives them now, or nil when the request is
// subject to no customer account (no customer, or a key without customer
// budgets). The caller holds st.mu and unlocks the result.
func (a *Accounts) lockCustomer(st *keyState, keyID, customer string) *keyState {
	if customer == "" || st.policy.Customers == nil {
		return nil
	}
	cs := a.customerOf(st, customer)
	cs.mu.Lock()
	cs.policy.Limits, cs.policy.Webhooks = st.policy.Customers.limits(customer), st.policy.Webhooks
	return cs
}

// ReserveFor is Reserve for a request of the key's customer: amount must
// fit the key's limits and the customer's (Policy.Customers), and is held
// in both or in neither. A refusal by the customer's limits is the same
// 402, its message naming the customer's budget. An empty customer, or a
// key without customer budgets, is Reserve.
func (a *Accounts) ReserveFor(ctx context.Context, keyID, customer, requestID string, amount llm.Micros) (Reservation, error) {
	return a.reserve(ctx, keyID, customer, requestID, amount)
}

// RemainingFor is Remaining for a request of the key's customer: the
// smaller of the key's room and the customer's.
func (a *Accounts) RemainingFor(keyID, customer string) (remaining llm.Micros, limited bool) {
	st := a.state(keyID)
	now := a.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.rollover(now, a.loc)
	remaining, limited = st.remaining()
	if cs := a.lockCustomer(st, keyID, customer); cs != nil {
		cs.rollover(now, a.loc)
		if r, ok := cs.remaining(); ok && (!limited || r < remaining) {
			remaining, limited = r, true
		}
		cs.mu.Unlock()
	}
	return remaining, limited
}

// CustomerStatus is a customer's budget as
// GET /admin/keys/{id}/customers/{customer} shows it.
type CustomerStatus struct {
	KeyID    string `json:"key_id"`
	Customer string `json:"customer"`
	// Counted: the key has customer budgets, so the customer's spend is
	// counted (false: Budgets and Periods are empty).
	Counted bool `json:"counted"`
	// Budgets has one entry per limit of the customer; Periods is its
	// spend in each current period, limited or not.
	Budgets []PeriodStatus `json:"budgets"`
	Periods []PeriodStatus `json:"periods"`
}

// CustomerStatus returns the customer's limits and spend in the current
// periods. With a shared store, the counters are read from it.
func (a *Accounts) CustomerStatus(keyID, customer string) CustomerStatus {
	out := CustomerStatus{KeyID: keyID, Customer: customer, Budgets: []PeriodStatus{}, Periods: []PeriodStatus{}}
	if a.shared != nil {
		a.refreshShared(keyID)
		a.refreshSharedCustomer(keyID, customer)
	}
	st := a.state(keyID)
	st.mu.Lock()
	cs := a.lockCustomer(st, keyID, customer)
	st.mu.Unlock()
	if cs == nil {
		return out
	}
	cs.mu.Unlock()
	ks := a.statusOf(accountOf(keyID, customer), cs)
	out.Counted, out.Budgets, out.Periods = true, ks.Budgets, ks.Periods
	return out
}

// chargeCustomer charges a recorded or settled cost to the customer's
// counters (cs locked) and returns the alerts it crossed.
func (a *Accounts) chargeCustomer(cs *keyState, h *hold, cost llm.Micros, at time.Time) []alert {
	now := a.now()
	cs.rollover(now, a.loc)
	for i := range cs.cur {
		if c := cs.counterAt(i, at); c != nil {
			if h != nil {
				c.reserved = max(c.reserved-h.amount, 0)
			}
			c.charge(cost)
		}
	}
	return cs.crossedAlerts(at, now, a.minElapsed)
}

// unreserveCustomer returns a hold's amount to the customer's counters.
func unreserveCustomer(cs *keyState, h *hold) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for i := range cs.cur {
		if c := cs.counterAt(i, h.at); c != nil {
			c.reserved = max(c.reserved-h.amount, 0)
		}
	}
}

// rebuildCustomers sets the spend of the key's customers in the current
// periods to the sum of their ledger rows (SQLite: SetPolicy giving the
// key customer budgets it had none of, so they start from what they spent).
func (a *Accounts) rebuildCustomers(ctx context.Context, keyID string) error {
	ledger, err := a.store.settled(ctx)
	if err != nil {
		return err
	}
	starts := a.periodStarts()
	rows, err := ledger.QueryContext(ctx, `SELECT customer,
		TOTAL(CASE WHEN ts >= ?1 THEN cost ELSE 0 END),
		TOTAL(CASE WHEN ts >= ?2 THEN cost ELSE 0 END),
		TOTAL(CASE WHEN ts >= ?3 THEN cost ELSE 0 END),
		TOTAL(cost)
		FROM budget_ledger WHERE key_id = ?4 AND customer != '' GROUP BY customer`, starts[0], starts[1], starts[2], keyID)
	if err != nil {
		return fmt.Errorf("budget: rebuild customers' spend: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var customer string
		var sums [len(periods)]float64
		if err := rows.Scan(&customer, &sums[0], &sums[1], &sums[2], &sums[3]); err != nil {
			return fmt.Errorf("budget: rebuild customers' spend: %w", err)
		}
		cs := a.customerState(accountOf(keyID, customer))
		cs.mu.Lock()
		for i := range sums {
			cs.cur[i].spent = microsOf(sums[i])
		}
		cs.mu.Unlock()
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("budget: rebuild customers' spend: %w", err)
	}
	return nil
}
