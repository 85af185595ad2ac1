package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"
)

// The harness runs its upstream and floor proxy as child processes of its own
// binary (-role upstream, -role floor) so that the CPU each one burns can be
// read from /proc and attributed to it alone. A child listens on a loopback
// port chosen by the kernel and announces it as the first line of stdout.

const addrPrefix = "listening "

// upstreamAPIKey is what the gateway and the floor send upstream and what the
// direct target sends itself; the upstream rejects anything else, so a proxy
// that drops or mangles credentials shows up as errors.
const upstreamAPIKey = "test"

// runRole runs a child role until ctx ends.
func runRole(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("load -role", flag.ContinueOnError)
	role := fs.String("role", "", "upstream | floor | otlp-sink")
	target := fs.String("upstream", "", "floor: the upstream's base URL (http://host:port)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var h http.Handler
	switch *role {
	case "upstream":
		h = newUpstream()
	case "floor":
		u, err := url.Parse(*target)
		if err != nil || u.Host == "" {
			return fmt.Errorf("floor: -upstream %q is not a URL", *target)
		}
		h = newFloor(u)
	case "otlp-sink":
		h = http.HandlerFunc(otlpSink)
	default:
		return fmt.Errorf("unknown role %q", *role)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "%s%s\n", addrPrefix, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	}
}

// readAddr reads the child's announcement line.
func readAddr(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("no address announced: %w", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), addrPrefix)
	if !ok {
		return "", fmt.Errorf("unexpected first line %q", line)
	}
	return addr, nil
}

// newFloor is the floor: the standard library's reverse proxy to the
// upstream, with a transport tuned the way the gateway's is (a large idle
// pool per host, 32 KiB buffers). Nothing can proxy HTTP in Go for much less,
// so it is what the gateway's cost is measured against.
func newFloor(upstream *url.URL) http.Handler {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		ReadBufferSize:      32 << 10,
		WriteBufferSize:     32 << 10,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(upstream)
			// Like a gateway, swap the client's credential for the upstream's.
			r.Out.Header.Set("Authorization", "Bearer "+upstreamAPIKey)
		},
		Transport: tr,
		// ReverseProxy already flushes text/event-stream at once; -1 makes
		// every response behave so, as a gateway relaying tokens would.
		FlushInterval: -1,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Without full duplex, the server discards what it believes is an
		// unread request body when the proxy flushes the response header of
		// a stream, racing with the transport still finishing the upstream
		// request (reading the body's EOF); the transport then fails the
		// write and closes the upstream connection mid-stream. Seen as
		// "unexpected EOF" on a few streams per second once the machine is
		// slow (race detector, busy neighbours). Full duplex leaves the
		// body to the transport and costs nothing.
		_ = http.NewResponseController(w).EnableFullDuplex()
		rp.ServeHTTP(w, r)
	})
}

// upstream answers like an OpenAI-compatible provider that generates
// instantly. Every body is encoded once at start so the upstream spends as
// little as possible of the two cores it shares with the targets.
type upstream struct {
	chat, toolCall, embedding []byte
	streamEvents              [][]byte
	// The answer to the proxy-guards prompt (guards.go), whole and
	// streamed.
	guardChat   []byte
	guardEvents [][]byte
}

