package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/router"
)

// This file is the attempt loop: for each planned model in order, reserve
// its cost, then for each of its deployments call it through its breaker,
// and after a failure do what next (a pure function of the failure) says.

// attempt is one call to one deployment.
type attempt struct {
	step        *router.Step
	d           *Deployment
	credentials string        // the caller's own provider key, if any
	limit       time.Duration // bound for this attempt (0: the request's deadline)
}

// call makes one attempt. For a stream, success means the first chunk has
// arrived (within a.limit): until then a failure may still fall back, and
// the stream's own call applies the limit, since its context must outlive
// the first chunk. try applies the limit to every other call.
type call func(ctx context.Context, a attempt) error

// maxFallbackNotes bounds x-tollgate-fallback.
const maxFallbackNotes = 6

// try runs the course's steps in order until one deployment answers.
// Before a model is called its maximum cost is reserved; a key whose
// budget cannot hold it gets the 402, unless it downgrades (a cheaper
// candidate may still fit). A gated step is entered only when the last
// failure opens it (course.closed). It never waits past the deadline and
// returns at once when the client leaves.
func (x *exchange) try(ctx context.Context, c course, stream bool, do call) error {
	steps := c.steps
	g, t, meta := x.g, x.t, x.meta
	var (
		lastErr error
		notes   []string
		buf     [8]router.Deployment
	)
	note := func(format string, args ...any) {
		if len(notes) < maxFallbackNotes {
			notes = append(notes, fmt.Sprintf(format, args...))
		}
	}
	defer func() { meta.Fallback = strings.Join(notes, "; ") }()
	for si := range steps {
		step := &steps[si]
		m := t.models[step.Model.Name]
		if c.closed(si, lastErr) {
			note("%s: not on %s", m.Name, shortErr(asError(lastErr)))
			return lastErr
		}
		if err := x.reserve(ctx, step); err != nil {
			if errors.Is(err, budget.ErrExhausted) && x.downgrades(nil) {
				note("%s: budget", m.Name)
				lastErr = err
				continue
			}
			return err
		}
		order := t.balancer.Order(m.refs, g.rand(), buf[:0])
		if len(order) == 0 {
			_, why := t.balancer.Available(m.refs)
			note("%s: %s", m.Name, why)
		}
		moreSteps := si < len(steps)-1
	deployments:
		for _, ref := range order {
			d := m.byID[ref.ID]
			creds, err := g.credentials(x.c, d)
			if err != nil {
				return err
			}
			for n := 1; ; n++ {
				permit, err := t.breakers.Allow(d.ID)
				if err != nil { // opened since the plan was made
					note("%s: breaker open", d.ID)
					continue deployments
				}
				meta.Attempts++
				meta.Model, meta.Provider, meta.PromptTokens = m.Name, d.ProviderName, step.PromptTokens
				start := g.now()
				a := attempt{step: step, d: d, credentials: creds, limit: g.attemptLimit(ctx, d, moreSteps)}
				actx, span := x.traceAttempt(ctx, a, n)
				err = g.bounded(actx, a, stream, permit, do)
				x.endAttempt(span, err)
				took := g.now().Sub(start)
				meta.Upstream += took
				if err == nil {
					g.latencies.Observe(m.Name, took)
					if stream {
						meta.FirstToken = g.now().Sub(x.start)
					}
					x.charged = true
					return nil
				}
				lastErr = err
				next := decide(err, failure{
					attempt: n, deployments: len(order), backoff: d.Backoff,
					remaining: remaining(ctx, g.now()), ctxErr: ctx.Err(), rand: g.rand,
					retry: c.retry, fallbackOn: c.on,
				})
				if next.cooldown {
					t.balancer.RateLimited(d.ID, retryAfterOf(err))
				}
				switch next.act {
				case actReturn:
					if ctx.Err() != nil {
						return g.deadlineErr(ctx, err)
					}
					return err
				case actNextModel:
					note("%s: %s", m.Name, next.why)
					break deployments
				case actNextDeployment:
					note("%s: %s", d.ID, next.why)
					continue deployments
				case actRetry:
					if err := g.sleep(ctx, next.wait); err != nil {
						return g.deadlineErr(ctx, lastErr)
					}
				}
			}
		}
	}
	if lastErr == nil {
		return &llm.Error{Status: http.StatusServiceUnavailable, Type: llm.TypeUpstream, Code: "no_healthy_model",
			Message: "no deployment can take the request now: " + strings.Join(notes, "; ")}
	}
	return lastErr
}

