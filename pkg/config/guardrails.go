package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/pkg/guardrails"
)

// Guardrails configures the guards that mask, block or log sensitive values
// in prompts and answers. A route applies the guards its own list names
// (Route.Guards), or else Default; so do models asked for by name. Keys may
// override both through the admin API.
type Guardrails struct {
	// ScanLimitBytes bounds the text one request and its answer may have
	// scanned (default DefaultGuardScanLimit): past it the request is
	// refused rather than passed unchecked.
	ScanLimitBytes int `yaml:"scan_limit_bytes"`
	// Default are the guards of routes without a guards list and of models
	// asked for by name (default none).
	Default []string `yaml:"default"`
	Guards  []Guard  `yaml:"guards"`
}

// Guard is one named guard: what it looks for (built-in detectors, a
// custom RE2 pattern or a word list), what it does on a match, and in
// which directions it looks.
type Guard struct {
	Name string `yaml:"name"` // lower-case [a-z0-9_], at most 32: the placeholder word of its regex or words
	// Detectors are built-in ones (guardrails.BuiltinNames).
	Detectors []string `yaml:"detectors"`
	// Regex (RE2) or Words (matched on word boundaries), one of them at most.
	Regex           string   `yaml:"regex"`
	Words           []string `yaml:"words"`
	CaseInsensitive bool     `yaml:"case_insensitive"` // words only
	Action          string   `yaml:"action"`           // block | mask | log
	// Directions are request, answer or both (default both).
	Directions []string `yaml:"directions"`
	// UnmaskAnswers (action mask on requests) restores the request's own
	// values in the answer.
	UnmaskAnswers bool `yaml:"unmask_answers"`
}

// Spec is the guard as package guardrails compiles it.
func (g Guard) Spec() guardrails.Spec {
	return guardrails.Spec{
		Name: g.Name, Detectors: g.Detectors, Regex: g.Regex, Words: g.Words, CaseInsensitive: g.CaseInsensitive,
		Action: g.Action, Request: slices.Contains(g.Directions, guardrails.Request), Answer: slices.Contains(g.Directions, guardrails.Answer),
		UnmaskAnswers: g.UnmaskAnswers,
	}
}

// Enrich is the prompt enrichment of a route: messages added before the
// client's and after them.
type Enrich struct {
	Prepend []EnrichMessage `yaml:"prepend"`
	Append  []EnrichMessage `yaml:"append"`
}

// EnrichMessage is one added message. Content is a template over the
// request: {{key_name}}, {{key_id}}, {{customer}}, {{date}} (UTC,
// 2006-01-02), {{route}} and {{model}} (what the client asked for).
type EnrichMessage struct {
	Role    string `yaml:"role"` // system | developer | user
	Content string `yaml:"content"`
}

// Empty reports whether e adds nothing.
func (e Enrich) Empty() bool { return len(e.Prepend) == 0 && len(e.Append) == 0 }

// enrichFields are the names a template may use (the gateway's).
var enrichFields = []string{"key_name", "key_id", "customer", "date", "route", "model"}

// checkGuardrails checks the guards, the default list and every route's
// list and enrichment. Each list is compiled as the gateway will compile
// it, so two guards of one list looking for the same kind of value are
// reported here, with the list's path.
func (c *Config) checkGuardrails(p *problems) {
	g := &c.Guardrails
	if g.ScanLimitBytes < minBoundBytes {
		p.add("guardrails.scan_limit_bytes", "must be at least %d, got %d", minBoundBytes, g.ScanLimitBytes)
	}
	compiled := map[string]*guardrails.Guard{} // guards without problems
	names := map[string]bool{}
	var known []string
	for i, gd := range g.Guards {
		path := fmt.Sprintf("guardrails.guards[%d]", i)
		if gd.Name != "" && !names[gd.Name] {
			known = append(known, gd.Name)
		}
		before := len(*p)
		unique(p, path+".name", gd.Name, "guard name", names)
		gd.check(p, path)
		if len(*p) > before {
			continue
		}
		cg, err := guardrails.Compile(gd.Spec())
		if err != nil { // what check does not catch, if anything
			p.add(path, "%v", err)
			continue
		}
		compiled[gd.Name] = cg
	}
	limit := max(g.ScanLimitBytes, minBoundBytes)
	checkGuardList(p, "guardrails.default", g.Default, compiled, known, limit)
	for _, name := range sortedKeys(c.Routes) {
		r := c.Routes[name]
		path := "routes." + name
		if r.Guards != nil {
			checkGuardList(p, path+".guards", r.Guards, compiled, known, limit)
		}
		for _, part := range []struct {
			name string
			msgs []EnrichMessage
		}{{"prepend", r.Enrich.Prepend}, {"append", r.Enrich.Append}} {
			for i, m := range part.msgs {
				mp := fmt.Sprintf("%s.enrich.%s[%d]", path, part.name, i)
				oneOf(p, mp+".role", m.Role, "system", "developer", "user")
				if err := checkTemplate(m.Content); err != "" {
					p.add(mp+".content", "%s", err)
				}
			}
		}
	}
}

