package budget

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

const secret = "whsec_test"

// receiver is an httptest alert receiver that records what it gets and
// answers with a status the test sets.
type receiver struct {
	srv    *httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	got    []received
	hits   atomic.Int32
	notify chan struct{}
}

type received struct {
	path string
	body []byte
	sig  string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{notify: make(chan struct{}, 100)}
	r.status.Store(http.StatusOK)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		body, _ := io.ReadAll(req.Body)
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s with content type %q", req.Method, req.Header.Get("Content-Type"))
		}
		status := int(r.status.Load())
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "60")
		}
		if status/100 == 2 {
			r.mu.Lock()
			r.got = append(r.got, received{path: req.URL.Path, body: body, sig: req.Header.Get(SignatureHeader)})
			r.mu.Unlock()
			r.notify <- struct{}{}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// take returns what was delivered since the last take.
func (r *receiver) take() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

// events decodes the JSON deliveries (not the Slack ones), checking each
// signature.
func events(t *testing.T, got []received, now time.Time) []Event {
	t.Helper()
	var out []Event
	for _, g := range got {
		if err := VerifySignature(secret, g.sig, g.body, now, 5*time.Minute); err != nil {
			t.Errorf("signature of %s: %v", g.body, err)
		}
		if g.path == "/slack" {
			var s struct{ Text string }
			if err := json.Unmarshal(g.body, &s); err != nil || !strings.Contains(s.Text, "tollgate") {
				t.Errorf("slack body %s", g.body)
			}
			continue
		}
		var ev Event
		if err := json.Unmarshal(g.body, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func settle(t *testing.T, l *Ledger, key, id string, cost llm.Micros) {
	t.Helper()
	r, err := l.Accounts.Reserve(ctx, key, id, cost)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Accounts.Settle(ctx, r, Entry{Cost: cost}); err != nil {
		t.Fatal(err)
	}
}

func deliver(t *testing.T, l *Ledger) int {
	t.Helper()
	n, err := l.Alerts.DeliverDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestThresholdAlerts(t *testing.T) {
	rcv := newReceiver(t)
	clk := newClock("2026-03-10T12:00:00Z")
	l, _ := newTestDB(t).open(t, Options{
		Now: clk.Now, Rand: func() float64 { return 0.5 },
		Webhooks:             []Webhook{{URL: rcv.srv.URL + "/json"}, {URL: rcv.srv.URL + "/slack", Slack: true}},
		WebhookSecret:        secret,
		KeyName:              func(id string) string { return "team " + id },
		ProjectionMinElapsed: 1, // no projections in this test
	})
	if err := l.Accounts.SetPolicy(ctx, "k", daily(1)); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		cost    llm.Micros // 0: a reservation that cannot fit
		want    []string   // "event threshold spent"
		advance time.Duration
	}{
		{"below every threshold", 400_000, nil, 0},
		{"crosses 50%", 150_000, []string{"threshold_reached 0.5 0.550000"}, 0},
		{"50% does not fire twice", 50_000, nil, 0},
		{"crosses 80% and 100% at once", 400_000, []string{"threshold_reached 0.8 1.000000", "threshold_reached 1 1.000000"}, 0},
		{"a refused request: budget_exhausted", 0, []string{"budget_exhausted 1 1.000000"}, 0},
		{"exhausted fires once per period", 0, nil, 0},
		{"a new day re-arms every threshold", 600_000, []string{"threshold_reached 0.5 0.600000"}, 24 * time.Hour},
	}
	for i, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clk.Advance(s.advance)
			id := fmt.Sprintf("r%d", i)
			if s.cost == 0 {
				if _, err := l.Accounts.Reserve(ctx, "k", id, 1); !errors.Is(err, ErrExhausted) {
					t.Fatalf("reserve: %v", err)
				}
				if err := l.Store.Flush(ctx); err != nil { // Reserve does not wait for the alert to be stored
					t.Fatal(err)
				}
			} else {
				settle(t, l, "k", id, s.cost)
			}
			if n := deliver(t, l); n != 2*len(s.want) {
				t.Fatalf("%d deliveries, want %d", n, 2*len(s.want))
			}
			got := rcv.take()
			evs := events(t, got, clk.Now())
			if len(evs) != len(s.want) {
				t.Fatalf("events %+v, want %v", evs, s.want)
			}
			for j, ev := range evs {
				if g := fmt.Sprintf("%s %v %s", ev.Event, ev.Threshold, ev.SpentUSD); g != s.want[j] {
					t.Errorf("event %d = %q, want %q", j, g, s.want[j])
				}
				start, end := Daily.Window(clk.Now(), time.UTC)
				if ev.KeyID != "k" || ev.KeyName != "team k" || ev.Period != Daily || ev.LimitUSD != "1.000000" ||
					!ev.PeriodStart.Equal(start) || !ev.ResetsAt.Equal(end) || !ev.Time.Equal(clk.Now()) || !strings.HasPrefix(ev.ID, "alert_") {
					t.Errorf("event %+v", ev)
				}
			}
		})
	}
}

func TestAlertOutboxSurvivesOutageAndRestart(t *testing.T) {
	rcv := newReceiver(t)
	rcv.status.Store(http.StatusInternalServerError)
	clk := newClock("2026-03-10T12:00:00Z")
	d := newTestDB(t)
	o := Options{
		Now: clk.Now, Rand: func() float64 { return 0.5 }, // backoff = 3/4 of nominal
		Webhooks: []Webhook{{URL: rcv.srv.URL}}, WebhookSecret: secret, ProjectionMinElapsed: 1,
		RetryBase: 2 * time.Second, RetryMax: time.Minute,
	}
	l, closeL := d.open(t, o)
	if err := l.Accounts.SetPolicy(ctx, "k", Policy{Limits: []Limit{{Period: Monthly, Amount: 1000, Thresholds: []float64{0.5}}}}); err != nil {
		t.Fatal(err)
	}
	settle(t, l, "k", "a", 600)
	outbox := func() (attempts int, state string, next time.Time) {
		t.Helper()
		var ms int64
		if err := d.raw(t).QueryRow(`SELECT attempts, state, next_at FROM budget_outbox`).Scan(&attempts, &state, &ms); err != nil {
			t.Fatal(err)
		}
		return attempts, state, time.UnixMilli(ms)
	}
	steps := []struct {
		name      string
		advance   time.Duration
		status    int
		hits      int32 // receiver hits so far
		delivered int
		attempts  int
		state     string
		nextIn    time.Duration // next_at - now
	}{
		{"receiver down: first attempt fails", 0, 500, 1, 0, 1, "pending", 1500 * time.Millisecond},
		{"not due yet: no attempt", time.Second, 500, 1, 0, 1, "pending", 500 * time.Millisecond},
		{"second attempt fails, backoff doubles", 500 * time.Millisecond, 500, 2, 0, 2, "pending", 3 * time.Second},
		{"503 with Retry-After is honoured", 3 * time.Second, 503, 3, 0, 3, "pending", 60 * time.Second},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clk.Advance(s.advance)
			rcv.status.Store(int32(s.status))
			if n := deliver(t, l); n != s.delivered {
				t.Fatalf("delivered %d", n)
			}
			attempts, state, next := outbox()
			if rcv.hits.Load() != s.hits || attempts != s.attempts || state != s.state || next.Sub(clk.Now()) != s.nextIn {
				t.Fatalf("hits %d attempts %d state %s next in %s", rcv.hits.Load(), attempts, state, next.Sub(clk.Now()))
			}
		})
	}
	// The gateway restarts with the alert still pending; the receiver
	// recovers; the retry is delivered by the new process.
	closeL()
	rcv.status.Store(http.StatusOK)
	l, _ = d.open(t, o)
	if n := deliver(t, l); n != 0 {
		t.Fatalf("delivered %d before it was due", n)
	}
	clk.Advance(time.Minute)
	if n := deliver(t, l); n != 1 {
		t.Fatalf("delivered %d after the restart", n)
	}
	evs := events(t, rcv.take(), clk.Now())
	if len(evs) != 1 || evs[0].Event != EventThreshold || evs[0].Threshold != 0.5 || evs[0].SpentUSD != "0.000600" {
		t.Fatalf("events %+v", evs)
	}
	if attempts, state, _ := outbox(); attempts != 4 || state != "delivered" {
		t.Fatalf("outbox %d %s", attempts, state)
	}
	// The threshold fired before the restart does not fire again.
	settle(t, l, "k", "b", 100)
	if n := deliver(t, l); n != 0 {
		t.Fatalf("%d deliveries after the restart", n)
	}
}