// act is what the attempt loop does after a failed attempt.
type act int

const (
	actReturn         act = iota // give the error to the client
	actRetry                     // call the same deployment again after wait
	actNextDeployment            // the model's next deployment (another key, region…)
	actNextModel                 // the plan's next model
)

func (a act) String() string {
	return [...]string{"return", "retry", "next deployment", "next model"}[a]
}

// failure is what decide knows of a failed attempt.
type failure struct {
	attempt     int // attempts made on this deployment so far (1 for the first)
	deployments int // deployments of this model in the balancer's order
	backoff     router.Backoff
	remaining   time.Duration // until the request's deadline
	ctxErr      error         // the request's own context error, if it ended
	rand        func() float64
	// The request's config: retry replaces the deployment's retry policy
	// (nil: keep it); an upstream failure with a status of fallbackOn
	// moves on rather than being returned.
	retry      *Retry
	fallbackOn []int
}

// decision is what to do next, and the note for x-tollgate-fallback.
type decision struct {
	act      act
	wait     time.Duration // before actRetry
	cooldown bool          // the deployment said 429: take it out of rotation for a while
	why      string
}

// decide is the retry and fallback policy, a pure function of the error
// and the attempt's situation:
//
//   - the request ended (client gone, deadline): return;
//   - a refusal by tollgate itself that only this model's wire format makes
//     (a translator's 400): next model;
//   - an upstream 401/403: the deployment's credential is at fault: next
//     deployment;
//   - any other error that is not retryable (an upstream 400: the request's
//     own fault, another model would refuse it too): return;
//   - an upstream timeout: next deployment, never the same hanging one;
//   - a 429 with other deployments left: cool this one down, next
//     deployment;
//   - otherwise (5xx, retryable, a lone deployment's 429): retry after the
//     deployment's backoff (honouring Retry-After) while attempts and time
//     remain, else next deployment.
//
// A request's config changes two of these: with a retry policy, an
// upstream failure is retried (up to its attempts) when the policy lists
// its status, and only then; an upstream failure whose status the
// config's fallback lists moves to the next model instead of returning.
func decide(err error, f failure) decision {
	if f.ctxErr != nil {
		return decision{act: actReturn}
	}
	e, ok := llm.AsError(err)
	switch {
	case ok && !e.Upstream && e.Status < 500:
		return decision{act: actNextModel, why: shortErr(e)}
	case ok && e.Upstream && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden):
		return decision{act: actNextDeployment, why: shortErr(e)}
	case ok && e.Upstream && f.retry.retries(e.Status):
		// retried below, whatever tollgate would make of it
	case !ok || !(e.Retryable || e.Status == http.StatusTooManyRequests || e.Status >= 500):
		if ok && e.Upstream && slices.Contains(f.fallbackOn, e.Status) {
			return decision{act: actNextModel, why: shortErr(e)}
		}
		return decision{act: actReturn}
	case e.Code == "upstream_timeout":
		return decision{act: actNextDeployment, why: shortErr(e)}
	}
	d := decision{cooldown: e.Status == http.StatusTooManyRequests}
	if d.cooldown && f.deployments > 1 {
		d.act, d.why = actNextDeployment, "429"
		return d
	}
	backoff := f.backoff
	if f.retry != nil {
		backoff.MaxAttempts = f.retry.Attempts + 1
		if !f.retry.retries(e.Status) {
			backoff.MaxAttempts = 1
		}
	}
	wait, again := backoff.Next(f.attempt, e.RetryAfter, f.remaining, f.rand)
	if !again {
		d.act, d.why = actNextDeployment, fmt.Sprintf("%s after %d attempt(s)", shortErr(e), f.attempt)
		return d
	}
	d.act, d.wait = actRetry, wait
	return d
}

