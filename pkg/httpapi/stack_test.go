package httpapi_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tollgate/tollgate/pkg/audit"
	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/httpapi"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/responses"
	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/semcache"
	"github.com/tollgate/tollgate/pkg/semcache/guard"
	"github.com/tollgate/tollgate/pkg/semcache/vecindex"
	"github.com/tollgate/tollgate/pkg/sqlite"
	"github.com/tollgate/tollgate/pkg/tokens"
)

const adminKey = "admin-key-for-tests-0123456789"

// stack is a whole gateway behind a real HTTP server, with a real SQLite
// file, for tests that drive it as a user would.
type stack struct {
	t      *testing.T
	srv    *httptest.Server
	keys   *keys.Store
	secret string // a key allowed every model
	gw     *gateway.Gateway
	ledger *budget.Ledger
	cache  *semcache.Cache
	db     *sql.DB
	audit  *audit.Store
}

type stackOptions struct {
	models       []*gateway.Model // default: sim-small, sim-large, sim-embed on an instant sim
	maxBodyBytes int64
	timeout      time.Duration
	writeTimeout time.Duration // httpapi.Options.WriteTimeout (0: none)
	log          io.Writer     // access log destination; nil: no access log
	// gateway overrides: routes, breakers, sleep, rand
	routes   *router.Routes
	breakers *router.Breakers
	sleep    func(ctx context.Context, d time.Duration) error
	rand     func() float64
	budgets  bool // open a budget ledger on the stack's database
	// cache opens a response cache on the stack's database (exact only
	// unless embedder is set); tenants groups key ids.
	cache    bool
	embedder semcache.Embedder
	checker  semcache.Checker // the semantic cache's guard (default guard.New())
	tenants  map[string]string
	clock    func() time.Time
	// judge confirms uncertain semantic candidates (the cache hands them
	// out when judge.Model is set).
	judge gateway.Judge
	// audit opens an audit log on the stack's database; auditor, when
	// set, is used instead.
	audit   bool
	auditor httpapi.Auditor
	// observer and metrics: httpapi.Options.Observer and Metrics.
	observer httpapi.Observer
	metrics  http.Handler
	// responses opens the stored-responses store on the stack's database.
	responses bool
	// guards are the gateway's guards and prompt enrichment.
	guards gateway.GuardConfig
}

func instant(ctx context.Context, d time.Duration) error { return ctx.Err() }

