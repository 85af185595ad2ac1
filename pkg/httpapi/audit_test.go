package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/audit"
	"github.com/tollgate/tollgate/pkg/httpapi"
)

// adminCall is adminDo with request headers, returning the answer's headers.
func adminCall(t *testing.T, s *stack, method, path, body string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, s.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminKey)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(raw)
}

type auditList struct {
	Object     string           `json:"object"`
	Data       []map[string]any `json:"data"`
	HasMore    bool             `json:"has_more"`
	NextCursor *string          `json:"next_cursor"`
}

func listAudit(t *testing.T, s *stack, query string) (auditList, string) {
	t.Helper()
	status, _, raw := adminCall(t, s, "GET", "/admin/audit"+query, "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /admin/audit%s: %d %s", query, status, raw)
	}
	var l auditList
	if err := json.Unmarshal([]byte(raw), &l); err != nil || l.Object != "list" || l.Data == nil {
		t.Fatalf("GET /admin/audit%s: %v %s", query, err, raw)
	}
	return l, raw
}

// field walks a decoded JSON value by a dotted path ("after.budget_policy.rpm").
func field(v any, path string) any {
	for _, p := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

const slackHook = "https://hooks.slack.com/services/T0000/B0000/SlackPathSecret123"

// TestAuditRecordsEveryAdminAction does each admin action through the API
// and checks the row it left: action, target, actor, request id, before
// and after; refused actions and reads leave none; and no secret (a key's,
// its hash, the admin key, a webhook's path) is anywhere in the listing.
func TestAuditRecordsEveryAdminAction(t *testing.T) {
	s := newStack(t, stackOptions{budgets: true, cache: true, audit: true})
	status, _, raw := adminCall(t, s, "POST", "/admin/keys", `{"name":"team","rpm":10,"budgets":[{"period":"daily","limit_usd":5}],"alert_webhooks":[{"url":"`+slackHook+`","slack":true}]}`, nil)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, raw)
	}
	var created struct{ ID, Key string }
	_ = json.Unmarshal([]byte(raw), &created)
	id := created.ID
	// The creation is audited too: drop it from the steps below by reading
	// it here.
	if l, _ := listAudit(t, s, ""); len(l.Data) != 1 || l.Data[0]["action"] != audit.ActionKeyCreate {
		t.Fatalf("after create: %v", l.Data)
	}

	actor := map[string]string{httpapi.HeaderActor: "  ana\t<ops>\u202e  team ", "User-Agent": "tollgate-test/1"}
	tests := []struct {
		name, method, path, body string
		status                   int
		action, target           string // "": no row
		want                     map[string]any
	}{
		{name: "read key", method: "GET", path: "/admin/keys/" + id, status: 200},
		{name: "refused budget", method: "PUT", path: "/admin/keys/" + id + "/budget", body: `{"budgets":[{"period":"hourly","limit_usd":1}]}`, status: 400},
		{name: "refused key", method: "POST", path: "/admin/keys", body: `{"name":" "}`, status: 400},
		{name: "unknown key revoke", method: "DELETE", path: "/admin/keys/key_nope", status: 404},
		{
			name: "budget change", method: "PUT", path: "/admin/keys/" + id + "/budget", body: `{"budgets":[{"period":"weekly","limit_usd":"2.5"}],"rpm":60}`, status: 200,
			action: audit.ActionBudgetUpdate, target: id,
			want: map[string]any{"before.rpm": 10.0, "after.rpm": 60.0, "before.own": true, "after.own": true,
				"before.on_exhausted": nil, "after.tpm": nil},
		},
		{
			name: "key patch", method: "PATCH", path: "/admin/keys/" + id, body: `{"name":"team-2","tpm":5000}`, status: 200,
			action: audit.ActionKeyUpdate, target: id,
			want: map[string]any{"before.name": "team", "after.name": "team-2", "before.budget_policy.tpm": nil,
				"after.budget_policy.tpm": 5000.0, "after.budget_policy.rpm": 60.0},
		},
		{
			name: "cache delete", method: "DELETE", path: "/admin/cache?model=sim-small", status: 200,
			action: audit.ActionCacheDelete, target: "cache",
			want: map[string]any{"before": nil, "after.model": "sim-small", "after.tenant": "", "after.deleted": 0.0},
		},
		{
			name: "revoke", method: "DELETE", path: "/admin/keys/" + id, status: 200,
			action: audit.ActionKeyRevoke, target: id,
			want: map[string]any{"before.revoked": false, "after.revoked": true, "before.name": "team-2", "after.id": id,
				"after.budget_policy.rpm": 60.0},
		},
	}
	rows := 1
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, h, raw := adminCall(t, s, tt.method, tt.path, tt.body, actor)
			if status != tt.status {
				t.Fatalf("%d %s", status, raw)
			}
			if h.Get(httpapi.HeaderAudit) != "" {
				t.Fatalf("%s: %q", httpapi.HeaderAudit, h.Get(httpapi.HeaderAudit))
			}
			l, _ := listAudit(t, s, "")
			if tt.action == "" {
				if len(l.Data) != rows {
					t.Fatalf("%d rows, want %d: %v", len(l.Data), rows, l.Data)
				}
				return
			}
			rows++
			if len(l.Data) != rows {
				t.Fatalf("%d rows, want %d", len(l.Data), rows)
			}
			got := l.Data[0] // newest first
			for path, want := range map[string]any{"object": "audit_event", "action": tt.action, "target": tt.target,
				"request_id": h.Get(httpapi.HeaderRequestID), "actor.kind": "admin", "actor.name": "ana <ops> team",
				"actor.remote_addr": "127.0.0.1", "actor.user_agent": "tollgate-test/1"} {
				if g := field(got, path); g != want {
					t.Errorf("%s = %#v, want %#v", path, g, want)
				}
			}
			for path, want := range tt.want {
				if g := field(got, path); g != want {
					t.Errorf("%s = %#v, want %#v", path, g, want)
				}
			}
		})
	}

	l, raw := listAudit(t, s, "")
	var actions []string
	for _, e := range l.Data {
		actions = append(actions, e["action"].(string))
	}
	if want := []string{audit.ActionKeyRevoke, audit.ActionCacheDelete, audit.ActionKeyUpdate, audit.ActionBudgetUpdate, audit.ActionKeyCreate}; strings.Join(actions, ",") != strings.Join(want, ",") {
		t.Fatalf("actions %v, want %v", actions, want)
	}
	first := l.Data[len(l.Data)-1]
	for path, want := range map[string]any{"before": nil, "after.name": "team", "after.id": id, "after.revoked": false,
		"after.budget_policy.rpm": 10.0, "after.budget_policy.own": true, "actor.name": nil} {
		if g := field(first, path); g != want {
			t.Errorf("create: %s = %#v, want %#v", path, g, want)
		}
	}
	hooks, _ := field(first, "after.budget_policy.alert_webhooks").([]any)
	if len(hooks) != 1 || !strings.HasPrefix(field(hooks[0], "url").(string), "https://hooks.slack.com/… (redacted, sha256:") {
		t.Errorf("create: webhooks %v", hooks)
	}
	hash := sha256.Sum256([]byte(created.Key))
	for name, secret := range map[string]string{"the key": created.Key, "the key's tail": created.Key[len(created.Key)-10:],
		"the key's hash": hex.EncodeToString(hash[:]), "the admin key": adminKey, "the webhook's path": "SlackPathSecret123"} {
		if strings.Contains(raw, secret) || strings.Contains(raw, url.QueryEscape(secret)) {
			t.Errorf("the audit listing holds %s: %s", name, raw)
		}
	}
}

