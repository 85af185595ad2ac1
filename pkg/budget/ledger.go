package budget

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/internal/migrate"
	"github.com/tollgate/tollgate/internal/safe"
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
	// Supervisor runs the background workers (the ledger writer, the
	// journal mover, the alert deliverer): a panic in one is logged with
	// its stack and the worker restarted, or given up and reported by
	// Supervisor.Err (/readyz). Nil: panics are logged to slog.Default and
	// restarted all the same.
	Supervisor *safe.Supervisor

	// Shared, when set, makes the ledger one of several replicas' on
	// PostgreSQL (Open's db must then be that database): see Shared.
	Shared *Shared

	hooks testHooks
}

// Shared is what replicas share through PostgreSQL: the period counters
// and reservations (SharedAccounts: exact across replicas), the rate
// limits (Rates), the ledger rows and the alert outbox (written by group
// commit, durable at commit), and the policies (budget_policies, reloaded
// on NOTIFY tollgate_budget_policies and every PolicyResync). Each replica
// keeps a mirror of its keys' counters as its own statements last left
// them, for alerts and for x-tollgate-budget-remaining; every decision to
// admit is PostgreSQL's.
type Shared struct {
	Pool *pgxpool.Pool
	// Lease is how long a reservation stays held without its replica
	// (SharedOptions.Lease; default DefaultLease). Every replica releases
	// the expired ones every ExpireInterval (default Lease/10, at least
	// 1 s, at most 1 min).
	Lease          time.Duration
	ExpireInterval time.Duration
	// Rates keeps the rate limits; nil means PostgreSQL
	// (NewPostgresRateStore).
	Rates RateStore
	// PolicyResync is the interval of the full reload of the policies,
	// the bound on a missed notification (default 5 s).
	PolicyResync time.Duration
}

// sharedTimeout bounds the shared store's statements made for calls that
// have no context of their own (Release, Record, Policy, Status).
const sharedTimeout = 5 * time.Second

// testHooks let tests inject faults into the background workers. Nil
// hooks do nothing.
type testHooks struct {
	// write is called by the ledger writer with "write" before it writes
	// a batch and "written" once the batch is durable, before its waiters
	// are told.
	write func(stage string)
	// apply is called by the journal's applier once it has taken the
	// journaled rows, before it inserts them.
	apply func()
	// post is called by the alert deliverer before each delivery attempt.
	post func()
}

// Ledger is the four parts of the budget store that Open wires together.
// Callers use the parts; the Ledger itself only closes them.
type Ledger struct {
	// Limits is the rpm/tpm check of every request.
	Limits *RateLimits
	// Accounts holds the policies and the period counters: reserve,
	// settle, release, record.
	Accounts *Accounts
	// Store is the ledger rows: the writer, the journal, reports.
	Store *Store
	// Alerts decides, stores and delivers threshold alerts.
	Alerts *Alerts
}

// Open migrates the schema (internal/migrate), replays the journal, loads every
// policy and rebuilds each key's spend in the current periods from the
// ledger rows, then starts the background workers (the ledger writer, the
// journal mover, the alert deliverer) under Options.Supervisor. Close
// stops them.
func Open(ctx context.Context, db *sql.DB, o Options) (*Ledger, error) {
	if err := o.Defaults.Validate(); err != nil {
		return nil, fmt.Errorf("budget: default policy: %w", err)
	}
	for i, w := range o.Webhooks {
		if err := validURL(w.URL); err != nil {
			return nil, fmt.Errorf("budget: webhooks[%d]: %w", i, err)
		}
	}
	o = o.withDefaults()
	if err := migrate.Up(ctx, db); err != nil {
		return nil, fmt.Errorf("budget: %w", err)
	}
	d, err := migrate.DialectOf(db)
	if err != nil {
		return nil, fmt.Errorf("budget: %w", err)
	}
	var rates RateStore
	switch {
	case o.Shared == nil && d == migrate.Postgres:
		return nil, errors.New("budget: a PostgreSQL database is shared: Options.Shared is required")
	case o.Shared != nil && d != migrate.Postgres:
		return nil, errors.New("budget: Options.Shared needs the PostgreSQL database as db")
	case o.Shared != nil:
		if rates = o.Shared.Rates; rates == nil {
			// PostgreSQL's clock, one for every replica.
			pg, err := NewPostgresRateStore(o.Shared.Pool, PostgresRateOptions{})
			if err != nil {
				return nil, err
			}
			rates = pg // its table is migration 0009's
		}
	}
	limits := newRateLimitsStore(o, rates)
	alerts := newAlerts(o)
	// Replay the journal before the rebuild, so that the spend counts what
	// was journaled but not yet applied when the last process died.
	store, err := openStore(ctx, db, o, alerts.wake)
	if err != nil {
		return nil, err
	}
	alerts.store = store
	store.start() // the rebuild reads through it
	accounts := newAccounts(db, o, limits, store, alerts)
	if err := accounts.load(ctx); err != nil {
		store.close()
		return nil, err
	}
	accounts.start()
	alerts.start()
	return &Ledger{Limits: limits, Accounts: accounts, Store: store, Alerts: alerts}, nil
}

// withDefaults fills in every unset option.
func (o Options) withDefaults() Options {
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
	if sh := o.Shared; sh != nil {
		c := *sh
		if c.Lease <= 0 {
			c.Lease = DefaultLease
		}
		if c.ExpireInterval <= 0 {
			c.ExpireInterval = min(max(c.Lease/10, time.Second), time.Minute)
		}
		if c.PolicyResync <= 0 {
			c.PolicyResync = 5 * time.Second
		}
		o.Shared = &c
	}
	o.Defaults = o.Defaults.clone()
	return o
}

// Close stops the alert deliverer, then writes every pending ledger row
// and alert into SQLite and stops the writer and the journal mover. The
// Ledger must not be used afterwards.
func (l *Ledger) Close() error {
	l.Accounts.close()
	l.Alerts.close()
	return l.Store.close()
}
