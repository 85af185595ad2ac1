// Package pglisten keeps a PostgreSQL LISTEN subscription alive for the
// stores replicas share (keys, budget policies): it reconnects with
// backoff, and after every (re)subscription calls Subscribed, because the
// notifications sent while no one listened are lost and the subscriber
// must reload what they would have told it.
package pglisten

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// Handler is told of the subscription and of each notification.
type Handler struct {
	// Subscribed runs once LISTEN holds, after every reconnection: reload
	// everything the lost notifications may have changed. An error drops
	// the connection and retries.
	Subscribed func(ctx context.Context) error
	// Notified runs for each notification's payload, in order.
	Notified func(ctx context.Context, payload string)
}

// Backoff bounds the waits between reconnection attempts: from MinBackoff
// doubling to MaxBackoff, back to MinBackoff once a connection held for
// longer than MaxBackoff.
const (
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 5 * time.Second
)

// Run listens on channel through one connection of db (the pgx stdlib
// driver) until ctx ends, reconnecting after any failure; what it logs
// names what (e.g. "keys").
func Run(ctx context.Context, db *sql.DB, channel, what string, h Handler, log *slog.Logger) {
	backoff := MinBackoff
	for {
		started := time.Now()
		err := once(ctx, db, channel, h)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > MaxBackoff {
			backoff = MinBackoff // it had been working: retry soon
		}
		log.Warn(what+": listener disconnected, reconnecting", "err", err, "after", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, MaxBackoff)
	}
}

// once listens on one connection until it fails or ctx ends.
func once(ctx context.Context, db *sql.DB, channel string, h Handler) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	bad := false
	defer func() {
		if bad {
			// Subscribed or mid-wait: the session must end, not go back to
			// a pool. ErrBadConn makes database/sql drop it, but over
			// stdlib.OpenDBFromPool that only returns it to the pgx pool,
			// still subscribed: close the pgx connection itself first.
			_ = conn.Raw(func(dc any) error {
				if c, ok := dc.(*stdlib.Conn); ok {
					cctx, cancel := context.WithTimeout(context.Background(), time.Second)
					c.Conn().Close(cctx)
					cancel()
				}
				return driver.ErrBadConn
			})
		}
		conn.Close()
	}()
	bad = true // from the LISTEN on, the session is subscribed
	if _, err := conn.ExecContext(ctx, `LISTEN `+quoteIdent(channel)); err != nil {
		return err
	}
	if h.Subscribed != nil {
		if err := h.Subscribed(ctx); err != nil {
			return err
		}
	}
	for {
		var payload string
		err := conn.Raw(func(dc any) error {
			c, ok := dc.(*stdlib.Conn)
			if !ok {
				return fmt.Errorf("pglisten: driver connection %T is not pgx's", dc)
			}
			n, err := c.Conn().WaitForNotification(ctx)
			if err != nil {
				return err
			}
			payload = n.Payload
			return nil
		})
		if err != nil {
			return err
		}
		if h.Notified != nil {
			h.Notified(ctx, payload)
		}
	}
}

// quoteIdent quotes a channel name as an SQL identifier.
func quoteIdent(s string) string {
	out := []byte{'"'}
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			out = append(out, '"')
		}
		out = append(out, s[i])
	}
	return string(append(out, '"'))
}