func TestAlertGivesUp(t *testing.T) {
	rcv := newReceiver(t)
	rcv.status.Store(http.StatusBadGateway)
	clk := newClock("2026-03-10T12:00:00Z")
	d := newTestDB(t)
	l, _ := d.open(t, Options{Now: clk.Now, Webhooks: []Webhook{{URL: rcv.srv.URL}}, MaxAttempts: 3, RetryMax: time.Second, ProjectionMinElapsed: 1})
	if err := l.Accounts.SetPolicy(ctx, "k", daily(0.000010)); err != nil {
		t.Fatal(err)
	}
	settle(t, l, "k", "a", 10)
	for range 5 {
		deliver(t, l)
		clk.Advance(time.Second)
	}
	// 10 µ$ of 10 crosses 50%, 80% and 100% at once: three alerts, each
	// tried MaxAttempts times, then abandoned.
	if hits := rcv.hits.Load(); hits != 3*3 {
		t.Fatalf("%d attempts, want 9", hits)
	}
	rows, err := d.raw(t).Query(`SELECT state, attempts, last_error FROM budget_outbox`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var state, lastErr string
		var attempts int
		if err := rows.Scan(&state, &attempts, &lastErr); err != nil {
			t.Fatal(err)
		}
		if state != "failed" || attempts != 3 || !strings.Contains(lastErr, "502") {
			t.Fatalf("outbox row %s after %d attempts: %q", state, attempts, lastErr)
		}
	}
}

