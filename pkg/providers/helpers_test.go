package providers

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/providers")

// golden compares got with testdata/providers/name, rewriting it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("..", "..", "testdata", "providers", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update if the change is intended)\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func mustChat(t testing.TB, body string) *llm.ChatRequest {
	t.Helper()
	c, err := llm.DecodeChatRequest([]byte(body))
	if err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return c
}

func mustEmbedding(t testing.TB, body string) *llm.EmbeddingRequest {
	t.Helper()
	e, err := llm.DecodeEmbeddingRequest([]byte(body))
	if err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return e
}

// fakeClock records the sleeps a Sim asks for and returns at once, so
// tests see the simulated timing without waiting for it.
type fakeClock struct {
	mu     sync.Mutex
	sleeps []time.Duration
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	f.sleeps = append(f.sleeps, d)
	f.mu.Unlock()
	return ctx.Err()
}

func (f *fakeClock) Sleeps() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.sleeps...)
}

var fixedNow = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

func newTestSim(t testing.TB, cfg SimConfig) (*Sim, *fakeClock) {
	t.Helper()
	clock := &fakeClock{}
	if cfg.Sleep == nil {
		cfg.Sleep = clock.Sleep
	}
	if cfg.Now == nil {
		cfg.Now = fixedNow
	}
	s, err := NewSim(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, clock
}

func asLLMError(t *testing.T, err error) *llm.Error {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error, got nil")
	}
	e, ok := llm.AsError(err)
	if !ok {
		t.Fatalf("error %v (%T) is not an *llm.Error", err, err)
	}
	return e
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

// sseStreamOver runs a stream's lifecycle and dec over raw bytes, as if an
// upstream named "fuzz" had answered them.
func sseStreamOver(data []byte, dec eventDecoder) *sseStream {
	s, _ := newSSEStream(context.Background(), &upstream{name: "fuzz"}, dec)
	s.body, s.sse = io.NopCloser(bytes.NewReader(data)), newSSEReader(bytes.NewReader(data), 0)
	return s
}

// holdStream answers with an event stream of events, then holds it open
// until the client leaves, which it reports on seen.
func holdStream(events string) (h http.HandlerFunc, seen <-chan struct{}) {
	left := make(chan struct{}, 1)
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, events)
		w.(http.Flusher).Flush()
		io.Copy(io.Discard, r.Body) // the server notices a disconnect only once the body is read
		<-r.Context().Done()
		left <- struct{}{}
	}, left
}

// wantClientCancel checks that a client's cancel stayed context.Canceled,
// which the gateway neither retries nor holds against the upstream.
func wantClientCancel(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if _, ok := llm.AsError(err); ok {
		t.Fatalf("client cancel became an llm.Error: %v", err)
	}
}

// cancelMidStream reads the first chunk of p's stream, cancels the
// caller's context and checks that the next Recv reports the cancel.
func cancelMidStream(t *testing.T, p Provider, req *Request) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := p.Stream(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = st.Recv()
	wantClientCancel(t, err)
}

// closeMidStream opens p's stream, closes it twice and checks that Recv
// then fails.
func closeMidStream(t *testing.T, p Provider, req *Request) {
	t.Helper()
	st, err := p.Stream(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	st.Close()
	if _, err := st.Recv(); err == nil || err == io.EOF {
		t.Fatalf("Recv after Close: %v", err)
	}
}

// wantIdleTimeout checks that the first Recv of p's stream, which the
// upstream leaves silent, ends as a retryable 504.
func wantIdleTimeout(t *testing.T, p Provider, req *Request) {
	t.Helper()
	st, err := p.Stream(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = st.Recv()
	if e := asLLMError(t, err); e.Status != 504 || !e.Retryable {
		t.Errorf("%+v", e)
	}
}

// streamToEnd reads p's stream of req to its clean end.
func streamToEnd(t *testing.T, p Provider, req *Request) {
	t.Helper()
	st, err := p.Stream(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := st.Recv(); err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
	}
	st.Close()
}

// wantRejected checks that a config was rejected with an error mentioning
// each of want.
func wantRejected(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// runJSONAndStream runs f as two subtests: name for a JSON call, and
// name/stream for a stream.
func runJSONAndStream(t *testing.T, name string, f func(t *testing.T, stream bool)) {
	t.Helper()
	for _, stream := range []bool{false, true} {
		sub := name
		if stream {
			sub += "/stream"
		}
		t.Run(sub, func(t *testing.T) { f(t, stream) })
	}
}
