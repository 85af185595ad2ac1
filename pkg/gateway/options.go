package gateway

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/semcache"
)

// This file is what a request may ask of the flow beside its body: the
// request fields of Keywords AI (fallback_models, cache_enabled,
// cache_options, disable_log) and a Portkey-style x-tollgate-config
// header. The HTTP layer reads them and checks their shape; here they are
// checked against the routing table and the key, before the cache or any
// upstream is asked, and they reshape the exchange's steps: resolve
// resolves them into legs, plan plans each leg and joins their steps,
// try's decide reads the config's statuses and retry policy.

// RequestOptions are a request's own routing, cache and logging
// instructions. The zero value asks nothing.
type RequestOptions struct {
	// Fallbacks are models or routes tried in order once every candidate
	// of the model asked for has failed (fallback_models). Each is
	// resolved like the model asked for: a name not served is a 404, one
	// the key may not use a 403, before any upstream is called.
	Fallbacks []string
	// NoCache: the cache is neither read nor written (cache_enabled:
	// false).
	NoCache bool
	// CacheByCustomer scopes the cache to Caller.Customer as well as to
	// the key's tenant (cache_options.cache_by_customer).
	CacheByCustomer bool
	// NoLog: nothing of the request is kept but its ledger row: no cache
	// entry, no judge verdict (disable_log).
	NoLog bool
	// Config is the x-tollgate-config header; nil when absent.
	Config *Config
}

// The modes of Config.
const (
	ConfigFallback    = "fallback"    // the targets in order, each after the last failed
	ConfigLoadbalance = "loadbalance" // one target, drawn by weight
)

// Bounds of what a request may ask.
const (
	MaxFallbacks     = 8
	MaxTargets       = 8
	MaxRetryAttempts = 5
)

// Config is a Portkey-style routing config for one request.
type Config struct {
	Mode string
	// FallbackOn (strategy.on_status_codes), when set, is the statuses of
	// an upstream failure that move a fallback config to its next target:
	// any other upstream failure is returned. Nil: any failure moves on.
	FallbackOn []int
	Targets    []Target
	// Retry replaces the deployments' retry policy for this request; nil
	// keeps theirs.
	Retry *Retry
	// Timeout bounds the request (request_timeout) when shorter than its
	// route's or the gateway's; never longer than the gateway's.
	Timeout time.Duration
}

// Target is a model or route of a config, and its weight (loadbalance).
type Target struct {
	Model  string
	Weight float64
}

// Retry is a config's retry policy: an upstream failure with one of On's
// statuses (default 429, 500, 502, 503, 504) is retried up to Attempts
// times on its deployment; any other is not retried.
type Retry struct {
	Attempts int
	On       []int
}

// defaultRetryOn are the statuses a Retry without its own retries, as
// Portkey's.
var defaultRetryOn = []int{http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}

// retries reports whether r retries a failure with status.
func (r *Retry) retries(status int) bool {
	if r == nil {
		return false
	}
	on := r.On
	if on == nil {
		on = defaultRetryOn
	}
	return slices.Contains(on, status)
}

// asks reports whether o asks anything of the plan.
func (o *RequestOptions) asks() bool { return len(o.Fallbacks) > 0 || o.Config != nil }

// optionPlan is what an exchange makes of its request's options: the legs
// to plan, in order; what x-tollgate-route says of them; and, once
// planned, the steps a config enters only on its statuses (course). It
// is nil for the requests that ask nothing, which pay nothing for it.
type optionPlan struct {
	legs  []leg
	route string
	gated []int
}

// leg is one part of the plan the options make: the model asked for, a
// config target, or a fallback model, resolved.
type leg struct {
	name    string
	route   *router.Route
	allowed func(string) bool
	// gated: entered only after an upstream failure whose status the
	// config lists (Config.FallbackOn).
	gated bool
}

