package budget

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/sqlite"
)

const (
	crashEnv        = "TOLLGATE_BUDGET_CRASH_DB"
	crashJournalEnv = "TOLLGATE_BUDGET_CRASH_JOURNAL" // the child's JournalPath
)

// TestCrashHelper is the child process of TestCrashDurability: it settles
// requests as fast as it can from several goroutines and prints
// "ack <request id> <cost> ." for each Settle that returned nil, which is
// what the gateway would acknowledge to a client. It runs until killed.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("the child process of TestCrashDurability")
	}
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(context.Background(), db, Options{DeliveryInterval: -1, JournalPath: os.Getenv(crashJournalEnv),
		Defaults: Policy{Limits: []Limit{{Period: Daily, Amount: 1_000_000_000_000}}}})
	if err != nil {
		t.Fatal(err)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("key-%d", (g+i)%5)
				id := fmt.Sprintf("%d-%d-%d", os.Getpid(), g, i)
				cost := llm.Micros(1 + (g*7919+i*104729)%5000)
				r, err := l.Accounts.Reserve(context.Background(), key, id, cost+100)
				if err != nil {
					panic(err)
				}
				if i%7 == 0 {
					l.Accounts.Record(Entry{KeyID: key, RequestID: id + "-hit", Cache: "hit", Saved: cost})
				}
				if err := l.Accounts.Settle(context.Background(), r, Entry{Cost: cost, Status: 200}); err != nil {
					panic(err)
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "ack %s %s %d .\n", key, id, cost) // unbuffered: on the pipe before the next request
				out.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestCrashDurability kills a process that is settling requests with
// SIGKILL, twice, restarting it on the same database in between, then
// reopens the database: each key's spend in the current periods must be
// exactly the sum of its ledger rows, every request the child
// acknowledged must be in the ledger with its cost, and no reservation of
// the dead processes may survive. With a journal, the reopen replays what
// the dead processes journaled but had not applied.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	t.Run("sqlite", func(t *testing.T) { testCrashDurability(t, false) })
	t.Run("journal", func(t *testing.T) { testCrashDurability(t, true) })
}

func testCrashDurability(t *testing.T, journaled bool) {
	path := newTestDB(t).path
	journal := ""
	if journaled {
		journal = path + ".journal"
	}
	acked := map[string]llm.Micros{} // request id → cost
	keyOf := map[string]string{}
	for round := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
		cmd.Env = append(os.Environ(), crashEnv+"="+path, crashJournalEnv+"="+journal)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n, killed := 0, false
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 5 || f[0] != "ack" || f[4] != "." {
				continue // a line cut by the kill was never acknowledged
			}
			cost, _ := strconv.ParseInt(f[3], 10, 64)
			acked[f[2]], keyOf[f[2]] = llm.Micros(cost), f[1]
			if n++; n == 2000 && !killed {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed {
			t.Fatalf("round %d: child exited before the kill: %v", round, err)
		}
		t.Logf("round %d: %d acknowledged (%d read after the kill)", round, n, n-2000)
	}

	if journaled {
		fi, err := os.Stat(journal)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d journaled bytes to replay", fi.Size())
	}
	clk := time.Now
	d := &testDB{path: path}
	l, _ := d.open(t, Options{Now: clk, JournalPath: journal})
	raw := d.raw(t)
	keys := map[string]bool{}
	for _, k := range keyOf {
		keys[k] = true
	}
	for k := range keys {
		ks := l.Accounts.Status(k)
		for _, p := range ks.Periods {
			if got := sumCost(t, raw, k, p.Start); p.Spent != got {
				t.Errorf("%s %s: spend %s, rows sum to %s", k, p.Period, p.Spent, got)
			}
			if p.Reserved != 0 {
				t.Errorf("%s %s: %s still reserved after the crash", k, p.Period, p.Reserved)
			}
		}
	}
	stored := map[string]llm.Micros{}
	rows, err := raw.Query(`SELECT request_id, cost FROM budget_ledger`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var cost int64
		if err := rows.Scan(&id, &cost); err != nil {
			t.Fatal(err)
		}
		stored[id] = llm.Micros(cost)
	}
	rows.Close()
	missing := 0
	for id, cost := range acked {
		if got, ok := stored[id]; !ok || got != cost {
			missing++
			if missing < 5 {
				t.Errorf("acknowledged %s (cost %s) stored as %s, %v", id, cost, got, ok)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged requests missing from the ledger", missing, len(acked))
	}
	t.Logf("%d acknowledged, %d rows in the ledger", len(acked), len(stored))
}
