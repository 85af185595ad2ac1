package httpapi_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tollgate/tollgate/internal/pgtest"
	"github.com/tollgate/tollgate/pkg/audit"
	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/httpapi"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/tokens"
)

// sharedStack is the stack on a PostgreSQL schema, as one replica of a
// shared store: keys, budgets (Options.Shared) and the audit log.
func sharedStack(t *testing.T) *stack {
	t.Helper()
	pool := pgtest.NewSchema(t).Pool(t, 8)
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	ks, err := keys.Open(ctx, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	ledger, err := budget.Open(ctx, db, budget.Options{DeliveryInterval: -1, Shared: &budget.Shared{Pool: pool}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ledger.Close() })
	gw, err := gateway.New(gateway.Options{Models: simModels(newSim(t, providers.SimConfig{})), Tokens: tokens.NewCounter(), Sleep: instant,
		Limits: ledger.Limits, Accounts: ledger.Accounts})
	if err != nil {
		t.Fatal(err)
	}
	auditStore, err := audit.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Gateway: gw, Keys: ks, Budget: ledger, Audit: auditStore, AdminKey: adminKey, MaxBodyBytes: 4 << 20}))
	t.Cleanup(srv.Close)
	return &stack{t: t, srv: srv, keys: ks, gw: gw, ledger: ledger, db: db, audit: auditStore}
}

// TestPatchKeyAllOrNothing: a PATCH whose policy write fails (a trigger
// refuses the key's row in budget_policies) changes nothing: a 503 in the
// OpenAI error shape, the key and its policy as they were, in memory and
// in the database, and no audit record; once the store takes it, the same
// PATCH changes both. On SQLite and PostgreSQL.
func TestPatchKeyAllOrNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stack func(t *testing.T) *stack
		fail  func(id string) []string // the statements that make the policy write fail
		heal  []string
		q     func(string) string
	}{
		{
			name:  "sqlite",
			stack: func(t *testing.T) *stack { return newStack(t, stackOptions{budgets: true, audit: true}) },
			fail: func(id string) []string {
				return []string{
					`CREATE TRIGGER fail_insert BEFORE INSERT ON budget_policies WHEN NEW.key_id = '` + id + `' BEGIN SELECT RAISE(ABORT, 'injected failure'); END`,
					`CREATE TRIGGER fail_update BEFORE UPDATE ON budget_policies WHEN NEW.key_id = '` + id + `' BEGIN SELECT RAISE(ABORT, 'injected failure'); END`,
				}
			},
			heal: []string{`DROP TRIGGER fail_insert`, `DROP TRIGGER fail_update`},
			q:    func(s string) string { return s },
		},
		{
			name:  "postgres",
			stack: sharedStack,
			fail: func(id string) []string {
				return []string{
					`CREATE FUNCTION fail_policy() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$`,
					`CREATE TRIGGER fail_policy BEFORE INSERT OR UPDATE ON budget_policies FOR EACH ROW WHEN (NEW.key_id = '` + id + `') EXECUTE FUNCTION fail_policy()`,
				}
			},
			heal: []string{`DROP TRIGGER fail_policy ON budget_policies`},
			q:    func(s string) string { return strings.Replace(s, "?", "$1", 1) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.stack(t)
			status, created, raw := adminDo(t, s, "POST", "/admin/keys", `{"name":"team-a","rpm":600,"budgets":[{"period":"daily","limit_usd":5}]}`)
			if status != 201 {
				t.Fatalf("%d %s", status, raw)
			}
			id := created["id"].(string)
			exec(t, s.db, tc.fail(id)...)

			// stored reads the key's name and rpm from the database.
			stored := func() (name string, rpm float64) {
				t.Helper()
				var policy string
				if err := s.db.QueryRow(tc.q(`SELECT name FROM api_keys WHERE id = ?`), id).Scan(&name); err != nil {
					t.Fatal(err)
				}
				if err := s.db.QueryRow(tc.q(`SELECT policy FROM budget_policies WHERE key_id = ?`), id).Scan(&policy); err != nil {
					t.Fatal(err)
				}
				var p budget.Policy
				if err := json.Unmarshal([]byte(policy), &p); err != nil {
					t.Fatalf("%v: %s", err, policy)
				}
				return name, float64(p.RPM)
			}
			patch := `{"name":"renamed","rpm":100}`
			status, got, raw := adminDo(t, s, "PATCH", "/admin/keys/"+id, patch)
			if status != 503 || field(got, "error.code") != "store_unavailable" || strings.Contains(raw, "injected") {
				t.Fatalf("PATCH with the policy write failing: %d %s", status, raw)
			}
			_, get, raw := adminDo(t, s, "GET", "/admin/keys/"+id, "")
			if get["name"] != "team-a" || get["rpm"] != 600.0 {
				t.Fatalf("the key after the failed PATCH: %s", raw)
			}
			if name, rpm := stored(); name != "team-a" || rpm != 600 {
				t.Fatalf("stored after the failed PATCH: name %q rpm %v", name, rpm)
			}
			if l, raw := listAudit(t, s, "?action="+audit.ActionKeyUpdate); len(l.Data) != 0 {
				t.Fatalf("the failed PATCH was audited: %s", raw)
			}
			// A PATCH of the key's own fields alone does not write the policy.
			if status, _, raw := adminDo(t, s, "PATCH", "/admin/keys/"+id, `{"metadata":{"owner":"ana"}}`); status != 200 {
				t.Fatalf("PATCH without a policy change: %d %s", status, raw)
			}

			exec(t, s.db, tc.heal...)
			status, got, raw = adminDo(t, s, "PATCH", "/admin/keys/"+id, patch)
			if status != 200 || got["name"] != "renamed" || got["rpm"] != 100.0 {
				t.Fatalf("PATCH once the store takes it: %d %s", status, raw)
			}
			if name, rpm := stored(); name != "renamed" || rpm != 100 {
				t.Fatalf("stored after the PATCH: name %q rpm %v", name, rpm)
			}
			if p, _ := s.ledger.Accounts.Policy(id); p.RPM != 100 {
				t.Fatalf("the policy in effect: rpm %d", p.RPM)
			}
			if l, raw := listAudit(t, s, "?action="+audit.ActionKeyUpdate); len(l.Data) != 2 {
				t.Fatalf("audited updates (the metadata one and this one): %s", raw)
			}
		})
	}
}

