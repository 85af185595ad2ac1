package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/config"
	"github.com/tollgate/tollgate/pkg/semcache"
	"github.com/tollgate/tollgate/pkg/semcache/use"
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
	if stats.Stats.IndexPoints != 1 {
		t.Fatalf("index not rebuilt: %+v", stats.Stats)
	}
	if kind, again := ask(r2, "Which city is France's capital?"); kind != semcache.KindSemanticHit || again != answer {
		t.Fatalf("paraphrase after restart: %q %q", kind, again)
	}
}
