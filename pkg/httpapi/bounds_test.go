package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/providers"
	"github.com/tollgate/tollgate/pkg/router"
)

// hangGuard bounds waits that must end on their own. It is no timing
// threshold: it turns a hang into a failure.
const hangGuard = 30 * time.Second

// boundedChunk is an OpenAI stream chunk carrying pad as its content.
func boundedChunk(pad string) string {
	return `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"` +
		pad + `"},"finish_reason":null}]}` + "\n\n"
}

// upstreamStack is a stack whose one model, upstream-model, is served by
// an OpenAI-compatible client of cfg in front of h; the route "bounded"
// leads to it too, with route's settings.
func upstreamStack(t *testing.T, h http.Handler, cfg providers.OpenAIConfig, route router.Route, o stackOptions) *stack {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg.Name, cfg.BaseURL = "up", srv.URL
	up, err := providers.NewOpenAI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := renamed("upstream-model", "gpt-4o-mini")
	route.Name, route.Candidates = "bounded", []string{"upstream-model"}
	o.routes = routesOver(t, []router.Model{m}, route)
	o.models = []*gateway.Model{{Name: "upstream-model", Spec: &m, Chat: true, Deployments: []gateway.Deployment{{Provider: up, Upstream: "upstream-model"}}}}
	return newStack(t, o)
}

// heapGrowth runs f and reports how far HeapInuse rose above its level
// before f (sampled every millisecond while f ran), and the bytes allocated
// meanwhile, which bound the peak from above whatever the sampling missed.
func heapGrowth(f func()) (peak, allocated uint64) {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var top atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > top.Load() {
				top.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if top.Load() > before.HeapInuse {
		peak = top.Load() - before.HeapInuse
	}
	return peak, after.TotalAlloc - before.TotalAlloc
}

// errorCode returns the code of an OpenAI error envelope.
func errorCode(t *testing.T, body string) string {
	t.Helper()
	var env struct {
		Error struct {
			Code string `json:"code"`
			Type string `json:"type"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil || env.Error.Code == "" {
		t.Fatalf("not an error envelope with a code: %.300s (%v)", body, err)
	}
	return env.Error.Code
}

// post sends body to the stack under the hang guard.
func post(t *testing.T, s *stack, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.srv.URL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.secret)
	resp, err := (&http.Client{Timeout: hangGuard}).Do(req)
	if err != nil {
		t.Fatalf("no answer within the hang guard: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return resp, string(b)
}

// TestBoundsOverHTTP: what an upstream sends is bounded all the way to the
// client. An endless stream ends with an error event at max_stream_bytes;
// a 300 MB SSE line is a 502 before the first chunk and a 100 MB answer a
// 502, neither growing the gateway's heap anywhere near its size; a stream
// that stalls after its first chunk ends at the idle timeout, the route's
// replacing the provider's.
func TestBoundsOverHTTP(t *testing.T) {
	const heapBound = 16 << 20
	endless := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		event := []byte(boundedChunk(strings.Repeat("x", 1000)))
		for r.Context().Err() == nil {
			if _, err := w.Write(event); err != nil {
				return
			}
		}
	})
	// huge writes "data: " and then n bytes of one line, piece by piece:
	// neither side of the test ever holds it.
	huge := func(prefix string, n int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if prefix[0] == '{' {
				w.Header().Set("Content-Type", "application/json")
			} else {
				w.Header().Set("Content-Type", "text/event-stream")
			}
			io.WriteString(w, prefix)
			piece := bytes.Repeat([]byte("x"), 64<<10)
			for sent := 0; sent < n; sent += len(piece) {
				if _, err := w.Write(piece); err != nil {
					return
				}
			}
			io.WriteString(w, `"}`+"\n\n")
		}
	}
	stall := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, boundedChunk("first"))
		w.(http.Flusher).Flush()
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	})
	tests := []struct {
		name       string
		upstream   http.Handler
		cfg        providers.OpenAIConfig
		route      router.Route
		model      string // default upstream-model
		stream     bool
		wantStatus int
		wantChunks bool // some chunks before the error event
		wantCode   string
		heap       bool // measure the gateway's heap
	}{
		{name: "an endless stream ends with an error event at max_stream_bytes", upstream: endless,
			cfg: providers.OpenAIConfig{MaxStreamBytes: 256 << 10}, stream: true, wantStatus: 200, wantChunks: true, wantCode: "upstream_stream_too_large"},
		{name: "a 300 MB SSE line is a 502 before the first chunk", upstream: huge("data: ", 300<<20),
			stream: true, wantStatus: 502, wantCode: "upstream_event_too_large", heap: true},
		{name: "a 100 MB answer is a 502 at max_response_bytes", upstream: huge(`{"id":"x","object":"chat.completion","choices":[],"pad":"`, 100<<20),
			cfg: providers.OpenAIConfig{MaxResponseBytes: 1 << 20}, wantStatus: 502, wantCode: "upstream_response_too_large", heap: true},
		{name: "a stream that stalls after its first chunk ends at the provider's idle timeout", upstream: stall,
			cfg: providers.OpenAIConfig{StreamIdleTimeout: 200 * time.Millisecond}, stream: true, wantStatus: 200, wantChunks: true, wantCode: "upstream_timeout"},
		{name: "the route's stream_idle_timeout replaces the provider's", upstream: stall,
			route: router.Route{StreamIdleTimeout: 200 * time.Millisecond}, model: "bounded", stream: true, wantStatus: 200, wantChunks: true, wantCode: "upstream_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := upstreamStack(t, tt.upstream, tt.cfg, tt.route, stackOptions{})
			model := tt.model
			if model == "" {
				model = "upstream-model"
			}
			body := fmt.Sprintf(`{"model":%q,"stream":%v,"messages":[{"role":"user","content":"hi"}]}`, model, tt.stream)
			var (
				resp *http.Response
				got  string
			)
			peak, allocated := heapGrowth(func() { resp, got = post(t, s, body) })
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tt.wantStatus, got)
			}
			errBody := got
			if tt.wantStatus == 200 {
				events := sseData(got)
				if len(events) == 0 || strings.Contains(got, "[DONE]") {
					t.Fatalf("events %.300q: want an error event at the end and no [DONE]", events)
				}
				if tt.wantChunks != (len(events) > 1) {
					t.Fatalf("%d events, want chunks before the error event: %v: %.500s", len(events), tt.wantChunks, got)
				}
				errBody = events[len(events)-1]
			}
			if code := errorCode(t, errBody); code != tt.wantCode {
				t.Fatalf("code %q, want %q: %.300s", code, tt.wantCode, errBody)
			}
			if tt.heap {
				t.Logf("heap growth: peak %d KiB, allocated %d KiB", peak>>10, allocated>>10)
				if peak > heapBound {
					t.Errorf("the gateway's heap grew by %d MiB, want less than %d MiB", peak>>20, heapBound>>20)
				}
			}
		})
	}
}

