package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testmodel"
	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/httpapi"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/tokens"
)

// TestRateLimitsHoldForIdenticalConcurrentRequests: identical concurrent
// requests would be collapsed into one upstream call, but each is charged
// to the key's rate limits on its own first: with room for one request,
// one of six gets its answer and five get 429.
func TestRateLimitsHoldForIdenticalConcurrentRequests(t *testing.T) {
	const body = `{"model":"sim-small","messages":[{"role":"user","content":"the same question, six times at once"}]}`
	req, err := llm.DecodeChatRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	prompt, err := tokens.NewCounter().CountChat(spec("sim-small").Tokenizer, "sim-small", req)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		policy budget.Policy
	}{
		{"rpm 1", budget.Policy{RPM: 1}},
		{"tpm fits one prompt", budget.Policy{TPM: prompt + prompt/2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, release, entered := gatedSim(t)
			up := &counting{Provider: sim}
			s := newStack(t, stackOptions{models: simModels(up), cache: true, budgets: true})
			k, secret := s.newKey()
			if err := s.ledger.Accounts.SetPolicy(context.Background(), k.ID, tt.policy); err != nil {
				t.Fatal(err)
			}
			const n = 6
			statuses := make(chan int, n)
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, _ := postChat(t, s, secret, body)
					if resp != nil {
						statuses <- resp.StatusCode
					}
				}()
			}
			// The refused ones answer at once; the admitted one waits in the
			// upstream until every other has been answered.
			deadline := time.Now().Add(10 * time.Second) // a hang guard
			for (entered.Load() < 1 || len(statuses) < n-1) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			close(release)
			wg.Wait()
			close(statuses)
			count := map[int]int{}
			for st := range statuses {
				count[st]++
			}
			if count[200] != 1 || count[429] != n-1 {
				t.Fatalf("statuses %v, want 1 × 200 and %d × 429", count, n-1)
			}
			if calls := up.calls.Load(); calls != 1 {
				t.Fatalf("upstream calls %d, want 1", calls)
			}
		})
	}
}

// panicking panics in Chat, or in a stream's Recv after its first chunk,
// when the prompt asks it to; otherwise it is its provider.
type panicking struct {
	providers.Provider
}

func wantsPanic(r *providers.Request) bool {
	return strings.Contains(string(r.Chat.Raw), "please panic")
}

func (p *panicking) Chat(ctx context.Context, r *providers.Request) (*llm.ChatResponse, error) {
	if wantsPanic(r) {
		panic("provider bug")
	}
	return p.Provider.Chat(ctx, r)
}

func (p *panicking) Stream(ctx context.Context, r *providers.Request) (providers.Stream, error) {
	st, err := p.Provider.Stream(ctx, r)
	if err != nil || !wantsPanic(r) {
		return st, err
	}
	return &panicAfterFirst{Stream: st}, nil
}

type panicAfterFirst struct {
	providers.Stream
	n int
}

func (p *panicAfterFirst) Recv() (*llm.ChatChunk, error) {
	if p.n++; p.n > 1 {
		panic("stream bug")
	}
	return p.Stream.Recv()
}

// TestAPanicIsA500WithItsBookkeeping: a provider that panics costs the
// client a 500 in OpenAI's shape (or an error event once the stream has
// started), and nothing else: the request gets one ledger row and one
// access-log line, its reservation is given back, and the gateway goes on
// serving.
func TestAPanicIsA500WithItsBookkeeping(t *testing.T) {
	tests := []struct {
		name   string
		stream bool
	}{
		{"a completion", false},
		{"a stream after its first chunk", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncBuffer
			s := newStack(t, stackOptions{models: simModels(&panicking{Provider: newSim(t, providers.SimConfig{})}), budgets: true, log: &logs})
			k, secret := s.newKey()
			limit := budget.Policy{Limits: []budget.Limit{{Period: budget.Daily, Amount: 1_000_000}}}
			if err := s.ledger.Accounts.SetPolicy(context.Background(), k.ID, limit); err != nil {
				t.Fatal(err)
			}
			body := `{"model":"sim-small","messages":[{"role":"user","content":"please panic"}]}`
			if tt.stream {
				body = `{"model":"sim-small","stream":true,"messages":[{"role":"user","content":"please panic"}]}`
			}
			resp, got := postChat(t, s, secret, body)
			id := resp.Header.Get(httpapi.HeaderRequestID)
			if tt.stream {
				if resp.StatusCode != 200 {
					t.Fatalf("status %d, want the stream's 200: %s", resp.StatusCode, got)
				}
				events := sseData(got)
				if len(events) < 2 || strings.Contains(got, "[DONE]") {
					t.Fatalf("events %q: want a chunk, then an error event and no [DONE]", events)
				}
				assertInternalError(t, []byte(events[len(events)-1]))
			} else {
				if resp.StatusCode != 500 {
					t.Fatalf("status %d, want 500: %s", resp.StatusCode, got)
				}
				assertInternalError(t, []byte(got))
			}

			if err := s.ledger.Store.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			var rows, status int
			if err := s.db.QueryRow(`SELECT count(*), max(status) FROM budget_ledger WHERE request_id = ?`, id).Scan(&rows, &status); err != nil {
				t.Fatal(err)
			}
			if rows != 1 || status != 500 {
				t.Fatalf("ledger rows %d with status %d, want one row with 500", rows, status)
			}
			st := s.ledger.Accounts.Status(k.ID)
			for _, p := range st.Periods {
				if p.Reserved != 0 {
					t.Fatalf("%s: %v still reserved after the request ended", p.Period, p.Reserved)
				}
			}
			if lines := logs.linesWith(`"id":"` + id + `"`); lines != 1 {
				t.Fatalf("%d access-log lines for the request, want 1:\n%s", lines, logs.String())
			}

			ok, got := postChat(t, s, secret, `{"model":"sim-small","messages":[{"role":"user","content":"and now a normal question"}]}`)
			if ok.StatusCode != 200 {
				t.Fatalf("after the panic: status %d: %s", ok.StatusCode, got)
			}
		})
	}
}

