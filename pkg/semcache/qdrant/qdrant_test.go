package qdrant

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	qc "github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/safe"
	"github.com/tollgate/tollgate/pkg/semcache"
)

func newFakeIndex(t *testing.T, edit func(*Config)) (*Index, *fakeQdrant) {
	t.Helper()
	f, cfg := startFake(t)
	if edit != nil {
		edit(&cfg)
	}
	ix, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix, f
}

func TestContractFake(t *testing.T) {
	runContract(t, func(t *testing.T) *Index {
		ix, _ := newFakeIndex(t, nil)
		return ix
	})
}

func TestNewChecksHealthAndSetsCollectionUp(t *testing.T) {
	ix, f := newFakeIndex(t, nil)
	for method, want := range map[string]int{"HealthCheck": 1, "CollectionExists": 1, "Create": 1, "CreateFieldIndex": 4} {
		if n := f.count(method); n != want {
			t.Errorf("%s calls = %d, want %d", method, n, want)
		}
	}
	if st := ix.IndexStatus(); !st.Ready || st.Kind != "qdrant" || st.Error != "" {
		t.Errorf("status %+v, want ready", st)
	}
}

func TestNewCreatesCollection(t *testing.T) {
	scalar := qc.NewQuantizationScalar(&qc.ScalarQuantization{
		Type: qc.QuantizationType_Int8, Quantile: qc.PtrOf(float32(0.99)), AlwaysRam: qc.PtrOf(true),
	})
	binary := qc.NewQuantizationBinary(&qc.BinaryQuantization{AlwaysRam: qc.PtrOf(true)})
	tests := []struct {
		name         string
		quantization Quantization
		want         *qc.QuantizationConfig
	}{
		{name: "default is scalar int8", quantization: "", want: scalar},
		{name: "scalar", quantization: QuantizationScalar, want: scalar},
		{name: "binary", quantization: QuantizationBinary, want: binary},
		{name: "none", quantization: QuantizationNone, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix, f := newFakeIndex(t, func(c *Config) { c.Embedder = "BGE small/en v1.5"; c.Quantization = tt.quantization })
			if err := ix.Upsert(t.Context(), pt(1, "s", "t", "m", vx, t0)); err != nil {
				t.Fatal(err)
			}
			const name = "tollgate_bge_small_en_v1_5_3"
			creates := requests[*qc.CreateCollection](f, "Create")
			if len(creates) != 1 {
				t.Fatalf("Create calls = %d, want 1", len(creates))
			}
			want := &qc.CreateCollection{
				CollectionName:     name,
				VectorsConfig:      qc.NewVectorsConfig(&qc.VectorParams{Size: 3, Distance: qc.Distance_Cosine}),
				QuantizationConfig: tt.want,
			}
			if !proto.Equal(creates[0], want) {
				t.Errorf("Create =\n%v\nwant\n%v", creates[0], want)
			}
			keyword := func(field string, p *qc.KeywordIndexParams) *qc.CreateFieldIndexCollection {
				return &qc.CreateFieldIndexCollection{
					CollectionName: name, Wait: qc.PtrOf(true), FieldName: field,
					FieldType: qc.FieldType_FieldTypeKeyword.Enum(), FieldIndexParams: qc.NewPayloadIndexParamsKeyword(p),
				}
			}
			wantIndexes := []*qc.CreateFieldIndexCollection{
				keyword("scope", &qc.KeywordIndexParams{}),
				keyword("tenant", &qc.KeywordIndexParams{IsTenant: qc.PtrOf(true)}),
				keyword("model", &qc.KeywordIndexParams{}),
				{
					CollectionName: name, Wait: qc.PtrOf(true), FieldName: "expires_at",
					FieldType: qc.FieldType_FieldTypeInteger.Enum(),
					FieldIndexParams: qc.NewPayloadIndexParamsInt(&qc.IntegerIndexParams{
						Lookup: qc.PtrOf(false), Range: qc.PtrOf(true),
					}),
				},
			}
			got := requests[*qc.CreateFieldIndexCollection](f, "CreateFieldIndex")
			if len(got) != len(wantIndexes) {
				t.Fatalf("CreateFieldIndex calls = %d, want %d", len(got), len(wantIndexes))
			}
			for i := range got {
				if !proto.Equal(got[i], wantIndexes[i]) {
					t.Errorf("index request\n got %v\nwant %v", got[i], wantIndexes[i])
				}
			}
			if ix.Collection() != name {
				t.Errorf("Collection() = %q", ix.Collection())
			}
		})
	}
}

