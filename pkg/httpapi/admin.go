package httpapi

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/audit"
	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
)

// keyObject is a key as the admin API shows it: never its secret, except
// Key once in the answer to its creation.
type keyObject struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	Key           string            `json:"key,omitempty"`
	Name          string            `json:"name"`
	Hint          string            `json:"hint"`
	AllowedModels []string          `json:"allowed_models"`
	Metadata      map[string]string `json:"metadata"`
	AllowBYOK     bool              `json:"allow_byok"`
	Guards        []keys.Guard      `json:"guards"` // the key's own, replacing the routes' ([]: none); null: the routes' apply
	CreatedAt     time.Time         `json:"created_at"`
	Revoked       bool              `json:"revoked"`
	RevokedAt     *time.Time        `json:"revoked_at,omitempty"`
}

func toKeyObject(k *keys.Key) keyObject {
	allowed := k.AllowedModels
	if allowed == nil {
		allowed = []string{}
	}
	return keyObject{ID: k.ID, Object: "api_key", Name: k.Name, Hint: k.Hint + "…", AllowedModels: allowed, Metadata: k.Metadata,
		AllowBYOK: k.AllowBYOK, Guards: k.Guards, CreatedAt: k.CreatedAt, Revoked: k.RevokedAt != nil, RevokedAt: k.RevokedAt}
}

type createKeyRequest struct {
	Name          string            `json:"name"`
	AllowedModels []string          `json:"allowed_models"`
	Metadata      map[string]string `json:"metadata"`
	AllowBYOK     bool              `json:"allow_byok"`
	Guards        []keys.Guard      `json:"guards"` // absent or null: the routes' apply; []: none
	budget.Policy                   // budgets, rpm, tpm, on_exhausted, alert_webhooks
	raw           []byte
}

func (s *server) createKey(c *gin.Context) {
	req, ok := decodeBody(s, c, func(body []byte) (req createKeyRequest, err error) {
		req.raw = body
		return req, decodeStrict(body, &req)
	})
	if !ok {
		return
	}
	withPolicy := hasPolicy(req.raw)
	if withPolicy {
		if s.Budget == nil {
			writeError(c, llm.InvalidParam("budgets", "budgets are not enabled on this gateway"))
			return
		}
		if err := req.Policy.Validate(); err != nil {
			writeError(c, &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "invalid_budget", Message: err.Error(), Err: err})
			return
		}
	}
	req.Name = strings.TrimSpace(req.Name)
	if err := validKeyFields(&req.Name, &req.AllowedModels); err != nil {
		writeError(c, err)
		return
	}
	if err := s.checkGuards(req.Guards); err != nil {
		writeError(c, err)
		return
	}
	// The key and its policy are written in one transaction: a store
	// failure leaves neither, and the policy takes effect in memory only
	// once it has committed.
	ctx := c.Request.Context()
	var policyDone func(committed bool)
	var with func(tx *sql.Tx, id string) error
	if withPolicy {
		with = func(tx *sql.Tx, id string) (err error) {
			policyDone, err = s.Budget.Accounts.SetPolicyTx(ctx, tx, id, req.Policy)
			return err
		}
	}
	k, secret, err := s.Keys.CreateWith(ctx, keys.New{Name: req.Name, AllowedModels: req.AllowedModels, Metadata: req.Metadata, AllowBYOK: req.AllowBYOK,
		Guards: req.Guards}, with)
	if policyDone != nil {
		policyDone(err == nil)
	}
	switch {
	case errors.Is(err, context.Canceled):
		writeError(c, err)
		return
	case err != nil:
		// Nothing of the error (which may name the database) is shown.
		s.Logger.Error("create key: the store failed; no key was created", "err", err)
		writeError(c, storeUnavailable("No key was created: the store failed. Retry shortly.", err))
		return
	}
	s.audit(c, audit.ActionKeyCreate, k.ID, nil, s.keySnapshot(k))
	detail := s.keyDetail(k)
	c.Header("Cache-Control", "no-store") // the only time the secret is shown
	c.JSON(http.StatusCreated, withSecret{detail, secret})
}

func (s *server) listKeys(c *gin.Context) {
	all := s.Keys.List()
	data := make([]keyObject, len(all))
	for i, k := range all {
		data[i] = toKeyObject(k)
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": data})
}

func (s *server) getKey(c *gin.Context) {
	k, ok := s.Keys.Get(c.Param("id"))
	if !ok {
		writeError(c, keyNotFound(c.Param("id")))
		return
	}
	c.JSON(http.StatusOK, s.keyDetail(k))
}

// withSecret adds the secret to a key's JSON, once, in the creation answer.
type withSecret struct {
	detail any
	secret string
}

func (w withSecret) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(w.detail)
	if err != nil {
		return nil, err
	}
	sec, _ := json.Marshal(w.secret)
	return llm.SetField(b, "key", sec)
}

func (s *server) revokeKey(c *gin.Context) {
	var before any
	if k, ok := s.Keys.Get(c.Param("id")); ok {
		before = s.keySnapshot(k)
	}
	k, err := s.Keys.Revoke(c.Request.Context(), c.Param("id"))
	if errors.Is(err, keys.ErrNotFound) {
		writeError(c, keyNotFound(c.Param("id")))
		return
	}
	if err != nil {
		writeError(c, err)
		return
	}
	s.audit(c, audit.ActionKeyRevoke, k.ID, before, s.keySnapshot(k))
	c.JSON(http.StatusOK, toKeyObject(k))
}

func keyNotFound(id string) error {
	return &llm.Error{Status: http.StatusNotFound, Type: llm.TypeNotFound, Code: "key_not_found", Param: "id", Message: "no key with id " + id}
}

// decodeStrict decodes an admin body; unknown fields are errors, so a typo
// in a setting is never silently ignored, and so are keys sent twice or
// spelled in another case (llm.CheckKeys), which encoding/json would read
// without a word.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return llm.InvalidParam(typeErr.Field, "invalid type for '"+typeErr.Field+"': expected "+llm.JSONType(typeErr.Type))
		}
		return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Message: "invalid JSON body: " + err.Error()}
	}
	if dec.More() {
		return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Message: "invalid JSON body: trailing data after the object"}
	}
	return llm.CheckKeys(body, llm.ShapeOf(reflect.TypeOf(v)))
}

func itoa(i int) string { return strconv.Itoa(i) }

// providersHealth shows every deployment's breaker: state, counts, last
// error (status and code only) and when an open breaker half-opens.
func (s *server) providersHealth(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": s.Gateway.Health()})
}

// listGuards is GET /admin/guards: the configured guards, each with its
// detectors, action, directions, the routes it guards and its hits since
// the process started (matches in requests and answers, refusals); an
// empty list when none is configured. Names and counts only: what a guard
// matched is never kept.
func (s *server) listGuards(c *gin.Context) {
	guards := s.Gateway.Guards()
	if guards == nil {
		guards = []gateway.GuardInfo{}
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"guards": guards})
}
