package router

import (
	"strconv"
	"strings"
	"testing"
)

func TestNewRoutesReportsEveryProblem(t *testing.T) {
	c := planCatalog(t)
	tests := []struct {
		name   string
		routes []Route
		want   []string // substrings of the joined error, one per problem
	}{
		{"empty name", []Route{{Candidates: []string{"sim-small"}}}, []string{"routes[0].name: must not be empty"}},
		{"white space", []Route{{Name: "my route", Candidates: []string{"sim-small"}}}, []string{"routes.my route.name: must not contain white space"}},
		{"twice", []Route{{Name: "a", Candidates: []string{"sim-small"}}, {Name: "a", Candidates: []string{"sim-large"}}},
			[]string{`routes.a.name: route "a" is defined twice`}},
		{"shadows a model", []Route{{Name: "gpt-4o", Candidates: []string{"sim-small"}}},
			[]string{`routes.gpt-4o.name: "gpt-4o" is a catalog model; an alias must not shadow it`}},
		{"unknown strategy", []Route{{Name: "a", Strategy: "fastest", Candidates: []string{"sim-small"}}},
			[]string{`routes.a.strategy: unknown strategy "fastest"`}},
		{"no candidates", []Route{{Name: "a"}}, []string{"routes.a.candidates: at least one candidate is required"}},
		{"bad candidates", []Route{{Name: "a", Candidates: []string{"nope", "sim-embed", "sim-small", "sim-small"}}},
			[]string{`routes.a.candidates[0]: unknown model "nope"`, `routes.a.candidates[1]: "sim-embed" is a embedding model, not a chat model`,
				`routes.a.candidates[3]: "sim-small" is listed twice`}},
		{"weights count", []Route{{Name: "a", Strategy: StrategyWeighted, Candidates: []string{"sim-small", "sim-large"}, Weights: []int{1}}},
			[]string{"routes.a.weights: 1 weights for 2 candidates"}},
		{"weights sign and sum", []Route{{Name: "a", Strategy: StrategyWeighted, Candidates: []string{"sim-small", "sim-large"}, Weights: []int{0, -1}}},
			[]string{"routes.a.weights[1]: must not be negative", "routes.a.weights: the weights must not all be zero"}},
		{"weights without weighted", []Route{{Name: "a", Candidates: []string{"sim-small"}, Weights: []int{1}, Sticky: true}},
			[]string{"routes.a.weights: weights need strategy weighted", "routes.a.sticky: sticky needs strategy weighted"}},
		{"min tier range", []Route{{Name: "a", Candidates: []string{"sim-small"}, MinTier: 6}}, []string{"routes.a.min_tier: must be between 1 and 5"}},
		{"min tier unreachable", []Route{{Name: "a", Candidates: []string{"sim-small"}, MinTier: 2}}, []string{"routes.a.min_tier: no candidate reaches tier 2"}},
		{"negatives", []Route{{Name: "a", Candidates: []string{"sim-small"}, ExpectedOutput: -1, Timeout: -1, TTFTTimeout: -1}},
			[]string{"routes.a.expected_output: must not be negative", "routes.a.timeout: must not be negative", "routes.a.ttft_timeout: must not be negative"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := NewRoutes(c, tc.routes)
			if err == nil {
				t.Fatalf("NewRoutes = %v, want an error", rs)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if got, want := strings.Count(err.Error(), "\n")+1, len(tc.want); got != want {
				t.Errorf("%d problems reported, want %d: %v", got, want, err)
			}
		})
	}
}

func TestRoutesLookup(t *testing.T) {
	in := []Route{{Name: "auto", Candidates: []string{"sim-small", "sim-large"}}}
	rs, err := NewRoutes(planCatalog(t), in)
	if err != nil {
		t.Fatal(err)
	}
	in[0].Candidates[0] = "changed" // the table owns a copy

	auto, ok := rs.Lookup("auto")
	if !ok || !auto.Alias() || auto.Strategy != StrategyCheapest || auto.Candidates[0] != "sim-small" {
		t.Fatalf("Lookup(auto) = %+v, %v", auto, ok)
	}
	if len(auto.Models()) != 2 || auto.Models()[1].Name != "sim-large" {
		t.Errorf("auto.Models() = %v", auto.Models())
	}
	direct, ok := rs.Lookup("gpt-4o")
	if !ok || direct.Alias() || direct.Strategy != StrategyPriority || len(direct.Models()) != 1 || direct.Models()[0].Name != "gpt-4o" {
		t.Errorf("Lookup(gpt-4o) = %+v, %v: want a direct route of one candidate", direct, ok)
	}
	for _, name := range []string{"sim-embed", "nope", ""} {
		if r, ok := rs.Lookup(name); ok {
			t.Errorf("Lookup(%q) = %+v, want not found (not a chat model)", name, r)
		}
	}
	if a := rs.Aliases(); len(a) != 1 || a[0] != auto {
		t.Errorf("Aliases() = %v", a)
	}
	if allocs := testing.AllocsPerRun(100, func() { rs.Lookup("auto") }); allocs != 0 {
		t.Errorf("Lookup allocates %v times", allocs)
	}
}

func TestDefaultRoutesAreValidOverTheBuiltinCatalog(t *testing.T) {
	c, err := NewCatalog(Builtin())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewRoutes(c, DefaultRoutes())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rs.Lookup("auto"); !ok {
		t.Error("no auto route")
	}
}

func TestStickyPick(t *testing.T) {
	if a, b := StickyPick("r", "key-1"), StickyPick("r", "key-1"); a != b {
		t.Errorf("StickyPick is not a function: %v, %v", a, b)
	}
	if StickyPick("r1", "k") == StickyPick("r2", "k") {
		t.Error("the route does not change the pick")
	}
	// Uniform enough for a canary: about 5% of keys below 0.05.
	const n = 10_000
	below := 0
	for i := range n {
		p := StickyPick("canary", "key-"+strconv.Itoa(i))
		if p < 0 || p >= 1 {
			t.Fatalf("pick %v out of [0,1)", p)
		}
		if p < 0.05 {
			below++
		}
	}
	if below < 400 || below > 600 { // 500 expected; a deterministic count, not a timing
		t.Errorf("%d of %d keys picked below 0.05, want about 500", below, n)
	}
}
