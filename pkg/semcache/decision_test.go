package semcache

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// simEmbedder embeds each known text at a set cosine to the base text
// (similarity 1): vector (s, sqrt(1-s²)). Unknown texts are an error.
type simEmbedder struct{ sims map[string]float32 }

func (simEmbedder) Dim() int     { return 2 }
func (simEmbedder) Name() string { return "test-sim-2" }
func (e simEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		s, ok := e.sims[t]
		if !ok {
			return nil, fmt.Errorf("simEmbedder: unknown text %q", t)
		}
		out[i] = []float32{s, float32(math.Sqrt(float64(1 - s*s)))}
	}
	return out, nil
}

// The decision's texts: wordGuard aligns base with aligned (same words),
// leaves unaligned uncertain and refuses numbered (its digits differ).
const (
	base      = "what is the capital of france"
	aligned   = "the capital of france is what"
	unaligned = "which city is the capital of france"
	numbered  = "what is the capital of france 2"
)

func TestSemanticDecision(t *testing.T) {
	tests := []struct {
		name       string
		query      string
		sim        float32
		edit       func(*Options)
		ctl        Controls
		kind       string
		reason     string
		verify     bool // a candidate awaits a judge
		refusals   int64
		similarity float32 // of the result, when not 0
	}{
		{name: "aligned above the floor: served", query: aligned, sim: 0.85, kind: KindSemanticHit},
		{name: "aligned below the floor: not found", query: aligned, sim: 0.75, kind: KindMiss},
		{name: "uncertain above the floor: a miss naming the rule", query: unaligned, sim: 0.90, kind: KindMiss, reason: "uncertain (unaligned word)"},
		{name: "uncertain above the unaligned threshold: served", query: unaligned, sim: 0.96, kind: KindSemanticHit},
		{name: "refused at 0.99: never served", query: numbered, sim: 0.99, kind: KindMiss, reason: "guard: number", refusals: 1},
		{name: "refused at 1.0: never served", query: numbered, sim: 1, kind: KindMiss, reason: "guard: number", refusals: 1},
		{name: "unaligned threshold above 1: uncertain never served alone", query: unaligned, sim: 1,
			edit: func(o *Options) { o.UnalignedThreshold = 1.01 }, kind: KindMiss, reason: "uncertain"},
		{name: "default unaligned threshold: never", query: unaligned, sim: 1,
			edit: func(o *Options) { o.UnalignedThreshold = 0 }, kind: KindMiss, reason: "uncertain"},
		{name: "unaligned threshold below the floor: the floor", query: unaligned, sim: 0.85,
			edit: func(o *Options) { o.UnalignedThreshold = 0.5 }, kind: KindSemanticHit},
		{name: "uncertain with Verify: handed to a judge", query: unaligned, sim: 0.90,
			edit: func(o *Options) { o.Verify = true }, kind: KindMiss, reason: "awaits verification", verify: true},
		{name: "uncertain with Verify above the unaligned threshold: served", query: unaligned, sim: 0.96,
			edit: func(o *Options) { o.Verify = true }, kind: KindSemanticHit},
		{name: "uncertain below the verify threshold (the floor by default): not found", query: unaligned, sim: 0.75,
			edit: func(o *Options) { o.Verify = true }, kind: KindMiss},
		{name: "uncertain below the floor, above a lower verify threshold: a judge", query: unaligned, sim: 0.75,
			edit: func(o *Options) { o.Verify, o.VerifyThreshold = true, 0.7 }, kind: KindMiss, verify: true},
		{name: "aligned below the floor, above a lower verify threshold: a judge too", query: aligned, sim: 0.75,
			edit: func(o *Options) { o.Verify, o.VerifyThreshold = true, 0.7 }, kind: KindMiss, verify: true},
		{name: "uncertain below a higher verify threshold: a miss", query: unaligned, sim: 0.90,
			edit: func(o *Options) { o.Verify, o.VerifyThreshold = true, 0.92 }, kind: KindMiss, reason: "uncertain"},
		{name: "refused with Verify: never handed to a judge", query: numbered, sim: 0.99,
			edit: func(o *Options) { o.Verify = true }, kind: KindMiss, reason: "guard: number", refusals: 1},
		{name: "request threshold raises the floor", query: aligned, sim: 0.85, ctl: Controls{Threshold: 0.97}, kind: KindMiss},
		{name: "request threshold raises the unaligned threshold", query: unaligned, sim: 0.96, ctl: Controls{Threshold: 0.97}, kind: KindMiss},
		{name: "request threshold: uncertain above it served", query: unaligned, sim: 0.98, ctl: Controls{Threshold: 0.97}, kind: KindSemanticHit},
		{name: "request threshold raises the verify threshold", query: unaligned, sim: 0.90, ctl: Controls{Threshold: 0.93},
			edit: func(o *Options) { o.Verify = true }, kind: KindMiss},
		{name: "route threshold raises the floor", query: aligned, sim: 0.85,
			edit: func(o *Options) { o.RouteThresholds = map[string]Thresholds{"gpt-4o-mini": {Threshold: 0.9}} }, kind: KindMiss},
		{name: "route threshold lowers the floor", query: aligned, sim: 0.75,
			edit: func(o *Options) { o.RouteThresholds = map[string]Thresholds{"gpt-4o-mini": {Threshold: 0.7}} }, kind: KindSemanticHit},
		{name: "another route's threshold does not apply", query: aligned, sim: 0.85,
			edit: func(o *Options) { o.RouteThresholds = map[string]Thresholds{"gpt-4o": {Threshold: 0.9}} }, kind: KindSemanticHit},
		{name: "route unaligned threshold: uncertain served", query: unaligned, sim: 0.90,
			edit: func(o *Options) { o.RouteThresholds = map[string]Thresholds{"gpt-4o-mini": {Unaligned: 0.88}} }, kind: KindSemanticHit},
		{name: "route unaligned threshold never below the route floor", query: unaligned, sim: 0.90,
			edit: func(o *Options) {
				o.RouteThresholds = map[string]Thresholds{"gpt-4o-mini": {Threshold: 0.92, Unaligned: 0.85}}
			}, kind: KindMiss},
		{name: "request threshold still raises a route's floor", query: aligned, sim: 0.85, ctl: Controls{Threshold: 0.9},
			edit: func(o *Options) { o.RouteThresholds = map[string]Thresholds{"gpt-4o-mini": {Threshold: 0.7}} }, kind: KindMiss},
		{name: "verify threshold follows a route's floor", query: unaligned, sim: 0.85,
			edit: func(o *Options) {
				o.Verify, o.RouteThresholds = true, map[string]Thresholds{"gpt-4o-mini": {Threshold: 0.88}}
			}, kind: KindMiss}, // not even found: searched at the route's floor
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			env.index.dropEntries = true
			c := env.open(t, func(o *Options) {
				o.Embedder = simEmbedder{sims: map[string]float32{base: 1, tt.query: tt.sim}}
				o.Checker = &wordGuard{}
				o.Threshold, o.UnalignedThreshold = 0.80, 0.95
				if tt.edit != nil {
					tt.edit(o)
				}
			})
			mustStore(t, c, req(t, "t1", userBody(base)), Controls{}, answer("Paris."))
			// The entry is pending until a lookup in its scope embeds it.
			lookup(t, c, req(t, "t1", userBody(base)), Controls{})
			e, res := lookup(t, c, req(t, "t1", userBody(tt.query)), tt.ctl)
			if res.Kind != tt.kind || !strings.Contains(res.Reason, tt.reason) || (res.Verify != nil) != tt.verify {
				t.Fatalf("got %+v, want %s (%q), verify %v", res, tt.kind, tt.reason, tt.verify)
			}
			if got := c.Stats().GuardRefusals; got != tt.refusals {
				t.Errorf("guard refusals %d, want %d", got, tt.refusals)
			}
			if tt.kind == KindSemanticHit && (e == nil || res.Verified != "" || math.Abs(float64(res.Similarity-tt.sim)) > 1e-5) {
				t.Errorf("hit %+v of %+v", res, e)
			}
			if cand := res.Verify; cand != nil {
				if cand.Query != tt.query || cand.Cached != base || cand.Entry == nil || !strings.Contains(string(cand.Entry.Response.Raw), "Paris.") ||
					math.Abs(float64(cand.Similarity-tt.sim)) > 1e-5 {
					t.Errorf("candidate %+v", cand)
				}
			}
		})
	}
}

