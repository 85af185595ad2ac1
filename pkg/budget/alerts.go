package budget

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/bits"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Alert events.
const (
	EventThreshold = "threshold_reached"    // spend reached a threshold of a limit
	EventExhausted = "budget_exhausted"     // a request was refused: the limit has no room for it
	EventProjected = "projected_exhaustion" // at the period's average burn rate the limit runs out before the period ends
	EventOverspend = "overspend"            // a response cost more than was reserved for it (its upstream ignored the output limit)
)

// Alerts turns charges into alerts and delivers them. Accounts asks it,
// under the key's lock, which thresholds a charge crossed (the key's
// fired alerts live with its counters, so a threshold fires once however
// the charges interleave); Alerts renders them for the global webhooks and
// the key's own, hands them to the Store in the same batch as the ledger
// row that crossed them (budget_alerts, budget_outbox), and a background
// deliverer posts the outbox, signed, retrying with backoff. Safe for
// concurrent use.
type Alerts struct {
	webhooks    []Webhook
	secret      string
	keyName     func(keyID string) string
	client      *http.Client
	timeout     time.Duration // one delivery attempt
	interval    time.Duration // between rounds of the deliverer; < 0: none
	retryBase   time.Duration
	retryMax    time.Duration
	maxAttempts int
	now         func() time.Time
	rand        func() float64
	log         *slog.Logger
	hooks       testHooks

	store *Store // the outbox is read and updated through it

	mu   sync.Mutex    // one delivery round at a time
	kick chan struct{} // capacity 1: new alerts are in the outbox
	loop *worker

	abandoned atomic.Int64 // deliveries this process gave up on (state failed)
}

func newAlerts(o Options) *Alerts {
	return &Alerts{webhooks: o.Webhooks, secret: o.WebhookSecret, keyName: o.KeyName, client: o.HTTPClient,
		timeout: o.DeliveryTimeout, interval: o.DeliveryInterval, retryBase: o.RetryBase, retryMax: o.RetryMax,
		maxAttempts: o.MaxAttempts, now: o.Now, rand: o.Rand, log: o.Logger, hooks: o.hooks,
		kick: make(chan struct{}, 1), loop: newWorker(o.Supervisor, "budget alert deliverer")}
}

// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>".
const SignatureHeader = "x-tollgate-signature"

// Event is the JSON body of an alert delivery.
type Event struct {
	// ID identifies the alert (key, period, period start, event,
	// threshold, limit): deliveries are at least once, so receivers
	// drop an ID they have seen.
	ID      string `json:"id"`
	Event   string `json:"event"`
	KeyID   string `json:"key_id"`
	KeyName string `json:"key_name"`
	// Customer: the alert is about this customer's budget (of the key),
	// not the key's own.
	Customer    string      `json:"customer,omitempty"`
	Period      Period      `json:"period"`
	PeriodStart *time.Time  `json:"period_start,omitempty"` // absent for total
	ResetsAt    *time.Time  `json:"resets_at,omitempty"`    // absent for total
	LimitUSD    json.Number `json:"limit_usd"`
	SpentUSD    json.Number `json:"spent_usd"`
	// Threshold is the fraction of the limit reached (1 for
	// budget_exhausted; absent for projected_exhaustion).
	Threshold float64 `json:"threshold,omitempty"`
	// ProjectedUSD and ExhaustsAt: the spend projected at the period's
	// end and when the limit would be reached (projected_exhaustion).
	ProjectedUSD json.Number `json:"projected_usd,omitempty"`
	ExhaustsAt   *time.Time  `json:"exhausts_at,omitempty"`
	// RequestID, ReservedUSD and ActualUSD: the request that cost more
	// than was reserved for it, the reservation and what it cost
	// (overspend).
	RequestID   string      `json:"request_id,omitempty"`
	ReservedUSD json.Number `json:"reserved_usd,omitempty"`
	ActualUSD   json.Number `json:"actual_usd,omitempty"`
	Time        time.Time   `json:"time"`
}

// alertKey identifies an alert: each fires once per period (and limit:
// changing a limit re-arms its thresholds).
type alertKey struct {
	period Period
	start  int64 // unix ms of the period's start, 0 for total
	event  string
	ppm    int64
	limit  llm.Micros
}

// alert is an alert decided under a key's lock, before it is rendered.
type alert struct {
	key        alertKey
	c          counter // the period's counter when it fired
	projected  llm.Micros
	exhaustsAt time.Time
	// overspend: the request, its reservation and its actual cost; the
	// request id makes each occurrence its own alert.
	request          string
	reserved, actual llm.Micros
	at               time.Time
}

func msOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// share is ceil(amount × ppm / 1e6) without overflow.
func share(amount llm.Micros, ppm int64) llm.Micros {
	hi, lo := bits.Mul64(uint64(amount), uint64(ppm))
	q, r := bits.Div64(hi, lo, 1e6)
	if r > 0 {
		q++
	}
	return llm.Micros(q)
}

// fire records k as fired and reports whether it was new.
func (st *keyState) fire(k alertKey) bool {
	if _, ok := st.fired[k]; ok {
		return false
	}
	st.fired[k] = struct{}{}
	return true
}

// crossedAlerts finds the alerts a charge at time at made due: thresholds
// of the periods that contain at, and the projection of the current
// period. Called with st.mu held, after the charge.
//
// The projection uses the period's average burn rate so far, spent /
// elapsed: the projected spend at the period's end is spent × length /
// elapsed. It is only made once minFrac of the period has passed, and
// fires once per period when the projection reaches the limit.
func (st *keyState) crossedAlerts(at, now time.Time, minFrac float64) []alert {
	var out []alert
	for _, lim := range st.policy.Limits {
		i := lim.Period.index()
		c := st.counterAt(i, at)
		if c == nil {
			continue
		}
		for _, th := range lim.thresholds() {
			p := ppm(th)
			k := alertKey{period: lim.Period, start: msOf(c.start), event: EventThreshold, ppm: p, limit: lim.Amount}
			if c.spent >= share(lim.Amount, p) && st.fire(k) {
				out = append(out, alert{key: k, c: *c, at: now})
			}
		}
		if lim.Period == Total || c != &st.cur[i] || c.spent <= 0 || c.spent >= lim.Amount {
			continue
		}
		elapsed, length := now.Sub(c.start), c.end.Sub(c.start)
		if elapsed <= 0 || float64(elapsed) < minFrac*float64(length) {
			continue
		}
		projected := float64(c.spent) * float64(length) / float64(elapsed)
		if projected < float64(lim.Amount) {
			continue
		}
		k := alertKey{period: lim.Period, start: msOf(c.start), event: EventProjected, limit: lim.Amount}
		if st.fire(k) {
			exhausts := c.start.Add(time.Duration(float64(elapsed) * float64(lim.Amount) / float64(c.spent)))
			out = append(out, alert{key: k, c: *c, projected: llm.Micros(math.Round(projected)), exhaustsAt: exhausts, at: now})
		}
	}
	return out
}

// exhaustedAlerts fires budget_exhausted for each limit that refused a
// reservation, once per period. Called with st.mu held.
func (st *keyState) exhaustedAlerts(ex *Exhausted, now time.Time) []alert {
	var out []alert
	for _, s := range ex.Limits {
		k := alertKey{period: s.Period, start: msOf(s.Start), event: EventExhausted, ppm: 1e6, limit: s.Limit}
		if st.fire(k) {
			c := counter{start: s.Start, end: s.ResetsAt, spent: s.Spent, reserved: s.Reserved}
			out = append(out, alert{key: k, c: c, at: now})
		}
	}
	return out
}

// overspendAlert fires overspend for a settle whose actual cost exceeded
// its reservation: once per occurrence (Settle settles a request once),
// for the key's limit the charge left with the least room, the one that
// blocks the key longest. A key without limits has nothing to overrun.
// Called with st.mu held, after the charge.
func (st *keyState) overspendAlert(requestID string, h *hold, actual llm.Micros, now time.Time) []alert {
	var worst *counter
	var lim Limit
	for _, l := range st.policy.Limits {
		c := st.counterAt(l.Period.index(), h.at)
		if c == nil {
			continue
		}
		if worst == nil || l.Amount-c.used() < lim.Amount-worst.used() {
			worst, lim = c, l
		}
	}
	if worst == nil {
		return nil
	}
	k := alertKey{period: lim.Period, start: msOf(worst.start), event: EventOverspend, limit: lim.Amount}
	return []alert{{key: k, c: *worst, request: requestID, reserved: h.amount, actual: actual, at: now}}
}

// alertRow is an alert as the writer stores it, with its deliveries.
type alertRow struct {
	uid        string
	keyID      string
	key        alertKey
	created    int64
	payload    []byte
	deliveries []delivery
}

type delivery struct {
	url   string
	slack bool
	body  []byte
}

