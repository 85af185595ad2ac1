package budget

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/pkg/llm"
)

// OnExhausted says what a request that does not fit the budget gets.
type OnExhausted string

const (
	// Reject answers 402 (the default).
	Reject OnExhausted = "reject"
	// Downgrade asks the router for the cheapest capable model whose
	// reservation fits (Accounts.Fits); 402 only when none does.
	Downgrade OnExhausted = "downgrade"
)

// DefaultThresholds are the alert thresholds of a limit that names none.
var DefaultThresholds = []float64{0.5, 0.8, 1.0}

// Limit is one budget of a key: at most Amount per Period.
type Limit struct {
	Period Period
	Amount llm.Micros
	// Thresholds are fractions of Amount, in (0, 1], at which an alert
	// fires (once per period each). Nil means DefaultThresholds; an empty
	// non-nil slice means no threshold alerts.
	Thresholds []float64
}

// thresholds is the effective list.
func (l Limit) thresholds() []float64 {
	if l.Thresholds == nil {
		return DefaultThresholds
	}
	return l.Thresholds
}

// limitJSON is the admin API's shape of a Limit.
type limitJSON struct {
	Period     Period      `json:"period"`
	LimitUSD   json.Number `json:"limit_usd"`
	Thresholds []float64   `json:"alert_thresholds,omitempty"`
}

// MarshalJSON writes {"period", "limit_usd", "alert_thresholds"}; the
// amount is written as an exact decimal, never through a float.
func (l Limit) MarshalJSON() ([]byte, error) {
	return json.Marshal(limitJSON{Period: l.Period, LimitUSD: json.Number(l.Amount.String()), Thresholds: l.Thresholds})
}

// UnmarshalJSON reads the admin API's shape; limit_usd is parsed as an
// exact decimal (at most six decimals).
func (l *Limit) UnmarshalJSON(b []byte) error {
	var j limitJSON
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return err
	}
	amount, err := ParseUSD(string(j.LimitUSD))
	if err != nil {
		return fmt.Errorf("limit_usd: %w", err)
	}
	*l = Limit{Period: j.Period, Amount: amount, Thresholds: j.Thresholds}
	return nil
}

// ParseUSD parses a decimal dollar amount ("5", "0.25", "1e-3") exactly
// into micro-dollars. More than six decimals is an error rather than a
// silent rounding.
func ParseUSD(s string) (llm.Micros, error) {
	// big.Rat would compute 10^exponent for "1e999999999": bound it first.
	if _, exp, found := strings.Cut(strings.ToLower(s), "e"); found {
		if e, err := strconv.Atoi(exp); err != nil || e > 30 || e < -30 {
			return 0, fmt.Errorf("bad amount %q", s)
		}
	}
	if len(s) > 64 {
		return 0, fmt.Errorf("amount %q is too long", s)
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, fmt.Errorf("bad amount %q", s)
	}
	r.Mul(r, big.NewRat(int64(llm.MicrosPerUSD), 1))
	if !r.IsInt() {
		return 0, fmt.Errorf("amount %q has more than six decimals", s)
	}
	if !r.Num().IsInt64() || r.Num().Int64() > 1<<53 || r.Num().Int64() < -(1<<53) {
		return 0, fmt.Errorf("amount %q is out of range", s)
	}
	return llm.Micros(r.Num().Int64()), nil
}

// Webhook is an alert receiver.
type Webhook struct {
	URL string `json:"url"`
	// Slack sends Slack's incoming-webhook shape {"text": ...} instead of
	// tollgate's event JSON. Both are signed.
	Slack bool `json:"slack,omitempty"`
}

// Policy is a key's budget policy. The zero Policy has no limit at all.
type Policy struct {
	Limits      []Limit     `json:"budgets"`
	RPM         int         `json:"rpm,omitempty"` // requests per minute, 0: unlimited
	TPM         int         `json:"tpm,omitempty"` // prompt tokens per minute, 0: unlimited
	OnExhausted OnExhausted `json:"on_exhausted,omitempty"`
	// Webhooks receive this key's alerts, besides the ledger's global ones.
	Webhooks []Webhook `json:"alert_webhooks,omitempty"`
	// Customers are budgets of the key's customers (a request's customer:
	// Caller.Customer), each held besides the key's own limits. Nil: the
	// key's customers have no budget of their own.
	Customers *CustomerBudgets `json:"customer_budgets,omitempty"`
}