// TestAClientThatStopsReadingIsCut: a client that sends its request and
// never reads its stream is cut after write_timeout: the handler returns,
// the upstream stream is stopped, and the request gets its ledger row and
// access-log line. Nothing else could end it: the upstream never ends and
// max_stream_bytes is out of reach.
func TestAClientThatStopsReadingIsCut(t *testing.T) {
	left := make(chan struct{})
	var sent atomic.Int64
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(left)
		w.Header().Set("Content-Type", "text/event-stream")
		event := []byte(boundedChunk(strings.Repeat("x", 16<<10)))
		for r.Context().Err() == nil {
			n, err := w.Write(event)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	var logs syncBuffer
	s := upstreamStack(t, upstream, providers.OpenAIConfig{MaxStreamBytes: 1 << 40}, router.Route{},
		stackOptions{writeTimeout: 300 * time.Millisecond, budgets: true, log: &logs})

	conn, err := net.Dial("tcp", s.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10) // a small window, so the gateway's writes block soon
	}
	body := `{"model":"upstream-model","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: tollgate\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		s.secret, len(body), body)
	// ...and never read.

	select {
	case <-left:
	case <-time.After(hangGuard):
		t.Fatalf("the upstream stream is still open after %s (%d bytes sent): the handler is stuck writing", hangGuard, sent.Load())
	}
	t.Logf("the upstream sent %d KiB before the gateway cut the client", sent.Load()>>10)
	deadline := time.Now().Add(hangGuard)
	for {
		if err := s.ledger.Store.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		var rows int
		if err := s.db.QueryRow(`SELECT count(*) FROM budget_ledger`).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows == 1 && logs.linesWith(`"path":"/v1/chat/completions"`) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ledger rows and access log %q: the handler did not finish", rows, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAReadingClientOfALongStreamIsNotCut: write_timeout bounds each
// write, not the stream: a stream that lasts several times write_timeout
// reaches a client that reads it, whole.
func TestAReadingClientOfALongStreamIsNotCut(t *testing.T) {
	const chunks = 5
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range chunks {
			if i > 0 {
				time.Sleep(200 * time.Millisecond)
			}
			io.WriteString(w, boundedChunk(fmt.Sprint(i)))
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, "data: [DONE]\n\n")
	})
	s := upstreamStack(t, upstream, providers.OpenAIConfig{}, router.Route{}, stackOptions{writeTimeout: 500 * time.Millisecond})
	resp, got := post(t, s, `{"model":"upstream-model","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	if events := sseData(got); len(events) != chunks+1 || events[chunks] != "[DONE]" {
		t.Fatalf("events %q: want %d chunks and [DONE]", events, chunks)
	}
}

// TestGinWriterReachesTheConnection: the write deadline is set through
// http.ResponseController on Gin's writer, which must unwrap to the
// connection's; otherwise every deadline would silently do nothing.
func TestGinWriterReachesTheConnection(t *testing.T) {
	r := gin.New()
	r.GET("/", func(c *gin.Context) {
		if err := http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
			c.String(500, err.Error())
			return
		}
		c.String(200, "ok")
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("SetWriteDeadline through gin's writer: %s", b)
	}
}
