package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/semcache"
)

// TestQdrantDownAtStart: with cache.semantic.index qdrant and nothing
// listening at its URL, the gateway starts, serves misses and exact hits,
// /readyz stays 200 and says why it is degraded, and GET /admin/cache shows
// the index's state with the error. (Semantic hits resuming when Qdrant
// returns is shown against the in-process gRPC fake in pkg/semcache/qdrant:
// TestCacheWithQdrantDownAtStart.)
func TestQdrantDownAtStart(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	dir := t.TempDir()
	path := filepath.Join(dir, "tollgate.yaml")
	body := "admin_key: an-admin-key-of-enough-length\ndev_key: false\nproviders:\n  - {name: sim, type: sim}\n" +
		"cache:\n  semantic: {embedder: hashed, index: qdrant, qdrant: {url: \"http://" + addr + "\"}}\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	r := start(t, nil, "-config", path, "-data", dir)
	_, key := createKey(t, r.url)

	ask := func() string {
		t.Helper()
		req, _ := http.NewRequest("POST", r.url+"/v1/chat/completions", strings.NewReader(`{"model":"sim-small","messages":[{"role":"user","content":"What is the capital of France?"}]}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		return resp.Header.Get("x-tollgate-cache")
	}
	for i, want := range []string{semcache.KindMiss, semcache.KindHit} {
		if got := ask(); got != want {
			t.Fatalf("ask %d: cache %q, want %q", i, got, want)
		}
	}

	resp, err := http.Get(r.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"status":"degraded"`) ||
		!strings.Contains(string(b), "semantic cache index (qdrant) unavailable since") {
		t.Errorf("/readyz = %d %s, want 200, degraded, with the reason", resp.StatusCode, b)
	}
	if strings.Contains(string(b), addr) {
		t.Errorf("/readyz (unauthenticated) names the Qdrant address: %s", b)
	}

	var stats struct{ Stats semcache.Stats }
	if st := adminCall(t, r.url, "GET", "/admin/cache", "", &stats); st != http.StatusOK {
		t.Fatalf("GET /admin/cache: %d", st)
	}
	ix := stats.Stats.Index
	if ix == nil || ix.Kind != "qdrant" || ix.Ready || !strings.Contains(ix.Error, addr) || ix.Since.IsZero() || stats.Stats.Entries != 1 {
		t.Errorf("GET /admin/cache index = %+v (entries %d)", ix, stats.Stats.Entries)
	}
}
