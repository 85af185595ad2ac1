package gateway

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/router"
)

// This file is what a configuration reload changes: the routing table.
// Each exchange loads the table once, when it begins, and uses that
// snapshot to its end, so a request in flight (a stream mid-body included)
// finishes on the configuration it started with while the next one sees
// the new table. What a reload does not change (the token counter, the
// rate limits, the accounts, the cache and its entries, the latencies
// observed) stays on the Gateway.

// Table is the part of the configuration Reconfigure replaces: the models
// served and their deployments, the routes, the breakers, the judge, the
// request timeout and the cache's tenants.
type Table struct {
	// Models are taken as they are: New and Reconfigure copy them.
	Models []*Model
	// Routes resolves a request's model (nil: every served chat model as
	// itself).
	Routes *router.Routes
	// Breakers holds the deployments' breakers (nil: default settings). A
	// deployment that Reconfigure finds unchanged keeps its breaker, and
	// its rate-limit cooldown, from the table it replaces: an open breaker
	// stays open.
	Breakers       *router.Breakers
	RequestTimeout time.Duration
	Tenants        map[string]string
	Judge          Judge
	// NoCache bypasses the cache (x-tollgate-cache: bypass) while keeping
	// it open: a reload that turns the cache off.
	NoCache bool
	// Guards are the guards and prompt enrichment of routes; a reload
	// replaces them (hit counts are kept by guard name).
	Guards GuardConfig
}

// Table returns the routing part of o.
func (o Options) Table() Table {
	return Table{Models: o.Models, Routes: o.Routes, Breakers: o.Breakers, RequestTimeout: o.RequestTimeout, Tenants: o.Tenants, Judge: o.Judge, Guards: o.Guards}
}

// table is a Table resolved: what an exchange reads.
type table struct {
	routes    *router.Routes
	downgrade *router.Route // cheapest over every served chat model, for budget downgrades
	models    map[string]*Model
	names     []string
	breakers  *router.Breakers
	balancer  *router.Balancer
	timeout   time.Duration
	tenants   map[string]string
	judge     *judge // nil: no judge
	cacheOff  bool
	guards    *guardTable
}

// Reconfigure replaces the routing table: requests that begin after it
// returns use tb, those in flight finish on the table they began with. A
// deployment of tb with the ID and the provider client of one in the
// current table is unchanged: it keeps its breaker (state and counts) and
// its rate-limit cooldown. On error nothing changes. Calls are serialised.
func (g *Gateway) Reconfigure(tb Table) error {
	g.reconfigure.Lock()
	defer g.reconfigure.Unlock()
	t, err := g.newTable(tb, g.tab.Load())
	if err != nil {
		return err
	}
	g.tab.Store(t)
	return nil
}

