package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/pkg/config"
	"github.com/tollgate/tollgate/pkg/semcache"
	"github.com/tollgate/tollgate/pkg/semcache/use"
	"github.com/tollgate/tollgate/pkg/tokens"
)

func TestDefaultThresholdsAgree(t *testing.T) {
	if float32(config.DefaultSemanticThreshold) != semcache.DefaultThreshold {
		t.Fatalf("config default %v, semcache default %v", config.DefaultSemanticThreshold, semcache.DefaultThreshold)
	}
}

// TestCacheSurvivesRestart: the quick start's caches are on, and their
// entries (exact and semantic: the index is rebuilt from SQLite) outlive the
// process.
func TestCacheSurvivesRestart(t *testing.T) {
	data := t.TempDir()
	env := map[string]string{config.AdminKeyEnv: "an-admin-key-of-enough-length"}
	r := start(t, env, "-data", data)
	m := devKeyRE.FindStringSubmatch(r.stdout.String())
	if m == nil {
		t.Fatalf("no development key printed:\n%s", r.stdout.String())
	}
	key := m[1]
	ask := func(r *running, text string) (string, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", r.url+"/v1/chat/completions", strings.NewReader(`{"model":"sim-small","messages":[{"role":"user","content":"`+text+`"}]}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		var c struct {
			Choices []struct{ Message struct{ Content string } }
		}
		json.Unmarshal(body, &c)
		return resp.Header.Get("x-tollgate-cache"), c.Choices[0].Message.Content
	}
	kind, answer := ask(r, "What is the capital of France?")
	if kind != semcache.KindMiss {
		t.Fatalf("first ask: %q", kind)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}

	r2 := start(t, env, "-data", data)
	var stats struct{ Stats semcache.Stats }
	if st := adminCall(t, r2.url, "GET", "/admin/cache", "", &stats); st != 200 || stats.Stats.Entries != 1 {
		t.Fatalf("after restart: %d %+v", st, stats)
	}
	if kind, again := ask(r2, "What is the capital of France?"); kind != semcache.KindHit || again != answer {
		t.Fatalf("after restart: %q %q, want hit %q", kind, again, answer)
	}
	if stats.Stats.Embedder != use.ModelName {
		t.Skipf("the semantic part needs the USE-lite model, which could not be fetched here (embedder %q)", stats.Stats.Embedder)
	}
	// The entry's vector is made by the first lookup in its scope after it
	// was stored (here, after the restart), so a paraphrase still finds it.
	if kind, again := ask(r2, "What is France's capital?"); kind != semcache.KindSemanticHit || again != answer {
		t.Fatalf("paraphrase after restart: %q %q", kind, again)
	}
}

// TestProviderEmbedder: the cache can embed with a configured provider's
// /v1/embeddings: one request per batch, the model's upstream name, the
// dimension asked at start, vectors made unit length.
func TestProviderEmbedder(t *testing.T) {
	var mu sync.Mutex
	var got []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.URL.Path+" "+r.Header.Get("Authorization")+" "+string(body))
		mu.Unlock()
		var req struct{ Input []string }
		json.Unmarshal(body, &req)
		var data []string
		for i := range req.Input {
			data = append(data, fmt.Sprintf(`{"object":"embedding","index":%d,"embedding":[3,4]}`, i))
		}
		fmt.Fprintf(w, `{"object":"list","model":"text-embedding-3-small","data":[%s],"usage":{"prompt_tokens":2,"total_tokens":2}}`, strings.Join(data, ","))
	}))
	defer up.Close()
	cfg := config.Default(func(string) string { return "" })
	cfg.Providers = append(cfg.Providers, config.Provider{Name: "emb", Type: "openai", BaseURL: up.URL + "/v1", APIKey: "sk-emb"})
	cfg.Models = append(cfg.Models, config.Model{Name: "cache-embedder", Provider: "emb", UpstreamModel: "text-embedding-3-small", Mode: "embedding"})
	cfg.Cache.Semantic.Embedder, cfg.Cache.Semantic.EmbeddingModel = "provider", "cache-embedder"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	clients, err := buildProviders(cfg, tokens.NewCounter(), nil)
	if err != nil {
		t.Fatal(err)
	}
	emb, err := openEmbedder(context.Background(), cfg, clients, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if emb.Dim() != 2 || emb.Name() != "provider:emb/text-embedding-3-small-2" {
		t.Fatalf("dim %d name %q", emb.Dim(), emb.Name())
	}
	vs, err := emb.Embed(context.Background(), []string{"hello", "world"})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[1][0] != 0.6 || vs[1][1] != 0.8 {
		t.Fatalf("vectors %v", vs)
	}
	want := []string{
		`/v1/embeddings Bearer sk-emb {"model":"text-embedding-3-small","input":["dimension probe"]}`,
		`/v1/embeddings Bearer sk-emb {"model":"text-embedding-3-small","input":["hello","world"]}`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("upstream received\n%v\nwant\n%v", got, want)
	}
}
