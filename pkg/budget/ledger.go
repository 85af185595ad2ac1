package budget

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/sqlite"
)

// Sentinel errors.
var (
	// ErrExhausted is in the chain of the 402 Reserve returns when the
	// request does not fit a budget.
	ErrExhausted = errors.New("budget exhausted")
	// ErrRateLimited is in the chain of the 429 Allow returns.
	ErrRateLimited = errors.New("rate limit exceeded")
	// ErrSettled: the request id was already settled; ids are not reused.
	ErrSettled = errors.New("request already settled")
	// ErrNoReservation: Settle of a request id that holds no reservation.
	ErrNoReservation = errors.New("no reservation for this request")
)

// Options configures a Ledger. Every field is optional.
type Options struct {
	// Location aligns periods to its calendar (midnight, Monday, the 1st).
	// Nil means UTC.
	Location *time.Location
	// Defaults is the policy of a key that has none stored (new keys, and
	// keys created before budgets existed).
	Defaults Policy
	// Webhooks receive every key's alerts; a key's policy may add more.
	Webhooks []Webhook
	// WebhookSecret signs every delivery (x-tollgate-signature). Empty:
	// deliveries are unsigned.
	WebhookSecret string
	// KeyName names a key in alerts (the gateway wires keys.Store here).
	KeyName func(keyID string) string
	// HTTPClient posts alerts; nil means a client with a 10 s timeout.
	HTTPClient *http.Client
	// DeliveryTimeout bounds one delivery attempt (default 10 s).
	DeliveryTimeout time.Duration
	// DeliveryInterval is how often the background deliverer looks for
	// due alerts besides being woken by new ones (default 5 s). Negative:
	// no background deliverer; call DeliverDue yourself (tests).
	DeliveryInterval time.Duration
	// RetryBase and RetryMax bound the exponential backoff between
	// delivery attempts (defaults 2 s and 1 h); MaxAttempts gives up on a
	// delivery (default 30, about a day at the cap).
	RetryBase, RetryMax time.Duration
	MaxAttempts         int
	// ProjectionMinElapsed is the fraction of a period that must have
	// passed before projected_exhaustion may fire (default 0.1), so a
	// burst in the first minutes of a month does not cry wolf.
	ProjectionMinElapsed float64
	// JournalPath, when set, makes an append to this file the durable
	// point of a settle (see the package doc's Durability): one write per
	// group-commit batch instead of one SQLite transaction, with rows moved
	// into SQLite in large transactions every ApplyInterval (default
	// 50 ms) or once ApplyRows (default 1000) are pending. Empty: each
	// batch is an SQLite transaction.
	JournalPath   string
	ApplyInterval time.Duration
	ApplyRows     int
	// Now and Rand (a float in [0, 1), for backoff jitter) are injected
	// for tests; nil means the real clock and math/rand/v2.
	Now    func() time.Time
	Rand   func() float64
	Logger *slog.Logger
}

// Ledger is the budget store: policies, in-memory period counters,
// reservations, rate limits, the SQLite spend ledger and the alert outbox.
// Safe for concurrent use.
type Ledger struct {
	db   *sql.DB
	o    Options
	loc  *time.Location
	now  func() time.Time
	log  *slog.Logger
	keys sync.Map // key id → *keyState

	policyMu sync.Mutex // serialises SetPolicy's write + publish

	w       *writer
	deliver *deliverer
}

