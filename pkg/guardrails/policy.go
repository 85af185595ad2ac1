package guardrails

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Actions a guard takes on a match.
const (
	// Block refuses the request (or its answer), naming the guard.
	Block = "block"
	// Mask replaces the match with a typed placeholder.
	Mask = "mask"
	// Log counts the match and changes nothing.
	Log = "log"
)

// Directions a guard scans.
const (
	Request = "request"
	Answer  = "answer"
)

// ValidAction reports whether a is block, mask or log.
func ValidAction(a string) bool { return a == Block || a == Mask || a == Log }

// builtin maps the built-in detectors' names to their constructors.
var builtin = map[string]func() Detector{
	"email": Email, "phone": Phone, "card": Card, "iban": IBAN, "us_ssn": SSN, "ip": IP, "secret": Secret,
}

// BuiltinNames lists the built-in detectors' names, sorted.
func BuiltinNames() []string {
	names := make([]string, 0, len(builtin))
	for n := range builtin {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Spec is one guard as configured: what it looks for (built-in detectors, a
// custom RE2 pattern or a word list), what it does on a match, and in which
// directions it looks.
type Spec struct {
	Name      string
	Detectors []string // built-in detector names
	// Regex is a custom RE2 pattern; Words a word list matched on word
	// boundaries. A guard has one of them at most; its placeholder word
	// is its name in upper case.
	Regex           string
	Words           []string
	CaseInsensitive bool
	Action          string // Block, Mask or Log
	// Request and Answer say which directions are scanned (at least one).
	Request, Answer bool
	// UnmaskAnswers (Mask only) restores, in the answer, the values this
	// guard masked in the request.
	UnmaskAnswers bool
}

// Guard is a compiled Spec, shared by every request.
type Guard struct {
	spec Spec
	dets []Detector
}

// Compile checks and compiles a spec: an unknown detector, a pattern that
// does not compile or matches the empty string, or an empty word list is an
// error.
func Compile(s Spec) (*Guard, error) {
	if err := checkName(s.Name); err != nil {
		return nil, fmt.Errorf("guard name: %w", err)
	}
	if !ValidAction(s.Action) {
		return nil, fmt.Errorf("action %q: want block, mask or log", s.Action)
	}
	if !s.Request && !s.Answer {
		return nil, errors.New("scans neither requests nor answers")
	}
	if s.UnmaskAnswers && (s.Action != Mask || !s.Request) {
		return nil, errors.New("unmask_answers needs action mask on requests")
	}
	g := &Guard{spec: s}
	g.spec.Detectors = slices.Clone(s.Detectors)
	g.spec.Words = slices.Clone(s.Words)
	seen := map[string]bool{}
	for _, name := range s.Detectors {
		mk, ok := builtin[name]
		if !ok {
			return nil, fmt.Errorf("detector %q: unknown (built-in detectors: %s)", name, strings.Join(BuiltinNames(), ", "))
		}
		if seen[name] {
			return nil, fmt.Errorf("detector %q listed twice", name)
		}
		seen[name] = true
		g.dets = append(g.dets, mk())
	}
	switch {
	case s.Regex != "" && len(s.Words) > 0:
		return nil, errors.New("regex and words in one guard: make them two guards")
	case s.Regex != "":
		d, err := Regex(s.Name, s.Regex)
		if err != nil {
			return nil, err
		}
		g.dets = append(g.dets, d)
	case s.Words != nil:
		d, err := Words(s.Name, s.Words, s.CaseInsensitive)
		if err != nil {
			return nil, err
		}
		g.dets = append(g.dets, d)
	}
	if len(g.dets) == 0 {
		return nil, errors.New("no detectors, regex or words")
	}
	return g, nil
}

// Spec returns the guard's spec (not to be modified).
func (g *Guard) Spec() Spec { return g.spec }

// DetectorNames lists what the guard looks for: its built-in detectors, or
// "regex" or "words".
func (g *Guard) DetectorNames() []string {
	out := slices.Clone(g.spec.Detectors)
	switch {
	case g.spec.Regex != "":
		out = append(out, "regex")
	case g.spec.Words != nil:
		out = append(out, "words")
	}
	return out
}

// Use is a guard as one route or key applies it: its action may differ from
// the guard's own ("" keeps it).
type Use struct {
	Guard  *Guard
	Action string
}

// Policy is the guards one request applies, compiled once per route or key
// and shared by their requests.
type Policy struct {
	req, ans *Set // nil: no guard scans that direction
	guards   []policyGuard
	byKind   map[string]int // placeholder word → index in guards
}

type policyGuard struct {
	name, action    string
	request, answer bool
	unmask          bool
	kinds           []string
}

// NewPolicy compiles the guards of one route or key; scanLimit bounds the
// bytes one request may have scanned (0: DefaultScanLimit). Two guards
// looking for the same kind of value are an error. A policy of no guards is
// nil.
func NewPolicy(uses []Use, scanLimit int) (*Policy, error) {
	if len(uses) == 0 {
		return nil, nil
	}
	if scanLimit <= 0 {
		scanLimit = DefaultScanLimit
	}
	p := &Policy{byKind: map[string]int{}}
	var req, ans []Detector
	for i, u := range uses {
		s := u.Guard.spec
		action := s.Action
		if u.Action != "" {
			if !ValidAction(u.Action) {
				return nil, fmt.Errorf("guard %s: action %q: want block, mask or log", s.Name, u.Action)
			}
			action = u.Action
		}
		pg := policyGuard{name: s.Name, action: action, request: s.Request, answer: s.Answer, unmask: s.UnmaskAnswers && action == Mask}
		for _, d := range u.Guard.dets {
			if j, dup := p.byKind[d.Kind()]; dup {
				return nil, fmt.Errorf("guards %s and %s both look for %s", p.guards[j].name, s.Name, strings.ToLower(d.Kind()))
			}
			p.byKind[d.Kind()] = i
			pg.kinds = append(pg.kinds, d.Kind())
			if s.Request {
				req = append(req, d)
			}
			if s.Answer {
				ans = append(ans, d)
			}
		}
		p.guards = append(p.guards, pg)
	}
	var err error
	if len(req) > 0 {
		if p.req, err = NewSet(req...); err != nil {
			return nil, err
		}
		p.req = p.req.WithScanLimit(scanLimit)
	}
	if len(ans) > 0 {
		if p.ans, err = NewSet(ans...); err != nil {
			return nil, err
		}
		p.ans = p.ans.WithScanLimit(scanLimit)
	}
	return p, nil
}

// Guards lists the policy's guard names in order.
func (p *Policy) Guards() []string {
	out := make([]string, len(p.guards))
	for i, g := range p.guards {
		out[i] = g.name
	}
	return out
}

// ScansAnswers reports whether any guard of the policy scans answers or
// restores values in them: the answer must then pass through the Run.
func (p *Policy) ScansAnswers() bool {
	if p == nil {
		return false
	}
	if p.ans != nil {
		return true
	}
	for _, g := range p.guards {
		if g.unmask {
			return true
		}
	}
	return false
}

// Hold is how many bytes a streamed answer is held back (0 when no guard
// scans answers).
func (p *Policy) Hold() int {
	if p == nil || p.ans == nil {
		return 0
	}
	return p.ans.Hold()
}

// Blocked is the error of a request or answer a block guard refused.
type Blocked struct {
	Guard     string
	Direction string // Request or Answer
}

func (b *Blocked) Error() string {
	return "guardrails: guard " + b.Guard + " blocked the " + b.Direction
}

// Hit is how often one guard matched in one direction of a request.
type Hit struct {
	Guard, Action, Direction string
	Count                    int
}

// Run applies a policy to one request and its answer: same value, same
// placeholder in both; the placeholder map lives as long as the Run. Not
// safe for concurrent use.
type Run struct {
	p        *Policy
	req, ans *Masker
	restore  *Masker // built when the answer starts: what UnmaskAnswers restores
	again    *Masker // Again's: the request's placeholders, its own hits
	frozen   bool
}

// Begin starts a request's run; a nil policy's run is nil, and a nil Run
// passes everything through.
func (p *Policy) Begin() *Run {
	if p == nil {
		return nil
	}
	r := &Run{p: p}
	var st *Masker
	if p.req != nil {
		r.req = p.req.Masker()
		st = r.req
	}
	if p.ans != nil {
		if st != nil {
			r.ans = st.Sibling(p.ans)
		} else {
			r.ans = p.ans.Masker()
		}
	}
	for _, g := range p.guards {
		if g.action == Log {
			for _, k := range g.kinds {
				if r.req != nil {
					r.req.Keep(k)
				}
				if r.ans != nil {
					r.ans.Keep(k)
				}
			}
		}
	}
	return r
}

// Request scans one text of the request (a message, a tool's arguments or
// result) and returns it masked. A block guard's match is a *Blocked error;
// more text than the scan limit is ErrScanLimit.
func (r *Run) Request(text string) (string, error) {
	if r == nil || r.req == nil || text == "" {
		return text, nil
	}
	out, err := r.req.Mask(text)
	if err != nil {
		return "", err
	}
	if g := r.blocked(r.req); g != "" {
		return "", &Blocked{Guard: g, Direction: Request}
	}
	return out, nil
}

// Again masks another copy of text the request already had scanned by
// Request (the same prompt in a second encoding): the same values get the
// same placeholders, and its matches are not counted again.
func (r *Run) Again(text string) (string, error) {
	if r == nil || r.req == nil || text == "" {
		return text, nil
	}
	if r.again == nil {
		r.again = r.req.Sibling(r.p.req)
		for k := range r.req.keep {
			r.again.Keep(k)
		}
	}
	return r.again.Mask(text)
}

// blocked is the first block guard with a match in m, or "".
func (r *Run) blocked(m *Masker) string {
	hits := m.Hits()
	if len(hits) == 0 {
		return ""
	}
	for _, g := range r.p.guards {
		if g.action != Block {
			continue
		}
		for _, k := range g.kinds {
			if hits[k] > 0 {
				return g.name
			}
		}
	}
	return ""
}

// freeze ends the request's part: what UnmaskAnswers restores is the
// placeholders issued so far.
func (r *Run) freeze() {
	if r.frozen {
		return
	}
	r.frozen = true
	if r.req == nil {
		return
	}
	restores := map[string]bool{}
	for _, g := range r.p.guards {
		if g.unmask {
			for _, k := range g.kinds {
				restores[k] = true
			}
		}
	}
	if len(restores) > 0 {
		r.restore = r.req.Restorer(func(kind string) bool { return restores[kind] })
	}
}

// Answer scans one text of a whole answer and returns it masked.
func (r *Run) Answer(text string) (string, error) {
	if r == nil {
		return text, nil
	}
	r.freeze()
	if r.ans == nil || text == "" {
		return text, nil
	}
	out, err := r.ans.Mask(text)
	if err != nil {
		return "", err
	}
	if g := r.blocked(r.ans); g != "" {
		return "", &Blocked{Guard: g, Direction: Answer}
	}
	return out, nil
}

// Unmask restores, in a text of the answer, the request's values of the
// guards with UnmaskAnswers.
func (r *Run) Unmask(text string) string {
	if r == nil {
		return text
	}
	r.freeze()
	if r.restore == nil {
		return text
	}
	return r.restore.Unmask(text)
}

// ScansAnswers reports whether a guard of the run scans answers.
func (r *Run) ScansAnswers() bool { return r != nil && r.ans != nil }

// Restores reports whether Unmask can change anything: a guard with
// UnmaskAnswers masked something in the request.
func (r *Run) Restores() bool {
	if r == nil {
		return false
	}
	r.freeze()
	return r.restore != nil && r.restore.Values() > 0
}

// AnswerStream masks one streamed text of the answer (a choice's content,
// a tool call's arguments).
type AnswerStream struct {
	r    *Run
	mask *StreamMasker // nil: no guard scans answers
}

// Stream starts one streamed text of the answer.
func (r *Run) Stream() *AnswerStream {
	if r == nil {
		return nil
	}
	r.freeze()
	a := &AnswerStream{r: r}
	if r.ans != nil {
		a.mask = r.ans.Stream()
	}
	return a
}

// Write feeds the next piece and returns what may be sent now, masked. A
// block guard's match is a *Blocked error.
func (a *AnswerStream) Write(delta string) (string, error) {
	if a.mask == nil {
		return delta, nil
	}
	out, err := a.mask.Write(delta)
	if err != nil {
		return "", err
	}
	if g := a.r.blocked(a.r.ans); g != "" {
		return "", &Blocked{Guard: g, Direction: Answer}
	}
	return out, nil
}

// Flush returns what is still held back; call it once, at the text's end.
func (a *AnswerStream) Flush() (string, error) {
	if a.mask == nil {
		return "", nil
	}
	out := a.mask.Flush()
	if g := a.r.blocked(a.r.ans); g != "" {
		return "", &Blocked{Guard: g, Direction: Answer}
	}
	return out, nil
}

// Unmasker restores the request's values (guards with UnmaskAnswers) in one
// streamed text of the answer; nil when there is nothing to restore.
func (r *Run) Unmasker() *StreamUnmasker {
	if !r.Restores() {
		return nil
	}
	return r.restore.Unmasker()
}

// Hits lists the matches so far by guard and direction, in the policy's
// order.
func (r *Run) Hits() []Hit {
	if r == nil {
		return nil
	}
	var out []Hit
	add := func(m *Masker, dir string, want func(policyGuard) bool) {
		if m == nil || len(m.Hits()) == 0 {
			return
		}
		for _, g := range r.p.guards {
			if !want(g) {
				continue
			}
			n := 0
			for _, k := range g.kinds {
				n += m.Hits()[k]
			}
			if n > 0 {
				out = append(out, Hit{Guard: g.name, Action: g.action, Direction: dir, Count: n})
			}
		}
	}
	add(r.req, Request, func(g policyGuard) bool { return g.request })
	add(r.ans, Answer, func(g policyGuard) bool { return g.answer })
	return out
}