// insert stores the alert and its deliveries unless it is already
// stored (a second instance of the same alert is dropped here).
func (a *alertRow) insert(ctx context.Context, tx *sql.Tx) error {
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO budget_alerts (uid, key_id, period, period_start, event, threshold, limit_micros, created_at, payload)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (uid) DO NOTHING RETURNING id`,
		a.uid, a.keyID, string(a.key.period), a.key.start, a.key.event, a.key.ppm, int64(a.key.limit), a.created, string(a.payload)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("budget: alert: %w", err)
	}
	for _, d := range a.deliveries {
		if _, err := tx.ExecContext(ctx, `INSERT INTO budget_outbox (alert_id, url, slack, body, next_at) VALUES (?, ?, ?, ?, ?)`,
			id, d.url, d.slack, string(d.body), a.created); err != nil {
			return fmt.Errorf("budget: outbox: %w", err)
		}
	}
	return nil
}

// rows renders alerts for storage and delivery to the global webhooks and
// the key's own. account is a key id, or a customer's account id
// (accountOf): its alerts name the key and the customer.
func (a *Alerts) rows(account string, alerts []alert, keyHooks []Webhook, now time.Time) []alertRow {
	if len(alerts) == 0 {
		return nil
	}
	keyID, customer := splitAccount(account)
	name := ""
	if a.keyName != nil {
		name = a.keyName(keyID)
	}
	hooks := append(append([]Webhook{}, a.webhooks...), keyHooks...)
	out := make([]alertRow, 0, len(alerts))
	for _, al := range alerts {
		ev := eventOf(account, name, al)
		ev.KeyID, ev.Customer = keyID, customer
		payload, _ := json.Marshal(ev)
		row := alertRow{uid: ev.ID, keyID: account, key: al.key, created: now.UnixMilli(), payload: payload}
		seen := map[Webhook]bool{}
		for _, h := range hooks {
			if seen[h] {
				continue
			}
			seen[h] = true
			body := payload
			if h.Slack {
				body, _ = json.Marshal(map[string]string{"text": slackText(ev)})
			}
			row.deliveries = append(row.deliveries, delivery{url: h.URL, slack: h.Slack, body: body})
		}
		out = append(out, row)
	}
	return out
}

// enqueue stores alerts without waiting (Reserve must not wait for the
// disk).
func (a *Alerts) enqueue(keyID string, alerts []alert, keyHooks []Webhook) {
	if rows := a.rows(keyID, alerts, keyHooks, a.now()); rows != nil {
		a.store.add(nil, rows)
	}
}

func eventOf(keyID, name string, a alert) Event {
	id := fmt.Appendf(nil, "%s\x00%s\x00%d\x00%s\x00%d\x00%d", keyID, a.key.period, a.key.start, a.key.event, a.key.ppm, a.key.limit)
	if a.request != "" {
		id = fmt.Appendf(id, "\x00%s", a.request)
	}
	sum := sha256.Sum256(id)
	ev := Event{
		ID: "alert_" + hex.EncodeToString(sum[:12]), Event: a.key.event, KeyID: keyID, KeyName: name, Period: a.key.period,
		LimitUSD: usd(a.key.limit), SpentUSD: usd(a.c.spent), Threshold: float64(a.key.ppm) / 1e6, Time: a.at.UTC(),
	}
	if !a.c.start.IsZero() {
		s, e := a.c.start.UTC(), a.c.end.UTC()
		ev.PeriodStart, ev.ResetsAt = &s, &e
	}
	switch a.key.event {
	case EventProjected:
		ev.ProjectedUSD = usd(a.projected)
		t := a.exhaustsAt.UTC()
		ev.ExhaustsAt = &t
	case EventOverspend:
		ev.RequestID, ev.ReservedUSD, ev.ActualUSD = a.request, usd(a.reserved), usd(a.actual)
	}
	return ev
}

// slackText is the alert as one line for Slack's incoming webhooks.
func slackText(ev Event) string {
	who := ev.KeyID
	if ev.KeyName != "" {
		who = fmt.Sprintf("%s (%s)", ev.KeyName, ev.KeyID)
	}
	if ev.Customer != "" {
		who = fmt.Sprintf("%s, customer %q,", who, ev.Customer)
	}
	resets := "never resets"
	if ev.ResetsAt != nil {
		resets = "resets " + ev.ResetsAt.Format(time.RFC3339)
	}
	switch ev.Event {
	case EventExhausted:
		return fmt.Sprintf(":no_entry: tollgate: API key %s has exhausted its %s budget: $%s of $%s spent; requests are refused until it %s.",
			who, ev.Period, ev.SpentUSD, ev.LimitUSD, resets)
	case EventOverspend:
		blocked := "it has room left"
		spent, _ := ParseUSD(string(ev.SpentUSD))
		if limit, _ := ParseUSD(string(ev.LimitUSD)); spent >= limit {
			blocked = "requests are refused for good (a total budget never resets)"
			if ev.ResetsAt != nil {
				blocked = "requests are refused until " + ev.ResetsAt.Format(time.RFC3339)
			}
		}
		return fmt.Sprintf(":money_with_wings: tollgate: request %s of API key %s cost $%s, more than the $%s reserved for it (its upstream ignored the output limit or counted more tokens); its %s budget: $%s of $%s spent, %s.",
			ev.RequestID, who, ev.ActualUSD, ev.ReservedUSD, ev.Period, ev.SpentUSD, ev.LimitUSD, blocked)
	case EventProjected:
		return fmt.Sprintf(":chart_with_upwards_trend: tollgate: at its current rate API key %s will exhaust its %s budget of $%s around %s ($%s spent so far, $%s projected; the period %s).",
			who, ev.Period, ev.LimitUSD, ev.ExhaustsAt.Format(time.RFC3339), ev.SpentUSD, ev.ProjectedUSD, resets)
	}
	return fmt.Sprintf(":warning: tollgate: API key %s has spent $%s of its %s budget of $%s (%s%%); the period %s.",
		who, ev.SpentUSD, ev.Period, ev.LimitUSD, strconv.FormatFloat(ev.Threshold*100, 'f', -1, 64), resets)
}

// Sign returns the signature header value of body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// ErrSignature is returned by VerifySignature for a missing, malformed,
// stale or wrong signature.
var ErrSignature = errors.New("invalid webhook signature")

// VerifySignature checks an x-tollgate-signature header against the raw
// body: one of its v1 values must be the HMAC-SHA256 of "t.body" under
// secret, and t must be within tolerance of now (replay protection).
func VerifySignature(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: malformed header", ErrSignature)
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("%w: no timestamp or no v1 signature", ErrSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp %d is outside the tolerance", ErrSignature, sec)
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no signature matches", ErrSignature)
}

// start runs the background deliverer, unless DeliveryInterval < 0.
func (a *Alerts) start() {
	if a.interval >= 0 {
		a.loop.start(a.run)
	}
}

// wake tells the deliverer that new alerts are in the outbox.
func (a *Alerts) wake() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// close stops the deliverer, aborting an attempt in flight.
func (a *Alerts) close() { a.loop.halt() }

// run delivers what is due, then sleeps until the next retry is due, new
// alerts arrive, or DeliveryInterval passes. After a panic the supervisor
// runs it again: a delivery not marked done is still pending, so it is
// tried again (at least once, as after a crash).
func (a *Alerts) run(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a.loop.sup.Go("budget alert deliverer: stop", func() {
		select {
		case <-stop:
			cancel() // abort an attempt in flight
		case <-ctx.Done(): // this run is over
		}
	})
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return
		case <-a.kick:
		case <-timer.C:
		}
		if _, err := a.DeliverDue(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("budget: alert delivery", "err", err)
		}
		timer.Reset(a.nextRound(ctx))
	}
}

// nextRound is the wait before the next round: DeliveryInterval, or less
// when a retry is due sooner.
func (a *Alerts) nextRound(ctx context.Context) time.Duration {
	wait := a.interval
	db, err := a.store.settled(ctx)
	if err != nil {
		return wait
	}
	var next sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MIN(next_at) FROM budget_outbox WHERE state = 'pending'`).Scan(&next); err == nil && next.Valid {
		// A row still due after a round failed to be updated: do not spin.
		wait = min(wait, max(time.UnixMilli(next.Int64).Sub(a.now()), 10*time.Millisecond))
	}
	return wait
}

