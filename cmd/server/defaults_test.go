package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/config"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/semcache"
	"github.com/tollgate/tollgate/pkg/semcache/qdrant"
	"github.com/tollgate/tollgate/pkg/semcache/use"
	"github.com/tollgate/tollgate/pkg/sqlite"
)

// TestComponentFallbacksAreTheConfigDefaults: every default lives in
// pkg/config and the server passes each value explicitly. Some components
// keep a fallback for callers that build them directly (tests, tools);
// config may not import them, nor they config, so this test, in the one
// package that sees both, holds each fallback equal to the config's value.
func TestComponentFallbacksAreTheConfigDefaults(t *testing.T) {
	retry, breaker := config.DefaultRetry(), config.DefaultBreaker()
	backoff, routerBackoff := backoffOf(&retry), router.DefaultBackoff()
	for _, x := range []struct {
		name              string
		config, component any
	}{
		{"cache.ttl", config.DefaultCacheTTL, semcache.DefaultTTL},
		{"cache.max_bytes", config.DefaultCacheMaxBytes, semcache.DefaultMaxBytes},
		{"cache.max_temperature", config.DefaultMaxTemperature, semcache.DefaultMaxTemperature},
		{"cache.semantic.threshold", float32(config.DefaultSemanticThreshold), semcache.DefaultThreshold},
		{"cache.semantic.unaligned_threshold", float32(config.DefaultUnalignedThreshold), semcache.DefaultUnalignedThreshold},
		{"cache.semantic.verify.timeout", config.DefaultVerifyTimeout, gateway.DefaultJudgeTimeout},
		{"cache.semantic.dimensions (hashed)", config.DefaultHashedDimensions, use.Dim},
		{"cache.semantic.qdrant.timeout", config.DefaultQdrantTimeout, qdrant.DefaultTimeout},
		{"cache.semantic.qdrant.quantization", qdrant.Quantization(config.DefaultQdrantQuantization), qdrant.DefaultQuantization},
		{"providers[].breaker", breakerSettings(&breaker), router.DefaultBreakerSettings()},
		{"providers[].retry.max_attempts", backoff.MaxAttempts, routerBackoff.MaxAttempts},
		{"providers[].retry.base", backoff.Base, routerBackoff.Base},
		{"providers[].retry.max", backoff.Max, routerBackoff.Max},
		{"routes.*.strategy", router.Strategy(config.DefaultStrategy), router.StrategyCheapest},
		{"routes.*.expected_output_tokens", config.DefaultExpectedOutputTokens, router.DefaultExpectedOutput},
		{"budget.defaults.on_exhausted", budget.OnExhausted(config.DefaultOnExhausted), budget.Reject},
		{"budget...alert_thresholds", config.DefaultAlertThresholds(), budget.DefaultThresholds},
	} {
		if !reflect.DeepEqual(x.config, x.component) {
			t.Errorf("%s: config default %v, component fallback %v", x.name, x.config, x.component)
		}
	}
}

// TestMaxTemperatureZeroMeansZero: `max_temperature: 0` caches requests at
// temperature 0 (or none) and nothing warmer; it is not taken for "unset".
func TestMaxTemperatureZeroMeansZero(t *testing.T) {
	cfg, err := config.Parse(strings.NewReader("cache: {max_temperature: 0, semantic: {enabled: false}}\n"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "tollgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	parts, err := openCache(context.Background(), cfg, db, nil, slog.New(slog.DiscardHandler), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer parts.close()
	for _, tt := range []struct {
		temperature string
		cacheable   bool
	}{{"", true}, {`,"temperature":0`, true}, {`,"temperature":0.01`, false}, {`,"temperature":1`, false}} {
		chat, err := llm.DecodeChatRequest([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]` + tt.temperature + `}`))
		if err != nil {
			t.Fatal(err)
		}
		if ok, why := parts.cache.Cacheable(semcache.Request{Tenant: "k", Model: "m", Chat: chat}); ok != tt.cacheable {
			t.Errorf("temperature %q: cacheable %v (%s), want %v", tt.temperature, ok, why, tt.cacheable)
		}
	}
}
