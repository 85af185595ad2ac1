package httpapi_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/guardrails"
	"github.com/tollgate/tollgate/pkg/metrics"
)

// testGuards are two guards: pii masks e-mail addresses in both
// directions on every route, secrets blocks API keys in requests on the
// support route only.
var testGuards = gateway.GuardConfig{
	Guards: []guardrails.Spec{
		{Name: "pii", Detectors: []string{"email", "phone"}, Action: "mask", Request: true, Answer: true, UnmaskAnswers: true},
		{Name: "secrets", Detectors: []string{"secret"}, Action: "block", Request: true},
	},
	Default: []string{"pii"},
	Routes:  map[string][]string{"support": {"pii", "secrets"}},
}

// TestAdminGuards: GET /admin/guards needs the admin key and lists the
// configured guards in config order, with their detectors, action,
// directions, routes and hits; an empty list, not null, without guards.
func TestAdminGuards(t *testing.T) {
	tests := []struct {
		name   string
		guards gateway.GuardConfig
		// want is the list; has are parts of the body (the API's names).
		want []gateway.GuardInfo
		has  []string
	}{
		{"none configured: an empty list", gateway.GuardConfig{}, []gateway.GuardInfo{}, []string{`{"guards":[]}`}},
		{"two guards, in config order", testGuards, []gateway.GuardInfo{
			{Name: "pii", Detectors: []string{"email", "phone"}, Action: "mask", Request: true, Answer: true, UnmaskAnswers: true, Routes: []string{"*", "support"}},
			{Name: "secrets", Detectors: []string{"secret"}, Action: "block", Request: true, Routes: []string{"support"}},
		}, []string{`"unmask_answers":true`, `"routes":["*","support"]`, `"hits":{"request":0,"answer":0,"blocked":0}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t, stackOptions{guards: tt.guards})
			gatewayKeyRefused(t, s, "/admin/guards")
			status, _, raw := adminDo(t, s, "GET", "/admin/guards", "")
			var got struct{ Guards []gateway.GuardInfo }
			if status != http.StatusOK || json.Unmarshal([]byte(raw), &got) != nil {
				t.Fatalf("%d %s", status, raw)
			}
			if !reflect.DeepEqual(got.Guards, tt.want) {
				t.Errorf("guards %+v, want %+v (no hits before any request)", got.Guards, tt.want)
			}
			for _, part := range tt.has {
				if !strings.Contains(raw, part) {
					t.Errorf("the body lacks %s: %s", part, raw)
				}
			}
		})
	}
}

// gatewayKeyRefused fails the test unless a gateway key gets a 401 from
// the admin endpoint path.
func gatewayKeyRefused(t *testing.T, s *stack, path string) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+s.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a gateway key read %s: %d", path, resp.StatusCode)
	}
}

// TestGuardsInOperations: a masked and a blocked request through the whole
// stack show in GET /admin/guards' hits, in /metrics and in the access
// log by guard name and count, and the matched text appears in none of
// them.
func TestGuardsInOperations(t *testing.T) {
	const (
		email  = "jane.doe@example.com"
		secret = "sk-proj-Abcdefghijklmnopqrstuvwxyz0123456789ABCD"
	)
	var logs syncBuffer
	m := metrics.New()
	guards := testGuards
	guards.Default = []string{"pii", "secrets"}
	s := newStack(t, stackOptions{guards: guards, observer: m, metrics: m.Handler(), log: &logs})
	for _, tt := range []struct {
		name, prompt string
		status       int
	}{
		{"masked", "Write to " + email + " and " + email, http.StatusOK},
		{"masked again", "Mail " + email, http.StatusOK},
	} {
		if resp, body := postChat(t, s, s.secret, `{"model":"sim-small","messages":[{"role":"user","content":"`+tt.prompt+`"}]}`); resp.StatusCode != tt.status {
			t.Fatalf("%s: %d %s", tt.name, resp.StatusCode, body)
		}
	}
	resp, body := postChat(t, s, s.secret, `{"model":"sim-small","messages":[{"role":"user","content":"my key is `+secret+`"}]}`)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "content_blocked") {
		t.Fatalf("blocked: %d %s", resp.StatusCode, body)
	}

	_, _, raw := adminDo(t, s, "GET", "/admin/guards", "")
	var listed struct {
		Guards []struct {
			Name string
			Hits struct{ Request, Answer, Blocked int64 }
		}
	}
	if err := json.Unmarshal([]byte(raw), &listed); err != nil || len(listed.Guards) != 2 {
		t.Fatalf("%v: %s", err, raw)
	}
	hits := map[string]string{}
	for _, g := range listed.Guards {
		hits[g.Name] = fmt.Sprintf("%d/%d/%d", g.Hits.Request, g.Hits.Answer, g.Hits.Blocked)
	}
	if want := map[string]string{"pii": "3/0/0", "secrets": "1/0/1"}; !maps.Equal(hits, want) {
		t.Errorf("GET /admin/guards hits (request/answer/blocked) %v, want %v", hits, want)
	}

	fams := scrape(t, s)
	for _, c := range []struct {
		family string
		labels map[string]string
		want   float64
	}{
		{"tollgate_guard_matches_total", map[string]string{"guard": "pii", "direction": "request", "action": "mask"}, 3},
		{"tollgate_guard_matches_total", map[string]string{"guard": "secrets", "direction": "request", "action": "block"}, 1},
		{"tollgate_guard_blocks_total", map[string]string{"guard": "secrets", "direction": "request"}, 1},
		{"tollgate_guard_blocks_total", map[string]string{"guard": "pii"}, -1},
	} {
		got := sum(fams, c.family, c.labels)
		if c.want == -1 {
			if got > 0 {
				t.Errorf("%s%v = %v, want none", c.family, c.labels, got)
			}
			continue
		}
		if got != c.want {
			t.Errorf("%s%v = %v, want %v", c.family, c.labels, got, c.want)
		}
	}

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var fields []string
	for _, l := range lines {
		var line map[string]any
		if json.Unmarshal([]byte(l), &line) != nil || line["path"] != "/v1/chat/completions" {
			continue
		}
		g, _ := line["guards"].(string)
		b, _ := line["blocked"].(string)
		fields = append(fields, g+" "+b)
	}
	if want := []string{"pii:2 ", "pii:1 ", "secrets:1 secrets"}; !slices.Equal(fields, want) {
		t.Errorf("access log guards and blocked %q, want %q", fields, want)
	}
	for where, text := range map[string]string{"access log": logs.String(), "GET /admin/guards": raw} {
		for _, leak := range []string{email, "jane.doe", secret, "sk-proj"} {
			if strings.Contains(text, leak) {
				t.Errorf("the %s holds matched text %q", where, leak)
			}
		}
	}
}
