package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/internal/safe"
	"github.com/tollgate/tollgate/pkg/audit"
	"github.com/tollgate/tollgate/pkg/config"
	"github.com/tollgate/tollgate/pkg/httpapi"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/metrics"
	"github.com/tollgate/tollgate/pkg/responses"
	"github.com/tollgate/tollgate/pkg/tokens"
)

// defaultConfigFile is read when -config is not given and it exists.
const defaultConfigFile = "tollgate.yaml"

// modelDirEnv overrides cache.semantic.model_dir: where the USE-lite
// weights are fetched to and loaded from (e.g. a volume shared by
// containers).
const modelDirEnv = "TOLLGATE_MODEL_DIR"

// run is the whole program: tests call it in-process. It returns when ctx is
// cancelled (after draining in-flight requests) or on a start-up error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tollgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (default: "+defaultConfigFile+" if present, else built-in defaults)")
	listen := fs.String("listen", "", "address to listen on (default "+config.DefaultListen+")")
	dataDir := fs.String("data", "", "directory for the database and model files (default "+config.DefaultDataDir+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	path := *configPath
	if path == "" {
		if _, err := os.Stat(defaultConfigFile); err == nil {
			path = defaultConfigFile
		}
	}
	cfg, err := config.Load(path, getenv)
	if err != nil {
		return err
	}
	flags := overrides{listen: *listen, dataDir: *dataDir, modelDir: getenv(modelDirEnv)}
	flags.apply(cfg)

	// Logging never blocks a request: lines go through a bounded buffer,
	// dropped (and counted) while stderr does not take them.
	sink := newLogSink(stderr, logInterval, logBufferBytes)
	sink.notice = droppedNotice(cfg.Log.Format)
	defer sink.Close(logCloseWait) // last: every other deferred call may log
	logger := newLogger(cfg.Log, sink)
	// sup runs every background goroutine: a panic there is logged with its
	// stack and the worker restarted, or /readyz turns red.
	sup := safe.New(safe.Options{Logger: logger})
	sink.Start(sup)
	if path != "" {
		logger.Info("configuration loaded", "file", path)
	} else {
		logger.Info("no configuration file: using built-in defaults")
	}

	st, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer st.close() // last: after the ledger and the cache (deferred calls run last first)
	db := st.db
	keyStore, err := keys.OpenOptions(ctx, db, keys.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer keyStore.Close()
	if err := ensureDevKey(ctx, cfg, keyStore, stdout); err != nil {
		return err
	}

	ledger, err := openLedger(ctx, cfg, st, keyStore, sup, logger)
	if err != nil {
		return err
	}
	// Closed after the server has drained: every in-flight settle is written.
	defer ledger.Close()
	tr, err := newTracing(ctx, cfg.Otel, logger)
	if err != nil {
		return err
	}
	defer tr.shutdown(logger) // after the drain: the last requests' spans are exported
	counter := tokens.NewCounter()
	clients, err := buildProviders(cfg, counter, tr.upstreamClient())
	if err != nil {
		return err
	}
	mx := metrics.New() // GET /metrics, behind the admin key
	cache, err := openCache(ctx, cfg, db, clients, logger, sup, mx)
	if err != nil {
		return err
	}
	// Closed after the server has drained (deferred calls run last first).
	defer cache.close()
	scrapeState(mx, sink, keyStore, ledger, cache.cache, logger)
	gw, table, err := buildGateway(cfg, counter, clients, ledger, cache, logger, mx, tr.Provider())
	if err != nil {
		return err
	}
	auditLog, err := audit.Open(ctx, db)
	if err != nil {
		return err
	}
	stored, err := responses.Open(ctx, db, responses.Options{TTL: cfg.Store.ResponsesTTL.Std(), Logger: logger})
	if err != nil {
		return err
	}
	stored.Start(sup)
	defer stored.Close()
	reloads := metrics.NewReloads(mx, time.Now())
	if hup := reloadRequests(ctx); hup != nil {
		r := &reloader{path: path, getenv: getenv, flags: flags, log: logger, counter: counter, upstream: tr.upstreamClient(), gw: gw, ledger: ledger, cache: cache,
			audit: auditLog, mx: mx, reloads: reloads, now: time.Now, started: cfg, cfg: cfg, table: table, clients: clients}
		sup.Go("SIGHUP handler", func() { r.loop(ctx, hup) })
	}
	if cfg.AdminKey == "" {
		logger.Warn("admin API disabled: set " + config.AdminKeyEnv + " to manage keys")
	}
	handler := httpapi.New(httpapi.Options{
		Gateway:      gw,
		Keys:         keyStore,
		Budget:       ledger,
		Cache:        cache.cache,
		AdminKey:     cfg.AdminKey,
		MaxBodyBytes: cfg.MaxBodyBytes,
		WriteTimeout: cfg.WriteTimeout.Std(),
		Logger:       logger,
		AccessLog:    cfg.Log.AccessLog,
		Ready:        func(ctx context.Context) error { return ready(ctx, db, sup) },
		Degraded:     cache.degraded,

		BodyReadTimeout: cfg.BodyReadTimeout.Std(),
		Audit:           auditLog,
		Observer:        mx,
		Metrics:         mx.Handler(),
		Responses:       stored,
	})
	// Counted, so that the ledger is closed only after every handler, cut
	// at shutdown or not, has written its row.
	handlers := newInFlight(cutWait)
	handler = handlers.wrap(tr.wrap(handler))
	if addr := getenv("TOLLGATE_PPROF"); addr != "" {
		stop, err := servePprof(addr, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	return serve(ctx, cfg, handler, handlers, logger, stdout)
}

// servePprof exposes Go's profiler on its own listener, only when asked
// (TOLLGATE_PPROF=127.0.0.1:6060): profiles reveal internals, so it is never
// on the API port.
func servePprof(addr string, logger *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("TOLLGATE_PPROF: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	logger.Warn("profiler listening", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}

func ready(ctx context.Context, db *sql.DB, sup *safe.Supervisor) error {
	if err := sup.Err(); err != nil {
		return err
	}
	return db.PingContext(ctx)
}

// ensureDevKey creates and prints a development key on the very first start
// (an empty key table), so the quick start needs no manual step. The secret
// is printed once to stdout, never logged.
func ensureDevKey(ctx context.Context, cfg *config.Config, store *keys.Store, stdout io.Writer) error {
	if !cfg.DevKey || store.Len() > 0 {
		return nil
	}
	_, secret, err := store.Create(ctx, keys.New{Name: "development", Metadata: map[string]string{"created_by": "first start"}})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "tollgate: created a development key (shown once, stored only as a hash):\n\n    %s\n\n", secret)
	return err
}

// cutWait bounds the wait, after the drain timeout cut the remaining
// connections, for their handlers to return: they are recording their
// ledger rows. Past it the ledger is closed anyway.
const cutWait = 10 * time.Second

// serve serves handler until ctx is cancelled, then shuts down in order:
// stop accepting and drain in-flight requests for up to drain_timeout; cut
// the connections still open; wait (up to handlers.limit) for every handler
// to return, so that the ledger, closed after serve returns, records every
// request, cut or not.
func serve(ctx context.Context, cfg *config.Config, handler http.Handler, handlers *inFlight, logger *slog.Logger, stdout io.Writer) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "tollgate: listening on http://%s\n", ln.Addr())
	logger.Info("listening", "addr", ln.Addr().String())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining in-flight requests", "timeout", cfg.DrainTimeout.Std())
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout.Std())
	defer cancel()
	err = srv.Shutdown(drainCtx)
	if err != nil {
		logger.Warn("drain timeout passed: cutting the requests still running", "running", handlers.running())
		srv.Close()
	}
	if n := handlers.wait(); n > 0 {
		logger.Error("shutdown: handlers still running after their connections were cut; closing the ledger without their rows", "running", n, "waited", handlers.limit)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("drain timeout (%s) passed with requests still running; they were cut", cfg.DrainTimeout.Std())
	case err != nil:
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Info("stopped")
	return nil
}

// inFlight counts the handlers running. http.Server.Shutdown waits for
// them only until its deadline, and Close not at all.
type inFlight struct {
	limit time.Duration // how long wait waits
	n     atomic.Int64
	done  chan struct{} // a handler returned; buffered, so that none waits
}

func newInFlight(limit time.Duration) *inFlight {
	return &inFlight{limit: limit, done: make(chan struct{}, 1)}
}

func (f *inFlight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.n.Add(1)
		defer func() {
			f.n.Add(-1)
			select {
			case f.done <- struct{}{}:
			default: // a wake-up is pending already: wait re-reads n
			}
		}()
		h.ServeHTTP(w, r)
	})
}