// resolveOptions resolves what the request's options route to, after the
// model asked for (resolve): 404 for a name not served, 403 for one the
// key may not use, 400 for a request_timeout longer than the gateway's.
// A config's targets replace the model asked for (which still keys the
// cache); the fallbacks follow them.
func (x *exchange) resolveOptions() error {
	o := &x.c.Options
	if !o.asks() {
		return nil
	}
	legs := make([]leg, 0, 1+len(o.Fallbacks))
	var route []string // what x-tollgate-route says the options did
	if cfg := o.Config; cfg != nil {
		if cfg.Timeout > 0 && x.t.timeout > 0 && cfg.Timeout > x.t.timeout {
			return configError("request_timeout", fmt.Sprintf("request_timeout %dms is longer than the gateway's request timeout (%dms)", cfg.Timeout.Milliseconds(), x.t.timeout.Milliseconds()))
		}
		targets := make([]leg, len(cfg.Targets))
		for i, tg := range cfg.Targets {
			l, err := x.resolveLeg(tg.Model, fmt.Sprintf("x-tollgate-config.targets[%d].model", i))
			if err != nil {
				return err
			}
			l.gated = i > 0 && len(cfg.FallbackOn) > 0
			targets[i] = l
		}
		switch cfg.Mode {
		case ConfigLoadbalance:
			i := pickTarget(cfg.Targets, x.g.rand())
			legs = append(legs, targets[i])
			route = append(route, fmt.Sprintf("config loadbalance: %s (weight %s of %s)", targets[i].name, weight(cfg.Targets[i].Weight), weight(totalWeight(cfg.Targets))))
		default:
			legs = append(legs, targets...)
			names := make([]string, len(targets))
			for i, l := range targets {
				names[i] = l.name
			}
			note := "config fallback: " + strings.Join(names, " -> ")
			if len(cfg.FallbackOn) > 0 {
				note += " on " + statuses(cfg.FallbackOn)
			}
			route = append(route, note)
		}
	} else {
		legs = append(legs, leg{name: x.route.Name, route: x.route, allowed: x.allowed})
	}
	for i, name := range o.Fallbacks {
		l, err := x.resolveLeg(name, fmt.Sprintf("fallback_models[%d]", i))
		if err != nil {
			return err
		}
		legs = append(legs, l)
	}
	if len(o.Fallbacks) > 0 {
		route = append(route, "fallback_models: "+strings.Join(o.Fallbacks, ", "))
	}
	x.opt = &optionPlan{legs: legs, route: strings.Join(route, "; ")}
	return nil
}

// resolveLeg resolves one name the options give, its errors naming param.
func (x *exchange) resolveLeg(name, param string) (leg, error) {
	route, allowed, err := x.t.resolveRoute(x.c.Key, name)
	if err != nil {
		if e, ok := llm.AsError(err); ok {
			named := *e
			named.Param = param
			return leg{}, &named
		}
		return leg{}, err
	}
	return leg{name: name, route: route, allowed: allowed}, nil
}

// configError is a config header the gateway refuses.
func configError(path, msg string) error {
	return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "invalid_header", Param: "x-tollgate-config." + path, Message: msg}
}

// pickTarget draws a target by weight with r in [0,1).
func pickTarget(targets []Target, r float64) int {
	at := r * totalWeight(targets)
	for i, tg := range targets {
		if at < tg.Weight {
			return i
		}
		at -= tg.Weight
	}
	return len(targets) - 1
}

func totalWeight(targets []Target) float64 {
	var sum float64
	for _, tg := range targets {
		sum += tg.Weight
	}
	return sum
}

func weight(w float64) string { return strconv.FormatFloat(w, 'g', 4, 64) }

