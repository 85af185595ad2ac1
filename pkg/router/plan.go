package router

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Needs is what a request asks of the model that serves it.
type Needs struct {
	// OutputTokens is the client's completion-token limit (max_completion_tokens
	// or max_tokens), 0 when it set none.
	OutputTokens int
	// Choices is n, the completions asked for; 0 means 1.
	Choices    int
	Tools      bool // tools offered, or tool calls / results in the conversation
	Vision     bool // image parts
	JSONSchema bool // response_format json_schema
	Stream     bool
	// PromptTokens counts the prompt with a candidate's tokenizer (they
	// differ per model family). It is called at most once per candidate, and
	// only for candidates that passed the capability checks; nil counts 0.
	PromptTokens func(m *Model) int
}

// NeedsOf derives a request's needs from its body. PromptTokens is left to
// the caller, who owns the tokenizers.
func NeedsOf(req *llm.ChatRequest) Needs {
	n := Needs{
		OutputTokens: max(req.OutputLimit(), 0),
		Choices:      req.Choices(),
		Tools:        len(req.Tools) > 0,
		Vision:       req.HasImages(),
		JSONSchema:   req.ResponseFormat != nil && req.ResponseFormat.Type == "json_schema",
		Stream:       req.Stream,
	}
	// A conversation that carries tool calls or tool results needs a model
	// that understands them even when this turn offers no tools.
	for i := 0; i < len(req.Messages) && !n.Tools; i++ {
		m := &req.Messages[i]
		n.Tools = len(m.ToolCalls) > 0 || m.Role == "tool"
	}
	return n
}

// Reason says why a candidate was skipped. The gateway's Available may
// return other reasons ("no deployment", "rate limited").
type Reason string

// Reasons the planner gives.
const (
	ReasonTier          Reason = "tier"           // below the route's MinTier
	ReasonTools         Reason = "tools"          // the request needs tool calling
	ReasonVision        Reason = "vision"         // the request has images
	ReasonJSONSchema    Reason = "json schema"    // the request needs structured output
	ReasonStreaming     Reason = "streaming"      // the request streams
	ReasonMaxOutput     Reason = "max output"     // max_tokens above the model's output limit
	ReasonContextWindow Reason = "context window" // prompt + max_tokens above the window
	ReasonNotAllowed    Reason = "not allowed"    // the key may not use the model
	ReasonBudget        Reason = "budget"         // estimated cost above PlanInput.MaxCost
	ReasonUnpriced      Reason = "unpriced"       // a MaxCost is set and the model's price is unknown
	ReasonBreakerOpen   Reason = "breaker open"   // Available said no without a reason
)

// stage orders the checks; when nothing is capable, the furthest stage any
// candidate reached decides the error's status.
type stage uint8

const (
	stageCapability stage = iota // 400 no_capable_model
	stageAllowed                 // 403 model_not_allowed
	stageBudget                  // 402 budget_exceeded
	stageAvailable               // 503 no_healthy_model
)

func (r Reason) stage() stage {
	switch r {
	case ReasonTier, ReasonTools, ReasonVision, ReasonJSONSchema, ReasonStreaming, ReasonMaxOutput, ReasonContextWindow:
		return stageCapability
	case ReasonNotAllowed:
		return stageAllowed
	case ReasonBudget, ReasonUnpriced:
		return stageBudget
	}
	return stageAvailable
}