// newTable resolves tb; the deployments that old (nil at start) already
// serves unchanged carry their health over.
func (g *Gateway) newTable(tb Table, old *table) (*table, error) {
	t := &table{routes: tb.Routes, models: map[string]*Model{}, breakers: tb.Breakers, timeout: tb.RequestTimeout,
		tenants: tb.Tenants, cacheOff: tb.NoCache}
	if t.breakers == nil {
		b, err := router.NewBreakers(router.BreakerConfig{})
		if err != nil {
			return nil, err
		}
		t.breakers = b
	}
	t.balancer = router.NewBalancer(t.breakers, g.now)
	guards, err := newGuardTable(tb.Guards, &g.guardHits)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	t.guards = guards
	var specs []router.Model
	for _, given := range tb.Models {
		if len(given.Deployments) == 0 {
			return nil, fmt.Errorf("gateway: model %s has no deployment", given.Name)
		}
		if given.Spec == nil {
			return nil, fmt.Errorf("gateway: model %s has no catalog entry", given.Name)
		}
		if _, dup := t.models[given.Name]; dup {
			return nil, fmt.Errorf("gateway: model %s defined twice", given.Name)
		}
		// A copy: the caller's Model may be in an older table that
		// exchanges in flight still read.
		m := *given
		m.Deployments = slices.Clone(given.Deployments)
		m.byID = make(map[string]*Deployment, len(m.Deployments))
		m.refs = make([]router.Deployment, len(m.Deployments))
		for i := range m.Deployments {
			d := &m.Deployments[i]
			if d.ID == "" {
				d.ID = fmt.Sprintf("%s/%s#%d", d.Provider.Name(), m.Name, i)
			}
			if d.ProviderName == "" {
				d.ProviderName = d.Provider.Name()
			}
			if _, dup := m.byID[d.ID]; dup {
				return nil, fmt.Errorf("gateway: deployment id %s used twice", d.ID)
			}
			m.byID[d.ID] = d
			m.refs[i] = router.Deployment{ID: d.ID, Weight: d.Weight}
			if old != nil && old.serves(d) {
				t.breakers.Keep(old.breakers, d.ID)
				t.balancer.Keep(old.balancer, d.ID)
			}
			t.breakers.Add(d.ID, d.ProviderName)
		}
		t.models[m.Name] = &m
		t.names = append(t.names, m.Name)
		if m.Chat {
			sp := *m.Spec
			sp.Name = m.Name // served under its own name, whatever its catalog entry is called
			specs = append(specs, sp)
		}
	}
	sort.Strings(t.names)
	c, err := router.NewCatalog(specs)
	if err != nil {
		return nil, err
	}
	if t.routes == nil {
		if t.routes, err = router.NewRoutes(c, nil); err != nil {
			return nil, err
		}
	}
	if len(specs) > 0 {
		var names []string
		for _, sp := range specs {
			names = append(names, sp.Name)
		}
		down, err := router.NewRoutes(c, []router.Route{{Name: "tollgate:downgrade", Strategy: router.StrategyCheapest, Candidates: names}})
		if err != nil {
			return nil, err
		}
		t.downgrade, _ = down.Lookup("tollgate:downgrade")
	}
	if j := tb.Judge; j.Model != "" {
		route, ok := t.routes.Lookup(j.Model)
		if !ok || (!route.Alias() && (t.models[j.Model] == nil || !t.models[j.Model].Chat)) {
			return nil, fmt.Errorf("gateway: judge model %q: %w", j.Model, ErrNoJudge)
		}
		t.judge = &judge{route: route, timeout: j.Timeout}
		if t.judge.timeout <= 0 {
			t.judge.timeout = DefaultJudgeTimeout
		}
	}
	return t, nil
}

// serves reports whether the table has deployment d unchanged: the same
// ID on the same provider client.
func (t *table) serves(d *Deployment) bool {
	for _, m := range t.models {
		if o, ok := m.byID[d.ID]; ok && o.Provider == d.Provider {
			return true
		}
	}
	return false
}

// resolveRoute: a key allowed an alias may use all its candidates;
// otherwise only the candidates it is allowed.
func (t *table) resolveRoute(key *keys.Key, name string) (*router.Route, func(string) bool, error) {
	route, ok := t.routes.Lookup(name)
	if !ok || (!route.Alias() && t.models[name] == nil) {
		if m := t.models[name]; m != nil && !m.Chat {
			return nil, nil, notServed(name, "an embeddings model and does not serve chat completions")
		}
		return nil, nil, modelNotFound(name)
	}
	if key.Allows(name) {
		return route, nil, nil
	}
	if route.Alias() {
		for _, m := range route.Models() {
			if key.Allows(m.Name) {
				return route, key.Allows, nil
			}
		}
	}
	return nil, nil, notAllowed(name)
}

// available reports whether a model has a deployment that can take a call.
func (t *table) available(name string) (bool, string) {
	m := t.models[name]
	if m == nil {
		return false, "not configured"
	}
	return t.balancer.Available(m.refs)
}

// withTimeout bounds the request by the route's timeout, else the
// gateway's.
func (t *table) withTimeout(ctx context.Context, route time.Duration) (context.Context, context.CancelFunc) {
	if route <= 0 {
		route = t.timeout
	}
	if route > 0 {
		return context.WithTimeout(ctx, route)
	}
	return context.WithCancel(ctx)
}

// tenant is the cache tenant of a key: its shared tenant, or itself.
func (t *table) tenant(keyID string) string {
	if name, ok := t.tenants[keyID]; ok {
		return SharedTenant(name)
	}
	return "key:" + keyID
}
