package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
)

// freshSchema creates a schema of its own on the PostgreSQL base names and
// returns base with search_path set to it, and a function that drops it.
func freshSchema(ctx context.Context, base string) (string, func(), error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, fmt.Errorf("-postgres is not a postgres:// URL (the value is not shown: it may hold a password)")
	}
	var b [6]byte
	rand.Read(b[:])
	name := "tollgate_load_" + hex.EncodeToString(b[:])
	exec := func(ctx context.Context, stmt string) error {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, stmt)
		return err
	}
	if err := exec(ctx, `CREATE SCHEMA `+name); err != nil {
		return "", nil, fmt.Errorf("creating a schema: %w", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = exec(ctx, `DROP SCHEMA `+name+` CASCADE`)
	}
	return u.String(), drop, nil
}