// DeliverDue posts every pending alert delivery whose time has come (at
// Options.Now), marks the successes delivered and schedules a retry for
// the failures, with exponential backoff and jitter. It returns how many
// were delivered. The background deliverer calls it; with
// DeliveryInterval < 0, tests call it after moving their clock.
func (a *Alerts) DeliverDue(ctx context.Context) (int, error) {
	// Through the store: alerts journaled but not applied are in the
	// outbox then.
	db, err := a.store.settled(ctx)
	if err != nil {
		return 0, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	type due struct {
		id       int64
		url      string
		body     []byte
		attempts int
	}
	delivered := 0
	q := a.store.q
	// One process reads what is due. Replicas claim it instead, one row at
	// a time: the claim moves next_at past the attempt (FOR UPDATE SKIP
	// LOCKED: another replica skips the row rather than waiting), so no
	// two replicas post the same delivery at once, and a replica that dies
	// mid-attempt leaves the row to the others once the claim ends.
	claim, per := `SELECT id, url, body, attempts FROM budget_outbox
			WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT 100`, 100
	if a.store.pool != nil {
		claim, per = `UPDATE budget_outbox o SET next_at = $2
			FROM (SELECT id FROM budget_outbox WHERE state = 'pending' AND next_at <= $1
				ORDER BY next_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) c
			WHERE o.id = c.id RETURNING o.id, o.url, o.body, o.attempts`, 1
	}
	for {
		now := a.now()
		args := []any{now.UnixMilli()}
		if a.store.pool != nil {
			args = append(args, now.Add(a.claimLease()).UnixMilli())
		}
		rows, err := db.QueryContext(ctx, claim, args...)
		if err != nil {
			return delivered, fmt.Errorf("budget: outbox: %w", err)
		}
		var batch []due
		for rows.Next() {
			var d due
			var body string
			if err := rows.Scan(&d.id, &d.url, &body, &d.attempts); err != nil {
				rows.Close()
				return delivered, fmt.Errorf("budget: outbox: %w", err)
			}
			d.body = []byte(body)
			batch = append(batch, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return delivered, fmt.Errorf("budget: outbox: %w", err)
		}
		for _, d := range batch {
			retryAfter, err := a.post(ctx, d.id, d.url, d.body)
			if ctx.Err() != nil {
				return delivered, ctx.Err()
			}
			now := a.now()
			attempts := d.attempts + 1
			switch {
			case err == nil:
				delivered++
				_, err = db.ExecContext(ctx, q(`UPDATE budget_outbox SET state = 'delivered', attempts = ?, delivered_at = ?, last_error = '' WHERE id = ?`),
					attempts, now.UnixMilli(), d.id)
			case attempts >= a.maxAttempts:
				a.log.Error("budget: alert delivery abandoned", "url", d.url, "attempts", attempts, "err", err)
				_, err = db.ExecContext(ctx, q(`UPDATE budget_outbox SET state = 'failed', attempts = ?, last_error = ? WHERE id = ?`),
					attempts, err.Error(), d.id)
				if err == nil {
					a.abandoned.Add(1)
				}
			default:
				wait := a.backoff(attempts, retryAfter)
				_, err = db.ExecContext(ctx, q(`UPDATE budget_outbox SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?`),
					attempts, now.Add(wait).UnixMilli(), err.Error(), d.id)
			}
			if err != nil {
				return delivered, fmt.Errorf("budget: outbox: %w", err)
			}
		}
		if len(batch) < per {
			return delivered, nil
		}
	}
}

// Pending counts the alert deliveries waiting in the outbox (due now or
// retrying later), of every replica on PostgreSQL. One COUNT over the
// outbox's partial index of pending rows: cheap, but a query; callers on
// a hot or frequent path cache it. Alerts journaled and not yet applied
// are not counted (Store.Lag has them).
func (a *Alerts) Pending(ctx context.Context) (int, error) {
	var n int
	if err := a.store.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM budget_outbox WHERE state = 'pending'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("budget: outbox: %w", err)
	}
	return n, nil
}

// Abandoned is how many deliveries this process gave up on after
// MaxAttempts since it started (their rows stay in the outbox, failed).
func (a *Alerts) Abandoned() int64 { return a.abandoned.Load() }

// claim is how long a replica's claim on a delivery lasts: past one
// attempt's timeout, with room for the update that follows.
func (a *Alerts) claimLease() time.Duration { return 2*a.timeout + 5*time.Second }

// backoff is the wait before attempt n+1: RetryBase × 2^(n-1), capped at
// RetryMax, of which the upper half is random ("equal jitter": never
// less than half the nominal wait, so a receiver is not hammered, and
// retries of many alerts spread out); a longer Retry-After of the
// receiver wins, within RetryMax.
func (a *Alerts) backoff(n int, retryAfter time.Duration) time.Duration {
	d := a.retryMax
	if n-1 < 32 {
		d = min(a.retryBase<<(n-1), a.retryMax)
	}
	d = d/2 + time.Duration(a.rand()*float64(d/2))
	return min(max(d, retryAfter), a.retryMax)
}

// post makes one delivery attempt. Any 2xx is a success.
func (a *Alerts) post(ctx context.Context, id int64, url string, body []byte) (retryAfter time.Duration, err error) {
	if h := a.hooks.post; h != nil {
		h()
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tollgate-alerts/1")
	req.Header.Set("x-tollgate-delivery", strconv.FormatInt(id, 10))
	if a.secret != "" {
		req.Header.Set(SignatureHeader, Sign(a.secret, a.now(), body))
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return 0, nil
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	return retryAfter, fmt.Errorf("receiver answered %s", resp.Status)
}
