package qdrant

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	qc "github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// fakeQdrant is an in-process Qdrant serving the subset of the gRPC API the
// adapter uses, registered through the module's generated server
// interfaces. It models collections, payload indexes and points faithfully
// enough for the contract: filters (must/should/must_not over keyword
// match and integer range), cosine scoring on normalised vectors,
// score_threshold, limit, and Qdrant's error codes for a missing or
// duplicate collection. It records every request it receives.
type fakeQdrant struct {
	mu          sync.Mutex
	collections map[string]*fakeCollection
	calls       []fakeCall
	// fail, when set, is asked before each call; a non-nil error is returned.
	fail func(method string) error
	// deleted receives the ids of every delete-by-filter (buffered by tests).
	deleted chan []uint64
}

// The three services share one state; each embeds its generated
// Unimplemented server, so anything the adapter should not call answers
// codes.Unimplemented.
type (
	fakeHealth struct {
		qc.UnimplementedQdrantServer
		*fakeQdrant
	}
	fakeCollections struct {
		qc.UnimplementedCollectionsServer
		*fakeQdrant
	}
	fakePoints struct {
		qc.UnimplementedPointsServer
		*fakeQdrant
	}
)

type fakeCall struct {
	method string
	req    proto.Message
	apiKey string
}

type fakeCollection struct {
	create  *qc.CreateCollection
	indexes map[string]*qc.CreateFieldIndexCollection
	points  map[uint64]fakePoint
}

type fakePoint struct {
	vec     []float32 // normalised, as Qdrant stores cosine vectors
	payload map[string]*qc.Value
}

// startFake serves a fakeQdrant on a loopback port and returns it with a
// Config pointing at it.
func startFake(t *testing.T) (*fakeQdrant, Config) {
	t.Helper()
	f, cfg, _ := startFakeAt(t, "127.0.0.1:0")
	return f, cfg
}

// startFakeAt serves a fakeQdrant on addr; stop stops it (and is also run
// at cleanup).
func startFakeAt(t *testing.T, addr string) (f *fakeQdrant, cfg Config, stop func()) {
	t.Helper()
	f = &fakeQdrant{collections: map[string]*fakeCollection{}}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	qc.RegisterQdrantServer(srv, fakeHealth{fakeQdrant: f})
	qc.RegisterCollectionsServer(srv, fakeCollections{fakeQdrant: f})
	qc.RegisterPointsServer(srv, fakePoints{fakeQdrant: f})
	go srv.Serve(lis) //nolint:errcheck // returns when stopped
	t.Cleanup(srv.Stop)
	tcp := lis.Addr().(*net.TCPAddr)
	return f, Config{Host: "127.0.0.1", Port: tcp.Port, Embedder: "test", Dim: 3}, srv.Stop
}

// freeAddr returns a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// record logs a call and returns the injected failure, if any.
func (f *fakeQdrant) record(ctx context.Context, method string, req proto.Message) error {
	md, _ := metadata.FromIncomingContext(ctx)
	key := strings.Join(md.Get("api-key"), ",")
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{method: method, req: proto.Clone(req), apiKey: key})
	fail := f.fail
	f.mu.Unlock()
	if fail != nil {
		return fail(method)
	}
	return nil
}

// requests returns the recorded requests of one method, in order.
func requests[T proto.Message](f *fakeQdrant, method string) []T {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []T
	for _, c := range f.calls {
		if c.method == method {
			out = append(out, c.req.(T))
		}
	}
	return out
}

func (f *fakeQdrant) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c.method == method {
			n++
		}
	}
	return n
}

// enter records a call on a collection, then locks the state and finds
// the collection, answering NotFound as Qdrant does. On success the caller
// holds f.mu and must unlock it.
func (f *fakeQdrant) enter(ctx context.Context, method, name string, req proto.Message) (*fakeCollection, error) {
	if err := f.record(ctx, method, req); err != nil {
		return nil, err
	}
	f.mu.Lock()
	c, ok := f.collections[name]
	if !ok {
		f.mu.Unlock()
		return nil, status.Errorf(codes.NotFound, "Not found: Collection `%s` doesn't exist!", name)
	}
	return c, nil
}

func (f fakeHealth) HealthCheck(ctx context.Context, req *qc.HealthCheckRequest) (*qc.HealthCheckReply, error) {
	if err := f.record(ctx, "HealthCheck", req); err != nil {
		return nil, err
	}
	return &qc.HealthCheckReply{Title: "qdrant - fake", Version: "1.17.0"}, nil
}