// PlanInput is everything a plan depends on. The functions are the caller's
// view of the world at this instant, so the plan itself is pure.
type PlanInput struct {
	Needs Needs
	// Allowed reports whether the caller's key may use a candidate model
	// (nil: every model). Whether the key may use the alias's own name is
	// the caller's decision.
	Allowed func(model string) bool
	// Available reports whether a candidate has a deployment that can take
	// a request now, and if not why (e.g. every deployment's breaker open:
	// "breaker open"). nil: every candidate is available.
	Available func(model string) (ok bool, reason string)
	// Latency is a candidate's recent latency (an EWMA), used to break
	// cost ties; 0 means unknown, which sorts after any known latency.
	// nil: unknown for all.
	Latency func(model string) time.Duration
	// StickyKey, for a sticky weighted route, replaces Pick with
	// StickyPick(route, StickyKey). Empty: not sticky for this request.
	StickyKey string
	// Pick in [0,1) chooses among weighted candidates (the caller draws it
	// from its random source).
	Pick float64
	// MaxCost, when positive, skips candidates whose estimated cost exceeds
	// it (ReasonBudget) and candidates that cannot be costed (ReasonUnpriced).
	MaxCost llm.Micros
}

// Plan is the ordered list of models to try for one request and why.
type Plan struct {
	Route *Route
	// Steps are the capable candidates in the order to try them: the first
	// serves, the rest are fallbacks.
	Steps []Step
	// Skipped are the candidates that cannot serve this request, in
	// configured order.
	Skipped []Skip
	// Explanation is a short, ASCII, bounded (MaxExplanation bytes)
	// account of the choice for the x-tollgate-route header, e.g.
	// "cheapest of 2 capable: sim-small $0.000253, sim-large $0.002530; skipped gpt-4.1 (vision)".
	Explanation string
}

// Step is one capable candidate.
type Step struct {
	Model        *Model
	PromptTokens int // counted with the model's tokenizer
	// OutputTokens is the completion tokens the estimate assumes per
	// choice: max_tokens capped by the route's ExpectedOutput and the
	// model's output limit (ExpectedOutput when max_tokens is unset).
	OutputTokens int
	// EstimatedCost prices PromptTokens and OutputTokens x choices. It is
	// meaningless when Unpriced.
	EstimatedCost llm.Micros
	Unpriced      bool

	weight  int
	latency time.Duration
}

// Skip is a candidate that cannot serve the request.
type Skip struct {
	Model  *Model
	Reason Reason
	// Have and Want qualify some reasons: the window and the tokens asked
	// (context window), the output limit and max_tokens (max output), the
	// tier and MinTier (tier), the estimated cost and MaxCost in micros
	// (budget).
	Have, Want int64
}

// Detail is the skip as a phrase for an error message, e.g.
// "sim-small lacks vision" or "sim-large: context window 131072 < 200000 tokens".
func (s Skip) Detail() string {
	name := s.Model.Name
	switch s.Reason {
	case ReasonTools:
		return name + " lacks tool calling"
	case ReasonVision:
		return name + " lacks vision"
	case ReasonJSONSchema:
		return name + " lacks json schema output"
	case ReasonStreaming:
		return name + " lacks streaming"
	case ReasonTier:
		return fmt.Sprintf("%s: tier %d < min_tier %d", name, s.Have, s.Want)
	case ReasonMaxOutput:
		return fmt.Sprintf("%s: max output %d < max_tokens %d", name, s.Have, s.Want)
	case ReasonContextWindow:
		return fmt.Sprintf("%s: context window %d < %d tokens", name, s.Have, s.Want)
	case ReasonNotAllowed:
		return name + ": not allowed for this key"
	case ReasonBudget:
		return fmt.Sprintf("%s: estimated cost $%s > budget $%s", name, llm.Micros(s.Have), llm.Micros(s.Want))
	case ReasonUnpriced:
		return name + ": price unknown, cannot be checked against the budget"
	}
	return name + ": " + string(s.Reason)
}

