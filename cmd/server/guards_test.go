package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/config"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/guardrails"
)

// TestGuardsOf: the gateway gets every guard as configured, the default
// list, the lists of the routes that have one ([] included: no guards)
// and the routes' enrichment. (That the gateway accepts it is
// TestReloadChangesGuards: Reconfigure compiles it.)
func TestGuardsOf(t *testing.T) {
	cfg, err := config.Parse(strings.NewReader("guardrails:\n  scan_limit_bytes: 8192\n  default: [secrets]\n  guards:\n"+
		"    - {name: pii, detectors: [email, phone], action: mask, unmask_answers: true}\n"+
		"    - {name: secrets, detectors: [secret], action: block, directions: [request]}\n"+
		"    - {name: banned, words: [foo], case_insensitive: true, action: log, directions: [answer]}\n"+
		"routes:\n  support:\n    candidates: [sim-small]\n    guards: [pii, banned]\n"+
		"    enrich: {prepend: [{role: system, content: 'Customer {{customer}}'}], append: [{role: user, content: Be brief.}]}\n"+
		"  open: {candidates: [sim-small], guards: []}\n  plain: {candidates: [sim-small]}\n"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	got := guardsOf(cfg)
	want := gateway.GuardConfig{
		ScanLimit: 8192,
		Default:   []string{"secrets"},
		Guards: []guardrails.Spec{
			{Name: "pii", Detectors: []string{"email", "phone"}, Action: "mask", Request: true, Answer: true, UnmaskAnswers: true},
			{Name: "secrets", Detectors: []string{"secret"}, Action: "block", Request: true},
			{Name: "banned", Words: []string{"foo"}, CaseInsensitive: true, Action: "log", Answer: true},
		},
		Routes: map[string][]string{"support": {"pii", "banned"}, "open": {}},
		Enrich: map[string]gateway.Enrichment{"support": {
			Prepend: []gateway.EnrichMessage{{Role: "system", Content: "Customer {{customer}}"}},
			Append:  []gateway.EnrichMessage{{Role: "user", Content: "Be brief."}},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("guardsOf\n%+v\nwant\n%+v", got, want)
	}
}

// TestReloadChangesGuards: a reload changing a guard and adding guards, a
// default list, a route's list and its enrichment is applied and audited (a word list by fingerprint only); a
// later one with a guard that does not compile is refused whole, the
// running guards kept; then a change of one guard's action applies.
func TestReloadChangesGuards(t *testing.T) {
	up := newFakeOpenAI(t)
	base := "providers:\n" + providerYAML("one", up.URL, "k") + "models:\n" + modelYAML("model-a", "one", "a", 1, 2)
	guards := func(piiAction, ticketRegex string) string {
		return "guardrails:\n  default: [pii]\n  guards:\n" +
			"    - {name: pii, detectors: [email, phone], action: " + piiAction + "}\n" +
			"    - {name: ticket, regex: '" + ticketRegex + "', action: log}\n" +
			"    - {name: codenames, words: [bluebird-secret-project], action: block}\n" +
			"routes:\n  smart:\n    candidates: [model-a]\n    guards: [ticket, codenames]\n" +
			"    enrich: {prepend: [{role: system, content: 'You serve {{key_name}}.'}]}\n"
	}
	// It starts with a guard (gateway.New compiles it) and no route list.
	g := startReloadable(t, base+"guardrails:\n  guards: [{name: pii, detectors: [email], action: log}]\n")

	g.reload(t, base+guards("mask", "TCK-[0-9]{6}"))
	rows := g.reloadsAudited(t)
	if len(rows) != 1 || rows[0].After["result"] != "applied" {
		t.Fatalf("audit rows %+v, want one applied", rows)
	}
	raw, _ := json.Marshal(rows[0])
	if strings.Contains(string(raw), "bluebird") {
		t.Fatalf("a guard's word list is in the audit row: %s", raw)
	}
	gr, _ := rows[0].After["guardrails"].(map[string]any)
	gs, _ := gr["guards"].(map[string]any)
	if len(gs) != 3 || gs["pii"].(map[string]any)["action"] != "mask" || !reflect.DeepEqual(gr["default"], []any{"pii"}) {
		t.Fatalf("guardrails in the audit row: %s", raw)
	}
	smart, _ := rows[0].After["routes"].(map[string]any)["smart"].(map[string]any)
	if !reflect.DeepEqual(smart["guards"], []any{"ticket", "codenames"}) || smart["enrich"] == "" || smart["enrich"] == nil {
		t.Fatalf("route smart in the audit row: %s", raw)
	}
	if !strings.Contains(g.log.String(), "changed=guardrails,routes") {
		t.Errorf("the reload's log line does not name guardrails and routes:\n%s", g.log.String())
	}
	if st, _, body := g.chat(t, "smart", false); st != http.StatusOK {
		t.Fatalf("route smart after the reload: %d %s", st, body)
	}

	g.reload(t, base+guards("block", "TCK-("))
	if !strings.Contains(g.log.String(), "config reload refused: guardrails.guards[1].regex: error parsing regexp: missing closing )") {
		t.Fatalf("the refused reload does not name the pattern's path:\n%s", g.log.String())
	}

	// The refused file changed pii's action too: the next good file that
	// does so is a change from mask, the running value.
	g.reload(t, base+guards("block", "TCK-[0-9]{6}"))
	rows = g.reloadsAudited(t)
	if len(rows) != 3 || rows[0].After["result"] != "applied" || rows[1].After["result"] != "refused" {
		t.Fatalf("audit rows %+v, want applied, refused, applied (newest first)", rows)
	}
	before := rows[0].Before["guardrails"].(map[string]any)["guards"].(map[string]any)["pii"].(map[string]any)
	after := rows[0].After["guardrails"].(map[string]any)["guards"].(map[string]any)["pii"].(map[string]any)
	if before["action"] != "mask" || after["action"] != "block" {
		t.Fatalf("pii's action %v → %v, want mask → block", before["action"], after["action"])
	}
	if got := g.metric(t, `tollgate_config_reloads_total{result="refused"}`); got != "1" {
		t.Errorf("refused reloads metric %q, want 1", got)
	}
	// The running gateway applies the reloaded guards: pii now blocks an
	// e-mail on model-a (the default list), and route smart's word list
	// blocks its codename.
	for _, tc := range []struct{ model, content, guard string }{
		{"model-a", "mail ann@x.io", "pii"},
		{"smart", "about bluebird-secret-project", "codenames"},
	} {
		st, _, body := g.call(t, g.secret, "/v1/chat/completions", fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":%q}]}`, tc.model, tc.content))
		if st != http.StatusBadRequest || !strings.Contains(body, "content_blocked") || !strings.Contains(body, tc.guard) {
			t.Errorf("%s after the reload: %d %s", tc.model, st, body)
		}
	}
}
