package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/audit"
	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
)

// keyDetail is GET /admin/keys/{id}: the key, its policy and its money in
// the current periods.
type keyDetail struct {
	keyObject
	RPM         int                `json:"rpm"`
	TPM         int                `json:"tpm"`
	OnExhausted budget.OnExhausted `json:"on_exhausted"`
	Webhooks    []budget.Webhook   `json:"alert_webhooks"`
	// CustomerBudgets are the limits of the key's customers (null: none).
	CustomerBudgets *budget.CustomerBudgets `json:"customer_budgets"`
	OwnPolicy       bool                    `json:"own_policy"` // false: the configured defaults apply
	Budgets         []budget.PeriodStatus   `json:"budgets"`
	Periods         []budget.PeriodStatus   `json:"periods"`
}

func (s *server) keyDetail(k *keys.Key) any {
	if s.Budget == nil {
		return toKeyObject(k)
	}
	st := s.Budget.Accounts.Status(k.ID)
	d := keyDetail{keyObject: toKeyObject(k), RPM: st.Policy.RPM, TPM: st.Policy.TPM, OnExhausted: st.Policy.OnExhausted,
		Webhooks: st.Policy.Webhooks, CustomerBudgets: st.Policy.Customers, OwnPolicy: st.OwnPolicy, Budgets: st.Budgets, Periods: st.Periods}
	if d.OnExhausted == "" {
		d.OnExhausted = budget.Reject
	}
	if d.Budgets == nil {
		d.Budgets = []budget.PeriodStatus{}
	}
	if d.Webhooks == nil {
		d.Webhooks = []budget.Webhook{}
	}
	return d
}

// hasPolicy reports whether a key-creation body set any budget field.
func hasPolicy(raw []byte) bool {
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(raw, &fields)
	for _, f := range []string{"budgets", "rpm", "tpm", "on_exhausted", "alert_webhooks", "customer_budgets"} {
		if _, ok := fields[f]; ok {
			return true
		}
	}
	return false
}

// setBudget is PUT /admin/keys/{id}/budget: the body is the key's whole
// policy, replacing the one it had (a field left out is reset, rpm to
// unlimited for instance); the answer shows the resulting policy. PATCH
// /admin/keys/{id} changes single fields.
func (s *server) setBudget(c *gin.Context) {
	k, ok := s.budgetedKey(c)
	if !ok {
		return
	}
	policy, ok := decodeBody(s, c, func(body []byte) (p budget.Policy, err error) {
		return p, decodeStrict(body, &p)
	})
	if !ok {
		return
	}
	before := s.policySnapshot(k.ID)
	if err := s.storePolicy(c, k.ID, policy); err != nil {
		writeError(c, err)
		return
	}
	s.audit(c, audit.ActionBudgetUpdate, k.ID, before, s.policySnapshot(k.ID))
	c.JSON(http.StatusOK, s.keyDetail(k))
}

// storePolicy validates and stores a key's policy; validation problems are
// 400s naming the field.
func (s *server) storePolicy(c *gin.Context, keyID string, p budget.Policy) error {
	if err := p.Validate(); err != nil {
		return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "invalid_budget", Message: err.Error(), Err: err}
	}
	return s.Budget.Accounts.SetPolicy(c.Request.Context(), keyID, p)
}

// budgetedKey is the key named in the path, when budgets are enabled; it
// answers the error itself otherwise.
func (s *server) budgetedKey(c *gin.Context) (*keys.Key, bool) {
	k, ok := s.Keys.Get(c.Param("id"))
	if !ok {
		writeError(c, keyNotFound(c.Param("id")))
		return nil, false
	}
	return k, s.budgetsOn(c)
}

func (s *server) budgetsOn(c *gin.Context) bool {
	if s.Budget == nil {
		writeError(c, &llm.Error{Status: http.StatusNotFound, Type: llm.TypeNotFound, Code: "budgets_disabled", Message: "budgets are not enabled on this gateway"})
		return false
	}
	return true
}

