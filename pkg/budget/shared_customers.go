package budget

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate/tollgate/pkg/llm"
)

// sharedReserveCustomer is sharedReserve for a request of a customer with
// a budget: the reservation row names the customer, and the counters of
// both accounts (the key's, the customer's: $12, one element per counter
// row, like $6 to $9) are upserted in one statement, in account and
// period order, each under its limit ($13 names each row's period and
// account, for the limit's lookup). A refusal names the periods that had
// room, the customer's prefixed "c:".
const sharedReserveCustomer = `WITH res AS (
	INSERT INTO budget_reservations AS r (request_id, key_id, amount, admitted_at, lease_expires_at, state, customer)
	VALUES ($1, $2, $3, $4, $5, 'held', $11)
	ON CONFLICT (request_id) DO UPDATE SET key_id = excluded.key_id, amount = excluded.amount,
		admitted_at = excluded.admitted_at, lease_expires_at = excluded.lease_expires_at,
		state = 'held', cost = NULL, settled_at = NULL, customer = excluded.customer
	WHERE r.state IN ('released', 'expired')
	RETURNING 1
), cnt AS (
	INSERT INTO budget_counters AS k (key_id, period, period_start, period_end, reserved)
	SELECT p.acct, p.period, p.start, p.stop, $3
	FROM unnest($12::text[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[]) AS p (acct, period, start, stop, lim)
	WHERE EXISTS (SELECT 1 FROM res) AND (p.lim < 0 OR $3 <= p.lim)
	ORDER BY p.acct, p.period
	ON CONFLICT (key_id, period, period_start) DO UPDATE
	SET reserved = LEAST(k.reserved::numeric + excluded.reserved, 9223372036854775807)::bigint
	WHERE ($9::bigint[])[array_position($13::text[], k.period || '|' || k.key_id)] < 0
		OR k.spent::numeric + k.reserved + excluded.reserved <= ($9::bigint[])[array_position($13::text[], k.period || '|' || k.key_id)]
	RETURNING CASE WHEN k.key_id = $2 THEN k.period ELSE 'c:' || k.period END AS period
)
SELECT r.n, CASE WHEN r.n > 0 AND c.n < cardinality($6::text[]) THEN budget_refuse(c.ok) ELSE c.n END
FROM (SELECT count(*) AS n FROM res) r,
	(SELECT count(*) AS n, coalesce(array_agg(period), '{}') AS ok FROM cnt) c,
	(SELECT set_config('synchronous_commit', $10, true)) s`

// accountsOf are the accounts a request of the key's customer is charged
// to: the key's, and the customer's when it has one.
func accountsOf(keyID, customer string) []string {
	if customer == "" {
		return []string{keyID}
	}
	return []string{keyID, accountOf(keyID, customer)}
}

// reserveCustomer holds amount against the key's limits and the
// customer's, in one statement.
func (s *SharedAccounts) reserveCustomer(ctx context.Context, keyID, customer, requestID string, amount llm.Micros, policy Policy, now time.Time) (Reservation, error) {
	w := s.windowsAt(now)
	custPolicy := Policy{Limits: policy.Customers.limits(customer)}
	const n = 2 * len(periods)
	var accts, names, slots [n]string
	var starts, ends, limits [n]int64
	for j, acct := range accountsOf(keyID, customer) {
		pol := &policy
		if j == 1 {
			pol = &custPolicy
		}
		for i, p := range w.at {
			k := j*len(periods) + i
			accts[k], names[k], starts[k], ends[k] = acct, w.names[i], w.starts[i], w.ends[i]
			slots[k] = w.names[i] + "|" + acct
			limits[k] = noLimit
			if lim, ok := pol.Limit(p); ok {
				limits[k] = int64(lim.Amount)
			}
		}
	}
	var inserted, held int64
	err := s.pool.QueryRow(ctx, sharedReserveCustomer, requestID, keyID, int64(amount), now.UnixMilli(), now.Add(s.lease).UnixMilli(),
		names[:], starts[:], ends[:], limits[:], s.reserveCommit, customer, accts[:], slots[:]).Scan(&inserted, &held)
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == refusedCode {
		var keyOK, custOK []string
		for _, p := range strings.Split(pe.Detail, ",") {
			if c, ok := strings.CutPrefix(p, "c:"); ok {
				custOK = append(custOK, c)
			} else {
				keyOK = append(keyOK, p)
			}
		}
		for _, lim := range policy.Limits {
			if !slices.Contains(keyOK, string(lim.Period)) { // the key's own limit refused
				return Reservation{}, s.exhausted(ctx, keyID, amount, policy, w, keyOK, now)
			}
		}
		return Reservation{}, s.exhaustedOf(ctx, keyID, customer, amount, custPolicy, w, custOK, now)
	}
	if err != nil {
		return Reservation{}, fmt.Errorf("budget: reserve: %w", err)
	}
	if inserted == 0 { // the id holds a reservation or was settled
		return s.existing(ctx, requestID)
	}
	return Reservation{KeyID: keyID, Customer: customer, RequestID: requestID, Amount: amount, At: now}, nil
}

// refreshSharedCustomer reads the customer's current counters into its
// mirror (CustomerStatus); a failed read keeps the mirror.
func (a *Accounts) refreshSharedCustomer(keyID, customer string) {
	if customer == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	now := a.now()
	w := a.shared.windowsAt(now)
	account := accountOf(keyID, customer)
	cs, err := a.shared.counters(ctx, account, w)
	if err != nil {
		a.log.Warn("budget: reading shared counters failed; showing this replica's last view", "key_id", keyID, "err", err)
		return
	}
	sc := sharedCounters{w: w, cs: cs}
	for i := range sc.have {
		sc.have[i] = true
	}
	st := a.customerState(account)
	st.mu.Lock()
	st.mirror(sc, now, a.loc)
	st.mu.Unlock()
}