func newUpstream() *upstream {
	u := &upstream{}
	created := int64(1735689600)
	u.chat = mustJSON(map[string]any{
		"id": "chatcmpl-bench", "object": "chat.completion", "created": created, "model": "bench-model",
		"system_fingerprint": "fp_bench",
		"choices": []any{map[string]any{
			"index": 0, "finish_reason": "stop", "logprobs": nil,
			"message": map[string]any{"role": "assistant", "refusal": nil,
				"content": "The capital of France is Paris. It has been the country's capital since the 10th century " +
					"and is home to about two million people in the city proper, and over twelve million in the wider region."},
		}},
		"usage": map[string]any{"prompt_tokens": 42, "completion_tokens": 48, "total_tokens": 90,
			"prompt_tokens_details":     map[string]any{"cached_tokens": 0},
			"completion_tokens_details": map[string]any{"reasoning_tokens": 0}},
	})
	u.toolCall = mustJSON(map[string]any{
		"id": "chatcmpl-bench-tool", "object": "chat.completion", "created": created, "model": "bench-model",
		"choices": []any{map[string]any{
			"index": 0, "finish_reason": "tool_calls",
			"message": map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{
				"id": "call_bench", "type": "function",
				"function": map[string]any{"name": "get_weather", "arguments": `{"city":"Paris","unit":"celsius"}`},
			}}},
		}},
		"usage": map[string]any{"prompt_tokens": 180, "completion_tokens": 21, "total_tokens": 201},
	})
	vec := make([]float64, 256)
	for i := range vec {
		vec[i] = float64((i*7919)%2000-1000) / 1000
	}
	u.embedding = mustJSON(map[string]any{
		"object": "list", "model": "bench-embed",
		"data":  []any{map[string]any{"object": "embedding", "index": 0, "embedding": vec}},
		"usage": map[string]any{"prompt_tokens": 9, "total_tokens": 9},
	})
	chunk := func(delta map[string]any, finish any, usage any) []byte {
		c := map[string]any{"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": created,
			"model": "bench-model", "choices": []any{}}
		if delta != nil {
			c["choices"] = []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}
		}
		if usage != nil {
			c["usage"] = usage
		}
		return append(append([]byte("data: "), mustJSON(c)...), "\n\n"...)
	}
	u.streamEvents = append(u.streamEvents, chunk(map[string]any{"role": "assistant", "content": ""}, nil, nil))
	for _, w := range []string{"The capital", " of France", " is Paris.", " It has been", " the capital", " since the 10th century."} {
		u.streamEvents = append(u.streamEvents, chunk(map[string]any{"content": w}, nil, nil))
	}
	u.streamEvents = append(u.streamEvents,
		chunk(map[string]any{}, "stop", nil),
		chunk(nil, nil, map[string]any{"prompt_tokens": 42, "completion_tokens": 20, "total_tokens": 62}),
		[]byte("data: [DONE]\n\n"))

	guardUsage := map[string]any{"prompt_tokens": 460, "completion_tokens": 110, "total_tokens": 570}
	u.guardChat = mustJSON(map[string]any{
		"id": "chatcmpl-bench-guards", "object": "chat.completion", "created": created, "model": "bench-model",
		"choices": []any{map[string]any{
			"index": 0, "finish_reason": "stop", "logprobs": nil,
			"message": map[string]any{"role": "assistant", "refusal": nil, "content": guardAnswer},
		}},
		"usage": guardUsage,
	})
	// 24-byte deltas, as a provider's tokens arrive: some placeholders and
	// the answer's own address are split over two of them.
	u.guardEvents = append(u.guardEvents, chunk(map[string]any{"role": "assistant", "content": ""}, nil, nil))
	for i := 0; i < len(guardAnswer); i += 24 {
		u.guardEvents = append(u.guardEvents, chunk(map[string]any{"content": guardAnswer[i:min(i+24, len(guardAnswer))]}, nil, nil))
	}
	u.guardEvents = append(u.guardEvents, chunk(map[string]any{}, "stop", nil), chunk(nil, nil, guardUsage), []byte("data: [DONE]\n\n"))
	return u
}

// otlpSink is a collector that discards what it is sent: an empty
// protobuf body is a valid ExportTraceServiceResponse, a full success.
func otlpSink(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, `{"error":{"message":"method not allowed","type":"invalid_request_error"}}`, http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+upstreamAPIKey {
		http.Error(w, `{"error":{"message":"bad api key","type":"invalid_request_error","code":"invalid_api_key"}}`, http.StatusUnauthorized)
		return
	}
	// Read the whole body: the connection is reused only once it is drained.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	h := w.Header()
	h["X-Request-Id"] = []string{"req-bench"}
	switch r.URL.Path {
	case "/v1/chat/completions":
		guarded := bytes.Contains(body, []byte(guardBookingRef))
		if wantsStream(body) {
			h["Content-Type"] = []string{"text/event-stream"}
			h["Cache-Control"] = []string{"no-cache"}
			f, _ := w.(http.Flusher)
			events := u.streamEvents
			if guarded {
				events = u.guardEvents
			}
			for _, ev := range events {
				if _, err := w.Write(ev); err != nil {
					return
				}
				// A real provider flushes each event as it is generated;
				// doing the same makes the proxies relay events one by one.
				if f != nil {
					f.Flush()
				}
			}
			return
		}
		resp := u.chat
		switch {
		case guarded:
			resp = u.guardChat
		case bytes.Contains(body, []byte(`"tools"`)):
			resp = u.toolCall
		}
		h["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(resp)
	case "/v1/embeddings":
		h["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(u.embedding)
	default:
		http.Error(w, `{"error":{"message":"not found","type":"invalid_request_error"}}`, http.StatusNotFound)
	}
}

// wantsStream reports whether the JSON body has "stream": true at any depth,
// without decoding it: the upstream only needs a hint, and a full decode
// would cost more CPU than the proxies being measured.
func wantsStream(body []byte) bool {
	for rest := body; ; {
		i := bytes.Index(rest, []byte(`"stream"`))
		if i < 0 {
			return false
		}
		rest = rest[i+len(`"stream"`):]
		v := bytes.TrimLeft(rest, " \t\r\n")
		if len(v) > 0 && v[0] == ':' {
			if bytes.HasPrefix(bytes.TrimLeft(v[1:], " \t\r\n"), []byte("true")) {
				return true
			}
		}
	}
}

// childRole reports whether this process was started as a child of the
// harness (see startChild), so both main and TestMain can divert to runRole.
func childRole() bool { return os.Getenv(childEnv) == "1" }

const childEnv = "TOLLGATE_LOAD_CHILD"
