package httpapi_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/guardrails"
	"github.com/tollgate/tollgate/pkg/keys"
)

// guardedStack is a stack whose gateway defines three guards: pii and
// contacts both look for e-mail addresses, secrets for secrets.
func guardedStack(t *testing.T) *stack {
	t.Helper()
	return newStack(t, stackOptions{budgets: true, audit: true, guards: gateway.GuardConfig{Guards: []guardrails.Spec{
		{Name: "pii", Detectors: []string{"email"}, Action: "mask", Request: true, Answer: true},
		{Name: "contacts", Detectors: []string{"email"}, Action: "log", Request: true},
		{Name: "secrets", Detectors: []string{"secret"}, Action: "block", Request: true},
	}}})
}

// TestKeyGuards: POST and PATCH /admin/keys set a key's guards: absent
// (POST) or null, the routes' own (null in the key's JSON); [] none; a
// list replaces them; a PATCH without guards keeps them. Each state is
// what GET shows, what a key store opened afterwards on the database
// reads, and what the audit record of the change shows before and after.
func TestKeyGuards(t *testing.T) {
	s := guardedStack(t)
	status, inherit, raw := adminDo(t, s, "POST", "/admin/keys", `{"name":"inherits"}`)
	if status != 201 || inherit["guards"] != nil {
		t.Fatalf("POST without guards: %d %s", status, raw)
	}
	if _, present := inherit["guards"]; !present {
		t.Fatalf(`the key's JSON lacks "guards": %s`, raw)
	}
	status, created, raw := adminDo(t, s, "POST", "/admin/keys", `{"name":"guarded","guards":[{"name":"pii"},{"name":"secrets","action":"log"}]}`)
	if status != 201 {
		t.Fatalf("POST: %d %s", status, raw)
	}
	id := created["id"].(string)
	pii := []any{map[string]any{"name": "pii"}, map[string]any{"name": "secrets", "action": "log"}}
	if !reflect.DeepEqual(created["guards"], pii) {
		t.Fatalf("POST answered guards %#v", created["guards"])
	}

	steps := []struct {
		name  string
		body  string
		want  any          // the key's JSON "guards"
		store []keys.Guard // what the database holds
	}{
		{"another field: kept", `{"name":"renamed"}`, pii, []keys.Guard{{Name: "pii"}, {Name: "secrets", Action: "log"}}},
		{"none", `{"guards":[]}`, []any{}, []keys.Guard{}},
		{"empty body: kept", `{}`, []any{}, []keys.Guard{}},
		{"null: the routes' again", `{"guards":null}`, nil, nil},
		{"a list with an action", `{"guards":[{"name":"contacts","action":"block"}]}`,
			[]any{map[string]any{"name": "contacts", "action": "block"}}, []keys.Guard{{Name: "contacts", Action: "block"}}},
	}
	before := created["guards"]
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			status, got, raw := adminDo(t, s, "PATCH", "/admin/keys/"+id, st.body)
			if status != 200 || !reflect.DeepEqual(got["guards"], st.want) {
				t.Fatalf("PATCH: %d %s, want guards %#v", status, raw, st.want)
			}
			if _, get, raw := adminDo(t, s, "GET", "/admin/keys/"+id, ""); !reflect.DeepEqual(get["guards"], st.want) {
				t.Fatalf("GET: %s", raw)
			}
			reopened, err := keys.Open(context.Background(), s.db, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			k, ok := reopened.Get(id)
			if !ok || !reflect.DeepEqual(k.Guards, st.store) { // DeepEqual tells nil from []
				t.Fatalf("stored guards %#v, want %#v", k.Guards, st.store)
			}
			l, _ := listAudit(t, s, "?action=key.update")
			if len(l.Data) == 0 {
				t.Fatal("no audit record of the update")
			}
			if b, a := field(l.Data[0], "before.guards"), field(l.Data[0], "after.guards"); !reflect.DeepEqual(b, before) || !reflect.DeepEqual(a, st.want) {
				t.Fatalf("audit: before %#v after %#v, want %#v %#v", b, a, before, st.want)
			}
			before = st.want
		})
	}
}

// TestKeyGuardsRefused: a guard list the gateway cannot apply is a 400
// naming guards, on POST (no key is created) and on PATCH (the key is
// unchanged).
func TestKeyGuardsRefused(t *testing.T) {
	s := guardedStack(t)
	_, created, _ := adminDo(t, s, "POST", "/admin/keys", `{"name":"k","guards":[{"name":"pii"}]}`)
	id := created["id"].(string)
	tests := []struct {
		name, guards string
		param        string
	}{
		{"unknown guard", `[{"name":"nope"}]`, "guards"},
		{"no name", `[{"action":"mask"}]`, "guards"},
		{"bad action", `[{"name":"pii","action":"redact"}]`, "guards"},
		{"two guards for e-mail addresses", `[{"name":"pii"},{"name":"contacts"}]`, "guards"},
		{"not a list", `"pii"`, "guards"},
		{"unknown member", `[{"name":"pii","colour":"red"}]`, ""},
		{"a member in another case", `[{"Name":"pii"}]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(s.keys.List())
			status, _, raw := adminDo(t, s, "POST", "/admin/keys", `{"name":"new","guards":`+tt.guards+`}`)
			assertErrorAnswer(t, status, raw, 400, "", tt.param)
			if n := len(s.keys.List()); n != before {
				t.Fatalf("a refused POST created a key: %d keys, were %d", n, before)
			}
			status, _, raw = adminDo(t, s, "PATCH", "/admin/keys/"+id, `{"name":"changed","guards":`+tt.guards+`}`)
			assertErrorAnswer(t, status, raw, 400, "", tt.param)
		})
	}
	_, got, raw := adminDo(t, s, "GET", "/admin/keys/"+id, "")
	if got["name"] != "k" || !reflect.DeepEqual(got["guards"], []any{map[string]any{"name": "pii"}}) {
		t.Fatalf("a refused PATCH changed the key: %s", raw)
	}
}

// TestKeySpendShowsGuards: GET /admin/keys/{id}/spend shows the guards
// that fired on a row, by name and count, and nothing for a row none
// fired on.
func TestKeySpendShowsGuards(t *testing.T) {
	s := guardedStack(t)
	_, created, _ := adminDo(t, s, "POST", "/admin/keys", `{"name":"k"}`)
	id := created["id"].(string)
	s.ledger.Accounts.Record(budget.Entry{KeyID: id, RequestID: "req-blocked", Status: 400, Guards: map[string]int{"secrets": 1, "pii": 2}})
	s.ledger.Accounts.Record(budget.Entry{KeyID: id, RequestID: "req-clean", Status: 200})
	status, got, raw := adminDo(t, s, "GET", "/admin/keys/"+id+"/spend", "")
	if status != 200 {
		t.Fatalf("%d %s", status, raw)
	}
	want := map[string]any{"req-blocked": map[string]any{"secrets": 1.0, "pii": 2.0}, "req-clean": nil}
	rows, _ := got["data"].([]any)
	if len(rows) != len(want) {
		t.Fatalf("%d rows: %s", len(rows), raw)
	}
	for _, r := range rows {
		row := r.(map[string]any)
		if g := row["guards"]; !reflect.DeepEqual(g, want[row["request_id"].(string)]) {
			t.Errorf("row %s: guards %#v", row["request_id"], g)
		}
	}
}