// Plan orders the route's candidates for one request. It is a pure function
// of the route and in: no clock, no randomness, no globals.
//
// Each candidate is checked in this order, and skipped with the first
// reason that applies: tier, tools, vision, json schema, streaming, max
// output (max_tokens above the model's limit), context window (prompt +
// max_tokens above the window; equal fits; an unknown window or limit does
// not skip), not allowed, budget / unpriced (only with a MaxCost), and last
// Available (so breakers are consulted only for models that could serve).
//
// The capable candidates are ordered by strategy:
//
//   - cheapest: by estimated cost, ascending; equal costs by lower known
//     latency (unknown after known), then configured order; unpriced
//     models last, in configured order;
//   - priority: configured order;
//   - weighted: the candidate picked by Pick (or StickyPick) in proportion
//     to the weights of the capable candidates, then the others by weight,
//     descending (weight-0 candidates only as fallbacks).
//
// When nothing is capable the error is an *llm.Error naming what each
// candidate lacked. Its status follows the furthest check any candidate
// passed: 400 no_capable_model (capabilities; Param names the request field
// when every candidate failed the same one), 403 model_not_allowed, 402
// budget_exceeded, or 503 no_healthy_model (a capable, allowed candidate is
// unavailable). A plain model asked for more than its window or output
// limit gets OpenAI's code context_length_exceeded instead of
// no_capable_model.
func (r *Route) Plan(in PlanInput) (*Plan, error) {
	n := &in.Needs
	choices := max(n.Choices, 1)
	p := &Plan{Route: r, Steps: make([]Step, 0, len(r.models))}
	for i, m := range r.models {
		s, ok := r.check(m, &in)
		if !ok {
			if p.Skipped == nil {
				p.Skipped = make([]Skip, 0, len(r.models)-i)
			}
			p.Skipped = append(p.Skipped, s)
			continue
		}
		st := Step{Model: m, PromptTokens: int(s.Have), OutputTokens: r.expectedOutputFor(m, n.OutputTokens)}
		c := m.EstimateCost(st.PromptTokens, SaturatingMul(st.OutputTokens, choices))
		st.EstimatedCost, st.Unpriced = c.Micros, c.Unpriced
		if in.MaxCost > 0 {
			if st.Unpriced {
				p.Skipped = append(p.Skipped, Skip{Model: m, Reason: ReasonUnpriced})
				continue
			}
			if st.EstimatedCost > in.MaxCost {
				p.Skipped = append(p.Skipped, Skip{Model: m, Reason: ReasonBudget, Have: int64(st.EstimatedCost), Want: int64(in.MaxCost)})
				continue
			}
		}
		if in.Available != nil {
			if ok, why := in.Available(m.Name); !ok {
				reason := Reason(why)
				if reason == "" {
					reason = ReasonBreakerOpen
				}
				p.Skipped = append(p.Skipped, Skip{Model: m, Reason: reason})
				continue
			}
		}
		if r.Strategy == StrategyWeighted && i < len(r.Weights) {
			st.weight = r.Weights[i]
		}
		if r.Strategy == StrategyCheapest && in.Latency != nil {
			st.latency = in.Latency(m.Name)
		}
		p.Steps = append(p.Steps, st)
	}
	if len(p.Steps) == 0 {
		return nil, r.noCapable(p.Skipped)
	}

	pick := in.Pick
	switch r.Strategy {
	case StrategyCheapest:
		sortSteps(p.Steps, cheaper)
	case StrategyWeighted:
		if r.Sticky && in.StickyKey != "" {
			pick = StickyPick(r.Name, in.StickyKey)
		}
		pickWeighted(p.Steps, pick)
	}
	p.Explanation = r.explain(p)
	return p, nil
}

