package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testmodel"
	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/llm"
)

// The test binary doubles as a gateway process for the crash test.
const childEnv = "TOLLGATE_TEST_CHILD_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(childEnv); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			panic(err)
		}
		if err := run(context.Background(), argv, os.Getenv, os.Stdout, io.Discard); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type child struct {
	cmd *exec.Cmd
	url string
}

// startChild starts the test binary as a gateway process. The USE-lite model
// is fetched first, so that its download is not part of the start-up window.
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	testmodel.Prefetch(t)
	argv, _ := json.Marshal(append([]string{"-listen", "127.0.0.1:0"}, args...))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(argv), modelDirEnv+"="+testmodel.Dir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case u := <-found:
		return &child{cmd: cmd, url: u}
	case <-time.After(60 * time.Second): // a hang guard
		t.Fatal("child gateway did not start")
		return nil
	}
}

func adminCall(t *testing.T, base, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer an-admin-key-of-enough-length")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

// TestCrashKeepsSpendExact: a gateway under load is killed with SIGKILL and
// restarted on the same database. Its period spend equals the sum of its
// ledger rows, and every request the client saw succeed is in the ledger.
func TestCrashKeepsSpendExact(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test starts gateway processes")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tollgate.yaml")
	os.WriteFile(cfg, []byte("admin_key: an-admin-key-of-enough-length\ndev_key: false\nproviders:\n  - {name: sim, type: sim}\n"), 0o644)
	gw := startChild(t, "-config", cfg, "-data", dir)

	var key struct{ ID, Key string }
	if st := adminCall(t, gw.url, "POST", "/admin/keys", `{"name":"crash","budgets":[{"period":"daily","limit_usd":1000}]}`, &key); st != 201 {
		t.Fatalf("create key: %d", st)
	}

	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	client := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", gw.url+"/v1/chat/completions", strings.NewReader(
					fmt.Sprintf(`{"model":"sim-small","max_tokens":%d,"messages":[{"role":"user","content":"worker %d request %d"}]}`, 5+i%20, w, i)))
				req.Header.Set("Authorization", "Bearer "+key.Key)
				resp, err := client.Do(req)
				if err != nil {
					continue // the gateway is gone
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 { // acknowledged to the client
					mu.Lock()
					acked[resp.Header.Get("x-tollgate-request-id")] = true
					mu.Unlock()
				}
			}
		}(w)
	}
	for { // let enough requests through, then kill the gateway mid-flight
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 300 {
			break
		}
	}
	if err := gw.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	gw.cmd.Wait()
	close(stop)
	wg.Wait()

	gw2 := startChild(t, "-config", cfg, "-data", dir)
	var detail struct {
		Budgets []struct {
			Spent    json.Number `json:"spent_usd"`
			Reserved json.Number `json:"reserved_usd"`
		} `json:"budgets"`
	}
	adminCall(t, gw2.url, "GET", "/admin/keys/"+key.ID, "", &detail)
	var hist struct {
		Data []struct {
			RequestID string      `json:"request_id"`
			Cost      json.Number `json:"cost_usd"`
			Status    int         `json:"status"`
		} `json:"data"`
	}
	adminCall(t, gw2.url, "GET", "/admin/keys/"+key.ID+"/spend?limit=1000", "", &hist) // one page holds every row
	var sum llm.Micros
	inLedger := map[string]bool{}
	for _, r := range hist.Data {
		c, err := budget.ParseUSD(r.Cost.String())
		if err != nil {
			t.Fatal(err)
		}
		sum += c
		inLedger[r.RequestID] = true
	}
	spent, _ := budget.ParseUSD(detail.Budgets[0].Spent.String())
	if spent != sum || sum == 0 || detail.Budgets[0].Reserved.String() != "0.000000" {
		t.Fatalf("after kill -9: period spend %s, reserved %s, sum of %d ledger rows %s", spent, detail.Budgets[0].Reserved, len(hist.Data), sum)
	}
	missing := 0
	for id := range acked {
		if !inLedger[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged requests missing from the ledger", missing, len(acked))
	}
	t.Logf("killed under load: %d acknowledged requests, %d ledger rows, spend %s = row sum", len(acked), len(hist.Data), spent)
}