// spendRow is one ledger row in a key's history.
type spendRow struct {
	Time             time.Time   `json:"time"`
	RequestID        string      `json:"request_id"`
	Route            string      `json:"route"`
	RequestedModel   string      `json:"requested_model"`
	Model            string      `json:"model"`
	Provider         string      `json:"provider"`
	PromptTokens     int         `json:"prompt_tokens"`
	CompletionTokens int         `json:"completion_tokens"`
	CachedTokens     int         `json:"cached_tokens"`
	CostUSD          json.Number `json:"cost_usd"` // exact: six decimals
	SavedUSD         json.Number `json:"saved_usd"`
	Estimated        bool        `json:"cost_estimated"`
	Unpriced         bool        `json:"unpriced"`
	Cache            string      `json:"cache"`
	Status           int         `json:"status"`
	LatencyMS        float64     `json:"latency_ms"`
	Attempts         int         `json:"attempts"`
	// Judge is the verdict of the judge asked about an uncertain semantic
	// candidate (yes: served from the cache; no or failed: a miss),
	// JudgeCostUSD what it cost (part of cost_usd); absent when none was
	// asked.
	Judge        string      `json:"judge,omitempty"`
	JudgeCostUSD json.Number `json:"judge_cost_usd,omitempty"`
	// Customer and Tags: whom the request served and its metadata
	// (absent when none).
	Customer string            `json:"customer,omitempty"`
	Tags     map[string]string `json:"tags,omitempty"`
	// Guards counts the guards that fired on the request, by name
	// (absent when none did).
	Guards map[string]int `json:"guards,omitempty"`
}

// Spend pages: limit= rows a page (default and maximum below), cursor=
// the next_cursor of the page before.
const (
	defaultSpendLimit = 100
	maxSpendLimit     = 1000
)

// keySpend is GET /admin/keys/{id}/spend: one page of the key's ledger
// rows, oldest first, and the cursor of the next page (null after the
// last). A page is read from SQLite row by row, never the whole history.
func (s *server) keySpend(c *gin.Context) {
	k, ok := s.budgetedKey(c)
	if !ok {
		return
	}
	from, to, err := s.timeRange(c)
	if err != nil {
		writeError(c, err)
		return
	}
	limit, after, err := spendPaging(c)
	if err != nil {
		writeError(c, err)
		return
	}
	out := make([]spendRow, 0, min(limit, defaultSpendLimit))
	next, err := s.Budget.Store.SpendPage(c.Request.Context(), k.ID, from, to, after, limit, func(e budget.Entry) error {
		out = append(out, spendRow{Time: e.Time, RequestID: e.RequestID, Route: e.Route, RequestedModel: e.RequestedModel, Model: e.Model,
			Provider: e.Provider, PromptTokens: e.PromptTokens, CompletionTokens: e.CompletionTokens, CachedTokens: e.CachedTokens,
			CostUSD: json.Number(e.Cost.String()), SavedUSD: json.Number(e.Saved.String()), Estimated: e.Estimated, Unpriced: e.Unpriced, Cache: e.Cache,
			Status: e.Status, LatencyMS: float64(e.Latency.Microseconds()) / 1000, Attempts: e.Attempts, Judge: e.Judge,
			Customer: e.Customer, Tags: e.Tags, Guards: e.Guards})
		if e.Judge != "" {
			out[len(out)-1].JudgeCostUSD = json.Number(e.JudgeCost.String())
		}
		return nil
	})
	if err != nil {
		writeError(c, err)
		return
	}
	var cursor *string
	if next != nil {
		v := next.String()
		cursor = &v
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "key_id": k.ID, "data": out, "next_cursor": cursor})
}

// customerBudget is GET /admin/keys/{id}/customers/{customer}: the
// customer's limits (its own or the key's default customer budgets) and
// its spend in the current periods. counted is false when the key has no
// customer budgets (its customers' spend is then only in the ledger: see
// /admin/reports/cost?group_by=customer).
func (s *server) customerBudget(c *gin.Context) {
	k, ok := s.budgetedKey(c)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, s.Budget.Accounts.CustomerStatus(k.ID, c.Param("customer")))
}