func (f *inFlight) running() int64 { return f.n.Load() }

// wait waits until no handler runs, or for at most f.limit; it returns how
// many still run.
func (f *inFlight) wait() int64 {
	t := time.NewTimer(f.limit)
	defer t.Stop()
	for {
		n := f.n.Load()
		if n <= 0 {
			return 0
		}
		select {
		case <-f.done:
		case <-t.C:
			return f.n.Load()
		}
	}
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	return slog.New(logHandler(c.Format, w, &slog.HandlerOptions{Level: level}))
}

func logHandler(format string, w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	if format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// The log sink's bounds: lines reach stderr within logInterval; at most
// logBufferBytes wait for it (beyond, lines are dropped); Close waits
// logCloseWait for a stalled stderr.
const (
	logInterval    = 100 * time.Millisecond
	logBufferBytes = 1 << 20
	logCloseWait   = 2 * time.Second
)

// droppedNotice renders the sink's line about dropped lines as a warning
// record in the log's format, whatever the log level.
func droppedNotice(format string) func(n int64) []byte {
	return func(n int64) []byte {
		var b bytes.Buffer
		slog.New(logHandler(format, &b, nil)).Warn(fmt.Sprintf("log: dropped %d lines", n), "dropped", n)
		return b.Bytes()
	}
}

// reloadKey carries, in run's context, the channel on which main signals
// SIGHUP.
type reloadKey struct{}

// withReloadRequests returns ctx carrying ch, on which each SIGHUP is sent.
func withReloadRequests(ctx context.Context, ch <-chan struct{}) context.Context {
	return context.WithValue(ctx, reloadKey{}, ch)
}

func reloadRequests(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(reloadKey{}).(<-chan struct{})
	return ch
}
