package httpapi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/metrics"
)

// exchanges records what an Observer is told.
type exchanges []metrics.Exchange

func (x *exchanges) Request(e metrics.Exchange) { *x = append(*x, e) }

// TestGuardsAndEnrichmentReported: what the gateway's Meta says of guards
// and prompt enrichment reaches x-tollgate-route, the access-log line and
// the metrics' Exchange, on answers and on errors alike.
func TestGuardsAndEnrichmentReported(t *testing.T) {
	blocked := &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "content_blocked", Message: "blocked by guard secrets"}
	tests := []struct {
		name        string
		meta        gateway.Meta
		err         error
		status      int
		route       string // x-tollgate-route ("": absent)
		logGuards   string // the access log's guards ("": absent)
		logBlocked  string
		metricHits  int // hits in the Exchange
		metricBlock string
	}{
		{"no guard, no enrichment: the plan only",
			gateway.Meta{Model: "sim-small", Provider: "sim", Attempts: 1, Route: "cheapest capable"}, nil, 200, "cheapest capable", "", "", 0, ""},
		{"plan and enrichment; guards summed over directions, in firing order",
			gateway.Meta{Model: "sim-small", Provider: "sim", Attempts: 1, Route: "cheapest capable", Enriched: "+1 system, +1 user", Guards: []gateway.GuardHit{
				{Guard: "pii", Action: "mask", Direction: gateway.DirRequest, Count: 2}, {Guard: "secrets", Action: "log", Direction: gateway.DirRequest, Count: 1},
				{Guard: "pii", Action: "mask", Direction: gateway.DirAnswer, Count: 1}}},
			nil, 200, "cheapest capable; enriched: +1 system, +1 user", "pii:3,secrets:1", "", 4, ""},
		{"a cache hit has no plan: the enrichment alone",
			gateway.Meta{Model: "sim-small", Provider: gateway.CacheProvider, Cache: "hit", Enriched: "+1 system"}, nil, 200, "enriched: +1 system", "", "", 0, ""},
		{"a blocked request: no model, the header and the guard still said",
			gateway.Meta{Requested: "support", Enriched: "+1 system", Blocked: "secrets", Guards: []gateway.GuardHit{
				{Guard: "secrets", Action: "block", Direction: gateway.DirRequest, Count: 1}}},
			blocked, 400, "enriched: +1 system", "secrets:1", "secrets", 1, "secrets"},
		{"an error after planning keeps its plan and enrichment",
			gateway.Meta{Requested: "auto", Route: "no candidate fits", Enriched: "+1 user"},
			&llm.Error{Status: http.StatusServiceUnavailable, Type: llm.TypeServer, Message: "no healthy candidate"}, 503, "no candidate fits; enriched: +1 user", "", "", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log bytes.Buffer
			var seen exchanges
			s := &server{Options: Options{Logger: slog.New(slog.NewJSONHandler(&log, nil)), AccessLog: true, Now: time.Now, Observer: &seen}, ids: newIDSource()}
			r := gin.New()
			r.Use(s.begin)
			meta := tt.meta
			r.POST("/v1/chat/completions", func(c *gin.Context) {
				s.answer(c, &meta, tt.err, func() ([]byte, any) { return []byte(`{}`), nil })
			})
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil))
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if got, ok := rec.Header()[http.CanonicalHeaderKey(HeaderRoute)]; tt.route == "" && ok || tt.route != "" && (len(got) != 1 || got[0] != tt.route) {
				t.Errorf("%s = %q, want %q", HeaderRoute, got, tt.route)
			}
			var line map[string]any
			if err := json.Unmarshal(log.Bytes(), &line); err != nil {
				t.Fatalf("access log %q: %v", log.String(), err)
			}
			if g, _ := line["guards"].(string); g != tt.logGuards {
				t.Errorf("access log guards=%q, want %q: %s", g, tt.logGuards, log.String())
			}
			if b, _ := line["blocked"].(string); b != tt.logBlocked {
				t.Errorf("access log blocked=%q, want %q", b, tt.logBlocked)
			}
			if len(seen) != 1 {
				t.Fatalf("%d exchanges observed, want 1", len(seen))
			}
			e := seen[0]
			hits := 0
			for i, h := range e.Guards {
				g := tt.meta.Guards[i]
				if h != (metrics.GuardHit{Guard: g.Guard, Direction: g.Direction, Action: g.Action, Count: g.Count}) {
					t.Errorf("exchange guard %d = %+v, want %+v", i, h, g)
				}
				hits += h.Count
			}
			if hits != tt.metricHits || e.Blocked != tt.metricBlock {
				t.Errorf("exchange: %d hits blocked by %q, want %d by %q", hits, e.Blocked, tt.metricHits, tt.metricBlock)
			}
		})
	}
}

func TestGuardsField(t *testing.T) {
	hit := func(guard, dir string, n int) gateway.GuardHit {
		return gateway.GuardHit{Guard: guard, Action: "mask", Direction: dir, Count: n}
	}
	tests := []struct {
		name string
		hits []gateway.GuardHit
		want string
	}{
		{"one guard", []gateway.GuardHit{hit("pii", gateway.DirRequest, 2)}, "pii:2"},
		{"both directions summed", []gateway.GuardHit{hit("pii", gateway.DirRequest, 2), hit("pii", gateway.DirAnswer, 3)}, "pii:5"},
		{"firing order kept", []gateway.GuardHit{hit("secrets", gateway.DirRequest, 1), hit("pii", gateway.DirRequest, 2), hit("secrets", gateway.DirAnswer, 1)},
			"secrets:2,pii:2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := guardsField(slices.Clone(tt.hits)); got != tt.want {
				t.Fatalf("guardsField = %q, want %q", got, tt.want)
			}
		})
	}
}