// spendPaging reads limit= and cursor=.
func spendPaging(c *gin.Context) (limit int, after budget.SpendCursor, err error) {
	limit = defaultSpendLimit
	if v := c.Query("limit"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 1 || n > maxSpendLimit {
			return 0, after, llm.InvalidParam("limit", "limit must be a whole number from 1 to "+strconv.Itoa(maxSpendLimit))
		}
		limit = n
	}
	if v := c.Query("cursor"); v != "" {
		if after, err = budget.ParseSpendCursor(v); err != nil {
			return 0, after, llm.InvalidParam("cursor", "cursor must be the next_cursor of an earlier page, as it was given")
		}
	}
	return limit, after, nil
}

// costReport is GET /admin/reports/cost: JSON, or CSV streamed row by row
// for large ranges.
func (s *server) costReport(c *gin.Context) {
	if !s.budgetsOn(c) {
		return
	}
	from, to, err := s.timeRange(c)
	if err != nil {
		writeError(c, err)
		return
	}
	var groupBy []string
	if g := strings.TrimSpace(c.Query("group_by")); g != "" {
		for _, f := range strings.Split(g, ",") {
			groupBy = append(groupBy, strings.TrimSpace(f))
		}
	}
	var filter budget.ReportFilter
	if v, ok := c.GetQuery("customer"); ok {
		filter.Customer = &v // customer= (empty): the rows without a customer
	}
	if v := c.Query("tag"); v != "" {
		if !strings.Contains(v, "=") {
			writeError(c, llm.InvalidParam("tag", "tag must be name=value, got "+strconv.Quote(v)))
			return
		}
		filter.Tag = v
	}
	filter.Guard = c.Query("guard")
	switch format := c.DefaultQuery("format", "json"); format {
	case "json":
		rep, err := s.Budget.Store.Report(c.Request.Context(), from, to, groupBy, filter)
		if err != nil {
			writeError(c, badReport(err))
			return
		}
		rep.KeyName = func(id string) (string, bool) {
			k, ok := s.Keys.Get(id)
			if !ok {
				return "", false
			}
			return k.Name, true
		}
		c.JSON(http.StatusOK, rep)
	case "csv":
		// Validate before the first byte, so a bad group_by is still a 400.
		if _, err := s.Budget.Store.Report(c.Request.Context(), time.Unix(0, 0), time.Unix(0, 1), groupBy, filter); err != nil {
			writeError(c, badReport(err))
			return
		}
		c.Header("Content-Type", "text/csv; charset=utf-8")
		c.Header("Content-Disposition", `attachment; filename="tollgate-cost.csv"`)
		c.Status(http.StatusOK)
		if err := s.Budget.Store.WriteReportCSV(c.Request.Context(), c.Writer, from, to, groupBy, filter); err != nil {
			s.Logger.Warn("cost report: CSV cut short", "err", err)
		}
	default:
		writeError(c, llm.InvalidParam("format", "format must be json or csv, got "+format))
	}
}

func badReport(err error) error {
	if _, ok := llm.AsError(err); ok {
		return err
	}
	return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Param: "group_by", Message: err.Error(), Err: err}
}

// timeRange reads from= and to= as RFC 3339 times or dates (midnight in the
// ledger's time zone); either may be absent.
func (s *server) timeRange(c *gin.Context) (from, to time.Time, err error) {
	parse := func(name string) (time.Time, error) {
		v := strings.TrimSpace(c.Query(name))
		if v == "" {
			return time.Time{}, nil
		}
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return t, nil
		}
		if t, err := time.ParseInLocation(time.DateOnly, v, s.Budget.Accounts.Location()); err == nil {
			return t, nil
		}
		return time.Time{}, llm.InvalidParam(name, name+" must be an RFC 3339 time (2026-11-01T00:00:00Z) or a date (2026-11-01)")
	}
	if from, err = parse("from"); err != nil {
		return
	}
	if to, err = parse("to"); err != nil {
		return
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		err = llm.InvalidParam("to", "to must be after from")
	}
	return
}
