package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestWantsStream(t *testing.T) {
	tests := []struct {
		body string
		want bool
	}{
		{`{"model":"m","stream":true}`, true},
		{`{"model":"m", "stream" : true}`, true},
		{`{"model":"m","stream":false}`, false},
		{`{"model":"m"}`, false},
		{`{"stream_options":{"include_usage":true},"stream":true}`, true},
		{`{"messages":[{"content":"\"stream\" is a word"}],"stream":false}`, false},
	}
	for _, tt := range tests {
		if got := wantsStream([]byte(tt.body)); got != tt.want {
			t.Errorf("wantsStream(%s) = %v, want %v", tt.body, got, tt.want)
		}
	}
}

// TestUpstreamAndFloor checks the upstream speaks the wire format the
// gateway expects, directly and through the floor proxy.
func TestUpstreamAndFloor(t *testing.T) {
	up := httptest.NewServer(newUpstream())
	defer up.Close()
	u, _ := url.Parse(up.URL)
	floor := httptest.NewServer(newFloor(u))
	defer floor.Close()
	mix := chatMix(mixOptions{streamFraction: 0.5})
	mix = append(mix, embeddingsMix(mixOptions{})...)
	for _, base := range []struct{ name, url, auth string }{
		{"direct", up.URL, "Bearer " + upstreamAPIKey},
		{"floor", floor.URL, "Bearer anything"},
	} {
		for _, r := range mix[:7] {
			t.Run(base.name+"/"+r.name, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodPost, base.url+"/v1"+r.path, bytes.NewReader(r.body))
				req.Header.Set("Authorization", base.auth)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %s", resp.Status, body)
				}
				if !r.stream {
					var v struct {
						Usage *struct {
							TotalTokens int `json:"total_tokens"`
						} `json:"usage"`
					}
					if err := json.Unmarshal(body, &v); err != nil || v.Usage == nil || v.Usage.TotalTokens == 0 {
						t.Fatalf("not a response with usage (%v): %s", err, body)
					}
					return
				}
				if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
					t.Fatalf("content type %q", ct)
				}
				events := strings.Split(strings.TrimSpace(string(body)), "\n\n")
				if events[len(events)-1] != "data: [DONE]" {
					t.Fatalf("last event %q", events[len(events)-1])
				}
				var usage bool
				for _, ev := range events[:len(events)-1] {
					var c struct {
						Object string          `json:"object"`
						Usage  json.RawMessage `json:"usage"`
					}
					if err := json.Unmarshal([]byte(strings.TrimPrefix(ev, "data: ")), &c); err != nil || c.Object != "chat.completion.chunk" {
						t.Fatalf("bad event %q: %v", ev, err)
					}
					usage = usage || len(c.Usage) > 0
				}
				if !usage {
					t.Fatal("no usage chunk")
				}
			})
		}
	}
	// The upstream refuses a wrong credential, so a proxy that forwards the
	// client's key instead of the provider's shows up as errors.
	resp, err := http.Post(up.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no key: %s", resp.Status)
	}
}

func TestChatMixStreamFraction(t *testing.T) {
	for _, f := range []float64{0, 0.1, 0.5, 1} {
		mix := chatMix(mixOptions{streamFraction: f})
		streams := 0
		for _, r := range mix {
			if r.stream {
				streams++
				if !wantsStream(r.body) {
					t.Fatalf("%s: stream flag but body %s", r.name, r.body)
				}
			}
		}
		if got := float64(streams) / float64(len(mix)); got != f {
			t.Errorf("fraction %v: got %v", f, got)
		}
	}
}