// check runs the request-dependent checks before cost: the skip, or the
// prompt tokens in Have when the candidate passes.
func (r *Route) check(m *Model, in *PlanInput) (Skip, bool) {
	n := &in.Needs
	skip := func(reason Reason, have, want int) (Skip, bool) {
		return Skip{Model: m, Reason: reason, Have: int64(have), Want: int64(want)}, false
	}
	switch {
	case m.Tier < r.MinTier:
		return skip(ReasonTier, m.Tier, r.MinTier)
	case n.Tools && !m.Tools:
		return skip(ReasonTools, 0, 0)
	case n.Vision && !m.Vision:
		return skip(ReasonVision, 0, 0)
	case n.JSONSchema && !m.JSONSchema:
		return skip(ReasonJSONSchema, 0, 0)
	case n.Stream && !m.Streaming:
		return skip(ReasonStreaming, 0, 0)
	case m.MaxOutputTokens > 0 && n.OutputTokens > m.MaxOutputTokens:
		return skip(ReasonMaxOutput, m.MaxOutputTokens, n.OutputTokens)
	}
	prompt := 0
	if n.PromptTokens != nil {
		prompt = max(n.PromptTokens(m), 0)
	}
	if w := m.MaxInputTokens; w > 0 && SaturatingAdd(prompt, n.OutputTokens) > w {
		return skip(ReasonContextWindow, w, SaturatingAdd(prompt, n.OutputTokens))
	}
	if in.Allowed != nil && !in.Allowed(m.Name) {
		return skip(ReasonNotAllowed, 0, 0)
	}
	return Skip{Have: int64(prompt)}, true
}

// expectedOutputFor is the completion tokens to price: max_tokens capped
// by the route's estimate and the model's limit.
func (r *Route) expectedOutputFor(m *Model, maxTokens int) int {
	out := r.expectedOutput()
	if maxTokens > 0 {
		out = min(out, maxTokens)
	}
	if m.MaxOutputTokens > 0 {
		out = min(out, m.MaxOutputTokens)
	}
	return out
}

// cheaper orders steps for StrategyCheapest; see Plan.
func cheaper(a, b *Step) bool {
	if a.Unpriced != b.Unpriced {
		return b.Unpriced
	}
	if a.Unpriced || a.EstimatedCost == b.EstimatedCost {
		if a.latency != b.latency && !a.Unpriced {
			return a.latency != 0 && (b.latency == 0 || a.latency < b.latency)
		}
		return false // keep configured order
	}
	return a.EstimatedCost < b.EstimatedCost
}

// sortSteps is a stable insertion sort: routes have a handful of
// candidates, and it neither allocates nor needs a closure.
func sortSteps(s []Step, less func(a, b *Step) bool) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && less(&s[j], &s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// pickWeighted moves the step chosen by pick to the front and orders the
// rest by weight, descending.
func pickWeighted(s []Step, pick float64) {
	total := 0
	for i := range s {
		total += s[i].weight
	}
	chosen := 0 // all capable weights 0: configured order
	if total > 0 {
		pick = min(max(pick, 0), 1)
		target := int(pick * float64(total))
		target = min(target, total-1)
		for i := range s {
			if target < s[i].weight {
				chosen = i
				break
			}
			target -= s[i].weight
		}
	}
	// Rotate the chosen step to the front, keeping the others' order.
	c := s[chosen]
	copy(s[1:chosen+1], s[:chosen])
	s[0] = c
	sortSteps(s[1:], func(a, b *Step) bool { return a.weight > b.weight })
}

// MaxExplanation bounds Plan.Explanation, in bytes.
const MaxExplanation = 256

// explain writes the x-tollgate-route explanation.
func (r *Route) explain(p *Plan) string {
	var arr [2 * MaxExplanation]byte
	b := arr[:0]
	if !r.alias {
		b = append(b, "direct: "...)
		b = appendName(b, p.Steps[0].Model.Name)
		b = appendCost(b, &p.Steps[0])
	} else {
		b = append(b, r.Strategy...)
		if r.Strategy == StrategyWeighted && r.Sticky {
			b = append(b, " (sticky)"...)
		}
		b = append(b, " of "...)
		b = strconv.AppendInt(b, int64(len(p.Steps)), 10)
		b = append(b, " capable: "...)
		for i := range p.Steps {
			if i > 0 {
				b = append(b, ", "...)
			}
			s := &p.Steps[i]
			b = appendName(b, s.Model.Name)
			switch r.Strategy {
			case StrategyCheapest:
				b = appendCost(b, s)
			case StrategyWeighted:
				b = append(b, " w="...)
				b = strconv.AppendInt(b, int64(s.weight), 10)
			}
			if len(b) > MaxExplanation {
				break
			}
		}
	}
	for i, s := range p.Skipped {
		if len(b) > MaxExplanation {
			break
		}
		if i == 0 {
			b = append(b, "; skipped "...)
		} else {
			b = append(b, ", "...)
		}
		b = appendName(b, s.Model.Name)
		b = append(b, " ("...)
		b = appendName(b, string(s.Reason))
		b = append(b, ')')
	}
	if len(b) > MaxExplanation {
		const more = " ..."
		cut := bytes.LastIndexByte(b[:MaxExplanation-len(more)+1], ' ')
		b = append(b[:max(cut, 0)], more...)
	}
	return string(b)
}

// appendName appends s with every byte outside printable ASCII replaced by
// '?', so a header value stays valid whatever a config named a model.
func appendName(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b = append(b, c)
	}
	return b
}