// check checks one guard's fields, each at its path.
func (g *Guard) check(p *problems, path string) {
	if g.Name != "" && !validGuardName(g.Name) {
		p.add(path+".name", "must be 1 to 32 lower-case letters, digits or '_', got %q", g.Name)
	}
	oneOf(p, path+".action", g.Action, guardrails.Block, guardrails.Mask, guardrails.Log)
	if len(g.Directions) == 0 {
		p.add(path+".directions", "must name request, answer or both")
	}
	for j, d := range g.Directions {
		dp := fmt.Sprintf("%s.directions[%d]", path, j)
		if d != guardrails.Request && d != guardrails.Answer {
			p.add(dp, "must be request or answer, got %q", d)
		} else if slices.Index(g.Directions, d) < j {
			p.add(dp, "%s listed twice", d)
		}
	}
	if g.UnmaskAnswers && (g.Action != guardrails.Mask || !slices.Contains(g.Directions, guardrails.Request)) {
		p.add(path+".unmask_answers", "only with action mask on requests (it restores what the request's masking replaced)")
	}
	builtin := guardrails.BuiltinNames()
	for j, d := range g.Detectors {
		dp := fmt.Sprintf("%s.detectors[%d]", path, j)
		switch {
		case !slices.Contains(builtin, d):
			p.add(dp, "unknown detector %q%s (built-in: %s)", d, hint(d, builtin), strings.Join(builtin, ", "))
		case slices.Index(g.Detectors, d) < j:
			p.add(dp, "detector %q listed twice", d)
		}
	}
	// The pattern and the words are compiled by guardrails with a valid
	// name, so that a bad name does not hide their own problems.
	name := g.Name
	if !validGuardName(name) {
		name = "guard"
	}
	custom := g.Regex != "" || g.Words != nil
	switch {
	case g.Regex != "" && g.Words != nil:
		p.add(path+".words", "set either regex or words, not both: make them two guards")
	case g.Regex != "":
		if _, err := guardrails.Regex(name, g.Regex); err != nil {
			p.add(path+".regex", "%s", strings.TrimPrefix(err.Error(), "guardrails: "+name+": "))
		}
	case g.Words != nil:
		if _, err := guardrails.Words(name, g.Words, g.CaseInsensitive); err != nil {
			p.add(path+".words", "%s", strings.TrimPrefix(err.Error(), "guardrails: "+name+": "))
		}
	case len(g.Detectors) == 0:
		p.add(path, "looks for nothing: set detectors, regex or words")
	}
	if g.CaseInsensitive && g.Words == nil {
		p.add(path+".case_insensitive", "only with words (a regex says (?i) itself)")
	}
	if custom && slices.Contains(g.Detectors, g.Name) {
		// The regex's or words' placeholders would be the detector's.
		p.add(path+".name", "a guard with regex or words may not be named after one of its detectors (%s)", g.Name)
	}
}

// validGuardName mirrors guardrails' rule: the name is the placeholder
// word of a guard's regex or words.
func validGuardName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// checkGuardList checks one list of guard names (the default or a
// route's): each names a configured guard once, and together they compile
// (no two look for the same kind of value). A list naming a guard that has
// problems of its own is not compiled: those problems are reported.
func checkGuardList(p *problems, path string, list []string, compiled map[string]*guardrails.Guard, known []string, scanLimit int) {
	uses := make([]guardrails.Use, 0, len(list))
	whole := true
	for j, name := range list {
		ep := fmt.Sprintf("%s[%d]", path, j)
		switch {
		case !slices.Contains(known, name):
			p.add(ep, "no guard named %q%s", name, hint(name, known))
			whole = false
		case slices.Index(list, name) < j:
			p.add(ep, "guard %s listed twice", name)
			whole = false
		case compiled[name] == nil:
			whole = false
		default:
			uses = append(uses, guardrails.Use{Guard: compiled[name]})
		}
	}
	if !whole {
		return
	}
	if _, err := guardrails.NewPolicy(uses, scanLimit); err != nil {
		p.add(path, "%v", err)
	}
}

// checkTemplate mirrors the gateway's template rules: no empty content,
// every {{ closed, only known fields. It returns the problem, or "".
func checkTemplate(s string) string {
	if s == "" {
		return "must not be empty"
	}
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			return ""
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return "unclosed {{"
		}
		field := strings.TrimSpace(s[i+2 : i+j])
		if !slices.Contains(enrichFields, field) {
			return fmt.Sprintf("unknown field {{%s}}%s (known: %s)", field, hint(field, enrichFields), strings.Join(enrichFields, ", "))
		}
		s = s[i+j+2:]
	}
}
