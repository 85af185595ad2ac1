package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/router"
)

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

// try is the one retry and fallback loop. For each planned model in order,
// for each of its deployments in balancer order (open breakers and
// rate-limited keys left out), it calls the deployment through its breaker,
// retrying retryable errors with the deployment's backoff while the
// request's deadline allows, then moves on: to the model's next deployment
// after a 429 or spent retries, to the next model after that. It never
// waits past the deadline and returns at once when the client leaves.
//
// Before a model is called, its maximum cost is reserved against the key's
// budget (sp); a key whose budget cannot hold it gets the 402, unless its
// policy downgrades (see tryWithin).
//
// An error that is the request's own fault (an upstream 400) ends the loop:
// another model would refuse it too. A translator that cannot express the
// request for its wire format (a local 400) moves on to the next model.
func (g *Gateway) try(ctx context.Context, c Caller, meta *Meta, steps []router.Step, sp *spender, stream bool, do call) error {
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
	for si := range steps {
		step := &steps[si]
		m := g.models[step.Model.Name]
		if err := sp.hold(ctx, step); err != nil {
			if errors.Is(err, budget.ErrExhausted) && sp.downgrade {
				note("%s: budget", m.Name)
				lastErr = err
				continue // a cheaper candidate may still fit
			}
			return err
		}
		order := g.balancer.Order(m.refs, g.rand(), buf[:0])
		if len(order) == 0 {
			_, why := g.balancer.Available(m.refs)
			note("%s: %s", m.Name, why)
		}
		moreSteps := si < len(steps)-1
	deployments:
		for _, ref := range order {
			d := m.byID[ref.ID]
			creds, err := g.credentials(c, d)
			if err != nil {
				return err
			}
			for n := 1; ; n++ {
				permit, err := g.breakers.Allow(d.ID)
				if err != nil { // opened since the plan was made
					note("%s: breaker open", d.ID)
					continue deployments
				}
				meta.Attempts++
				meta.Model, meta.Provider, meta.PromptTokens = m.Name, d.ProviderName, step.PromptTokens
				start := g.now()
				a := attempt{step: step, d: d, credentials: creds, limit: g.attemptLimit(ctx, d, moreSteps)}
				err = g.bounded(ctx, a, stream, do)
				permit.Done(router.OutcomeOf(err), failureNote(err))
				if err == nil {
					g.latencies.Observe(m.Name, g.now().Sub(start))
					meta.Fallback = strings.Join(notes, "; ")
					return nil
				}
				lastErr = err
				if ctx.Err() != nil {
					return g.deadlineErr(ctx, err)
				}
				e, ok := llm.AsError(err)
				switch {
				case ok && !e.Upstream && e.Status < 500:
					note("%s: %s", m.Name, shortErr(e))
					break deployments // this wire format cannot serve it: next model
				case !ok || !(e.Retryable || e.Status == http.StatusTooManyRequests || e.Status >= 500):
					if ok && e.Upstream && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden) {
						note("%s: %s", d.ID, shortErr(e)) // our credential: try another key or model
						continue deployments
					}
					meta.Fallback = strings.Join(notes, "; ")
					return err
				case e.Code == "upstream_timeout":
					note("%s: %s", d.ID, shortErr(e))
					continue deployments // a hanging deployment is not retried: the time is better spent elsewhere
				case e.Status == http.StatusTooManyRequests:
					g.balancer.RateLimited(d.ID, e.RetryAfter)
					if len(order) > 1 {
						note("%s: 429", d.ID)
						continue deployments // traffic moves to the other keys
					}
				}
				wait, again := d.Backoff.Next(n, retryAfter(e), remaining(ctx, g.now()), g.rand)
				if !again {
					note("%s: %s after %d attempt(s)", d.ID, shortErr(e), n)
					continue deployments
				}
				if err := g.sleep(ctx, wait); err != nil {
					return g.deadlineErr(ctx, lastErr)
				}
			}
		}
	}
	meta.Fallback = strings.Join(notes, "; ")
	if lastErr == nil {
		return &llm.Error{Status: http.StatusServiceUnavailable, Type: llm.TypeUpstream, Code: "no_healthy_model",
			Message: "no deployment can take the request now: " + meta.Fallback}
	}
	return lastErr
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

// bounded runs one attempt within its limit. Since the request's own
// context is still alive when this is checked, a context error can only
// come from the attempt's bound: it is a retryable upstream timeout.
func (g *Gateway) bounded(ctx context.Context, a attempt, stream bool, do call) error {
	actx := ctx
	if a.limit > 0 && !stream {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, a.limit)
		defer cancel()
	}
	err := do(actx, a)
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

func retryAfter(e *llm.Error) time.Duration {
	if e == nil {
		return 0
	}
	return e.RetryAfter
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
