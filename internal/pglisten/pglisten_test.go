package pglisten

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tollgate/tollgate/internal/pgtest"
)

// TestRun: notifications reach Notified in order; when the listening
// session is killed (pg_terminate_backend), Run reconnects, calls
// Subscribed again (the notifications sent meanwhile are lost), and the
// later notifications arrive.
func TestRun(t *testing.T) {
	s := pgtest.NewSchema(t)
	db := s.DB(t)
	ctx, cancel := context.WithCancel(context.Background())
	subscribed := make(chan struct{}, 10)
	got := make(chan string, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, db, "tg test channel", "test", Handler{
			Subscribed: func(context.Context) error { subscribed <- struct{}{}; return nil },
			Notified:   func(_ context.Context, p string) { got <- p },
		}, slog.New(slog.DiscardHandler))
	}()
	defer func() { cancel(); <-done }()

	wait := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("no %s", what)
		}
	}
	expect := func(want string) {
		t.Helper()
		select {
		case p := <-got:
			if p != want {
				t.Fatalf("notified %q, want %q", p, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no notification %q", want)
		}
	}
	notify := func(p string) {
		t.Helper()
		if _, err := db.Exec(`SELECT pg_notify('tg test channel', $1)`, p); err != nil {
			t.Fatal(err)
		}
	}
	wait("subscription", subscribed)
	notify("one")
	notify("two")
	expect("one")
	expect("two")

	res, err := db.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN %tg test channel%'`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("terminated %d listening sessions, want 1", n)
	}
	wait("resubscription after the session was killed", subscribed)
	notify("three")
	expect("three")
}

// TestRunEndsItsSession: over database/sql on a pgx pool (as cmd/server
// opens it), the listening session does not go back to the pool still
// subscribed when Run returns.
func TestRunEndsItsSession(t *testing.T) {
	pool := pgtest.NewSchema(t).Pool(t, 1) // one connection: the listener's, reused after
	db := stdlib.OpenDBFromPool(pool)
	ctx, cancel := context.WithCancel(context.Background())
	subscribed := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, db, "tg_test_channel", "test", Handler{
			Subscribed: func(context.Context) error { subscribed <- struct{}{}; return nil },
		}, slog.New(slog.DiscardHandler))
	}()
	select {
	case <-subscribed:
	case <-time.After(30 * time.Second):
		t.Fatal("no subscription")
	}
	cancel()
	<-done
	var channels []string
	if err := pool.QueryRow(context.Background(), `SELECT coalesce(array_agg(c), '{}') FROM pg_listening_channels() c`).Scan(&channels); err != nil {
		t.Fatal(err)
	}
	if len(channels) != 0 {
		t.Fatalf("a pooled session still listens on %v", channels)
	}
}