// TestPreparedOncePerEntry: the guard prepares each cached prompt once
// however many lookups it is a candidate of (again after a restart, and
// once per replica for another replica's entry from a shared index), and
// each query once.
func TestPreparedOncePerEntry(t *testing.T) {
	paraphrases := []string{"capital of france: what is the", "the capital of france is what", "france, what is the capital of"}
	sims := map[string]float32{base: 1}
	for _, p := range paraphrases {
		sims[p] = 0.99
	}
	lookups := func(t *testing.T, c *Cache) {
		for _, p := range append(paraphrases, paraphrases...) {
			if _, res := lookup(t, c, req(t, "t1", userBody(p)), Controls{}); res.Kind != KindMiss && res.Kind != KindSemanticHit {
				t.Fatalf("%q: %+v", p, res)
			}
		}
	}
	t.Run("own entries, and again after a restart", func(t *testing.T) {
		for _, shared := range []bool{false, true} {
			t.Run(fmt.Sprint("shared index ", shared), func(t *testing.T) {
				env := newTestEnv(t)
				env.index.dropEntries = !shared
				g := &wordGuard{}
				edit := func(o *Options) { o.Embedder, o.Checker = simEmbedder{sims: sims}, g }
				c := env.open(t, edit)
				mustStore(t, c, req(t, "t1", userBody(base)), Controls{}, answer("Paris."))
				lookups(t, c)
				if n := g.preparations(base); n != 1 {
					t.Errorf("cached prompt prepared %d times, want 1", n)
				}
				for _, p := range paraphrases {
					if n := g.preparations(p); n != 2 {
						t.Errorf("query %q prepared %d times in two lookups, want 2", p, n)
					}
				}
				c.Close()
				env.index = newScanIndex()
				env.index.dropEntries = !shared
				lookups(t, env.open(t, edit))
				if n := g.preparations(base); n != 2 {
					t.Errorf("cached prompt prepared %d times over two runs, want 2", n)
				}
			})
		}
	})
	t.Run("another replica's entry", func(t *testing.T) {
		rs := newReplicas(t, 2)
		a := rs.dbs[0].open(t, func(o *Options) { o.Embedder, o.Checker = simEmbedder{sims: sims}, &wordGuard{} })
		g := &wordGuard{}
		b := rs.dbs[1].open(t, func(o *Options) { o.Embedder, o.Checker = simEmbedder{sims: sims}, g })
		mustStore(t, a, req(t, "t1", userBody(base)), Controls{}, answer("Paris."))
		lookups(t, b)
		if n := g.preparations(base); n != 1 {
			t.Errorf("A's prompt prepared %d times by B, want 1", n)
		}
		if s := b.Stats(); s.SemanticHits != int64(2*len(paraphrases)) {
			t.Errorf("B stats %+v", s)
		}
	})
	t.Run("the query that stored an entry lends it its preparation", func(t *testing.T) {
		const closer = "france, what is the capital of"
		env := newTestEnv(t)
		env.index.dropEntries = true
		g := &wordGuard{}
		c := env.open(t, func(o *Options) {
			o.Embedder, o.Checker = simEmbedder{sims: map[string]float32{base: 1, aligned: 0.99, closer: 0.995}}, g
		})
		mustStore(t, c, req(t, "t1", userBody(base)), Controls{}, answer("Paris."))
		q := c.Prepare(req(t, "t1", userBody(aligned)), Controls{})
		if _, res, _ := c.Lookup(context.Background(), q); res.Kind != KindSemanticHit {
			t.Fatalf("aligned: %+v", res)
		}
		if err := c.Store(context.Background(), q, answer("Paris!"), "m", 1); err != nil {
			t.Fatal(err)
		}
		// closer is nearer aligned's entry (cosine 0.9997) than base's.
		e, res := lookup(t, c, req(t, "t1", userBody(closer)), Controls{})
		if res.Kind != KindSemanticHit || !strings.Contains(string(e.Response.Raw), "Paris!") {
			t.Fatalf("closer: %+v", res)
		}
		if n := g.preparations(aligned); n != 1 {
			t.Errorf("stored query prepared %d times, want 1 (its lookup's)", n)
		}
	})
}

