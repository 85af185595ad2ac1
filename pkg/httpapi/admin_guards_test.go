package httpapi_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/guardrails"
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
	type info struct {
		Name          string   `json:"name"`
		Detectors     []string `json:"detectors"`
		Action        string   `json:"action"`
		Request       bool     `json:"request"`
		Answer        bool     `json:"answer"`
		UnmaskAnswers bool     `json:"unmask_answers"`
		Routes        []string `json:"routes"`
		Hits          *struct {
			Request, Answer, Blocked int64
		} `json:"hits"`
	}
	tests := []struct {
		name    string
		guards  gateway.GuardConfig
		wantRaw string // the whole body, when set
		want    []info
	}{
		{"none configured: an empty list", gateway.GuardConfig{}, `{"guards":[]}`, nil},
		{"two guards, in config order", testGuards, "", []info{
			{Name: "pii", Detectors: []string{"email", "phone"}, Action: "mask", Request: true, Answer: true, UnmaskAnswers: true, Routes: []string{"*", "support"}},
			{Name: "secrets", Detectors: []string{"secret"}, Action: "block", Request: true, Routes: []string{"support"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t, stackOptions{guards: tt.guards})
			req, _ := http.NewRequest("GET", s.srv.URL+"/admin/guards", nil)
			req.Header.Set("Authorization", "Bearer "+s.secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("a gateway key listed the guards: %d", resp.StatusCode)
			}
			status, _, raw := adminDo(t, s, "GET", "/admin/guards", "")
			if status != http.StatusOK {
				t.Fatalf("%d %s", status, raw)
			}
			if tt.wantRaw != "" {
				if raw != tt.wantRaw {
					t.Fatalf("%s, want %s", raw, tt.wantRaw)
				}
				return
			}
			var got struct{ Guards []info }
			if err := json.Unmarshal([]byte(raw), &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Guards) != len(tt.want) {
				t.Fatalf("%d guards, want %d: %s", len(got.Guards), len(tt.want), raw)
			}
			for i, g := range got.Guards {
				w := tt.want[i]
				if g.Hits == nil || *g.Hits != (struct{ Request, Answer, Blocked int64 }{}) {
					t.Errorf("%s: hits %+v, want all zero before any request", g.Name, g.Hits)
				}
				g.Hits = nil
				if g.Name != w.Name || !slices.Equal(g.Detectors, w.Detectors) || g.Action != w.Action || g.Request != w.Request ||
					g.Answer != w.Answer || g.UnmaskAnswers != w.UnmaskAnswers || !slices.Equal(g.Routes, w.Routes) {
					t.Errorf("guard %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}