var schema = []string{`
CREATE TABLE budget_policies (
	key_id     TEXT PRIMARY KEY,
	policy     TEXT NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE TABLE budget_ledger (
	id                INTEGER PRIMARY KEY,
	ts                INTEGER NOT NULL, -- unix ms the request was admitted: its period
	request_id        TEXT NOT NULL,
	key_id            TEXT NOT NULL,
	route             TEXT NOT NULL,
	requested_model   TEXT NOT NULL,
	model             TEXT NOT NULL,
	provider          TEXT NOT NULL,
	prompt_tokens     INTEGER NOT NULL,
	completion_tokens INTEGER NOT NULL,
	cached_tokens     INTEGER NOT NULL,
	cost              INTEGER NOT NULL, -- micro-dollars charged to the key
	saved             INTEGER NOT NULL, -- micro-dollars saved by the cache or a downgrade
	estimated         INTEGER NOT NULL,
	unpriced          INTEGER NOT NULL,
	cache             TEXT NOT NULL,
	status            INTEGER NOT NULL,
	latency_ms        INTEGER NOT NULL,
	attempts          INTEGER NOT NULL
);

CREATE INDEX budget_ledger_ts ON budget_ledger (ts);
CREATE TABLE budget_alerts (
	id           INTEGER PRIMARY KEY,
	uid          TEXT NOT NULL UNIQUE, -- key, period, period start, event, threshold, limit
	key_id       TEXT NOT NULL,
	period       TEXT NOT NULL,
	period_start INTEGER NOT NULL,
	event        TEXT NOT NULL,
	threshold    INTEGER NOT NULL, -- parts per million
	limit_micros INTEGER NOT NULL,
	created_at   INTEGER NOT NULL,
	payload      TEXT NOT NULL
);
CREATE TABLE budget_outbox (
	id           INTEGER PRIMARY KEY,
	alert_id     INTEGER NOT NULL REFERENCES budget_alerts (id),
	url          TEXT NOT NULL,
	slack        INTEGER NOT NULL,
	body         TEXT NOT NULL,
	state        TEXT NOT NULL DEFAULT 'pending', -- pending | delivered | failed
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_at      INTEGER NOT NULL,
	delivered_at INTEGER,
	last_error   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX budget_outbox_due ON budget_outbox (next_at) WHERE state = 'pending';
`, `
CREATE TABLE budget_journal (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	applied INTEGER NOT NULL -- journal offset whose records are all in budget_ledger / budget_alerts
);
`}

