package router

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Strategy is how a route orders its capable candidates.
type Strategy string

// Strategies a route can use.
const (
	// StrategyCheapest orders capable candidates by the estimated cost of
	// this request, cheapest first. The default for aliases.
	StrategyCheapest Strategy = "cheapest"
	// StrategyPriority keeps the configured order: the first capable
	// candidate serves, the others are fallbacks.
	StrategyPriority Strategy = "priority"
	// StrategyWeighted picks one capable candidate at random in proportion
	// to its weight (A/B tests, canaries), optionally sticky per key; the
	// others follow by weight as fallbacks.
	StrategyWeighted Strategy = "weighted"
)

// DefaultExpectedOutput is the completion-token estimate of a route that
// sets none: the output assumed when the client sends no max_tokens, and the
// cap on max_tokens when estimating cost. Clients often send a generous
// max_tokens (4096, 16384) they never use, so costing the limit would rank
// models by a bound rather than by what requests usually produce; 512 is
// roughly the median chat completion.
const DefaultExpectedOutput = 512

// Route is what a request's model name resolves to: a route alias from the
// config (e.g. "auto") or a plain catalog model, which is a route of one
// candidate with StrategyPriority.
//
// Routes returned by Routes.Lookup are shared and must not be modified.
type Route struct {
	Name     string
	Strategy Strategy // "" means StrategyCheapest
	// Candidates are catalog model names. A candidate's deployments are the
	// gateway's business; the route only names models.
	Candidates []string
	// Weights, for StrategyWeighted only, one per candidate, >= 0 with a
	// positive sum (0 drains a candidate without removing it).
	Weights []int
	// Sticky makes a weighted choice a function of the route and the
	// caller's key (PlanInput.StickyKey), so one key stays on one arm.
	Sticky bool
	// MinTier skips candidates of a lower tier (0: no minimum).
	MinTier int
	// ExpectedOutput is the completion tokens expected of a response; 0
	// means DefaultExpectedOutput.
	ExpectedOutput int
	// Timeout bounds a request on this route end to end and TTFTTimeout the
	// wait for a stream's first token; 0 means the gateway's defaults. The
	// router only carries them.
	Timeout     time.Duration
	TTFTTimeout time.Duration
	// StreamIdleTimeout replaces the providers' idle timeout between two
	// events of this route's streams; 0 means the provider's.
	StreamIdleTimeout time.Duration
	// Downgrade: a request of this route that the key's budget cannot
	// afford is served by the cheapest capable model that fits (the key's
	// own policy may also say so).
	Downgrade bool

	models []*Model // Candidates resolved in the catalog
	alias  bool
}

// Models returns the candidates resolved in the catalog, in configured
// order. The slice is shared and must not be modified.
func (r *Route) Models() []*Model { return r.models }

// Alias reports whether the route is an alias from the config rather than a
// plain catalog model.
func (r *Route) Alias() bool { return r.alias }

// expectedOutput is ExpectedOutput or its default.
func (r *Route) expectedOutput() int {
	if r.ExpectedOutput > 0 {
		return r.ExpectedOutput
	}
	return DefaultExpectedOutput
}

// DefaultRoutes returns the built-in aliases: "auto", cheapest capable of
// the simulated models sim-small and sim-large, so cheapest-capable routing
// can be tried without any provider account (a request with an image or a
// long prompt goes to sim-large, the rest to sim-small). Each call returns a
// fresh slice.
func DefaultRoutes() []Route {
	return []Route{{
		Name:       "auto",
		Strategy:   StrategyCheapest,
		Candidates: []string{"sim-small", "sim-large"},
		MinTier:    1,
	}}
}

// Routes is the table of route aliases over one catalog, plus an implicit
// route for every chat model of the catalog. It is immutable once built, so
// lookups take no lock; reloading config builds a new table.
type Routes struct {
	byName  map[string]*Route
	aliases []*Route
}