func (f fakeCollections) CollectionExists(ctx context.Context, req *qc.CollectionExistsRequest) (*qc.CollectionExistsResponse, error) {
	if err := f.record(ctx, "CollectionExists", req); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.collections[req.GetCollectionName()]
	return &qc.CollectionExistsResponse{Result: &qc.CollectionExists{Exists: ok}}, nil
}

func (f fakeCollections) Create(ctx context.Context, req *qc.CreateCollection) (*qc.CollectionOperationResponse, error) {
	if err := f.record(ctx, "Create", req); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	name := req.GetCollectionName()
	if _, ok := f.collections[name]; ok {
		return nil, status.Errorf(codes.InvalidArgument, "Wrong input: Collection `%s` already exists!", name)
	}
	if req.GetVectorsConfig().GetParams().GetSize() == 0 {
		return nil, status.Error(codes.InvalidArgument, "Wrong input: vector size must be positive")
	}
	f.collections[name] = &fakeCollection{
		create:  proto.Clone(req).(*qc.CreateCollection),
		indexes: map[string]*qc.CreateFieldIndexCollection{},
		points:  map[uint64]fakePoint{},
	}
	return &qc.CollectionOperationResponse{Result: true}, nil
}

func (f fakePoints) CreateFieldIndex(ctx context.Context, req *qc.CreateFieldIndexCollection) (*qc.PointsOperationResponse, error) {
	c, err := f.enter(ctx, "CreateFieldIndex", req.GetCollectionName(), req)
	if err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	c.indexes[req.GetFieldName()] = proto.Clone(req).(*qc.CreateFieldIndexCollection)
	return completed(), nil
}

func completed() *qc.PointsOperationResponse {
	return &qc.PointsOperationResponse{Result: &qc.UpdateResult{Status: qc.UpdateStatus_Completed}}
}

func (f fakePoints) Upsert(ctx context.Context, req *qc.UpsertPoints) (*qc.PointsOperationResponse, error) {
	c, err := f.enter(ctx, "Upsert", req.GetCollectionName(), req)
	if err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	dim := int(c.create.GetVectorsConfig().GetParams().GetSize())
	for _, p := range req.GetPoints() {
		vec := p.GetVectors().GetVector().GetDense().GetData()
		if len(vec) != dim {
			return nil, status.Errorf(codes.InvalidArgument, "Wrong input: Vector dimension error: expected dim: %d, got %d", dim, len(vec))
		}
		c.points[p.GetId().GetNum()] = fakePoint{vec: normalise(vec), payload: p.GetPayload()}
	}
	return completed(), nil
}

func (f fakePoints) Delete(ctx context.Context, req *qc.DeletePoints) (*qc.PointsOperationResponse, error) {
	c, err := f.enter(ctx, "Delete", req.GetCollectionName(), req)
	if err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	sel := req.GetPoints()
	if ids := sel.GetPoints(); ids != nil {
		for _, id := range ids.GetIds() {
			delete(c.points, id.GetNum())
		}
		return completed(), nil
	}
	var gone []uint64
	for id, p := range c.points {
		if matches(sel.GetFilter(), p.payload) {
			delete(c.points, id)
			gone = append(gone, id)
		}
	}
	if f.deleted != nil {
		slices.Sort(gone)
		select {
		case f.deleted <- gone:
		default:
		}
	}
	return completed(), nil
}

func (f fakePoints) Count(ctx context.Context, req *qc.CountPoints) (*qc.CountResponse, error) {
	c, err := f.enter(ctx, "Count", req.GetCollectionName(), req)
	if err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	var n uint64
	for _, p := range c.points {
		if matches(req.GetFilter(), p.payload) {
			n++
		}
	}
	return &qc.CountResponse{Result: &qc.CountResult{Count: n}}, nil
}

