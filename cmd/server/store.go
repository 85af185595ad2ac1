package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/internal/migrate"
	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/config"
	"github.com/tollgate/tollgate/pkg/sqlite"
)

// store is the database of keys, budgets, the ledger and the cache
// entries: SQLite in the data directory (one process), or PostgreSQL
// shared by replicas.
type store struct {
	db *sql.DB
	// pool and shared are set on PostgreSQL: the pgx pool db is opened
	// on, and what budget.Open shares through it.
	pool   *pgxpool.Pool
	shared *budget.Shared
	close  func()
}

// pgConnectTimeout bounds reaching PostgreSQL at start: it is a start-up
// dependency (budgets cannot be enforced without it).
const pgConnectTimeout = 15 * time.Second

// defaultPGConns is the pool size when postgres_url does not give
// pool_max_conns: every request holds a connection for a few statements
// (rate limit, reserve, settle), and three hold the LISTEN sessions of
// keys, budget policies and the cache for good.
const defaultPGConns = 20

// openStore opens cfg's store. SQLite takes the data directory's lock
// first (one process per directory); PostgreSQL is migrated under its
// advisory lock, so replicas may start together.
func openStore(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*store, error) {
	if cfg.Store.Driver != "postgres" {
		// Before the database: a second process on this directory stops here.
		unlock, err := lockDataDir(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		db, err := sqlite.Open(filepath.Join(cfg.DataDir, "tollgate.db"))
		if err != nil {
			unlock()
			return nil, err
		}
		return &store{db: db, close: func() { db.Close(); unlock() }}, nil
	}
	pcfg, err := pgxpool.ParseConfig(cfg.Store.PostgresURL)
	if err != nil {
		// pgx's message may quote the URL: never show it.
		return nil, errors.New("store.postgres_url: not a PostgreSQL connection URL pgx accepts (the value is not shown: it may hold a password)")
	}
	if !hasParam(cfg.Store.PostgresURL, "pool_max_conns") {
		pcfg.MaxConns = defaultPGConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, pgConnectTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: postgres %s unreachable: %w", cfg.Store.String(), err)
	}
	db := stdlib.OpenDBFromPool(pool)
	if err := migrate.Up(ctx, db); err != nil {
		db.Close()
		pool.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	st := &store{db: db, pool: pool, shared: &budget.Shared{Pool: pool, Lease: cfg.Store.ReservationLease.Std()}}
	var closers []func()
	engine := "postgres"
	if u := cfg.Store.RedisURL; u != "" {
		opts, err := redis.ParseURL(u)
		if err != nil {
			db.Close()
			pool.Close()
			return nil, errors.New("store.redis_url: not a Redis URL go-redis accepts (the value is not shown: it may hold a password)")
		}
		client := redis.NewClient(opts)
		closers = append(closers, func() { client.Close() })
		st.shared.Rates = budget.NewRedisRateStore(client, budget.RedisRateOptions{})
		engine = "redis"
	}
	st.close = func() {
		for _, f := range closers {
			f()
		}
		db.Close()
		pool.Close()
	}
	logger.Info("store: postgres, shared by every replica", "store", cfg.Store.String(), "pool_max_conns", pcfg.MaxConns,
		"rate_limits", engine, "reservation_lease", st.shared.Lease)
	return st, nil
}

// hasParam reports whether the URL's query sets name.
func hasParam(raw, name string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Query().Has(name)
}