// attemptLimit bounds one attempt: by the deployment's timeout, and, when
// other candidates remain and the request has a deadline, by half of the
// time left, so a hanging upstream leaves room for the fallback.
func (g *Gateway) attemptLimit(ctx context.Context, d *Deployment, moreSteps bool) time.Duration {
	limit := d.AttemptTimeout
	if deadline, ok := ctx.Deadline(); ok && moreSteps {
		if half := deadline.Sub(g.now()) / 2; limit == 0 || half < limit {
			limit = max(half, time.Millisecond)
		}
	}
	return limit
}

// attemptPanic carries a panic out of an attempt with the stack where it
// happened, once the attempt's breaker permit has been given back.
type attemptPanic struct {
	value any
	stack []byte
}

// bounded runs one attempt within its limit and reports its outcome to the
// breaker, a panic included (as a failure, then the panic goes on). Since
// the request's own context is still alive when this is checked, a context
// error can only come from the attempt's bound: it is a retryable upstream
// timeout.
func (g *Gateway) bounded(ctx context.Context, a attempt, stream bool, permit router.Permit, do call) (err error) {
	defer func() {
		if v := recover(); v != nil {
			permit.Done(router.OutcomeOf(errInternal), "panic")
			if _, ok := v.(*attemptPanic); !ok {
				v = &attemptPanic{value: v, stack: debug.Stack()}
			}
			panic(v)
		}
		permit.Done(router.OutcomeOf(err), failureNote(err))
	}()
	actx := ctx
	if a.limit > 0 && !stream {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, a.limit)
		defer cancel()
	}
	err = do(actx, a)
	if err != nil && ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return &llm.Error{Status: http.StatusGatewayTimeout, Type: llm.TypeTimeout, Code: "upstream_timeout", Retryable: true,
			Upstream: true, Provider: a.d.ProviderName, Message: fmt.Sprintf("no answer within %s", a.limit.Round(time.Millisecond)), Err: err}
	}
	return err
}

// credentials returns the per-request provider key for d, if the caller
// sent one for d's provider.
func (g *Gateway) credentials(c Caller, d *Deployment) (string, error) {
	if len(c.Credentials) == 0 {
		return "", nil
	}
	if !c.Key.AllowBYOK {
		return "", &llm.Error{Status: http.StatusForbidden, Type: llm.TypePermission, Code: "byok_not_allowed",
			Message: "this API key may not send provider credentials; an admin can allow it (allow_byok)"}
	}
	return c.Credentials[d.ProviderName], nil
}

func (g *Gateway) deadlineErr(ctx context.Context, err error) error {
	if ctx.Err() == context.DeadlineExceeded {
		return &llm.Error{Status: http.StatusGatewayTimeout, Type: llm.TypeTimeout, Code: "upstream_timeout",
			Message: "no upstream answered within the request timeout", Err: err}
	}
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return context.Canceled
	}
	return err
}

func remaining(ctx context.Context, now time.Time) time.Duration {
	if deadline, ok := ctx.Deadline(); ok {
		return deadline.Sub(now)
	}
	return time.Hour
}

// asError is err's *llm.Error, nil when it has none.
func asError(err error) *llm.Error {
	e, _ := llm.AsError(err)
	return e
}

func retryAfterOf(err error) time.Duration {
	if e, ok := llm.AsError(err); ok {
		return e.RetryAfter
	}
	return 0
}

// shortErr is a short, secret-free description of an error for headers.
func shortErr(e *llm.Error) string {
	if e == nil {
		return "error"
	}
	if e.Code != "" {
		return fmt.Sprintf("%d %s", e.Status, e.Code)
	}
	return fmt.Sprintf("%d", e.Status)
}

// failureNote is the last-error text kept by the breaker (admin view):
// status and code only, never a message that could quote a credential.
func failureNote(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := llm.AsError(err); ok {
		return shortErr(e)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "transport error"
}