func assertInternalError(t *testing.T, body []byte) {
	t.Helper()
	var env struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Error.Code != "internal_error" || env.Error.Type != llm.TypeServer || env.Error.Message == "" {
		t.Fatalf("error body %s (%v), want OpenAI's envelope with code internal_error", body, err)
	}
	if bytes.Contains(body, []byte("provider bug")) || bytes.Contains(body, []byte("stream bug")) {
		t.Fatalf("the panic's value reached the client: %s", body)
	}
}

// sseData returns the data of each event of an SSE body.
func sseData(body string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func (b *syncBuffer) linesWith(s string) int {
	n := 0
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// TestTypographicApostrophesNextToCachedEntries: prompts holding a lone
// typographic apostrophe, next to cached entries holding one, are served
// normally (the guard once indexed before the start of such a word and
// panicked, breaking every similar query in the scope).
func TestTypographicApostrophesNextToCachedEntries(t *testing.T) {
	emb := testmodel.Open(t)
	tests := []struct {
		name, cached, asked string
	}{
		{"a lone apostrophe next to an entry holding one", "What’s the capital of France?", "’"},
		{"an entry that is a lone apostrophe", "’", "’ ’"},
		{"apostrophes in both", "Don’t stop’", "What’s ’the’ capital of France’s neighbour?"},
		{"a closing apostrophe after a digit", "It’s 0’", "0’"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t, stackOptions{models: simModels(newSim(t, providers.SimConfig{})), cache: true, embedder: emb})
			for _, text := range []string{tt.cached, tt.asked, tt.asked} {
				body, _ := json.Marshal(map[string]any{"model": "sim-small", "messages": []map[string]string{{"role": "user", "content": text}}})
				resp, got := postChat(t, s, s.secret, string(body))
				if resp == nil || resp.StatusCode != 200 {
					t.Fatalf("%q: %v %s", text, resp, got)
				}
			}
		})
	}
}

// TestAPanicMidStreamEndsInTheSurfaceShape: a panic after a stream's first
// bytes ends it with the error event of the wire format the client speaks
// (the stream's own renderer writes it), never another surface's.
func TestAPanicMidStreamEndsInTheSurfaceShape(t *testing.T) {
	s := newStack(t, stackOptions{models: simModels(&panicking{Provider: newSim(t, providers.SimConfig{})})})
	tests := []struct {
		name     string
		path     string
		body     string
		event    string // the last event's name ("" for a data-only one)
		errorOf  func(data []byte) (typ, code string, err error)
		wantType string
		wantCode string
	}{
		{"chat", "/v1/chat/completions", `{"model":"sim-small","stream":true,"messages":[{"role":"user","content":"please panic"}]}`,
			"", openAIError, llm.TypeServer, "internal_error"},
		{"legacy completions", "/v1/completions", `{"model":"sim-small","stream":true,"prompt":"please panic"}`,
			"", openAIError, llm.TypeServer, "internal_error"},
		{"responses", "/v1/responses", `{"model":"sim-small","stream":true,"input":"please panic"}`,
			"response.failed", func(data []byte) (string, string, error) {
				var e struct {
					Type     string `json:"type"`
					Response struct {
						Status string `json:"status"`
						Error  struct {
							Code    string `json:"code"`
							Message string `json:"message"`
						} `json:"error"`
					} `json:"response"`
				}
				err := json.Unmarshal(data, &e)
				return e.Response.Status, e.Response.Error.Code, err
			}, "failed", "internal_error"},
		{"anthropic messages", "/v1/messages", `{"model":"sim-small","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"please panic"}]}`,
			"error", func(data []byte) (string, string, error) {
				var e struct {
					Type  string `json:"type"`
					Error struct {
						Type    string `json:"type"`
						Message string `json:"message"`
					} `json:"error"`
				}
				err := json.Unmarshal(data, &e)
				if e.Type != "error" || e.Error.Message == "" {
					return "", "", fmt.Errorf("not Anthropic's error envelope: %s", data)
				}
				return e.Error.Type, "", err
			}, "api_error", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", s.srv.URL+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("x-api-key", s.secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got := string(b)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, want the stream's 200: %s", resp.StatusCode, got)
			}
			blocks := strings.Split(strings.TrimSpace(got), "\n\n")
			if strings.Contains(got, "[DONE]") { // the 200 says the stream had started
				t.Fatalf("events %q: want an error event last and no [DONE]", blocks)
			}
			last := blocks[len(blocks)-1]
			name, data := "", last
			if rest, ok := strings.CutPrefix(last, "event: "); ok {
				name, data, _ = strings.Cut(rest, "\n")
			}
			data = strings.TrimPrefix(data, "data: ")
			if name != tt.event {
				t.Fatalf("last event %q, want %q: %s", name, tt.event, last)
			}
			typ, code, err := tt.errorOf([]byte(data))
			if err != nil || typ != tt.wantType || code != tt.wantCode {
				t.Fatalf("last event %s: type %q code %q (%v), want %q %q", data, typ, code, err, tt.wantType, tt.wantCode)
			}
			if strings.Contains(got, "stream bug") {
				t.Fatalf("the panic's value reached the client: %s", got)
			}
		})
	}
}

func openAIError(data []byte) (string, string, error) {
	var env struct {
		Error struct {
			Type string `json:"type"`
			Code string `json:"code"`
		} `json:"error"`
	}
	err := json.Unmarshal(data, &env)
	return env.Error.Type, env.Error.Code, err
}
