package httpapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/audit"
	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
)

// patchKeyRequest is PATCH /admin/keys/{id}: every field is optional, and
// only those sent change. A field sent as null is an error rather than
// "unchanged" or "cleared", which a reader could take either way: leave it
// out to keep it, send [] or {} to empty it. The exception is guards,
// whose three states all mean something: left out, kept; null, the
// routes' guards again; [], none.
type patchKeyRequest struct {
	Name          *string             `json:"name"`
	AllowedModels *[]string           `json:"allowed_models"`
	Metadata      *map[string]string  `json:"metadata"`
	AllowBYOK     *bool               `json:"allow_byok"`
	Guards        *[]keys.Guard       `json:"guards"` // sent as null: points to nil (see keys.Change)
	Budgets       *[]budget.Limit     `json:"budgets"`
	RPM           *int                `json:"rpm"`
	TPM           *int                `json:"tpm"`
	OnExhausted   *budget.OnExhausted `json:"on_exhausted"`
	Webhooks      *[]budget.Webhook   `json:"alert_webhooks"`
	// CustomerBudgets replaces the key's customer budgets whole ({}
	// removes them).
	CustomerBudgets *budget.CustomerBudgets `json:"customer_budgets"`
}

// policyChange reports whether the request changes the budget policy.
func (r *patchKeyRequest) policyChange() bool {
	return r.Budgets != nil || r.RPM != nil || r.TPM != nil || r.OnExhausted != nil || r.Webhooks != nil || r.CustomerBudgets != nil
}

// patchKey is PATCH /admin/keys/{id}: it changes only the fields sent, the
// key's own (name, allowed_models, metadata, allow_byok, guards) and its budget
// policy's (budgets, rpm, tpm, on_exhausted, alert_webhooks,
// customer_budgets), validated as
// POST /admin/keys validates them, and answers the key as GET does. Unlike
// PUT /admin/keys/{id}/budget, which replaces the whole policy, a policy
// field left out keeps its value; a key without a policy of its own starts
// from the configured defaults in effect. Everything is validated before
// anything is written.
func (s *server) patchKey(c *gin.Context) {
	id := c.Param("id")
	if _, ok := s.Keys.Get(id); !ok {
		writeError(c, keyNotFound(id))
		return
	}
	req, ok := decodeBody(s, c, func(body []byte) (req patchKeyRequest, err error) {
		if err := decodeStrict(body, &req); err != nil {
			return req, err
		}
		guardsNull, err := noNulls(body)
		if guardsNull {
			req.Guards = new([]keys.Guard) // back to the routes' guards
		}
		return req, err
	})
	if !ok {
		return
	}
	if req.Name != nil {
		name := strings.TrimSpace(*req.Name)
		req.Name = &name
	}
	if err := validKeyFields(req.Name, req.AllowedModels); err != nil {
		writeError(c, err)
		return
	}
	if req.Guards != nil {
		if err := s.checkGuards(*req.Guards); err != nil {
			writeError(c, err)
			return
		}
	}

	// One change at a time: the policy is read, changed and written back.
	s.patchMu.Lock()
	defer s.patchMu.Unlock()
	var policy budget.Policy
	if req.policyChange() {
		if s.Budget == nil {
			writeError(c, llm.InvalidParam(firstPolicyField(&req), "budgets are not enabled on this gateway"))
			return
		}
		policy, _ = s.Budget.Accounts.Policy(id)
		if req.Budgets != nil {
			policy.Limits = *req.Budgets
		}
		if req.RPM != nil {
			policy.RPM = *req.RPM
		}
		if req.TPM != nil {
			policy.TPM = *req.TPM
		}
		if req.OnExhausted != nil {
			policy.OnExhausted = *req.OnExhausted
		}
		if req.Webhooks != nil {
			policy.Webhooks = *req.Webhooks
		}
		if req.CustomerBudgets != nil {
			policy.Customers = req.CustomerBudgets
		}
		if err := policy.Validate(); err != nil {
			writeError(c, &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "invalid_budget", Message: err.Error(), Err: err})
			return
		}
	}

	var before any // the audit's: the key as it was
	if old, ok := s.Keys.Get(id); ok {
		before = s.keySnapshot(old)
	}
	// The key and its policy are written in one transaction (they share
	// the store's database), so a failure leaves both as they were; each
	// takes effect in memory only once it has committed.
	ctx := c.Request.Context()
	var policyDone func(committed bool)
	var with func(tx *sql.Tx) error
	if req.policyChange() {
		with = func(tx *sql.Tx) (err error) {
			policyDone, err = s.Budget.Accounts.SetPolicyTx(ctx, tx, id, policy)
			return err
		}
	}
	k, err := s.Keys.UpdateWith(ctx, id, keys.Change{Name: req.Name, AllowedModels: req.AllowedModels, Metadata: req.Metadata, AllowBYOK: req.AllowBYOK,
		Guards: req.Guards}, with)
	if policyDone != nil {
		policyDone(err == nil)
	}
	switch {
	case errors.Is(err, keys.ErrNotFound):
		writeError(c, keyNotFound(id))
		return
	case errors.Is(err, keys.ErrRevoked):
		writeError(c, &llm.Error{Status: http.StatusConflict, Type: llm.TypeInvalidRequest, Code: "key_revoked", Param: "id",
			Message: "key " + id + " is revoked: a revoked key cannot be changed"})
		return
	case errors.Is(err, context.Canceled):
		writeError(c, err)
		return
	case err != nil:
		// Nothing of the error (which may name the database) is shown.
		s.Logger.Error("patch key: the store failed; nothing was changed", "key_id", id, "err", err)
		writeError(c, storeUnavailable("The key and its budget policy were not changed: the store failed. Retry shortly.", err))
		return
	}
	s.audit(c, audit.ActionKeyUpdate, k.ID, before, s.keySnapshot(k))
	c.JSON(http.StatusOK, s.keyDetail(k))
}

