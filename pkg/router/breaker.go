package router

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Outcome is what a call through a breaker did to the upstream's health.
type Outcome uint8

const (
	// OutcomeSuccess: the upstream answered. Resets consecutive failures;
	// in half-open, counts toward closing.
	OutcomeSuccess Outcome = iota
	// OutcomeFault: the upstream failed (5xx, 429, timeout, connection
	// error, a credential it refused). Counts as a failure.
	OutcomeFault
	// OutcomeNeutral: the call says nothing about the upstream (the client's
	// 400, the client went away). It counts neither as a failure nor as a
	// success: it does not reset consecutive failures, and in half-open it
	// frees its probe slot without closing or re-opening the breaker.
	OutcomeNeutral
)

func (o Outcome) String() string {
	switch o {
	case OutcomeSuccess:
		return "success"
	case OutcomeFault:
		return "fault"
	case OutcomeNeutral:
		return "neutral"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// OutcomeOf classifies a provider call's error:
//
//   - nil → success;
//   - a client that went away (context.Canceled, status 499) → neutral;
//   - an *llm.Error with status 5xx, 429 or 408, or marked Retryable → fault;
//   - an upstream 401 or 403 → fault: the client never sees the upstream's
//     credentials, so a refusal is the deployment's problem (a revoked or
//     unfunded key), and traffic should move to another deployment;
//   - any other *llm.Error (400, 404, 413, 422: the request's fault) → neutral;
//   - context.DeadlineExceeded and any other error (connection refused,
//     reset, TLS) → fault.
func OutcomeOf(err error) Outcome {
	if err == nil {
		return OutcomeSuccess
	}
	if e, ok := llm.AsError(err); ok {
		switch {
		case e.Status == llm.StatusClientClosed:
			return OutcomeNeutral
		case e.Status >= 500, e.Status == http.StatusTooManyRequests, e.Status == http.StatusRequestTimeout, e.Retryable:
			return OutcomeFault
		case e.Upstream && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden):
			return OutcomeFault
		case e.Status >= 400:
			return OutcomeNeutral
		}
	}
	if errors.Is(err, context.Canceled) {
		return OutcomeNeutral
	}
	return OutcomeFault
}

// BreakerSettings configure the breakers of one provider. A zero field takes
// the value of the registry's Default settings, and a zero there the value
// of DefaultBreakerSettings.
type BreakerSettings struct {
	// ConsecutiveFailures trips the breaker after this many faults in a row
	// (neutral outcomes do not break the row). Default 5.
	ConsecutiveFailures uint32
	// FailureRatio trips the breaker when at least this fraction of the
	// calls completed within Window failed, once there are MinRequests of
	// them. Default 0.5 with MinRequests 20.
	FailureRatio float64
	MinRequests  uint32
	// Window is the rolling window of FailureRatio, kept in 10 buckets of
	// Window/10. Default 60s.
	Window time.Duration
	// Cooldown is how long an open breaker rejects calls before it lets
	// probes through (half-open). Default 30s.
	Cooldown time.Duration
	// HalfOpenRequests is the number of probes let through when half-open;
	// that many successes in a row close the breaker, one fault re-opens it.
	// Default 3.
	HalfOpenRequests uint32
}

// DefaultBreakerSettings are the settings used where nothing is
// configured: trip after 5 consecutive faults, or when half of at least 20
// calls in the last 60s failed; stay open 30s; then close after 3
// successful probes.
func DefaultBreakerSettings() BreakerSettings {
	return BreakerSettings{
		ConsecutiveFailures: 5,
		FailureRatio:        0.5,
		MinRequests:         20,
		Window:              60 * time.Second,
		Cooldown:            30 * time.Second,
		HalfOpenRequests:    3,
	}
}

// Validate reports every invalid setting, named as in the config.
func (s BreakerSettings) Validate() error { return errors.Join(s.problems("")...) }

func (s BreakerSettings) problems(prefix string) []error {
	var errs []error
	if s.FailureRatio < 0 || s.FailureRatio > 1 || math.IsNaN(s.FailureRatio) {
		errs = append(errs, errors.New(prefix+"failure_ratio: must be between 0 and 1"))
	}
	if s.Window < 0 {
		errs = append(errs, errors.New(prefix+"window: must not be negative"))
	}
	if s.Cooldown < 0 {
		errs = append(errs, errors.New(prefix+"cooldown: must not be negative"))
	}
	return errs
}

// or fills s's zero fields from d.
func (s BreakerSettings) or(d BreakerSettings) BreakerSettings {
	if s.ConsecutiveFailures == 0 {
		s.ConsecutiveFailures = d.ConsecutiveFailures
	}
	if s.FailureRatio == 0 {
		s.FailureRatio = d.FailureRatio
	}
	if s.MinRequests == 0 {
		s.MinRequests = d.MinRequests
	}
	if s.Window == 0 {
		s.Window = d.Window
	}
	if s.Cooldown == 0 {
		s.Cooldown = d.Cooldown
	}
	if s.HalfOpenRequests == 0 {
		s.HalfOpenRequests = d.HalfOpenRequests
	}
	return s
}

// readyToTrip is gobreaker's ReadyToTrip for these settings. Counts are of
// the closed state within the rolling window; excluded (neutral) calls are
// in neither TotalSuccesses nor TotalFailures.
func (s BreakerSettings) readyToTrip(c gobreaker.Counts) bool {
	if c.ConsecutiveFailures >= s.ConsecutiveFailures {
		return true
	}
	done := uint64(c.TotalSuccesses) + uint64(c.TotalFailures)
	return done > 0 && done >= uint64(s.MinRequests) && float64(c.TotalFailures) >= s.FailureRatio*float64(done)
}

// BreakerState is a breaker's state.
type BreakerState uint8

// Breaker states.
const (
	BreakerClosed   BreakerState = iota // calls go through
	BreakerHalfOpen                     // a bounded number of probes go through
	BreakerOpen                         // calls are rejected until the cooldown ends
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// MarshalText renders the state as its name in JSON.
func (s BreakerState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func stateOf(s gobreaker.State) BreakerState {
	switch s {
	case gobreaker.StateHalfOpen:
		return BreakerHalfOpen
	case gobreaker.StateOpen:
		return BreakerOpen
	}
	return BreakerClosed
}

// Errors of Breakers.Allow. Both mean "try another deployment now".
var (
	ErrBreakerOpen = errors.New("circuit breaker is open")
	// ErrProbesBusy: the breaker is half-open and all its probes are in flight.
	ErrProbesBusy = errors.New("circuit breaker is half-open and its probes are in flight")
)

// BreakerConfig configures a Breakers registry.
type BreakerConfig struct {
	Default   BreakerSettings            // zero fields: DefaultBreakerSettings
	Providers map[string]BreakerSettings // per provider name; zero fields: Default
	// OnStateChange, if set, is called on every transition (for logs and
	// metrics). It runs while the breaker is locked: it must be quick and
	// must not call back into the registry.
	OnStateChange func(id, provider string, from, to BreakerState)
}

// Breakers is the registry of circuit breakers, one per deployment (a
// provider x upstream model x API key), keyed by the deployment's ID. It is
// safe for concurrent use; Allow and State take no registry-wide lock.
//
// Time is gobreaker's time.Now; tests run it inside testing/synctest.
type Breakers struct {
	cfg BreakerConfig
	m   sync.Map // id → *breaker
}

type breaker struct {
	id, provider string
	settings     BreakerSettings
	cb           *gobreaker.TwoStepCircuitBreaker[struct{}]
	openedAt     atomic.Int64  // unix nanos of the last transition to open
	state        atomic.Uint32 // BreakerState as of the last transition, for quick reads

	mu          sync.Mutex // guards the fields below; taken only on faults and snapshots
	lastError   string
	lastErrorAt time.Time
}

// NewBreakers builds an empty registry.
func NewBreakers(cfg BreakerConfig) (*Breakers, error) {
	errs := cfg.Default.problems("breakers.default.")
	for _, name := range slices.Sorted(maps.Keys(cfg.Providers)) {
		errs = append(errs, cfg.Providers[name].problems("breakers.providers."+name+".")...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.Default = cfg.Default.or(DefaultBreakerSettings())
	return &Breakers{cfg: cfg}, nil
}

// Add registers a deployment with its provider's settings. Adding an ID
// again keeps its breaker (and its state). Allow registers an unknown ID
// with the Default settings and no provider, so a forgotten Add never
// leaves a deployment unprotected.
func (b *Breakers) Add(id, provider string) {
	if _, ok := b.m.Load(id); ok {
		return
	}
	b.m.LoadOrStore(id, b.newBreaker(id, provider))
}

func (b *Breakers) get(id string) *breaker {
	if v, ok := b.m.Load(id); ok {
		return v.(*breaker)
	}
	v, _ := b.m.LoadOrStore(id, b.newBreaker(id, ""))
	return v.(*breaker)
}

func (b *Breakers) newBreaker(id, provider string) *breaker {
	s := b.cfg.Default
	if p, ok := b.cfg.Providers[provider]; ok {
		s = p.or(s)
	}
	br := &breaker{id: id, provider: provider, settings: s}
	bucket := s.Window / 10
	if bucket <= 0 {
		bucket = s.Window
	}
	hook := b.cfg.OnStateChange
	br.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         id,
		MaxRequests:  s.HalfOpenRequests,
		Interval:     s.Window,
		BucketPeriod: bucket,
		Timeout:      s.Cooldown,
		ReadyToTrip:  s.readyToTrip,
		IsExcluded:   func(err error) bool { return err == errNeutral },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				br.openedAt.Store(time.Now().UnixNano())
			}
			br.state.Store(uint32(stateOf(to)))
			if hook != nil {
				hook(id, provider, stateOf(from), stateOf(to))
			}
		},
	})
	return br
}

// The errors handed to gobreaker's done: nil is a success, errFault a
// failure, errNeutral excluded (IsExcluded), which is how gobreaker ignores
// a call without resetting its consecutive-failure count.
var (
	errFault   = errors.New("upstream fault")
	errNeutral = errors.New("neutral outcome")
)

// Permit is a call the breaker let through. Done must be called exactly
// once when the call's outcome is known: a permit never done holds one of
// the half-open probe slots forever.
type Permit struct {
	b    *breaker
	done func(error)
}

// Done reports the call's outcome. For OutcomeFault, lastError is kept as
// the deployment's last error for the admin API: the caller passes a
// message safe to show (no keys, no prompt text); it is cut at 200 bytes.
// Done on the zero Permit does nothing.
func (p Permit) Done(o Outcome, lastError string) {
	if p.done == nil {
		return
	}
	switch o {
	case OutcomeSuccess:
		p.done(nil)
	case OutcomeFault:
		p.b.recordError(lastError)
		p.done(errFault)
	default:
		p.done(errNeutral)
	}
}

const maxLastError = 200

func (br *breaker) recordError(msg string) {
	if len(msg) > maxLastError {
		msg = strings.ToValidUTF8(msg[:maxLastError], "") + "..."
	}
	now := time.Now()
	br.mu.Lock()
	br.lastError, br.lastErrorAt = msg, now
	br.mu.Unlock()
}

// Allow asks the deployment's breaker for a call: ErrBreakerOpen or
// ErrProbesBusy when it refuses (try another deployment), else a Permit
// whose Done must report the outcome.
func (b *Breakers) Allow(id string) (Permit, error) {
	br := b.get(id)
	done, err := br.cb.Allow()
	switch {
	case errors.Is(err, gobreaker.ErrOpenState):
		return Permit{}, ErrBreakerOpen
	case errors.Is(err, gobreaker.ErrTooManyRequests):
		return Permit{}, ErrProbesBusy
	case err != nil:
		return Permit{}, err
	}
	return Permit{b: br, done: done}, nil
}

// State is the deployment's breaker state (closed for an unknown ID). An
// open breaker whose cooldown has passed reads half-open.
func (b *Breakers) State(id string) BreakerState {
	v, ok := b.m.Load(id)
	if !ok {
		return BreakerClosed
	}
	return stateOf(v.(*breaker).cb.State())
}

// quickState is State without gobreaker's lock, for the balancer's hot
// path: the state of the last transition, and an open breaker past its
// cooldown reads half-open (gobreaker makes that transition lazily, on the
// next Allow or State). Unknown IDs read closed.
func (b *Breakers) quickState(id string, now int64) BreakerState {
	v, ok := b.m.Load(id)
	if !ok {
		return BreakerClosed
	}
	br := v.(*breaker)
	s := BreakerState(br.state.Load())
	if s == BreakerOpen && now > br.openedAt.Load()+int64(br.settings.Cooldown) {
		return BreakerHalfOpen
	}
	return s
}

// BreakerCounts are a breaker's counts in its current state: in closed,
// over the rolling window; in half-open, the probes; in open, zero (gobreaker
// clears them on every transition).
type BreakerCounts struct {
	Requests             uint32 `json:"requests"`
	Successes            uint32 `json:"successes"`
	Failures             uint32 `json:"failures"`
	Neutral              uint32 `json:"neutral"`
	ConsecutiveSuccesses uint32 `json:"consecutive_successes"`
	ConsecutiveFailures  uint32 `json:"consecutive_failures"`
}

// BreakerStatus is one deployment's breaker for GET /admin/providers.
type BreakerStatus struct {
	ID          string        `json:"id"`
	Provider    string        `json:"provider"`
	State       BreakerState  `json:"state"`
	Counts      BreakerCounts `json:"counts"`
	LastError   string        `json:"last_error,omitempty"`
	LastErrorAt time.Time     `json:"last_error_at,omitzero"`
	// OpenUntil is when an open breaker lets probes through, HalfOpenIn
	// the time left until then; zero unless State is open.
	OpenUntil  time.Time     `json:"open_until,omitzero"`
	HalfOpenIn time.Duration `json:"half_open_in_ns,omitempty"`
}

// Snapshot returns every breaker's status, sorted by ID.
func (b *Breakers) Snapshot() []BreakerStatus {
	now := time.Now()
	var out []BreakerStatus
	b.m.Range(func(_, v any) bool {
		br := v.(*breaker)
		st := BreakerStatus{ID: br.id, Provider: br.provider, State: stateOf(br.cb.State())}
		c := br.cb.Counts()
		st.Counts = BreakerCounts{
			Requests: c.Requests, Successes: c.TotalSuccesses, Failures: c.TotalFailures, Neutral: c.TotalExclusions,
			ConsecutiveSuccesses: c.ConsecutiveSuccesses, ConsecutiveFailures: c.ConsecutiveFailures,
		}
		br.mu.Lock()
		st.LastError, st.LastErrorAt = br.lastError, br.lastErrorAt
		br.mu.Unlock()
		if st.State == BreakerOpen {
			st.OpenUntil = time.Unix(0, br.openedAt.Load()).Add(br.settings.Cooldown)
			st.HalfOpenIn = max(st.OpenUntil.Sub(now), 0)
		}
		out = append(out, st)
		return true
	})
	slices.SortFunc(out, func(a, b BreakerStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}