func (f fakePoints) Query(ctx context.Context, req *qc.QueryPoints) (*qc.QueryResponse, error) {
	c, err := f.enter(ctx, "Query", req.GetCollectionName(), req)
	if err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	q := req.GetQuery().GetNearest().GetDense().GetData()
	if len(q) != int(c.create.GetVectorsConfig().GetParams().GetSize()) {
		return nil, status.Errorf(codes.InvalidArgument, "Wrong input: query vector has %d dimensions", len(q))
	}
	q = normalise(q)
	var out []*qc.ScoredPoint
	for id, p := range c.points {
		if !matches(req.GetFilter(), p.payload) {
			continue
		}
		score := dot(q, p.vec)
		if req.ScoreThreshold != nil && score < req.GetScoreThreshold() {
			continue
		}
		out = append(out, &qc.ScoredPoint{Id: qc.NewIDNum(id), Score: score, Payload: selectPayload(req.GetWithPayload(), p.payload)})
	}
	slices.SortFunc(out, func(a, b *qc.ScoredPoint) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.GetId().GetNum(), b.GetId().GetNum())
	})
	limit := req.GetLimit()
	if req.Limit == nil {
		limit = 10 // Qdrant's default
	}
	if uint64(len(out)) > limit {
		out = out[:limit]
	}
	return &qc.QueryResponse{Result: out}, nil
}

// selectPayload returns the payload fields a search asked for, as Qdrant
// does: none by default, all for enable, the listed ones for include, the
// others for exclude.
func selectPayload(sel *qc.WithPayloadSelector, payload map[string]*qc.Value) map[string]*qc.Value {
	pick := func(keep func(string) bool) map[string]*qc.Value {
		out := map[string]*qc.Value{}
		for k, v := range payload {
			if keep(k) {
				out[k] = proto.Clone(v).(*qc.Value)
			}
		}
		return out
	}
	switch s := sel.GetSelectorOptions().(type) {
	case *qc.WithPayloadSelector_Enable:
		if s.Enable {
			return pick(func(string) bool { return true })
		}
	case *qc.WithPayloadSelector_Include:
		return pick(func(k string) bool { return slices.Contains(s.Include.GetFields(), k) })
	case *qc.WithPayloadSelector_Exclude:
		return pick(func(k string) bool { return !slices.Contains(s.Exclude.GetFields(), k) })
	}
	return nil
}

// matches evaluates a Qdrant filter against a payload: every must, at least
// one should (when any), no must_not. A nil or empty filter matches all.
func matches(f *qc.Filter, payload map[string]*qc.Value) bool {
	if f == nil {
		return true
	}
	for _, c := range f.GetMust() {
		if !condition(c, payload) {
			return false
		}
	}
	for _, c := range f.GetMustNot() {
		if condition(c, payload) {
			return false
		}
	}
	if len(f.GetShould()) == 0 {
		return true
	}
	for _, c := range f.GetShould() {
		if condition(c, payload) {
			return true
		}
	}
	return false
}

func condition(c *qc.Condition, payload map[string]*qc.Value) bool {
	if sub := c.GetFilter(); sub != nil {
		return matches(sub, payload)
	}
	fc := c.GetField()
	if fc == nil {
		panic(fmt.Sprintf("fake qdrant: unsupported condition %v", c))
	}
	v, ok := payload[fc.GetKey()]
	if !ok {
		return false
	}
	if m := fc.GetMatch(); m != nil {
		switch mv := m.GetMatchValue().(type) {
		case *qc.Match_Keyword:
			s, isStr := v.GetKind().(*qc.Value_StringValue)
			return isStr && s.StringValue == mv.Keyword
		case *qc.Match_Integer:
			i, isInt := v.GetKind().(*qc.Value_IntegerValue)
			return isInt && i.IntegerValue == mv.Integer
		default:
			panic(fmt.Sprintf("fake qdrant: unsupported match %T", mv))
		}
	}
	if r := fc.GetRange(); r != nil {
		var x float64
		switch k := v.GetKind().(type) {
		case *qc.Value_IntegerValue:
			x = float64(k.IntegerValue)
		case *qc.Value_DoubleValue:
			x = k.DoubleValue
		default:
			return false
		}
		return (r.Lt == nil || x < r.GetLt()) && (r.Gt == nil || x > r.GetGt()) &&
			(r.Lte == nil || x <= r.GetLte()) && (r.Gte == nil || x >= r.GetGte())
	}
	panic(fmt.Sprintf("fake qdrant: unsupported field condition %v", fc))
}

func normalise(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	n := math.Sqrt(s)
	out := make([]float32, len(v))
	if n == 0 {
		return out
	}
	for i, x := range v {
		out[i] = float32(float64(x) / n)
	}
	return out
}

func dot(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func (f *fakeQdrant) setFail(fail func(method string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fail
}

func (f *fakeQdrant) setDeleted(ch chan []uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = ch
}
