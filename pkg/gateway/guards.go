package gateway

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tollgate/tollgate/pkg/guardrails"
	"github.com/tollgate/tollgate/pkg/keys"
)

// Guard directions and actions, as GuardHit and GuardInfo name them.
const (
	DirRequest = "request"
	DirAnswer  = "answer"

	ActionBlock = "block"
	ActionMask  = "mask"
	ActionLog   = "log"
)

// GuardHit is how often one guard matched in one direction of one request.
type GuardHit struct {
	Guard     string
	Action    string // block, mask or log: the action this request applied
	Direction string // DirRequest or DirAnswer
	Count     int
}

// GuardInfo describes one configured guard and its hits since the process
// started (GET /admin/guards).
type GuardInfo struct {
	Name          string   `json:"name"`
	Detectors     []string `json:"detectors"`
	Action        string   `json:"action"`
	Request       bool     `json:"request"`
	Answer        bool     `json:"answer"`
	UnmaskAnswers bool     `json:"unmask_answers"`
	// Routes are the routes whose requests it guards ("*" for the
	// default list: models asked for by name and routes with no list).
	Routes []string    `json:"routes"`
	Hits   GuardCounts `json:"hits"`
}

// GuardCounts are a guard's matches since the process started: in
// requests, in answers, and the requests or answers it refused.
type GuardCounts struct {
	Request int64 `json:"request"`
	Answer  int64 `json:"answer"`
	Blocked int64 `json:"blocked"`
}

// Guards lists the configured guards with their hits, in config order.
func (g *Gateway) Guards() []GuardInfo { return g.tab.Load().guards.info() }

// CheckGuards refuses a key's guard list that names a guard the config
// does not have or an action that is not block, mask or log.
func (g *Gateway) CheckGuards(list []keys.Guard) error { return g.tab.Load().guards.check(list) }

// GuardConfig is the guards and prompt enrichment of a Table.
type GuardConfig struct {
	Guards []guardrails.Spec
	// ScanLimit bounds the bytes one request and its answer may have
	// scanned (0: guardrails.DefaultScanLimit); past it the request is
	// refused rather than passed unchecked.
	ScanLimit int
	// Default are the guards of every route without a list of its own,
	// and of models asked for by name.
	Default []string
	// Routes are routes' own guard lists (an empty list: none).
	Routes map[string][]string
	// Enrich is the prompt enrichment of a route (or of a model asked for
	// by name).
	Enrich map[string]Enrichment
}

// Enrichment is what a route adds to every prompt: messages before the
// client's and after them.
type Enrichment struct {
	Prepend, Append []EnrichMessage
}

// EnrichMessage is one added message. Content is a template: {{key_name}},
// {{key_id}}, {{customer}}, {{date}} (the request's day, UTC, 2006-01-02),
// {{route}} and {{model}} (what the client asked for) are replaced.
type EnrichMessage struct {
	Role    string // system, developer or user
	Content string
}

// guardTable is a GuardConfig compiled: what an exchange reads.
type guardTable struct {
	byName    map[string]*guardrails.Guard
	order     []string
	scanLimit int
	def       *guardrails.Policy
	routes    map[string]*guardrails.Policy // a route with a list of its own
	users     map[string][]string           // guard → the routes using it ("*": the default)
	enrich    map[string]*enrichment
	keys      sync.Map // a key's guard list (keyGuards) → *guardrails.Policy
	hits      *guardHits
}

func newGuardTable(c GuardConfig, hits *guardHits) (*guardTable, error) {
	t := &guardTable{byName: map[string]*guardrails.Guard{}, scanLimit: c.ScanLimit, routes: map[string]*guardrails.Policy{},
		users: map[string][]string{}, enrich: map[string]*enrichment{}, hits: hits}
	for _, s := range c.Guards {
		g, err := guardrails.Compile(s)
		if err != nil {
			return nil, fmt.Errorf("guard %s: %w", s.Name, err)
		}
		if _, dup := t.byName[s.Name]; dup {
			return nil, fmt.Errorf("guard %s defined twice", s.Name)
		}
		t.byName[s.Name] = g
		t.order = append(t.order, s.Name)
	}
	policy := func(names []string, user string) (*guardrails.Policy, error) {
		uses := make([]keys.Guard, len(names))
		for i, n := range names {
			uses[i] = keys.Guard{Name: n}
			if _, ok := t.byName[n]; ok && !slices.Contains(t.users[n], user) {
				t.users[n] = append(t.users[n], user)
			}
		}
		return t.policy(uses)
	}
	var err error
	if t.def, err = policy(c.Default, "*"); err != nil {
		return nil, fmt.Errorf("default guards: %w", err)
	}
	for _, route := range slices.Sorted(maps.Keys(c.Routes)) {
		if t.routes[route], err = policy(c.Routes[route], route); err != nil {
			return nil, fmt.Errorf("route %s: guards: %w", route, err)
		}
	}
	for route, e := range c.Enrich {
		if t.enrich[route], err = compileEnrichment(e); err != nil {
			return nil, fmt.Errorf("route %s: enrich: %w", route, err)
		}
	}
	return t, nil
}

// policy compiles a list of guards with their actions.
func (t *guardTable) policy(list []keys.Guard) (*guardrails.Policy, error) {
	uses := make([]guardrails.Use, 0, len(list))
	for _, u := range list {
		g, ok := t.byName[u.Name]
		if !ok {
			return nil, fmt.Errorf("no guard named %q is configured", u.Name)
		}
		uses = append(uses, guardrails.Use{Guard: g, Action: u.Action})
	}
	return guardrails.NewPolicy(uses, t.scanLimit)
}

