package budget

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/sqlite"
)

// fakeClock is the injected clock of every test: time moves only when the
// test says so.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(rfc3339 string) *fakeClock {
	t, err := time.Parse(time.RFC3339, rfc3339)
	if err != nil {
		panic(err)
	}
	return &fakeClock{t: t}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// journalEnv set runs every test that opens a Ledger through testDB with
// a journal next to the database (the gateway's mode); unset, rows are
// committed to SQLite directly. CI runs both.
const journalEnv = "TOLLGATE_BUDGET_JOURNAL"

// testDB is a real SQLite file that outlives Ledgers opened on it.
type testDB struct {
	path string
}

func newTestDB(t testing.TB) *testDB {
	return &testDB{path: filepath.Join(t.TempDir(), "tollgate.db")}
}

// open opens a Ledger on the file; closing it (explicitly or at cleanup)
// closes the database too. Closing twice is harmless.
func (d *testDB) open(t testing.TB, o Options) (*Ledger, func()) {
	t.Helper()
	db, err := sqlite.Open(d.path)
	if err != nil {
		t.Fatal(err)
	}
	if o.DeliveryInterval == 0 {
		o.DeliveryInterval = -1 // tests deliver explicitly
	}
	if o.JournalPath == "" && os.Getenv(journalEnv) != "" {
		o.JournalPath = d.path + ".journal"
	}
	l, err := Open(context.Background(), db, o)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	var once sync.Once
	closeFn := func() {
		once.Do(func() {
			if err := l.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			db.Close()
		})
	}
	t.Cleanup(closeFn)
	return l, closeFn
}

// rawDB opens the file for assertions made behind the Ledger's back.
func (d *testDB) raw(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sqlite.Open(d.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// sumCost is the ledger's own answer: the sum of a key's rows since from.
func sumCost(t testing.TB, db *sql.DB, keyID string, from time.Time) llm.Micros {
	t.Helper()
	var s int64
	if err := db.QueryRow(`SELECT COALESCE(SUM(cost), 0) FROM budget_ledger WHERE key_id = ? AND ts >= ?`, keyID, msOf(from)).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return llm.Micros(s)
}

func period(t testing.TB, ks KeyStatus, p Period) PeriodStatus {
	t.Helper()
	for _, s := range ks.Periods {
		if s.Period == p {
			return s
		}
	}
	t.Fatalf("no %s period in status", p)
	return PeriodStatus{}
}

func daily(usd float64) Policy {
	return Policy{Limits: []Limit{{Period: Daily, Amount: llm.USD(usd)}}}
}