// NewRoutes checks routes against catalog and builds the table. Every
// problem is reported, joined in one error, with the route's config path
// ("routes.auto.candidates[1]: ..."):
//
//   - names must be non-empty, without white space, unique, and must not be
//     the name of a catalog model: an alias that shadowed a model would make
//     the model unreachable and its name ambiguous in logs and invoices;
//   - every candidate must be a chat model of the catalog, listed once;
//   - Weights only for StrategyWeighted, one per candidate, >= 0, sum > 0;
//     Sticky only for StrategyWeighted;
//   - MinTier is 0 or 1..5 and at least one candidate reaches it;
//   - ExpectedOutput, Timeout and TTFTTimeout are not negative.
//
// The input slice is not retained; Strategy "" becomes StrategyCheapest.
func NewRoutes(catalog *Catalog, routes []Route) (*Routes, error) {
	var errs []error
	t := &Routes{byName: make(map[string]*Route, len(routes)+catalog.Len())}
	for i := range routes {
		r := routes[i] // copy: the table owns its routes
		r.Candidates = slices.Clone(r.Candidates)
		r.Weights = slices.Clone(r.Weights)
		path := "routes." + r.Name
		if r.Name == "" {
			path = fmt.Sprintf("routes[%d]", i)
		}
		fail := func(field, format string, args ...any) {
			p := path
			if field != "" {
				p += "." + field
			}
			errs = append(errs, fmt.Errorf("%s: %s", p, fmt.Sprintf(format, args...)))
		}

		switch {
		case r.Name == "":
			fail("name", "must not be empty")
		case strings.ContainsFunc(r.Name, unicode.IsSpace):
			fail("name", "must not contain white space")
		case t.byName[r.Name] != nil:
			fail("name", "route %q is defined twice", r.Name)
		}
		if _, ok := catalog.Lookup(r.Name); ok {
			fail("name", "%q is a catalog model; an alias must not shadow it", r.Name)
		}
		if r.Strategy == "" {
			r.Strategy = StrategyCheapest
		}
		switch r.Strategy {
		case StrategyCheapest, StrategyPriority, StrategyWeighted:
		default:
			fail("strategy", "unknown strategy %q: expected cheapest, priority or weighted", r.Strategy)
		}

		if len(r.Candidates) == 0 {
			fail("candidates", "at least one candidate is required")
		}
		seen := make(map[string]bool, len(r.Candidates))
		reachesTier := false
		for j, name := range r.Candidates {
			field := fmt.Sprintf("candidates[%d]", j)
			if seen[name] {
				fail(field, "%q is listed twice", name)
				continue
			}
			seen[name] = true
			m, ok := catalog.Lookup(name)
			switch {
			case !ok:
				fail(field, "unknown model %q", name)
				continue
			case m.Mode != ModeChat:
				fail(field, "%q is a %s model, not a chat model", name, m.Mode)
				continue
			}
			r.models = append(r.models, m)
			reachesTier = reachesTier || m.Tier >= r.MinTier
		}

		if r.Strategy == StrategyWeighted {
			sum := 0
			if len(r.Weights) != len(r.Candidates) {
				fail("weights", "%d weights for %d candidates", len(r.Weights), len(r.Candidates))
			}
			for j, w := range r.Weights {
				if w < 0 {
					fail(fmt.Sprintf("weights[%d]", j), "must not be negative")
				}
				sum += max(w, 0)
			}
			if sum <= 0 && len(r.Weights) > 0 {
				fail("weights", "the weights must not all be zero")
			}
		} else {
			if len(r.Weights) > 0 {
				fail("weights", "weights need strategy weighted")
			}
			if r.Sticky {
				fail("sticky", "sticky needs strategy weighted")
			}
		}

		switch {
		case r.MinTier != 0 && (r.MinTier < MinTier || r.MinTier > MaxTier):
			fail("min_tier", "must be between %d and %d", MinTier, MaxTier)
		case len(r.models) > 0 && !reachesTier:
			fail("min_tier", "no candidate reaches tier %d", r.MinTier)
		}
		if r.ExpectedOutput < 0 {
			fail("expected_output", "must not be negative")
		}
		if r.Timeout < 0 {
			fail("timeout", "must not be negative")
		}
		if r.TTFTTimeout < 0 {
			fail("ttft_timeout", "must not be negative")
		}

		if r.Name != "" && t.byName[r.Name] == nil {
			r.alias = true
			rp := &r
			t.byName[r.Name] = rp
			t.aliases = append(t.aliases, rp)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, m := range catalog.sorted {
		if m.Mode != ModeChat {
			continue
		}
		t.byName[m.Name] = &Route{
			Name:       m.Name,
			Strategy:   StrategyPriority,
			Candidates: []string{m.Name},
			models:     []*Model{m},
		}
	}
	slices.SortFunc(t.aliases, func(a, b *Route) int { return strings.Compare(a.Name, b.Name) })
	return t, nil
}

// Lookup resolves a request's model name: an alias, or a chat model of the
// catalog as a route of one candidate. Embedding and responses-only models
// and unknown names are not found (the caller tells them apart with the
// catalog). It does not allocate.
func (t *Routes) Lookup(name string) (*Route, bool) {
	if t == nil {
		return nil, false
	}
	r, ok := t.byName[name]
	return r, ok
}

// Aliases returns the aliases sorted by name (for /v1/models and the admin
// API). The slice is the caller's; the routes are shared.
func (t *Routes) Aliases() []*Route {
	if t == nil {
		return nil
	}
	return slices.Clone(t.aliases)
}

// StickyPick maps a route and a caller key (an API key id, a user id) to a
// pick in [0,1) for a weighted choice: the same pair always gets the same
// pick, so a key stays on one arm of an A/B split while the weights and the
// capable candidates stay the same. Keys spread uniformly, so a 5% canary
// gets about 5% of keys.
func StickyPick(route, key string) float64 {
	// FNV-1a over route, a 0 separator and key, written out so it does not
	// allocate; its high bits mix poorly for short keys, so a 64-bit
	// finalizer (murmur3's) follows.
	const offset, prime = 14695981039346656037, 1099511628211
	x := uint64(offset)
	for i := 0; i < len(route); i++ {
		x = (x ^ uint64(route[i])) * prime
	}
	x *= prime // the 0 separator: x ^ 0 == x
	for i := 0; i < len(key); i++ {
		x = (x ^ uint64(key[i])) * prime
	}
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return float64(x>>11) / (1 << 53)
}
