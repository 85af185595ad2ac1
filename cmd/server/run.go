package main

import (
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
	"path/filepath"
	"time"

	"github.com/tollgate/tollgate/internal/safe"
	"github.com/tollgate/tollgate/pkg/config"
	"github.com/tollgate/tollgate/pkg/httpapi"
	"github.com/tollgate/tollgate/pkg/keys"
	"github.com/tollgate/tollgate/pkg/sqlite"
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
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if dir := getenv(modelDirEnv); dir != "" {
		cfg.Cache.Semantic.ModelDir = dir
	}

	sink := newLogSink(stderr, 100*time.Millisecond, 64<<10)
	defer sink.Close()
	logger := newLogger(cfg.Log, sink)
	// sup runs every background goroutine: a panic there is logged with its
	// stack and the worker restarted, or /readyz turns red.
	sup := safe.New(safe.Options{Logger: logger})
	if path != "" {
		logger.Info("configuration loaded", "file", path)
	} else {
		logger.Info("no configuration file: using built-in defaults")
	}

	db, err := sqlite.Open(filepath.Join(cfg.DataDir, "tollgate.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	keyStore, err := keys.Open(ctx, db, nil, nil)
	if err != nil {
		return err
	}
	if err := ensureDevKey(ctx, cfg, keyStore, stdout); err != nil {
		return err
	}

	ledger, err := openLedger(ctx, cfg, db, keyStore, sup, logger)
	if err != nil {
		return err
	}
	// Closed after the server has drained: every in-flight settle is written.
	defer ledger.Close()
	counter := tokens.NewCounter()
	clients, err := buildProviders(cfg, counter)
	if err != nil {
		return err
	}
	cache, err := openCache(ctx, cfg, db, clients, logger, sup)
	if err != nil {
		return err
	}
	// Closed after the server has drained (deferred calls run last first).
	defer cache.close()
	gw, err := buildGateway(cfg, counter, clients, ledger, cache, logger)
	if err != nil {
		return err
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
		Logger:       logger,
		AccessLog:    cfg.Log.AccessLog,
		Ready:        func(ctx context.Context) error { return ready(ctx, db, sup) },
	})
	if addr := getenv("TOLLGATE_PPROF"); addr != "" {
		stop, err := servePprof(addr, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	return serve(ctx, cfg, handler, logger, stdout)
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

func serve(ctx context.Context, cfg *config.Config, handler http.Handler, logger *slog.Logger, stdout io.Writer) error {
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
	if err := srv.Shutdown(drainCtx); err != nil {
		srv.Close()
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("drain timeout (%s) passed with requests still running; they were cut", cfg.DrainTimeout.Std())
		}
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Info("stopped")
	return nil
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