func TestAuditListFiltersAndPages(t *testing.T) {
	s := newStack(t, stackOptions{budgets: true, audit: true})
	var ids []string
	for _, name := range []string{"a", "b", "c"} {
		status, _, raw := adminCall(t, s, "POST", "/admin/keys", `{"name":"`+name+`"}`, nil)
		if status != http.StatusCreated {
			t.Fatalf("%d %s", status, raw)
		}
		var k struct{ ID string }
		_ = json.Unmarshal([]byte(raw), &k)
		ids = append(ids, k.ID)
	}
	for _, id := range ids[:2] {
		if status, _, raw := adminCall(t, s, "DELETE", "/admin/keys/"+id, "", nil); status != 200 {
			t.Fatalf("%d %s", status, raw)
		}
	}
	// Newest first: revoke b, revoke a, create c, create b, create a.
	tests := []struct {
		name, query string
		want        []string // action:target
	}{
		{"all", "", []string{"key.revoke:b", "key.revoke:a", "key.create:c", "key.create:b", "key.create:a"}},
		{"action", "action=key.revoke", []string{"key.revoke:b", "key.revoke:a"}},
		{"target", "target=" + ids[0], []string{"key.revoke:a", "key.create:a"}},
		{"action and target", "action=key.create&target=" + ids[1], []string{"key.create:b"}},
		{"since the past", "since=2000-01-01T00:00:00Z", []string{"key.revoke:b", "key.revoke:a", "key.create:c", "key.create:b", "key.create:a"}},
		{"since the future", "since=2999-01-01T00:00:00Z", []string{}},
		{"until the past", "until=2000-01-01T00:00:00Z", []string{}},
		{"range", "since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00%2B02:00&action=key.revoke", []string{"key.revoke:b", "key.revoke:a"}},
		{"unknown target", "target=key_nope", []string{}},
	}
	name := map[string]string{ids[0]: "a", ids[1]: "b", ids[2]: "c"}
	for _, tt := range tests {
		for _, limit := range []string{"", "1", "2", "500"} {
			t.Run(tt.name+"/limit "+limit, func(t *testing.T) {
				got := []string{}
				query := tt.query
				if limit != "" {
					query += "&limit=" + limit
				}
				for pages := 0; ; pages++ {
					if pages > 10 {
						t.Fatal("paging does not end")
					}
					l, _ := listAudit(t, s, "?"+query)
					for _, e := range l.Data {
						got = append(got, e["action"].(string)+":"+name[e["target"].(string)])
					}
					if l.HasMore != (l.NextCursor != nil) {
						t.Fatalf("has_more %v, next_cursor %v", l.HasMore, l.NextCursor)
					}
					if !l.HasMore {
						break
					}
					query = tt.query + "&limit=" + limit + "&after=" + url.QueryEscape(*l.NextCursor)
				}
				if strings.Join(got, ",") != strings.Join(tt.want, ",") {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			})
		}
	}

	bad := []struct{ name, query, param string }{
		{"limit zero", "limit=0", "limit"},
		{"limit too large", "limit=501", "limit"},
		{"limit not a number", "limit=ten", "limit"},
		{"cursor made up", "after=bm90LWEtY3Vyc29y", "after"},
		{"unknown action", "action=key.delete", "action"},
		{"since a date", "since=2026-11-01", "since"},
		{"until garbage", "until=tomorrow", "until"},
		{"until before since", "since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z", "until"},
		{"target too long", "target=" + strings.Repeat("k", 300), "target"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			status, _, raw := adminCall(t, s, "GET", "/admin/audit?"+tt.query, "", nil)
			var e struct {
				Error struct{ Param string } `json:"error"`
			}
			_ = json.Unmarshal([]byte(raw), &e)
			if status != http.StatusBadRequest || e.Error.Param != tt.param {
				t.Fatalf("%d %s", status, raw)
			}
		})
	}
	// Without the admin key: 401; without an audit log: 404.
	req, _ := http.NewRequest("GET", s.srv.URL+"/admin/audit", nil)
	req.Header.Set("Authorization", "Bearer "+s.secret)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a gateway key: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if status, _, raw := adminCall(t, newStack(t, stackOptions{}), "GET", "/admin/audit", "", nil); status != http.StatusNotFound || !strings.Contains(raw, "audit_disabled") {
		t.Fatalf("no audit log: %d %s", status, raw)
	}
}