// Open migrates the budget tables, loads every policy and rebuilds each
// key's spend in the current periods from the ledger rows, then starts the
// ledger writer and the alert deliverer. Close stops them.
func Open(ctx context.Context, db *sql.DB, o Options) (*Ledger, error) {
	if err := o.Defaults.Validate(); err != nil {
		return nil, fmt.Errorf("budget: default policy: %w", err)
	}
	for i, w := range o.Webhooks {
		if err := validURL(w.URL); err != nil {
			return nil, fmt.Errorf("budget: webhooks[%d]: %w", i, err)
		}
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.DeliveryTimeout <= 0 {
		o.DeliveryTimeout = 10 * time.Second
	}
	if o.DeliveryInterval == 0 {
		o.DeliveryInterval = 5 * time.Second
	}
	if o.RetryBase <= 0 {
		o.RetryBase = 2 * time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = time.Hour
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 30
	}
	if o.ProjectionMinElapsed <= 0 {
		o.ProjectionMinElapsed = 0.1
	}
	if o.ApplyInterval <= 0 {
		o.ApplyInterval = 50 * time.Millisecond
	}
	if o.ApplyRows <= 0 {
		o.ApplyRows = 1000
	}
	o.Defaults = o.Defaults.clone()
	if err := sqlite.Migrate(ctx, db, "budget", schema); err != nil {
		return nil, err
	}
	l := &Ledger{db: db, o: o, loc: o.Location, now: o.Now, log: o.Logger}
	l.deliver = newDeliverer(l)
	w, err := newWriter(ctx, l)
	if err != nil {
		return nil, err
	}
	l.w = w
	if o.JournalPath != "" {
		// Replay before the rebuild, so that the spend counts what was
		// journaled but not yet applied when the last process died.
		if w.j, err = openJournal(ctx, l, o.JournalPath); err != nil {
			w.insert.Close()
			return nil, err
		}
	}
	if err := l.load(ctx); err != nil {
		if w.j != nil {
			w.j.f.Close()
		}
		w.insert.Close()
		return nil, err
	}
	w.start()
	if w.j != nil {
		go w.j.run()
	}
	l.deliver.start()
	return l, nil
}

// Close flushes every pending ledger row and alert into SQLite, and stops
// the background goroutines. The Ledger must not be used afterwards.
func (l *Ledger) Close() error {
	err := l.w.close()
	if l.w.j != nil {
		if jerr := l.w.j.close(); err == nil {
			err = jerr
		}
	}
	l.w.insert.Close()
	l.deliver.close()
	return err
}

// Flush waits until every row handed to Record or Settle so far is
// committed to SQLite (with a journal: journaled, then applied).
func (l *Ledger) Flush(ctx context.Context) error {
	if err := l.w.add(nil, nil).wait(ctx); err != nil {
		return err
	}
	return l.applyJournal(ctx)
}

// applyJournal moves what is journaled into SQLite, so that a reader of
// the ledger tables sees every row whose Settle has returned. Without a
// journal, Settle has committed already.
func (l *Ledger) applyJournal(ctx context.Context) error {
	if l.w.j == nil {
		return nil
	}
	return l.w.j.apply(ctx)
}

// load reads the policies, the spend of the current periods and the alerts
// already fired in them.
func (l *Ledger) load(ctx context.Context) error {
	rows, err := l.db.QueryContext(ctx, `SELECT key_id, policy FROM budget_policies`)
	if err != nil {
		return fmt.Errorf("budget: load policies: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, raw string
		if err := rows.Scan(&id, &raw); err != nil {
			return fmt.Errorf("budget: load policies: %w", err)
		}
		var p Policy
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			return fmt.Errorf("budget: load policy of %s: %w", id, err)
		}
		st := l.state(id)
		st.policy, st.explicit = p, true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("budget: load policies: %w", err)
	}

	// One scan of the (key_id, ts, cost) index gives every key's total and
	// the sums since the start of each current period.
	now := l.now()
	var starts [len(periods)]int64
	for i, p := range periods[:Total.index()] {
		s, _ := p.Window(now, l.loc)
		starts[i] = s.UnixMilli()
	}
	rows, err = l.db.QueryContext(ctx, `SELECT key_id,
		SUM(CASE WHEN ts >= ?1 THEN cost ELSE 0 END),
		SUM(CASE WHEN ts >= ?2 THEN cost ELSE 0 END),
		SUM(CASE WHEN ts >= ?3 THEN cost ELSE 0 END),
		SUM(cost)
		FROM budget_ledger GROUP BY key_id`, starts[0], starts[1], starts[2])
	if err != nil {
		return fmt.Errorf("budget: rebuild spend: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var sums [len(periods)]int64
		if err := rows.Scan(&id, &sums[0], &sums[1], &sums[2], &sums[3]); err != nil {
			return fmt.Errorf("budget: rebuild spend: %w", err)
		}
		st := l.state(id)
		for i := range sums {
			st.cur[i].spent = llm.Micros(sums[i])
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("budget: rebuild spend: %w", err)
	}

	rows, err = l.db.QueryContext(ctx, `SELECT key_id, period, period_start, event, threshold, limit_micros FROM budget_alerts
		WHERE period = 'total' OR period_start >= ?`, min(starts[0], starts[1], starts[2]))
	if err != nil {
		return fmt.Errorf("budget: load alerts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var k alertKey
		if err := rows.Scan(&id, &k.period, &k.start, &k.event, &k.ppm, &k.limit); err != nil {
			return fmt.Errorf("budget: load alerts: %w", err)
		}
		if k.period.Valid() {
			l.state(id).fired[k] = struct{}{}
		}
	}
	return rows.Err()
}

// state returns the key's in-memory state, creating it (with the default
// policy and empty counters) on first use. Every key with ledger rows or a
// stored policy was created by load, so a key created later has no spend
// yet.
func (l *Ledger) state(keyID string) *keyState {
	if st, ok := l.keys.Load(keyID); ok {
		return st.(*keyState)
	}
	st := &keyState{
		policy: l.o.Defaults,
		open:   map[string]*hold{},
		done:   map[string]struct{}{},
		fired:  map[alertKey]struct{}{},
	}
	now := l.now()
	for i, p := range periods {
		st.cur[i].start, st.cur[i].end = p.Window(now, l.loc)
	}
	actual, _ := l.keys.LoadOrStore(keyID, st)
	return actual.(*keyState)
}

// Defaults returns the policy of keys with none of their own, for the
// admin API to show or to start from.
func (l *Ledger) Defaults() Policy { return l.o.Defaults.clone() }

// Location is the time zone periods are aligned to.
func (l *Ledger) Location() *time.Location { return l.loc }

// Policy returns the key's policy and whether it is its own (false: the
// defaults).
func (l *Ledger) Policy(keyID string) (Policy, bool) {
	st := l.state(keyID)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.policy.clone(), st.explicit
}

// SetPolicy validates and stores the key's policy; it applies to the next
// request. Spend so far in each period is kept: lowering a limit below it
// refuses every later request of the period; alerts already fired for an
// unchanged limit do not fire again.
func (l *Ledger) SetPolicy(ctx context.Context, keyID string, p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	p = p.clone()
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("budget: %w", err)
	}
	l.policyMu.Lock()
	defer l.policyMu.Unlock()
	if _, err := l.db.ExecContext(ctx, `INSERT INTO budget_policies (key_id, policy, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (key_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at`,
		keyID, string(raw), l.now().UnixMilli()); err != nil {
		return fmt.Errorf("budget: set policy: %w", err)
	}
	st := l.state(keyID)
	st.mu.Lock()
	st.policy, st.explicit = p, true
	st.mu.Unlock()
	return nil
}

// Reservation is money held for one request until it is settled or
// released.
type Reservation struct {
	KeyID     string
	RequestID string
	Amount    llm.Micros
	// At is when the request was admitted: it is charged to the periods
	// that contain At, even if it settles after one of them ended.
	At time.Time
}

// Reserve holds amount (the request's maximum cost) against every limit of
// the key, atomically: either all limits have room for it or nothing is
// held. A request id that already holds a reservation gets that same
// reservation back (whatever amount it asks for now); a settled one gets
// ErrSettled.
//
// When a limit has no room the error is a 402 *llm.Error (type
// insufficient_quota, code budget_exceeded) whose chain holds ErrExhausted
// and an *Exhausted with the details; RetryAfter is the time until every
// refusing period has reset (none when a total budget refuses), and
// the x-tollgate-budget-remaining-usd and x-tollgate-budget-reset headers
// are set.
func (l *Ledger) Reserve(ctx context.Context, keyID, requestID string, amount llm.Micros) (Reservation, error) {
	if amount < 0 {
		return Reservation{}, fmt.Errorf("budget: negative reservation %d", amount)
	}
	st := l.state(keyID)
	now := l.now()
	st.mu.Lock()
	if h, ok := st.open[requestID]; ok {
		st.mu.Unlock()
		return Reservation{KeyID: keyID, RequestID: requestID, Amount: h.amount, At: h.at}, nil
	}
	if st.isDone(requestID) {
		st.mu.Unlock()
		return Reservation{}, fmt.Errorf("budget: %s: %w", requestID, ErrSettled)
	}
	st.rollover(now, l.loc)
	var ex *Exhausted
	for _, lim := range st.policy.Limits {
		c := &st.cur[lim.Period.index()]
		if c.spent+c.reserved+amount <= lim.Amount {
			continue
		}
		if ex == nil {
			ex = &Exhausted{KeyID: keyID, Requested: amount}
		}
		ex.Limits = append(ex.Limits, statusOf(lim, c))
	}
	if ex != nil {
		ex.Remaining, _ = st.remaining()
		alerts := st.exhaustedAlerts(ex, now)
		webhooks := st.policy.Webhooks
		st.mu.Unlock()
		l.enqueueAlerts(keyID, alerts, webhooks)
		return Reservation{}, ex.httpError(now)
	}
	for i := range st.cur {
		st.cur[i].reserved += amount
	}
	st.open[requestID] = &hold{amount: amount, at: now}
	st.mu.Unlock()
	return Reservation{KeyID: keyID, RequestID: requestID, Amount: amount, At: now}, nil
}

// Fits reports whether a reservation of amount would succeed now, without
// holding anything: the downgrade path asks it of each cheaper candidate,
// then reserves the one it picks (which may still fail if a concurrent
// request took the room in between).
func (l *Ledger) Fits(keyID string, amount llm.Micros) bool {
	st := l.state(keyID)
	now := l.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.rollover(now, l.loc)
	for _, lim := range st.policy.Limits {
		c := &st.cur[lim.Period.index()]
		if c.spent+c.reserved+amount > lim.Amount {
			return false
		}
	}
	return true
}

// Remaining is the most a request of the key could reserve now (the
// smallest room left across its limits); limited is false when the key
// has no limit.
func (l *Ledger) Remaining(keyID string) (remaining llm.Micros, limited bool) {
	st := l.state(keyID)
	now := l.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.rollover(now, l.loc)
	return st.remaining()
}

// Release drops the request's reservation (the upstream call failed or
// never happened). Releasing twice, or a settled request, does nothing.
// The request id may reserve again afterwards (a fallback to another
// model). Record the failure's ledger row separately.
func (l *Ledger) Release(r Reservation) {
	st := l.state(r.KeyID)
	st.mu.Lock()
	defer st.mu.Unlock()
	h, ok := st.open[r.RequestID]
	if !ok {
		return
	}
	delete(st.open, r.RequestID)
	for i := range st.cur {
		if c := st.counterAt(i, h.at); c != nil {
			c.reserved -= h.amount
		}
	}
}

// Settle turns the request's reservation into its actual cost e.Cost,
// releasing the rest, and writes e as the request's ledger row. It returns
// once the row is committed or journaled (group commit: concurrent settles
// share one transaction or one append), so a response acknowledged after Settle returned is never
// missing from the ledger after a crash. e's KeyID, RequestID and Time are
// taken from r.
//
// Settling an already settled request is a no-op returning nil. The cost
// is charged as given, even above the reservation (a provider counting
// more prompt tokens than tollgate did): the ledger records what was
// spent.
func (l *Ledger) Settle(ctx context.Context, r Reservation, e Entry) error {
	st := l.state(r.KeyID)
	now := l.now()
	st.mu.Lock()
	h, ok := st.open[r.RequestID]
	if !ok {
		done := st.isDone(r.RequestID)
		st.mu.Unlock()
		if done {
			return nil
		}
		return fmt.Errorf("budget: settle %s: %w", r.RequestID, ErrNoReservation)
	}
	delete(st.open, r.RequestID)
	st.markDone(r.RequestID)
	st.rollover(now, l.loc)
	for i := range st.cur {
		if c := st.counterAt(i, h.at); c != nil {
			c.reserved -= h.amount
			c.spent += e.Cost
		}
	}
	alerts := st.crossedAlerts(h.at, now, l.o.ProjectionMinElapsed)
	webhooks := st.policy.Webhooks
	st.mu.Unlock()

	e.KeyID, e.RequestID, e.Time = r.KeyID, r.RequestID, h.at
	b := l.w.add(&e, l.alertRows(r.KeyID, alerts, webhooks, now))
	return b.wait(ctx)
}

// Record writes a ledger row that went through no reservation: a cache
// hit, a refused or failed request. It does not wait for the row to be
// committed (the next batch takes it; Close flushes). A row with a cost is
// charged to the key's periods all the same (no limit is checked: the
// money is already spent). A zero e.Time means now.
func (l *Ledger) Record(e Entry) {
	now := l.now()
	if e.Time.IsZero() || e.Time.After(now) {
		e.Time = now
	}
	var alerts []alert
	var webhooks []Webhook
	if e.Cost != 0 {
		st := l.state(e.KeyID)
		st.mu.Lock()
		st.rollover(now, l.loc)
		for i := range st.cur {
			if c := st.counterAt(i, e.Time); c != nil {
				c.spent += e.Cost
			}
		}
		alerts = st.crossedAlerts(e.Time, now, l.o.ProjectionMinElapsed)
		webhooks = st.policy.Webhooks
		st.mu.Unlock()
	}
	l.w.add(&e, l.alertRows(e.KeyID, alerts, webhooks, now))
}

// Exhausted details a refused reservation; it is in the chain of the
// error Reserve returns and matches errors.Is(err, ErrExhausted).
type Exhausted struct {
	KeyID     string
	Requested llm.Micros
	Remaining llm.Micros     // the smallest room left across all the key's limits
	Limits    []PeriodStatus // the limits that had no room
}

func (e *Exhausted) Error() string {
	l := e.Limits[0]
	return fmt.Sprintf("budget exceeded: the %s budget of this API key is $%s, $%s is spent and $%s reserved; this request may cost up to $%s",
		l.Period, l.Limit, l.Spent, l.Reserved, e.Requested)
}

// Is makes errors.Is(err, ErrExhausted) hold.
func (e *Exhausted) Is(target error) bool { return target == ErrExhausted }

// ResetsAt is when every refusing period has reset; zero when one of them
// is a total budget (it never resets).
func (e *Exhausted) ResetsAt() time.Time {
	var at time.Time
	for _, l := range e.Limits {
		if l.ResetsAt.IsZero() {
			return time.Time{}
		}
		if l.ResetsAt.After(at) {
			at = l.ResetsAt
		}
	}
	return at
}

// httpError is the 402 the client gets.
func (e *Exhausted) httpError(now time.Time) *llm.Error {
	h := http.Header{}
	h.Set(HeaderRemaining, e.Remaining.String())
	var retry time.Duration
	if at := e.ResetsAt(); !at.IsZero() {
		h.Set(HeaderReset, at.UTC().Format(time.RFC3339))
		retry = at.Sub(now)
	}
	return &llm.Error{Status: http.StatusPaymentRequired, Type: llm.TypeQuota, Code: "budget_exceeded",
		Message: e.Error(), RetryAfter: retry, Header: h, Err: e}
}

// Response headers about the budget.
const (
	HeaderRemaining = "x-tollgate-budget-remaining-usd" // dollars, six decimals
	HeaderReset     = "x-tollgate-budget-reset"         // RFC 3339, UTC
)

// Entry is one ledger row: one request, whatever became of it.
type Entry struct {
	// Time is when the request was admitted; its period is the one that
	// contains Time. Settle sets it to the reservation's time.
	Time           time.Time
	RequestID      string
	KeyID          string
	Route          string
	RequestedModel string
	Model          string // the model that served it
	Provider       string
	// Tokens: prompt, completion, and the prompt tokens the provider read
	// from its own cache.
	PromptTokens, CompletionTokens, CachedTokens int
	// Cost is charged to the key; Saved is what the cache or a downgrade
	// saved against the requested model.
	Cost, Saved llm.Micros
	// Estimated: the cost comes from tokens tollgate counted, not from
	// usage the provider reported. Unpriced: the model has no price, so a
	// zero Cost means "unknown", not "free".
	Estimated, Unpriced bool
	Cache               string // hit | semantic-hit | miss | bypass
	Status              int    // HTTP status the client got
	Latency             time.Duration
	Attempts            int
}
