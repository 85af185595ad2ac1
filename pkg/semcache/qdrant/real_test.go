package qdrant

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	qc "github.com/qdrant/go-client/qdrant"

	"github.com/tollgate/tollgate/pkg/semcache"
)

// Tests against a real Qdrant run only when QDRANT_URL names its gRPC
// endpoint, e.g.
//
//	docker compose up -d qdrant
//	QDRANT_URL=http://localhost:6334 go test ./pkg/semcache/qdrant/ -run Real
//
// QDRANT_API_KEY is sent when set. Each test uses its own collection,
// tollgate_test_<random>_3 (_64 for the replica test), and drops it
// afterwards. The contract, and so these tests, include the entry payload
// (semcache.Point.Entry) round trip.

func realConfig(t *testing.T) Config {
	t.Helper()
	url := os.Getenv("QDRANT_URL")
	if url == "" {
		t.Skip("QDRANT_URL is not set; set it to a Qdrant gRPC endpoint (e.g. http://localhost:6334) to run tests against a real Qdrant")
	}
	return Config{
		URL:        url,
		APIKey:     os.Getenv("QDRANT_API_KEY"),
		Embedder:   "test",
		Dim:        3,
		Collection: fmt.Sprintf("tollgate_test_%08x_3", rand.Uint32()),
	}
}

func newRealIndex(t *testing.T, edit func(*Config)) *Index {
	t.Helper()
	cfg := realConfig(t)
	if edit != nil {
		edit(&cfg)
	}
	ix, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ix.client.DeleteCollection(ctx, ix.collection); err != nil {
			t.Logf("drop %s: %v", ix.collection, err)
		}
		ix.Close()
	})
	return ix
}

// TestRealContract runs the behaviour the fake is held to against Qdrant
// itself, once per quantisation, so the fake's model of filters, expiry,
// thresholds and deletes is checked against the real thing.
func TestRealContract(t *testing.T) {
	realConfig(t)
	for _, q := range []Quantization{QuantizationNone, QuantizationScalar, QuantizationBinary} {
		t.Run(string(q), func(t *testing.T) {
			runContract(t, func(t *testing.T) *Index {
				return newRealIndex(t, func(c *Config) { c.Quantization = q })
			})
		})
	}
}

// TestRealCollectionSetup checks that Qdrant accepted the collection and
// payload schema the adapter asks for.
func TestRealCollectionSetup(t *testing.T) {
	ix := newRealIndex(t, nil)
	if err := ix.Upsert(t.Context(), pt(1, "s", "t", "m", vx, t0)); err != nil {
		t.Fatal(err)
	}
	info, err := ix.client.GetCollectionInfo(t.Context(), ix.collection)
	if err != nil {
		t.Fatal(err)
	}
	params := info.GetConfig().GetParams().GetVectorsConfig().GetParams()
	if params.GetSize() != 3 || params.GetDistance() != qc.Distance_Cosine {
		t.Errorf("vectors = %v", params)
	}
	if info.GetConfig().GetQuantizationConfig().GetScalar() == nil {
		t.Errorf("quantization = %v, want scalar", info.GetConfig().GetQuantizationConfig())
	}
	schema := info.GetPayloadSchema()
	for field, want := range map[string]qc.PayloadSchemaType{
		"scope": qc.PayloadSchemaType_Keyword, "tenant": qc.PayloadSchemaType_Keyword,
		"model": qc.PayloadSchemaType_Keyword, "expires_at": qc.PayloadSchemaType_Integer,
	} {
		if got := schema[field].GetDataType(); got != want {
			t.Errorf("payload index %s = %v, want %v", field, got, want)
		}
	}
	if !schema["tenant"].GetParams().GetKeywordIndexParams().GetIsTenant() {
		t.Errorf("tenant index is not is_tenant: %v", schema["tenant"])
	}
}

// TestRealConcurrentFirstUse has two indexes (two gateways) race to create
// the same collection.
func TestRealConcurrentFirstUse(t *testing.T) {
	a := newRealIndex(t, nil)
	b, err := New(t.Context(), a.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var wg sync.WaitGroup
	for i, ix := range []*Index{a, b, a, b} {
		wg.Go(func() {
			if err := ix.Upsert(t.Context(), pt(uint64(i), "s", "t", "m", vx, t0.Add(time.Hour))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := a.Len(); n != 4 {
		t.Errorf("Len = %d, want 4", n)
	}
}

// TestRealReplicasShareEntries: two replicas with their own SQLite files
// share a real collection; entries travel in the payload.
func TestRealReplicasShareEntries(t *testing.T) {
	ix := newRealIndex(t, func(c *Config) {
		c.Dim = wordsDim
		c.Collection = strings.TrimSuffix(c.Collection, "_3") + "_64"
	})
	clock := &manualClock{t: time.Now().UTC().Truncate(time.Millisecond)}
	a := openReplica(t, openDB(t), ix, clock, 1)
	b := openReplica(t, openDB(t), ix, clock, 2)
	if err := a.Store(t.Context(), a.Prepare(chatReq(t, "acme", "gpt-4o-mini", storedQ), semcache.Controls{}), answerA(t, "stop"), "m", 250); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, tenant, kind string
	}{
		{"same tenant gets A's answer", "acme", semcache.KindSemanticHit},
		{"another tenant never", "globex", semcache.KindMiss},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, res, err := b.Lookup(t.Context(), b.Prepare(chatReq(t, tt.tenant, "gpt-4o-mini", storedQ), semcache.Controls{}))
			if err != nil || res.Kind != tt.kind {
				t.Fatalf("%+v, %v; want %s", res, err, tt.kind)
			}
			if e != nil && (string(e.Response.Raw) != rawA || e.Cost != 250) {
				t.Errorf("B served %+v", e)
			}
		})
	}
}