// failingAuditor cannot write.
type failingAuditor struct{}

func (failingAuditor) Record(context.Context, audit.Entry) error {
	return errors.New("disk full")
}

func (failingAuditor) List(context.Context, audit.Filter) (audit.Page, error) {
	return audit.Page{}, errors.New("disk full")
}

// TestAuditFailureDoesNotHideTheAction: the action happened, so its answer
// says so, with x-tollgate-audit: failed, and the entry is logged at ERROR.
func TestAuditFailureDoesNotHideTheAction(t *testing.T) {
	var logs syncBuffer
	s := newStack(t, stackOptions{auditor: failingAuditor{}, log: &logs})
	status, h, raw := adminCall(t, s, "POST", "/admin/keys", `{"name":"team"}`, map[string]string{httpapi.HeaderActor: "ana"})
	if status != http.StatusCreated || h.Get(httpapi.HeaderAudit) != "failed" {
		t.Fatalf("%d %s=%q %s", status, httpapi.HeaderAudit, h.Get(httpapi.HeaderAudit), raw)
	}
	var k struct{ ID, Key string }
	_ = json.Unmarshal([]byte(raw), &k)
	if _, ok := s.keys.Get(k.ID); !ok {
		t.Fatal("the key was not created")
	}
	var line map[string]any
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "audit row was not written") {
			_ = json.Unmarshal([]byte(l), &line)
		}
	}
	if line["level"] != "ERROR" || line["action"] != audit.ActionKeyCreate || line["target"] != k.ID || line["actor"] != "ana" ||
		line["id"] != h.Get(httpapi.HeaderRequestID) || !strings.Contains(line["err"].(string), "disk full") {
		t.Fatalf("log line %v in\n%s", line, logs.String())
	}
	if strings.Contains(logs.String(), k.Key) {
		t.Fatal("the log holds the key")
	}
	if status, _, raw := adminCall(t, s, "GET", "/admin/audit", "", nil); status != http.StatusInternalServerError {
		t.Fatalf("list: %d %s", status, raw)
	}
}