func statuses(codes []int) string {
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

// maxRouteNote bounds what x-tollgate-route says of the options.
const maxRouteNote = 512

// planLegs plans each leg with the same needs and joins their steps in
// order, a model met in an earlier leg left out. A leg that cannot serve
// the request (its window, its tools...) is skipped; only when none can is
// the first leg's refusal returned. The steps that begin a gated leg are
// kept for the course. Without options it is the one plan of the model
// asked for.
func (x *exchange) planLegs(req *llm.ChatRequest) (plan *router.Plan, err error) {
	if x.opt == nil {
		return x.makePlan(x.route, x.allowed, req, 0)
	}
	var firstErr error
	var skipped []string
	var gated []int
	for _, l := range x.opt.legs {
		p, err := x.makePlan(l.route, l.allowed, req, 0)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			skipped = append(skipped, l.name+" ("+failureNote(err)+")")
			continue
		}
		if plan == nil {
			plan = &router.Plan{Route: p.Route, Skipped: p.Skipped, Explanation: p.Explanation}
		}
		begins := true
		for _, st := range p.Steps {
			if slices.ContainsFunc(plan.Steps, func(s router.Step) bool { return s.Model.Name == st.Model.Name }) {
				continue
			}
			if begins && l.gated && len(plan.Steps) > 0 {
				gated = append(gated, len(plan.Steps))
			}
			begins = false
			plan.Steps = append(plan.Steps, st)
		}
	}
	if plan == nil {
		return nil, firstErr
	}
	x.opt.gated = gated
	note := x.opt.route
	if len(skipped) > 0 {
		note += "; cannot serve: " + strings.Join(skipped, ", ")
	}
	plan.Explanation = clipASCII(note+"; "+plan.Explanation, maxRouteNote)
	return plan, nil
}

// clipASCII cuts s to at most n bytes.
func clipASCII(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// withTimeout bounds the request by its route's timeout, else the
// gateway's, and by the request's own request_timeout when shorter.
func (x *exchange) withTimeout(ctx context.Context, route *router.Route) (context.Context, context.CancelFunc) {
	d := route.Timeout
	if d <= 0 {
		d = x.t.timeout
	}
	if cfg := x.c.Options.Config; cfg != nil && cfg.Timeout > 0 && (d <= 0 || cfg.Timeout < d) {
		d = cfg.Timeout
	}
	return x.t.withTimeout(ctx, d)
}

// course is what try runs: steps in order; gated are the steps that
// begin a config target after the first, which try enters only after an
// upstream failure with one of on's statuses; retry, when set, replaces
// the deployments' retry policy.
type course struct {
	steps []router.Step
	gated []int
	on    []int
	retry *Retry
}

// courseOf is the course of steps under the request's config; planned:
// the steps are the plan's, whose gates apply.
func (x *exchange) courseOf(steps []router.Step, planned bool) course {
	c := course{steps: steps}
	if planned && x.opt != nil {
		c.gated = x.opt.gated
	}
	if cfg := x.c.Options.Config; cfg != nil {
		c.retry = cfg.Retry
		if cfg.Mode == ConfigFallback {
			c.on = cfg.FallbackOn
		}
	}
	return c
}

// closed reports whether step si is a gated step that the failure err
// does not open: an upstream failure whose status the config does not
// list. tollgate's own failures (no deployment available, a breaker
// open) always move on, as Portkey's gateway exceptions do.
func (c *course) closed(si int, err error) bool {
	if !slices.Contains(c.gated, si) {
		return false
	}
	e, ok := llm.AsError(err)
	return ok && e.Upstream && !slices.Contains(c.on, e.Status)
}

// cacheTenant is the request's cache tenant: the key's, narrowed to the
// customer when the request asks (cache_by_customer).
func (x *exchange) cacheTenant() string {
	t := x.t.tenant(x.c.Key.ID)
	if x.c.Options.CacheByCustomer {
		t += "/customer:" + x.c.Customer
	}
	return t
}

// cacheControls are the request's cache directives, with disable_log's
// no-store.
func (x *exchange) cacheControls() semcache.Controls {
	ctl := x.c.Cache
	if x.c.Options.NoLog {
		ctl.NoStore = true
	}
	return ctl
}