// validKeyFields checks a key's name (already trimmed) and allowed models
// as POST /admin/keys does; nil is not sent.
func validKeyFields(name *string, allowed *[]string) error {
	if name != nil {
		switch {
		case *name == "":
			return llm.InvalidParam("name", "a key needs a name")
		case len(*name) > 200:
			return llm.InvalidParam("name", "name is longer than 200 characters")
		}
	}
	if allowed != nil {
		for i, m := range *allowed {
			if strings.TrimSpace(m) == "" {
				return llm.InvalidParam("allowed_models["+itoa(i)+"]", "model names must not be empty")
			}
		}
	}
	return nil
}

// noNulls refuses a top-level field sent as null (the body is a JSON
// object: decodeStrict has read it), except guards, whose null it
// reports.
func noNulls(body []byte) (guardsNull bool, err error) {
	var fields map[string]*json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return false, nil // decodeStrict already accepted the body
	}
	for name, v := range fields {
		switch {
		case v != nil:
		case name == "guards":
			guardsNull = true
		default:
			return false, llm.InvalidParam(name, name+" is null: leave a field out to keep it, or send an empty value to clear it")
		}
	}
	return guardsNull, nil
}

// checkGuards refuses a key's guard list the gateway cannot apply (a guard
// the config does not define, an action other than block, mask or log, two
// guards looking for the same kind of value); nil, the routes' guards, is
// always fine.
func (s *server) checkGuards(list []keys.Guard) error {
	if list == nil {
		return nil
	}
	if err := s.Gateway.CheckGuards(list); err != nil {
		return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Param: "guards", Message: err.Error(), Err: err}
	}
	return nil
}

// firstPolicyField names a policy field the request sets, for an error.
func firstPolicyField(r *patchKeyRequest) string {
	switch {
	case r.Budgets != nil:
		return "budgets"
	case r.RPM != nil:
		return "rpm"
	case r.TPM != nil:
		return "tpm"
	case r.OnExhausted != nil:
		return "on_exhausted"
	case r.CustomerBudgets != nil:
		return "customer_budgets"
	}
	return "alert_webhooks"
}

// storeUnavailable is the answer when the store failed a write that was
// rolled back: 503, so clients retry, with nothing of the database's error.
func storeUnavailable(msg string, err error) error {
	return &llm.Error{Status: http.StatusServiceUnavailable, Type: llm.TypeServer, Code: "store_unavailable", Message: msg, Err: err}
}