func TestConcurrentFirstUseCreatesOnce(t *testing.T) {
	ix, f := newFakeIndex(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			if i%2 == 0 {
				errs <- ix.Upsert(t.Context(), pt(uint64(i), "s", "t", "m", vx, t0))
			} else {
				_, _, err := ix.Search(t.Context(), "s", vx, 0.5, t0)
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := f.count("Create"); n != 1 {
		t.Errorf("Create calls = %d, want 1", n)
	}
	if n := f.count("CollectionExists"); n != 1 {
		t.Errorf("CollectionExists calls = %d, want 1", n)
	}
	if n := f.count("CreateFieldIndex"); n != 4 {
		t.Errorf("CreateFieldIndex calls = %d, want 4", n)
	}
}

func TestExistingCollectionIsReused(t *testing.T) {
	f, cfg := startFake(t)
	for i := range 2 {
		ix, err := New(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := ix.Upsert(t.Context(), pt(uint64(i), "s", "t", "m", vx, t0)); err != nil {
			t.Fatal(err)
		}
		ix.Close()
	}
	if n := f.count("Create"); n != 1 {
		t.Errorf("Create calls = %d, want 1 for two gateways", n)
	}
}

func TestCreateRaceWithAnotherGateway(t *testing.T) {
	f, cfg := startFake(t)
	// Another gateway creates the collection between our existence check
	// and our create; Qdrant then refuses ours as InvalidArgument.
	f.setFail(func(method string) error {
		if method != "Create" {
			return nil
		}
		f.setFail(nil)
		other, err := New(context.Background(), cfg)
		if err != nil || !other.Ready() {
			t.Errorf("the other gateway: %v, ready %v", err, other.Ready())
		}
		other.Close()
		return status.Error(codes.InvalidArgument, "Wrong input: Collection `tollgate_test_3` already exists!")
	})
	ix, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if !ix.Ready() {
		t.Fatalf("not ready after losing the create race: %+v", ix.IndexStatus())
	}
	if err := ix.Upsert(t.Context(), pt(1, "s", "t", "m", vx, t0.Add(time.Hour))); err != nil {
		t.Fatalf("Upsert after losing the create race: %v", err)
	}
	if _, ok, err := ix.Search(t.Context(), "s", vx, 0.9, t0); err != nil || !ok {
		t.Fatalf("Search = %v, %v", ok, err)
	}
}

func TestSearchRequest(t *testing.T) {
	tests := []struct {
		name         string
		quantization Quantization
		exact        bool
		wantParams   *qc.SearchParams
	}{
		{name: "scalar rescores", quantization: QuantizationScalar, wantParams: &qc.SearchParams{
			Quantization: &qc.QuantizationSearchParams{Rescore: qc.PtrOf(true)},
		}},
		{name: "binary oversamples", quantization: QuantizationBinary, wantParams: &qc.SearchParams{
			Quantization: &qc.QuantizationSearchParams{Rescore: qc.PtrOf(true), Oversampling: qc.PtrOf(2.0)},
		}},
		{name: "none", quantization: QuantizationNone, wantParams: &qc.SearchParams{}},
		{name: "exact", quantization: QuantizationNone, exact: true, wantParams: &qc.SearchParams{Exact: qc.PtrOf(true)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix, f := newFakeIndex(t, func(c *Config) { c.Quantization = tt.quantization; c.ExactSearch = tt.exact })
			now := time.UnixMilli(1_772_000_000_123)
			for _, scope := range []string{"s1", "s2"} {
				if _, _, err := ix.Search(t.Context(), scope, vxy, 0.87, now); err != nil {
					t.Fatal(err)
				}
			}
			qs := requests[*qc.QueryPoints](f, "Query")
			if len(qs) != 2 {
				t.Fatalf("Query calls = %d, want 2", len(qs))
			}
			for i, q := range qs {
				want := &qc.QueryPoints{
					CollectionName: "tollgate_test_3",
					Query:          qc.NewQueryDense(vxy),
					Filter: &qc.Filter{Must: []*qc.Condition{
						qc.NewMatchKeyword("scope", []string{"s1", "s2"}[i]),
						qc.NewRange("expires_at", &qc.Range{Gt: qc.PtrOf(1_772_000_000_123.0)}),
					}},
					ScoreThreshold: qc.PtrOf(float32(0.87)),
					Limit:          qc.PtrOf(uint64(1)),
					WithPayload:    qc.NewWithPayloadInclude("entry"),
					Params:         tt.wantParams,
				}
				if !proto.Equal(q, want) {
					t.Errorf("Query =\n%v\nwant\n%v", q, want)
				}
			}
		})
	}
}

func TestUpsertRequest(t *testing.T) {
	exp := time.UnixMilli(1_772_000_000_999)
	withEntry := func(entry string) semcache.Point {
		p := pt(1<<63+7, "scope", "acme", "gpt-4o", vx, exp)
		if entry != "" {
			p.Entry = []byte(entry)
		}
		return p
	}
	tests := []struct {
		name    string
		point   semcache.Point
		payload map[string]any
		wantErr string
	}{
		{name: "without entry", point: withEntry(""), payload: map[string]any{
			"scope": "scope", "tenant": "acme", "model": "gpt-4o", "expires_at": int64(1_772_000_000_999),
		}},
		{name: "with entry", point: withEntry(`{"v":1,"query":"caf\u00e9 ✓"}`), payload: map[string]any{
			"scope": "scope", "tenant": "acme", "model": "gpt-4o", "expires_at": int64(1_772_000_000_999),
			"entry": `{"v":1,"query":"caf\u00e9 ✓"}`,
		}},
		{name: "entry not UTF-8", point: withEntry("\xff\xfe"), wantErr: "not UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix, f := newFakeIndex(t, nil)
			err := ix.Upsert(t.Context(), tt.point)
			ups := requests[*qc.UpsertPoints](f, "Upsert")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || len(ups) != 0 {
					t.Fatalf("Upsert = %v with %d requests, want %q and none", err, len(ups), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := &qc.UpsertPoints{
				CollectionName: "tollgate_test_3",
				Wait:           qc.PtrOf(true),
				Points: []*qc.PointStruct{{
					Id:      qc.NewIDNum(1<<63 + 7),
					Vectors: qc.NewVectorsDense(vx),
					Payload: qc.NewValueMap(tt.payload),
				}},
			}
			if len(ups) != 1 || !proto.Equal(ups[0], want) {
				t.Errorf("Upsert = %v\nwant %v", ups, want)
			}
		})
	}
}

func TestDeleteRequests(t *testing.T) {
	ix, f := newFakeIndex(t, nil)
	ctx := t.Context()
	if err := ix.Upsert(ctx, pt(1, "s", "acme", "gpt", vx, t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.DeleteExpired(ctx, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.DeleteWhere(ctx, semcache.Filter{Tenant: "acme", Model: "gpt"}); err != nil {
		t.Fatal(err)
	}
	counts := requests[*qc.CountPoints](f, "Count")
	if len(counts) != 2 {
		t.Fatalf("Count calls = %d, want 2", len(counts))
	}
	wantExpired := &qc.Filter{Must: []*qc.Condition{qc.NewRange("expires_at", &qc.Range{Lte: qc.PtrOf(float64(t0.UnixMilli()))})}}
	if !proto.Equal(counts[0].GetFilter(), wantExpired) || !counts[0].GetExact() {
		t.Errorf("expired count = %v", counts[0])
	}
	wantWhere := &qc.Filter{Must: []*qc.Condition{qc.NewMatchKeyword("tenant", "acme"), qc.NewMatchKeyword("model", "gpt")}}
	if !proto.Equal(counts[1].GetFilter(), wantWhere) {
		t.Errorf("where count = %v", counts[1])
	}
	// The expired point was deleted by the first call, so the second counted
	// nothing and must not have sent a delete.
	dels := requests[*qc.DeletePoints](f, "Delete")
	if len(dels) != 1 {
		t.Fatalf("Delete calls = %d, want 1", len(dels))
	}
	if !proto.Equal(dels[0].GetPoints().GetFilter(), wantExpired) || !dels[0].GetWait() {
		t.Errorf("delete = %v", dels[0])
	}
}

func TestSweeper(t *testing.T) {
	var mu sync.Mutex
	now := t0
	ix, f := newFakeIndex(t, func(c *Config) {
		c.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	f.setDeleted(make(chan []uint64, 1))
	ctx := t.Context()
	err := ix.Upsert(ctx,
		pt(1, "s", "t", "m", vx, t0.Add(-time.Second)),
		pt(2, "s", "t", "m", vy, t0.Add(time.Minute)),
		pt(3, "s", "t", "m", vxy, t0.Add(time.Hour)),
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.StartSweeper(ctx, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := ix.StartSweeper(ctx, time.Millisecond); err == nil {
		t.Error("a second sweeper started")
	}
	if got := <-f.deleted; len(got) != 1 || got[0] != 1 {
		t.Fatalf("first sweep deleted %v, want [1]", got)
	}
	mu.Lock()
	now = t0.Add(2 * time.Minute)
	mu.Unlock()
	if got := <-f.deleted; len(got) != 1 || got[0] != 2 {
		t.Fatalf("second sweep deleted %v, want [2]", got)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ix.StartSweeper(ctx, time.Millisecond); !errors.Is(err, ErrClosed) {
		t.Errorf("StartSweeper after Close = %v, want ErrClosed", err)
	}
}

// TestSweeperPanics: the sweeper runs under the supervisor. Two panics in
// a row (the clock, here) are logged and the sweeper restarted, and it then
// sweeps; one that always panics is given up and reported; Close returns in
// both cases.
func TestSweeperPanics(t *testing.T) {
	tests := []struct {
		name   string
		panics int32
		failed bool
	}{
		{"restarted after two panics", 2, false},
		{"given up after five", 1 << 30, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var left atomic.Int32 // armed after New, which reads the clock once
			sup := safe.New(safe.Options{Logger: slog.New(slog.DiscardHandler), Pause: time.Millisecond})
			ix, f := newFakeIndex(t, func(c *Config) {
				c.Supervisor = sup
				c.Now = func() time.Time {
					if left.Add(-1) >= 0 {
						panic("injected sweep panic")
					}
					return t0
				}
			})
			left.Store(tt.panics)
			f.setDeleted(make(chan []uint64, 1))
			if err := ix.Upsert(t.Context(), pt(1, "s", "t", "m", vx, t0.Add(-time.Second))); err != nil {
				t.Fatal(err)
			}
			if err := ix.StartSweeper(t.Context(), time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if tt.failed {
				deadline := time.Now().Add(10 * time.Second)
				for sup.Err() == nil {
					if time.Now().After(deadline) {
						t.Fatalf("not given up after 10s: %d panics", sup.Panics())
					}
					time.Sleep(time.Millisecond)
				}
				if !strings.Contains(sup.Err().Error(), "qdrant sweeper") {
					t.Fatalf("err %v, want the sweeper named", sup.Err())
				}
			} else {
				if got := <-f.deleted; len(got) != 1 || got[0] != 1 {
					t.Fatalf("sweep deleted %v, want [1]", got)
				}
				if sup.Panics() != 2 || sup.Err() != nil {
					t.Fatalf("%d panics, err %v; want 2 and none", sup.Panics(), sup.Err())
				}
			}
			if err := ix.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestNewRefusedStartsUnavailable: a Qdrant that refuses us at start does
// not stop the gateway; the index reports why (without the key).
func TestNewRefusedStartsUnavailable(t *testing.T) {
	f, cfg := startFake(t)
	f.setFail(func(string) error { return status.Error(codes.Unauthenticated, "Invalid api-key") })
	cfg.APIKey = "sekret-key"
	ix, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New = %v; want an unavailable index", err)
	}
	defer ix.Close()
	st := ix.IndexStatus()
	if st.Ready || !strings.Contains(st.Error, "qdrant: health check 127.0.0.1:") || !strings.Contains(st.Error, "Invalid api-key") {
		t.Fatalf("status %+v", st)
	}
	if strings.Contains(st.Error, "sekret") {
		t.Errorf("status leaks the API key: %v", st.Error)
	}
	if _, _, err := ix.Search(t.Context(), "s", vx, 0.5, t0); !errors.Is(err, ErrNotReady) || status.Code(err) != codes.Unauthenticated {
		t.Errorf("Search = %v, want ErrNotReady with the cause", err)
	}
}

func TestAPIKeyIsSentButNeverLogged(t *testing.T) {
	logs := make(logLines, 64)
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ix, f := newFakeIndex(t, func(c *Config) { c.APIKey = "sekret-key"; c.Logger = logger })
	f.setFail(func(method string) error {
		if method == "Count" {
			return status.Error(codes.Internal, "boom")
		}
		return nil
	})
	logger.Info("config", "qdrant", ix.cfg)
	if err := ix.StartSweeper(t.Context(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for line := range logs {
		seen = append(seen, line)
		if strings.Contains(line, "qdrant sweep failed") {
			break
		}
	}
	ix.Close()
	all := strings.Join(seen, "")
	if strings.Contains(all, "sekret") {
		t.Errorf("logs leak the API key:\n%s", all)
	}
	if !strings.Contains(all, "api_key_set=true") {
		t.Errorf("config log lacks api_key_set:\n%s", all)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c.apiKey != "sekret-key" {
			t.Errorf("%s sent api-key %q", c.method, c.apiKey)
		}
	}
}

// logLines is a log sink that hands each line to the test; it drops lines
// rather than block the logger when the test has stopped reading.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default:
	}
	return len(p), nil
}

func TestDimensionMismatch(t *testing.T) {
	ix, f := newFakeIndex(t, nil)
	if err := ix.Upsert(t.Context(), pt(1, "s", "t", "m", []float32{1, 0}, t0)); err == nil {
		t.Error("Upsert accepted a 2-d vector into a 3-d index")
	}
	if _, _, err := ix.Search(t.Context(), "s", []float32{1, 0, 0, 0}, 0.5, t0); err == nil {
		t.Error("Search accepted a 4-d vector")
	}
	if n := f.count("Upsert") + f.count("Query"); n != 0 {
		t.Errorf("%d bad requests reached the server", n)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		wantErrs []string
		wantHost string
		wantPort int
		wantTLS  bool
	}{
		{name: "host defaults", cfg: Config{Embedder: "e", Dim: 4}, wantHost: "localhost", wantPort: 6334},
		{name: "plain url", cfg: Config{URL: "http://qdrant:6334", Embedder: "e", Dim: 4}, wantHost: "qdrant", wantPort: 6334},
		{name: "https url without port", cfg: Config{URL: "https://x.cloud.qdrant.io", Embedder: "e", Dim: 4}, wantHost: "x.cloud.qdrant.io", wantPort: 6334, wantTLS: true},
		{name: "url overrides host", cfg: Config{URL: "grpc://q:7000", Host: "other", Port: 1, Embedder: "e", Dim: 4}, wantHost: "q", wantPort: 7000},
		{name: "everything wrong", cfg: Config{URL: "ftp://q", Quantization: "pq", Port: 70000, Timeout: -1}, wantErrs: []string{
			"qdrant.url: scheme", "qdrant.dim", "qdrant.embedder", "qdrant.port", "qdrant.quantization", "qdrant.timeout",
		}},
		{name: "credentials in url", cfg: Config{URL: "https://user:pw@q", Embedder: "e", Dim: 4}, wantErrs: []string{"credentials belong in api_key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.wantErrs) > 0 {
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range tt.wantErrs {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				if strings.Contains(err.Error(), "pw") {
					t.Errorf("error leaks the URL password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c, err := tt.cfg.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			if c.Host != tt.wantHost || c.Port != tt.wantPort || c.UseTLS != tt.wantTLS {
				t.Errorf("got %s:%d tls=%v", c.Host, c.Port, c.UseTLS)
			}
		})
	}
}

func TestCollectionName(t *testing.T) {
	tests := []struct {
		embedder string
		dim      int
		want     string
	}{
		{"use-lite", 512, "tollgate_use-lite_512"},
		{"BAAI/bge-small-en-v1.5", 384, "tollgate_baai_bge-small-en-v1_5_384"},
		{"hashed", 256, "tollgate_hashed_256"},
		{"ünï côdé", 8, "tollgate__n__c_d__8"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := CollectionName(tt.embedder, tt.dim); got != tt.want {
				t.Errorf("CollectionName(%q, %d) = %q, want %q", tt.embedder, tt.dim, got, tt.want)
			}
		})
	}
}