func appendCost(b []byte, s *Step) []byte {
	if s.Unpriced {
		return append(b, " unpriced"...)
	}
	return appendMicros(append(b, " $"...), s.EstimatedCost)
}

// appendMicros appends m in dollars with six decimals, as Micros.String
// does, without allocating.
func appendMicros(b []byte, m llm.Micros) []byte {
	if m < 0 {
		b = append(b, '-')
		m = -m
	}
	b = strconv.AppendInt(b, int64(m/llm.MicrosPerUSD), 10)
	b = append(b, '.')
	frac := int64(m % llm.MicrosPerUSD)
	for d := int64(100_000); d > 0; d /= 10 {
		b = append(b, byte('0'+frac/d%10))
	}
	return b
}

// noCapable is the error of a plan without a step; see Plan.
func (r *Route) noCapable(skipped []Skip) *llm.Error {
	furthest := stageCapability
	param := ""
	for i, s := range skipped {
		furthest = max(furthest, s.Reason.stage())
		p := paramFor(s.Reason)
		if i == 0 {
			param = p
		} else if p != param {
			param = ""
		}
	}
	var b strings.Builder
	if r.alias {
		fmt.Fprintf(&b, "no model of route %s can serve this request: ", r.Name)
	} else {
		fmt.Fprintf(&b, "the model %s cannot serve this request: ", r.Name)
	}
	for i, s := range skipped {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s.Detail())
	}
	e := &llm.Error{Message: b.String()}
	switch furthest {
	case stageCapability:
		e.Status, e.Type, e.Code, e.Param = http.StatusBadRequest, llm.TypeInvalidRequest, "no_capable_model", param
		if !r.alias && len(skipped) == 1 && (skipped[0].Reason == ReasonContextWindow || skipped[0].Reason == ReasonMaxOutput) {
			e.Code = "context_length_exceeded" // OpenAI's code for a model asked too much; SDKs know it
		}
	case stageAllowed:
		e.Status, e.Type, e.Code, e.Param = http.StatusForbidden, llm.TypePermission, "model_not_allowed", "model"
	case stageBudget:
		e.Status, e.Type, e.Code = http.StatusPaymentRequired, llm.TypeQuota, "budget_exceeded"
	default:
		e.Status, e.Type, e.Code = http.StatusServiceUnavailable, llm.TypeServer, "no_healthy_model"
	}
	return e
}

// paramFor is the request field a capability reason points at.
func paramFor(r Reason) string {
	switch r {
	case ReasonTools:
		return "tools"
	case ReasonVision, ReasonContextWindow:
		return "messages"
	case ReasonJSONSchema:
		return "response_format"
	case ReasonStreaming:
		return "stream"
	case ReasonMaxOutput:
		return "max_tokens"
	}
	return ""
}
