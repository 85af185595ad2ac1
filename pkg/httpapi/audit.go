package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/audit"
	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/llm"
)

// Auditor records admin actions and lists them (audit.Store).
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
	List(ctx context.Context, f audit.Filter) (audit.Page, error)
}

// Audit headers. HeaderActor is the operator's own name for the audit log
// (the admin key is one shared secret, so it cannot say who they are): a
// claim, recorded as sent, sanitized and bounded. HeaderAudit is "failed"
// on the answer to an admin action that happened but whose audit row could
// not be written (it is in the log at ERROR instead).
const (
	HeaderActor = "x-tollgate-actor"
	HeaderAudit = "x-tollgate-audit"
)

// Bounds of what a client's headers put in an audit row.
const (
	maxActorName  = 64
	maxUserAgent  = 256
	maxRemoteAddr = 64
	maxAuditQuery = 256 // action= and target= filters
)

// auditTimeout bounds writing one audit row. The action has happened by
// then, so the write does not stop when the client goes away.
const auditTimeout = 5 * time.Second

// audit records an admin action that happened: who asked (actorOf), what
// it was aimed at and JSON snapshots of it before and after (nil: none;
// never a secret). Call it after the action succeeded and before the
// answer is written. The answer still reports the action when the row
// cannot be written (it did happen): the entry goes to the log at ERROR,
// the store counts the failure, and the answer carries
// x-tollgate-audit: failed.
func (s *server) audit(c *gin.Context, action, target string, before, after any) {
	if s.Audit == nil {
		return
	}
	e := audit.Entry{Time: s.Now(), RequestID: callOf(c).id, Actor: actorOf(c), Action: action, Target: target}
	var err error
	if e.Before, err = snapshot(before); err == nil {
		e.After, err = snapshot(after)
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), auditTimeout)
		err = s.Audit.Record(ctx, e)
		cancel()
	}
	if err != nil {
		s.Logger.Error("audit: an admin action happened but its audit row was not written", "id", e.RequestID, "action", action,
			"target", target, "actor", e.Actor.Name, "remote_addr", e.Actor.RemoteAddr, "before", string(e.Before), "after", string(e.After), "err", err)
		c.Header(HeaderAudit, "failed")
	}
}

func snapshot(v any) (json.RawMessage, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return v, nil
	}
	return json.Marshal(v)
}

// actorOf is who asked: the admin key (one shared secret), the name the
// operator gave in x-tollgate-actor, the TCP peer's address (a proxy's,
// behind one: X-Forwarded-For is not trusted, since any client can send
// it) and the User-Agent.
func actorOf(c *gin.Context) audit.Actor {
	host := c.Request.RemoteAddr
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return audit.Actor{Kind: "admin", Name: sanitize(c.GetHeader(HeaderActor), maxActorName),
		RemoteAddr: sanitize(host, maxRemoteAddr), UserAgent: sanitize(c.GetHeader("User-Agent"), maxUserAgent)}
}