// CustomerBudgets are the limits of each customer of a key: a customer
// named in Customers has those limits, any other the Default ones (none
// when Default is empty). Periods, thresholds and alerts are those of a
// key's limits; a request with a customer must fit the key's limits and
// its customer's, all or none.
type CustomerBudgets struct {
	Default   []Limit            `json:"default,omitempty"`
	Customers map[string][]Limit `json:"customers,omitempty"`
}

// limits are customer's limits (nil: none). It does not allocate.
func (c *CustomerBudgets) limits(customer string) []Limit {
	if c == nil || customer == "" {
		return nil
	}
	if l, ok := c.Customers[customer]; ok {
		return l
	}
	return c.Default
}

// maxCustomerLen bounds a customer's name, as it is kept in memory and in
// every ledger row.
const maxCustomerLen = 256

// Limit returns the key's limit for p, if it has one.
func (p *Policy) Limit(period Period) (Limit, bool) {
	for _, l := range p.Limits {
		if l.Period == period {
			return l, true
		}
	}
	return Limit{}, false
}

// Validate reports every problem of the policy, each with its JSON path.
func (p *Policy) Validate() error {
	errs := validLimits("budgets", p.Limits)
	if c := p.Customers; c != nil {
		errs = append(errs, validLimits("customer_budgets.default", c.Default)...)
		for _, name := range slices.Sorted(maps.Keys(c.Customers)) {
			at := fmt.Sprintf("customer_budgets.customers[%q]", name)
			if name == "" || len(name) > maxCustomerLen {
				errs = append(errs, fmt.Errorf("%s: a customer's name has 1 to %d bytes", at, maxCustomerLen))
			}
			errs = append(errs, validLimits(at, c.Customers[name])...)
		}
	}
	if p.RPM < 0 {
		errs = append(errs, errors.New("rpm: must not be negative"))
	}
	if p.TPM < 0 {
		errs = append(errs, errors.New("tpm: must not be negative"))
	}
	switch p.OnExhausted {
	case "", Reject, Downgrade:
	default:
		errs = append(errs, fmt.Errorf("on_exhausted: %q is neither reject nor downgrade", p.OnExhausted))
	}
	for i, w := range p.Webhooks {
		if err := validURL(w.URL); err != nil {
			errs = append(errs, fmt.Errorf("alert_webhooks[%d].url: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// validLimits reports every problem of a list of limits at path.
func validLimits(path string, limits []Limit) []error {
	var errs []error
	seen := map[Period]bool{}
	for i, l := range limits {
		at := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case !l.Period.Valid():
			errs = append(errs, fmt.Errorf("%s.period: unknown period %q (want daily, weekly, monthly or total)", at, l.Period))
		case seen[l.Period]:
			errs = append(errs, fmt.Errorf("%s.period: a second %s budget", at, l.Period))
		}
		seen[l.Period] = true
		if l.Amount <= 0 {
			errs = append(errs, fmt.Errorf("%s.limit_usd: must be positive", at))
		}
		for j, th := range l.Thresholds {
			if !(th > 0 && th <= 1) {
				errs = append(errs, fmt.Errorf("%s.alert_thresholds[%d]: %v is not in (0, 1]", at, j, th))
			}
		}
	}
	return errs
}

func validURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

// clone copies the policy so the caller's slices are not shared.
func (p Policy) clone() Policy {
	q := p
	q.Limits = cloneLimits(p.Limits)
	if q.Limits == nil {
		q.Limits = []Limit{}
	}
	q.Webhooks = append([]Webhook(nil), p.Webhooks...)
	if c := p.Customers; c != nil {
		cc := &CustomerBudgets{Default: cloneLimits(c.Default)}
		if c.Customers != nil {
			cc.Customers = make(map[string][]Limit, len(c.Customers))
			for name, l := range c.Customers {
				cc.Customers[name] = cloneLimits(l)
			}
		}
		q.Customers = cc
		if len(c.Default) == 0 && len(c.Customers) == 0 {
			q.Customers = nil // {} is no customer budget at all
		}
	}
	return q
}

// ppm is a threshold in parts per million, the exact unit alerts are keyed by.
func ppm(th float64) int64 { return int64(th*1e6 + 0.5) }

// cloneLimits copies limits and their thresholds (nil stays nil).
func cloneLimits(limits []Limit) []Limit {
	if limits == nil {
		return nil
	}
	out := make([]Limit, len(limits))
	for i, l := range limits {
		out[i] = l
		if l.Thresholds != nil {
			out[i].Thresholds = append([]float64{}, l.Thresholds...)
		}
	}
	return out
}