func TestProjectedExhaustion(t *testing.T) {
	rcv := newReceiver(t)
	clk := newClock("2026-03-10T01:00:00Z")
	l, _ := newTestDB(t).open(t, Options{Now: clk.Now, Webhooks: []Webhook{{URL: rcv.srv.URL}}, WebhookSecret: secret})
	if err := l.Accounts.SetPolicy(ctx, "k", Policy{Limits: []Limit{{Period: Daily, Amount: 10_000_000, Thresholds: []float64{}}}}); err != nil {
		t.Fatal(err)
	}
	// The rate is the period's average so far, spent / elapsed; nothing is
	// projected before 10% of the period (2h24m) has passed.
	steps := []struct {
		name   string
		at     string
		cost   llm.Micros
		fires  bool
		exhaus string
	}{
		{"too early to project ($24/day pace at 01:00)", "2026-03-10T01:00:00Z", 1_000_000, false, ""},
		{"on pace for $8: no alert", "2026-03-10T06:00:00Z", 1_000_000, false, ""},
		{"on pace for $12: fires, exhausted around 20:00", "2026-03-10T08:00:00Z", 2_000_000, true, "2026-03-10T20:00:00Z"},
		{"fires once per period", "2026-03-10T09:00:00Z", 1_000_000, false, ""},
		{"a new day starts a new projection", "2026-03-11T12:00:00Z", 6_000_000, true, "2026-03-11T20:00:00Z"},
	}
	for i, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			at, _ := time.Parse(time.RFC3339, s.at)
			clk.Set(at)
			settle(t, l, "k", fmt.Sprint(i), s.cost)
			deliver(t, l)
			evs := events(t, rcv.take(), clk.Now())
			if !s.fires {
				if len(evs) != 0 {
					t.Fatalf("events %+v", evs)
				}
				return
			}
			if len(evs) != 1 || evs[0].Event != EventProjected || evs[0].ExhaustsAt.Format(time.RFC3339) != s.exhaus {
				t.Fatalf("events %+v", evs)
			}
		})
	}
}