// TestVerdict: a judge's verdict serves the candidate (counted as a
// semantic hit) or not, and is cached for the pair within its scope until
// the entry expires.
func TestVerdict(t *testing.T) {
	const other = "which town is the capital of france"
	env := newTestEnv(t)
	env.index.dropEntries = true
	c := env.open(t, func(o *Options) {
		o.Embedder = simEmbedder{sims: map[string]float32{base: 1, unaligned: 0.9, other: 0.9}}
		o.Checker = &wordGuard{}
		o.Threshold, o.Verify = 0.8, true
	})
	system := func(text, sys string) string {
		return `{"model":"gpt-4o-mini","messages":[{"role":"system","content":` + quote(sys) + `},{"role":"user","content":` + quote(text) + `}]}`
	}
	store := func(tenant, body string) {
		mustStore(t, c, req(t, tenant, body), Controls{}, answer("Paris."))
		lookup(t, c, req(t, tenant, body), Controls{}) // embeds the pending entry
	}
	store("t1", userBody(base))
	ctx := context.Background()
	ask := func(tenant, body string) (*Query, *Entry, Result) {
		q := c.Prepare(req(t, tenant, body), Controls{})
		e, res, err := c.Lookup(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return q, e, res
	}

	q, _, res := ask("t1", userBody(unaligned))
	if res.Verify == nil {
		t.Fatalf("no candidate: %+v", res)
	}
	before := c.Stats()
	e, vres := c.Verdict(q, res.Verify, true)
	if e == nil || vres.Kind != KindSemanticHit || vres.Verified != VerifiedByJudge || vres.Similarity != res.Similarity {
		t.Fatalf("verdict yes: %v %+v", e, vres)
	}
	if s := c.Stats(); s.Misses != before.Misses-1 || s.SemanticHits != before.SemanticHits+1 || s.SavedMicros != before.SavedMicros+150 {
		t.Errorf("stats after a yes %+v, before %+v", s, before)
	}

	q2, _, res2 := ask("t1", userBody(other))
	if res2.Verify == nil {
		t.Fatalf("no candidate for the other query: %+v", res2)
	}
	if e, vres := c.Verdict(q2, res2.Verify, false); e != nil || vres.Kind != KindMiss || vres.Reason != judgeRefusal {
		t.Fatalf("verdict no: %v %+v", e, vres)
	}

	steps := []struct {
		name, tenant, body string
		kind, verified     string
		verify             bool
		reason             string
	}{
		{name: "a cached yes serves the pair", tenant: "t1", body: userBody(unaligned), kind: KindSemanticHit, verified: VerifiedByJudge},
		{name: "a cached no refuses the pair", tenant: "t1", body: userBody(other), kind: KindMiss, reason: judgeRefusal},
		{name: "another tenant: its own candidate, asked again", tenant: "t2", body: userBody(unaligned), kind: KindMiss, verify: true},
		{name: "another scope (system prompt): asked again", tenant: "t1", body: system(unaligned, "Be brief."), kind: KindMiss, verify: true},
	}
	store("t2", userBody(base))
	store("t1", system(base, "Be brief."))
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			_, e, res := ask(st.tenant, st.body)
			if res.Kind != st.kind || res.Verified != st.verified || (res.Verify != nil) != st.verify || res.Reason != st.reason && st.reason != "" {
				t.Fatalf("got %+v (entry %v)", res, e != nil)
			}
		})
	}

	t.Run("a verdict on another query's candidate is ignored", func(t *testing.T) {
		n := c.verdicts.len()
		if e, vres := c.Verdict(q2, res.Verify, true); e != nil || vres.Kind != KindMiss {
			t.Fatalf("got %v %+v", e, vres)
		}
		if c.verdicts.len() != n {
			t.Error("recorded")
		}
	})

	t.Run("verdicts expire with their entry", func(t *testing.T) {
		env.clock.Advance(time.Hour)
		store("t1", userBody(base)) // a new entry for the same prompt
		if _, _, res := ask("t1", userBody(unaligned)); res.Verify == nil || res.Verified != "" {
			t.Fatalf("the expired entry's verdict applied to its successor: %+v", res)
		}
		if _, _, res := ask("t1", userBody(other)); res.Verify == nil {
			t.Fatalf("the expired entry's no applied to its successor: %+v", res)
		}
		if _, err := c.SweepExpired(ctx); err != nil {
			t.Fatal(err)
		}
		if n := c.verdicts.len(); n != 0 {
			t.Errorf("%d verdicts left after the sweep", n)
		}
	})
}

func TestVerdictsBounded(t *testing.T) {
	now := newTestClock().Now()
	tests := []struct {
		name    string
		max     int
		puts    int
		wantMax int
	}{
		{"under the bound", 8, 5, 5},
		{"at the bound", 8, 8, 8},
		{"over the bound", 8, 100, 8},
		{"bound of one", 1, 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := verdicts{max: tt.max}
			for i := range tt.puts {
				v.put(verdictKey{scope: "s", id: uint64(i + 1)}, true, now.Add(time.Hour), now)
			}
			if n := v.len(); n > tt.wantMax || n == 0 {
				t.Errorf("%d verdicts held, want 1..%d", n, tt.wantMax)
			}
			last := verdictKey{scope: "s", id: uint64(tt.puts)}
			if ok, known := v.get(last, now); !ok || !known {
				t.Error("the last verdict was dropped")
			}
			if _, known := v.get(last, now.Add(time.Hour)); known {
				t.Error("a verdict outlived its entry")
			}
		})
	}
}