// check refuses a key's guard list that this table cannot apply.
func (t *guardTable) check(list []keys.Guard) error {
	_, err := t.policy(list)
	return err
}

// policyFor is the policy of a request of key on route: the key's own list
// when it has one, else the route's, else the default.
func (t *guardTable) policyFor(key *keys.Key, route string) (*guardrails.Policy, error) {
	if key != nil && key.Guards != nil {
		sig := keyGuards(key.Guards)
		if p, ok := t.keys.Load(sig); ok {
			return p.(*guardrails.Policy), nil
		}
		p, err := t.policy(key.Guards)
		if err != nil {
			return nil, err
		}
		t.keys.Store(sig, p)
		return p, nil
	}
	if p, ok := t.routes[route]; ok {
		return p, nil
	}
	return t.def, nil
}

// keyGuards is a key's guard list as a map key.
func keyGuards(list []keys.Guard) string {
	var b strings.Builder
	for _, g := range list {
		b.WriteString(g.Name)
		b.WriteByte('\x00')
		b.WriteString(g.Action)
		b.WriteByte('\x01')
	}
	return b.String()
}

func (t *guardTable) info() []GuardInfo {
	out := make([]GuardInfo, 0, len(t.order))
	for _, name := range t.order {
		g := t.byName[name]
		s := g.Spec()
		out = append(out, GuardInfo{Name: name, Detectors: g.DetectorNames(), Action: s.Action, Request: s.Request, Answer: s.Answer,
			UnmaskAnswers: s.UnmaskAnswers, Routes: append([]string{}, t.users[name]...), Hits: t.hits.get(name)})
	}
	return out
}

// guardHits counts each guard's matches since the process started, across
// reloads (by name).
type guardHits struct{ m sync.Map } // name → *guardCounter

type guardCounter struct{ request, answer, blocked atomic.Int64 }

func (h *guardHits) counter(name string) *guardCounter {
	if c, ok := h.m.Load(name); ok {
		return c.(*guardCounter)
	}
	c, _ := h.m.LoadOrStore(name, &guardCounter{})
	return c.(*guardCounter)
}

func (h *guardHits) get(name string) GuardCounts {
	c := h.counter(name)
	return GuardCounts{Request: c.request.Load(), Answer: c.answer.Load(), Blocked: c.blocked.Load()}
}

// add counts one request's hits; blocked names the guard that refused it.
func (h *guardHits) add(hits []GuardHit, blocked string) {
	for _, hit := range hits {
		c := h.counter(hit.Guard)
		if hit.Direction == DirAnswer {
			c.answer.Add(int64(hit.Count))
		} else {
			c.request.Add(int64(hit.Count))
		}
	}
	if blocked != "" {
		h.counter(blocked).blocked.Add(1)
	}
}

// enrichment is an Enrichment with its templates parsed.
type enrichment struct {
	prepend, append []enrichMessage
	note            string // for x-tollgate-route: "+1 system, +1 user"
}

type enrichMessage struct {
	role  string
	parts []templatePart
}

// templatePart is a literal, or (when field is set) a request field.
type templatePart struct{ text, field string }

// templateFields are the names a template may use.
var templateFields = map[string]bool{"key_name": true, "key_id": true, "customer": true, "date": true, "route": true, "model": true}

func compileEnrichment(e Enrichment) (*enrichment, error) {
	out := &enrichment{}
	roles := map[string]int{}
	var order []string
	compile := func(list []EnrichMessage, where string) ([]enrichMessage, error) {
		var msgs []enrichMessage
		for i, m := range list {
			switch m.Role {
			case "system", "developer", "user":
			default:
				return nil, fmt.Errorf("%s[%d].role %q: want system, developer or user", where, i, m.Role)
			}
			parts, err := parseTemplate(m.Content)
			if err != nil {
				return nil, fmt.Errorf("%s[%d].content: %w", where, i, err)
			}
			msgs = append(msgs, enrichMessage{role: m.Role, parts: parts})
			if roles[m.Role] == 0 {
				order = append(order, m.Role)
			}
			roles[m.Role]++
		}
		return msgs, nil
	}
	var err error
	if out.prepend, err = compile(e.Prepend, "prepend"); err != nil {
		return nil, err
	}
	if out.append, err = compile(e.Append, "append"); err != nil {
		return nil, err
	}
	notes := make([]string, len(order))
	for i, r := range order {
		notes[i] = fmt.Sprintf("+%d %s", roles[r], r)
	}
	out.note = strings.Join(notes, ", ")
	return out, nil
}

// parseTemplate splits s at {{field}} references; an unknown field or an
// unclosed {{ is an error.
func parseTemplate(s string) ([]templatePart, error) {
	if s == "" {
		return nil, errors.New("empty")
	}
	var parts []templatePart
	for s != "" {
		i := strings.Index(s, "{{")
		if i < 0 {
			parts = append(parts, templatePart{text: s})
			break
		}
		if i > 0 {
			parts = append(parts, templatePart{text: s[:i]})
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return nil, errors.New("unclosed {{")
		}
		field := strings.TrimSpace(s[i+2 : i+j])
		if !templateFields[field] {
			return nil, fmt.Errorf("unknown field {{%s}} (known: key_name, key_id, customer, date, route, model)", field)
		}
		parts = append(parts, templatePart{field: field})
		s = s[i+j+2:]
	}
	return parts, nil
}