// TestBackgroundDelivery: with the deliverer running, a crossing is
// delivered without anyone calling DeliverDue (the writer wakes it), once,
// even when the deliverer panics before its first attempt: the process
// survives and the supervisor runs the loop again.
func TestBackgroundDelivery(t *testing.T) {
	for _, tc := range []struct {
		name   string
		panics int64
	}{
		{"delivered", 0},
		{"after a panic in the deliverer", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sup := newSupervisor()
			var posts atomic.Int64
			post := func() {
				if posts.Add(1) <= tc.panics {
					panic("injected before a delivery")
				}
			}
			rcv := newReceiver(t)
			l, _ := newTestDB(t).open(t, Options{Webhooks: []Webhook{{URL: rcv.srv.URL}}, WebhookSecret: secret, DeliveryInterval: time.Hour,
				Supervisor: sup, hooks: testHooks{post: post}})
			if err := l.Accounts.SetPolicy(ctx, "k", Policy{Limits: []Limit{{Period: Total, Amount: 100, Thresholds: []float64{0.5}}}}); err != nil {
				t.Fatal(err)
			}
			settle(t, l, "k", "a", 60)
			select {
			case <-rcv.notify:
			case <-time.After(10 * time.Second):
				t.Fatalf("not delivered (%d attempts, supervisor: %v)", posts.Load(), sup.Err())
			}
			select {
			case <-rcv.notify:
				t.Fatal("delivered twice")
			case <-time.After(100 * time.Millisecond):
			}
			evs := events(t, rcv.take(), time.Now())
			if len(evs) != 1 || evs[0].Period != Total || evs[0].PeriodStart != nil || evs[0].ResetsAt != nil {
				t.Fatalf("events %+v", evs)
			}
			if sup.Panics() != tc.panics || sup.Err() != nil {
				t.Fatalf("%d panics recovered; supervisor: %v", sup.Panics(), sup.Err())
			}
		})
	}
}

func TestVerifySignature(t *testing.T) {
	now := time.Unix(1_773_000_000, 0)
	body := []byte(`{"event":"budget_exhausted"}`)
	good := Sign(secret, now, body)
	tests := []struct {
		name   string
		secret string
		header string
		body   []byte
		now    time.Time
		ok     bool
	}{
		{"valid", secret, good, body, now, true},
		{"valid within tolerance", secret, good, body, now.Add(4 * time.Minute), true},
		{"one of several v1 values (secret rotation)", secret, good + ",v1=" + strings.Repeat("ab", 32), body, now, true},
		{"wrong secret", "other", good, body, now, false},
		{"tampered body", secret, good, []byte(`{"event":"threshold_reached"}`), now, false},
		{"stale", secret, good, body, now.Add(6 * time.Minute), false},
		{"from the future", secret, good, body, now.Add(-6 * time.Minute), false},
		{"no v1", secret, "t=1773000000", body, now, false},
		{"no t", secret, "v1=" + strings.Repeat("ab", 32), body, now, false},
		{"garbage", secret, "nonsense", body, now, false},
		{"empty", secret, "", body, now, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifySignature(tt.secret, tt.header, tt.body, tt.now, 5*time.Minute)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v", err)
			}
			if err != nil && !errors.Is(err, ErrSignature) {
				t.Fatalf("err %v is not ErrSignature", err)
			}
		})
	}
	if !strings.HasPrefix(good, "t=1773000000,v1=") || len(good) != len("t=1773000000,v1=")+64 {
		t.Fatalf("header %q", good)
	}
}