// sanitize keeps the printable characters of v (no control or formatting
// characters, such as newlines or bidirectional overrides, and no invalid
// UTF-8), with runs of spaces collapsed, trimmed, cut to at most max bytes
// on a character boundary.
func sanitize(v string, max int) string {
	var b strings.Builder
	space := false
	for _, r := range v {
		switch {
		case r == utf8.RuneError || !unicode.IsPrint(r) && !unicode.IsSpace(r):
			continue
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		}
		n := utf8.RuneLen(r)
		if space {
			n++
		}
		if b.Len()+n > max {
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// auditedKey is a key as the audit log shows it: what the admin API shows
// (never its secret nor its hash) and its budget policy, with the alert
// webhooks' URLs reduced to their host (a Slack webhook's path is its
// secret).
type auditedKey struct {
	keyObject
	Policy *auditedPolicy `json:"budget_policy,omitempty"` // absent: budgets are disabled
}

type auditedPolicy struct {
	Own bool `json:"own"` // false: the configured defaults apply
	budget.Policy
}

// keySnapshot is k as the audit log records it.
func (s *server) keySnapshot(k *keys.Key) auditedKey {
	return auditedKey{keyObject: toKeyObject(k), Policy: s.policySnapshot(k.ID)}
}

// policySnapshot is the key's budget policy as the audit log records it;
// nil when budgets are disabled.
func (s *server) policySnapshot(keyID string) *auditedPolicy {
	if s.Budget == nil {
		return nil
	}
	p, own := s.Budget.Accounts.Policy(keyID)
	if p.Limits == nil {
		p.Limits = []budget.Limit{}
	}
	hooks := make([]budget.Webhook, len(p.Webhooks))
	for i, w := range p.Webhooks {
		hooks[i] = budget.Webhook{URL: redactURL(w.URL), Slack: w.Slack}
	}
	p.Webhooks = hooks
	return &auditedPolicy{Own: own, Policy: p}
}

// redactURL keeps a URL's scheme and host and replaces the rest by a short
// fingerprint, so the log shows that a webhook changed without holding the
// secret its path or query may be.
func redactURL(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	fp := "sha256:" + hex.EncodeToString(sum[:4])
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(redacted, " + fp + ")"
	}
	return u.Scheme + "://" + u.Hostname() + "/… (redacted, " + fp + ")"
}

// auditEvent is one audit row as GET /admin/audit shows it.
type auditEvent struct {
	ID        int64           `json:"id"`
	Object    string          `json:"object"`
	Time      time.Time       `json:"time"`
	RequestID string          `json:"request_id"`
	Actor     audit.Actor     `json:"actor"`
	Action    string          `json:"action"`
	Target    string          `json:"target"`
	Before    json.RawMessage `json:"before"`
	After     json.RawMessage `json:"after"`
}

// listAudit is GET /admin/audit: the audit log newest first, one page
// (limit=, default 50, at most 500; after= the next_cursor of the page
// before), filtered by action=, target= and the RFC 3339 times since=
// (inclusive) and until= (exclusive).
func (s *server) listAudit(c *gin.Context) {
	if s.Audit == nil {
		writeError(c, &llm.Error{Status: http.StatusNotFound, Type: llm.TypeNotFound, Code: "audit_disabled",
			Message: "the audit log is not enabled on this gateway"})
		return
	}
	f, err := auditFilter(c)
	if err != nil {
		writeError(c, err)
		return
	}
	p, err := s.Audit.List(c.Request.Context(), f)
	if err != nil {
		writeError(c, err)
		return
	}
	data := make([]auditEvent, len(p.Entries))
	for i, e := range p.Entries {
		data[i] = auditEvent{ID: e.ID, Object: "audit_event", Time: e.Time, RequestID: e.RequestID, Actor: e.Actor,
			Action: e.Action, Target: e.Target, Before: e.Before, After: e.After}
	}
	var cursor *string
	if p.Next != nil {
		v := p.Next.String()
		cursor = &v
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": data, "has_more": p.Next != nil, "next_cursor": cursor})
}

// auditFilter reads GET /admin/audit's query; every problem is a 400
// naming its parameter.
func auditFilter(c *gin.Context) (audit.Filter, error) {
	f := audit.Filter{Limit: audit.DefaultLimit, Action: c.Query("action"), Target: c.Query("target")}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > audit.MaxLimit {
			return f, llm.InvalidParam("limit", "limit must be a whole number from 1 to "+strconv.Itoa(audit.MaxLimit))
		}
		f.Limit = n
	}
	if v := c.Query("after"); v != "" {
		var err error
		if f.After, err = audit.ParseCursor(v); err != nil {
			return f, llm.InvalidParam("after", "after must be the next_cursor of an earlier page, as it was given")
		}
	}
	if f.Action != "" && !audit.KnownAction(f.Action) {
		return f, llm.InvalidParam("action", "action must be one of "+strings.Join(audit.Actions, ", ")+"; got "+llm.Clip(f.Action, maxAuditQuery))
	}
	if len(f.Target) > maxAuditQuery {
		return f, llm.InvalidParam("target", "target is longer than "+strconv.Itoa(maxAuditQuery)+" bytes")
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := c.Query(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, llm.InvalidParam(p.name, p.name+" must be an RFC 3339 time (2026-11-01T00:00:00Z)")
			}
			*p.t = t
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return f, llm.InvalidParam("until", "until must be after since")
	}
	return f, nil
}