func newSim(t *testing.T, cfg providers.SimConfig) *providers.Sim {
	t.Helper()
	if cfg.Sleep == nil {
		cfg.Sleep = instant
	}
	s, err := providers.NewSim(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var catalog = func() *router.Catalog {
	c, err := router.NewCatalog(router.Builtin())
	if err != nil {
		panic(err)
	}
	return c
}()

// spec is a built-in catalog entry.
func spec(name string) *router.Model {
	m, ok := catalog.Lookup(name)
	if !ok {
		panic("no catalog entry " + name)
	}
	return m
}

func simModels(p providers.Provider) []*gateway.Model {
	return []*gateway.Model{
		{Name: "sim-small", Spec: spec("sim-small"), Chat: true, Embeddings: true, OwnedBy: "sim", Deployments: []gateway.Deployment{{Provider: p, Upstream: "sim-small"}}},
		{Name: "sim-large", Spec: spec("sim-large"), Chat: true, OwnedBy: "sim", Deployments: []gateway.Deployment{{Provider: p, Upstream: "sim-large"}}},
		{Name: "sim-embed", Spec: spec("sim-embed"), OwnedBy: "sim", Embeddings: true, Deployments: []gateway.Deployment{{Provider: p, Upstream: "sim-embed"}}},
	}
}

func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "tollgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ks, err := keys.Open(context.Background(), db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.models == nil {
		o.models = simModels(newSim(t, providers.SimConfig{}))
	}
	if o.sleep == nil {
		o.sleep = instant // retries never wait in tests
	}
	var ledger *budget.Ledger
	gwOpts := gateway.Options{Models: o.models, Tokens: tokens.NewCounter(), RequestTimeout: o.timeout,
		Routes: o.routes, Breakers: o.breakers, Sleep: o.sleep, Rand: o.rand, Guards: o.guards}
	if o.budgets {
		if ledger, err = budget.Open(context.Background(), db, budget.Options{DeliveryInterval: -1}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ledger.Close() })
		gwOpts.Limits, gwOpts.Accounts = ledger.Limits, ledger.Accounts
	}
	var cache *semcache.Cache
	if o.cache {
		co := semcache.Options{DB: db, Now: o.clock}
		if o.embedder != nil {
			co.Embedder, co.Index, co.Checker = o.embedder, vecindex.New(o.embedder.Dim()), guard.New()
			if o.checker != nil {
				co.Checker = o.checker
			}
			co.Threshold = semcache.DefaultThreshold
			co.Verify = o.judge.Model != ""
		}
		if cache, err = semcache.Open(context.Background(), co); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cache.Close() })
		gwOpts.Cache, gwOpts.Tenants, gwOpts.Judge = cache, o.tenants, o.judge
	}
	gw, err := gateway.New(gwOpts)
	if err != nil {
		t.Fatal(err)
	}
	if o.maxBodyBytes == 0 {
		o.maxBodyBytes = 4 << 20
	}
	opts := httpapi.Options{Gateway: gw, Keys: ks, Budget: ledger, Cache: cache, AdminKey: adminKey, MaxBodyBytes: o.maxBodyBytes,
		WriteTimeout: o.writeTimeout, Observer: o.observer, Metrics: o.metrics}
	var auditStore *audit.Store
	if o.audit {
		if auditStore, err = audit.Open(context.Background(), db); err != nil {
			t.Fatal(err)
		}
		opts.Audit = auditStore
	}
	if o.auditor != nil {
		opts.Audit = o.auditor
	}
	if o.responses {
		if opts.Responses, err = responses.Open(context.Background(), db, responses.Options{Now: o.clock}); err != nil {
			t.Fatal(err)
		}
	}
	if o.log != nil {
		opts.AccessLog, opts.Logger = true, slog.New(slog.NewJSONHandler(o.log, nil))
	}
	srv := httptest.NewServer(httpapi.New(opts))
	t.Cleanup(srv.Close)
	_, secret, err := ks.Create(context.Background(), keys.New{Name: "all"})
	if err != nil {
		t.Fatal(err)
	}
	return &stack{t: t, srv: srv, keys: ks, secret: secret, gw: gw, ledger: ledger, cache: cache, db: db, audit: auditStore}
}

// renamed is a copy of a catalog entry under another name, for tests that
// need several models served by different upstreams.
func renamed(name string, from string) router.Model {
	m := *spec(from)
	m.Name, m.UpstreamModel = name, name
	return m
}

// routesOver builds a route table over the given models.
func routesOver(t *testing.T, models []router.Model, routes ...router.Route) *router.Routes {
	t.Helper()
	c, err := router.NewCatalog(models)
	if err != nil {
		t.Fatal(err)
	}
	r, err := router.NewRoutes(c, routes)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// client is the official OpenAI SDK pointed at the gateway, with its own
// retries off so every test sees exactly one attempt.
func (s *stack) client(secret string, opts ...option.RequestOption) *openai.Client {
	c := openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(s.srv.URL + "/v1/"),
		option.WithAPIKey(secret),
		option.WithMaxRetries(0),
		option.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}),
	}, opts...)...)
	return &c
}

// newKey creates a key through the store with the given allowed models.
func (s *stack) newKey(allowed ...string) (*keys.Key, string) {
	k, secret, err := s.keys.Create(context.Background(), keys.New{Name: "t", AllowedModels: allowed})
	if err != nil {
		s.t.Fatal(err)
	}
	return k, secret
}