func exec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestCreateKeyAllOrNothing: a POST /admin/keys whose policy write fails
// creates nothing: a 503 without the database's text, no key in memory or
// in the database (not even a revoked one), no audit record; once the
// store takes it, the same request creates the key with its policy. On
// SQLite and PostgreSQL.
func TestCreateKeyAllOrNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stack func(t *testing.T) *stack
		fail  []string // the statements that make every policy write fail
		heal  []string
	}{
		{
			name:  "sqlite",
			stack: func(t *testing.T) *stack { return newStack(t, stackOptions{budgets: true, audit: true}) },
			fail:  []string{`CREATE TRIGGER fail_insert BEFORE INSERT ON budget_policies BEGIN SELECT RAISE(ABORT, 'injected failure'); END`},
			heal:  []string{`DROP TRIGGER fail_insert`},
		},
		{
			name:  "postgres",
			stack: sharedStack,
			fail: []string{
				`CREATE FUNCTION fail_policy() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$`,
				`CREATE TRIGGER fail_policy BEFORE INSERT ON budget_policies FOR EACH ROW EXECUTE FUNCTION fail_policy()`,
			},
			heal: []string{`DROP TRIGGER fail_policy ON budget_policies`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.stack(t)
			exec(t, s.db, tc.fail...)
			count := func() (n int) {
				t.Helper()
				if err := s.db.QueryRow(`SELECT count(*) FROM api_keys`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			before, inMemory := count(), len(s.keys.List())
			body := `{"name":"team-b","rpm":60,"budgets":[{"period":"daily","limit_usd":5}]}`
			status, got, raw := adminDo(t, s, "POST", "/admin/keys", body)
			if status != 503 || field(got, "error.code") != "store_unavailable" || strings.Contains(raw, "injected") || strings.Contains(raw, "tg-") {
				t.Fatalf("POST with the policy write failing: %d %s", status, raw)
			}
			if n := count(); n != before {
				t.Fatalf("%d keys stored after the failed POST, want %d", n, before)
			}
			if n := len(s.keys.List()); n != inMemory {
				t.Fatalf("%d keys in memory after the failed POST, want %d", n, inMemory)
			}
			if l, raw := listAudit(t, s, "?action="+audit.ActionKeyCreate); len(l.Data) != 0 {
				t.Fatalf("the failed POST was audited: %s", raw)
			}
			// A key without a policy does not write one.
			if status, _, raw := adminDo(t, s, "POST", "/admin/keys", `{"name":"plain"}`); status != 201 {
				t.Fatalf("POST without a policy: %d %s", status, raw)
			}

			exec(t, s.db, tc.heal...)
			status, got, raw = adminDo(t, s, "POST", "/admin/keys", body)
			if status != 201 || got["rpm"] != 60.0 {
				t.Fatalf("POST once the store takes it: %d %s", status, raw)
			}
			if p, _ := s.ledger.Accounts.Policy(got["id"].(string)); p.RPM != 60 {
				t.Fatalf("the policy in effect: rpm %d", p.RPM)
			}
			if n := count(); n != before+2 {
				t.Fatalf("%d keys stored, want %d", n, before+2)
			}
		})
	}
}
