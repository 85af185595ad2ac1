package semcache

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSharedEntryRoundTrip(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 123e6, time.UTC)
	base := row{
		id: 1<<62 + 12345, tenant: "acme", model: "gpt-4o-mini", scope: "scope-hash", exactKey: "exact-hash",
		query: "What is the capital of France?", answeredBy: "gpt-4o-mini-2024-07-18", cost: 150,
		created: created, expires: created.Add(time.Hour),
	}
	tests := []struct {
		name     string
		response string
		usage    string
	}{
		{"compact answer with usage", `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`, `{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}`},
		{"no usage", `{"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`, ``},
		{"whitespace, HTML and unicode kept byte for byte", "{\n  \"id\": \"chatcmpl-3\", \"object\":\"chat.completion\", \"created\":1, \"model\":\"m\",\n  \"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"<b>a & b</b> \\u00e9 ✓\"},\"finish_reason\":\"length\"}],\n  \"provider_extra\": {\"x\": 1}\n}\n", `{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}`},
		{"tool call", `{"id":"chatcmpl-4","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}]}`, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			r.response = []byte(tt.response)
			r.size = int64(len(r.response))
			if tt.usage != "" {
				r.usage = []byte(tt.usage)
			}
			b, err := encodeShared(&r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(`"v":1`)) {
				t.Errorf("encoding %s has no version", b)
			}
			s, err := decodeShared(b)
			if err != nil {
				t.Fatal(err)
			}
			want := &sharedEntry{
				V: 1, ID: r.id, ExactKey: r.exactKey, Scope: r.scope, Tenant: r.tenant, Model: r.model, Query: r.query,
				Response: r.response, AnsweredBy: r.answeredBy, Cost: r.cost, Usage: json.RawMessage(r.usage),
				CreatedMS: created.UnixMilli(), ExpiresMS: created.Add(time.Hour).UnixMilli(),
			}
			if tt.usage == "" {
				want.Usage = nil
			}
			if !reflect.DeepEqual(s, want) {
				t.Fatalf("decoded\n%+v\nwant\n%+v", s, want)
			}
			// The decoded entry is the one the storing replica serves.
			got, err := s.entry()
			if err != nil {
				t.Fatal(err)
			}
			local, err := decodeEntry(r.id, r.response, r.answeredBy, r.cost, r.usage, r.created, r.expires)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, local) {
				t.Errorf("entry\n%+v\nwant\n%+v", got, local)
			}
			if string(got.Response.Raw) != tt.response {
				t.Errorf("raw answer changed:\n got %q\nwant %q", got.Response.Raw, tt.response)
			}
			m := s.meta()
			if m.scope != r.scope || m.tenant != r.tenant || m.query != r.query || !m.created.Equal(r.created) || !m.expires.Equal(r.expires) {
				t.Errorf("meta %+v", m)
			}
			if !s.describes(m) {
				t.Error("a shared entry does not describe its own meta")
			}
			other := &entryMeta{exactKey: "another entry", tenant: m.tenant, model: m.model, scope: m.scope, query: m.query, created: m.created, expires: m.expires}
			if s.describes(other) || s.describes(nil) {
				t.Error("a shared entry describes another entry")
			}
		})
	}
}

func TestSharedEntryDecodeRejects(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"not JSON", `garbage`, "shared entry"},
		{"empty", ``, "shared entry"},
		{"unknown version", `{"v":2,"id":1,"scope":"s","tenant":"t","response":"e30=","created_ms":1,"expires_ms":2}`, "version 2"},
		{"no version", `{"id":1,"scope":"s","tenant":"t","response":"e30=","created_ms":1,"expires_ms":2}`, "version 0"},
		{"id zero", `{"v":1,"id":0,"scope":"s","tenant":"t","response":"e30=","created_ms":1,"expires_ms":2}`, "bad id"},
		{"id beyond 63 bits", `{"v":1,"id":9223372036854775808,"scope":"s","tenant":"t","response":"e30=","created_ms":1,"expires_ms":2}`, "bad id"},
		{"no scope", `{"v":1,"id":1,"tenant":"t","response":"e30=","created_ms":1,"expires_ms":2}`, "no scope"},
		{"no answer", `{"v":1,"id":1,"scope":"s","tenant":"t","created_ms":1,"expires_ms":2}`, "no answer"},
		{"expires before created", `{"v":1,"id":1,"scope":"s","tenant":"t","response":"e30=","created_ms":2,"expires_ms":2}`, "expires before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeShared([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// replicas are gateways with their own SQLite files sharing one index.
type replicas struct {
	clock *testClock
	index *scanIndex
	dbs   []*testEnv
}

func newReplicas(t *testing.T, n int) *replicas {
	t.Helper()
	rs := &replicas{clock: newTestClock(), index: newScanIndex()}
	for range n {
		env := newTestEnv(t)
		env.clock, env.index = rs.clock, rs.index
		rs.dbs = append(rs.dbs, env)
	}
	return rs
}

func storedIDs(t *testing.T, env *testEnv) []uint64 {
	t.Helper()
	ids, err := queryIDs(context.Background(), env.db, `SELECT id FROM semcache_entries ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestRandomIDs(t *testing.T) {
	seeded := func(seed uint64) func() uint64 {
		r := rand.New(rand.NewPCG(seed, seed))
		var mu sync.Mutex
		return func() uint64 {
			mu.Lock()
			defer mu.Unlock()
			return r.Uint64()
		}
	}
	tests := []struct {
		name   string
		idsA   func() uint64
		idsB   func() uint64
		stores int
	}{
		{"crypto/rand, the default", nil, nil, 20},
		{"seeded sources", seeded(1), seeded(2), 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := newReplicas(t, 2)
			a := rs.dbs[0].open(t, func(o *Options) { o.NewID = tt.idsA })
			b := rs.dbs[1].open(t, func(o *Options) { o.NewID = tt.idsB })
			// Both replicas store the same questions: AUTOINCREMENT gave
			// both 1..n.
			for i := range tt.stores {
				for _, c := range []*Cache{a, b} {
					mustStore(t, c, req(t, "t1", userBody("question number "+strings.Repeat("x", i+1))), Controls{}, answer("a"))
				}
			}
			written(t, a, b)
			seen := map[uint64]string{}
			for i, env := range rs.dbs {
				ids := storedIDs(t, env)
				if len(ids) != tt.stores {
					t.Fatalf("replica %d holds %d entries, want %d", i, len(ids), tt.stores)
				}
				for _, id := range ids {
					if id == 0 || id > idMask {
						t.Errorf("id %d is not a positive 63-bit id", id)
					}
					if id <= uint64(2*tt.stores) {
						t.Errorf("id %d looks sequential", id)
					}
					if prev, dup := seen[id]; dup {
						t.Errorf("id %d used twice (%s and replica %d)", id, prev, i)
					}
					seen[id] = "replica " + string(rune('0'+i))
				}
			}
			if n := rs.index.Len(); n != 2*tt.stores {
				t.Errorf("shared index holds %d points, want %d: ids overwrote each other", n, 2*tt.stores)
			}
		})
	}
}

// sequence returns the given ids in order, then repeats the last.
func sequence(ids ...uint64) func() uint64 {
	var mu sync.Mutex
	return func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		id := ids[0]
		if len(ids) > 1 {
			ids = ids[1:]
		}
		return id
	}
}

func TestIDCollisionRetried(t *testing.T) {
	first := req(t, "t1", userBody("What is the capital of France?"))
	second := req(t, "t1", userBody("What is the capital of Italy?"))
	tests := []struct {
		name    string
		ids     func() uint64
		wantErr string
		wantIDs []uint64 // of first and second
	}{
		{"taken id drawn again", sequence(7, 7, 9), "", []uint64{7, 9}},
		{"zero and the 64th bit skipped", sequence(7, 0, 1<<63|7, 1<<63|11), "", []uint64{7, 11}},
		{"no free id after the bounded draws", sequence(7), "no free entry id", []uint64{7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			c := env.open(t, func(o *Options) { o.NewID = tt.ids })
			mustStore(t, c, first, Controls{}, answer("Paris."))
			err := c.Store(context.Background(), c.Prepare(second, Controls{}), answer("Rome."), "m", 1)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Store = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			written(t, c)
			if got := storedIDs(t, env); !reflect.DeepEqual(got, tt.wantIDs) {
				t.Errorf("ids %v, want %v", got, tt.wantIDs)
			}
			// The entry holding the id is intact.
			e, res := lookup(t, c, first, Controls{})
			if res.Kind != KindHit || e.ID != 7 || e.Response.Choices[0].Message.Content.String() != "Paris." {
				t.Errorf("first entry: %+v %+v", res, e)
			}
			if tt.wantErr == "" {
				e, res := lookup(t, c, second, Controls{})
				if res.Kind != KindHit || e.ID != tt.wantIDs[1] || e.Response.Choices[0].Message.Content.String() != "Rome." {
					t.Errorf("second entry: %+v %+v", res, e)
				}
			}
		})
	}
}

// An index that returns what another does, altered.
type alterIndex struct {
	*scanIndex
	alter func(Hit) Hit
	// ignoreExpiry searches as if at the zero time: a stale index.
	ignoreExpiry bool
}

func (x alterIndex) Search(ctx context.Context, scope string, vec []float32, threshold float32, now time.Time) (Hit, bool, error) {
	if x.ignoreExpiry {
		now = time.Time{}
	}
	h, ok, err := x.scanIndex.Search(ctx, scope, vec, threshold, now)
	if ok && x.alter != nil {
		h = x.alter(h)
	}
	return h, ok, err
}

func TestSharedEntriesAcrossReplicas(t *testing.T) {
	const stored = "How do I reverse a list in Python 3 with only the standard library and no loops?"
	const paraphrase = "In Python 3 with only the standard library and no loops, how do I reverse a list?"
	rawA := `{"id":"chatcmpl-A","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Use reversed()."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`
	tests := []struct {
		name string
		// index wraps the shared index as replica B sees it (nil: as is).
		index func(*scanIndex) Index
		// dropEntries: the index keeps no entries (vecindex).
		dropEntries bool
		finish      string        // of A's answer (default stop)
		advance     time.Duration // after A stores
		tenant      string        // B's tenant (default t1)
		model       string        // asked of B (default gpt-4o-mini)
		query       string
		ctl         Controls
		kind        string
		reason      string
		refusals    int64
	}{
		{name: "same tenant and scope gets A's answer", query: paraphrase, kind: KindSemanticHit},
		{name: "A's exact question is a semantic hit on B", query: stored, kind: KindSemanticHit},
		{name: "another tenant never", tenant: "t2", query: paraphrase, kind: KindMiss},
		{name: "another tenant never, exact question", tenant: "t2", query: stored, kind: KindMiss},
		{name: "another model asked for never", model: "gpt-4o", query: paraphrase, kind: KindMiss},
		{name: "expired in the index", advance: time.Hour, query: paraphrase, kind: KindMiss},
		{name: "expired entry from a stale index", index: func(x *scanIndex) Index { return alterIndex{scanIndex: x, ignoreExpiry: true} },
			advance: time.Hour, query: paraphrase, kind: KindMiss, reason: "expired"},
		{name: "older than max-age", advance: 10 * time.Minute, ctl: Controls{MaxAge: 5 * time.Minute}, query: paraphrase, kind: KindMiss, reason: "max-age"},
		{name: "within max-age", advance: 10 * time.Minute, ctl: Controls{MaxAge: 15 * time.Minute}, query: paraphrase, kind: KindSemanticHit},
		{name: "guard refuses a near miss", query: strings.Replace(stored, "Python 3", "Python 2", 1), kind: KindMiss, reason: "guard", refusals: 1},
		{name: "cut at its length limit", finish: "length", query: paraphrase, kind: KindMiss, reason: "length limit"},
		{name: "undecodable entry is a miss", index: func(x *scanIndex) Index {
			return alterIndex{scanIndex: x, alter: func(h Hit) Hit { h.Entry = `{"v":1,`; return h }}
		}, query: paraphrase, kind: KindMiss, reason: "cannot be decoded"},
		{name: "entry of another id is a miss", index: func(x *scanIndex) Index {
			return alterIndex{scanIndex: x, alter: func(h Hit) Hit { h.ID++; return h }}
		}, query: paraphrase, kind: KindMiss, reason: "cannot be decoded"},
		{name: "entry of another scope is never served", index: func(x *scanIndex) Index {
			return alterIndex{scanIndex: x, alter: func(h Hit) Hit {
				s, _ := decodeShared([]byte(h.Entry))
				s.Scope = "another scope"
				b, _ := json.Marshal(s)
				h.Entry = string(b)
				return h
			}}
		}, query: paraphrase, kind: KindMiss, reason: "out of scope"},
		{name: "entry of another tenant is never served", index: func(x *scanIndex) Index {
			return alterIndex{scanIndex: x, alter: func(h Hit) Hit {
				s, _ := decodeShared([]byte(h.Entry))
				s.Tenant = "t2"
				b, _ := json.Marshal(s)
				h.Entry = string(b)
				return h
			}}
		}, query: paraphrase, kind: KindMiss, reason: "out of scope"},
		// An index that keeps no entries is taken for the replica's own: A
		// stores its entry unembedded (its scope held nothing), B finds
		// nothing in its own empty scope and embeds nothing either.
		{name: "index without entries shares nothing", dropEntries: true, query: paraphrase, kind: KindMiss},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := newReplicas(t, 2)
			rs.index.dropEntries = tt.dropEntries
			a := rs.dbs[0].open(t, func(o *Options) { o.Checker = refuseNumbers{} })
			b := rs.dbs[1].open(t, func(o *Options) {
				o.Checker = refuseNumbers{}
				if tt.index != nil {
					o.Index = tt.index(rs.index)
				}
			})
			resp := answer("Use reversed().")
			resp.Raw = []byte(rawA)
			if tt.finish != "" {
				resp.Choices[0].FinishReason = tt.finish
				resp.Raw = bytes.Replace(resp.Raw, []byte(`"stop"`), []byte(`"`+tt.finish+`"`), 1)
			}
			mustStore(t, a, req(t, "t1", userBody(stored)), Controls{}, resp)
			written(t, a)
			idA := storedIDs(t, rs.dbs[0])[0]
			rs.clock.Advance(tt.advance)

			r := req(t, cmpOr(tt.tenant, "t1"), userBody(tt.query))
			r.Model = cmpOr(tt.model, r.Model)
			e, res := lookup(t, b, r, tt.ctl)
			if res.Kind != tt.kind || !strings.Contains(res.Reason, tt.reason) {
				t.Fatalf("B got %+v, want %s (%s)", res, tt.kind, tt.reason)
			}
			s := b.Stats()
			if tt.kind == KindSemanticHit {
				if e.ID != idA || string(e.Response.Raw) != rawA || e.Model != "gpt-4o-mini-2024-07-18" || e.Cost != 150 ||
					e.Usage == nil || e.Usage.TotalTokens != 17 || !e.CreatedAt.Equal(rs.clock.Now().Add(-tt.advance)) {
					t.Errorf("B served %+v", e)
				}
				if s.SemanticHits != 1 || s.SavedMicros != 150 || s.Misses != 0 {
					t.Errorf("B stats %+v: a shared hit counts as a semantic hit", s)
				}
			} else if s.SemanticHits != 0 || s.Misses != 1 {
				t.Errorf("B stats %+v", s)
			}
			if s.GuardRefusals != tt.refusals {
				t.Errorf("guard refusals %d, want %d", s.GuardRefusals, tt.refusals)
			}
			if s.Entries != 0 {
				t.Errorf("B holds %d entries: a shared hit is not copied", s.Entries)
			}
		})
	}
}

func cmpOr(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// TestSharedIDCollisionNeverMixesEntries: entries stored before ids were
// random have small ids, which two replicas may both hold. The point of
// the shared index then carries the entry last stored under that id, and a
// replica whose own entry has that id serves the point's entry, not its
// own, for the point's vector.
func TestSharedIDCollisionNeverMixesEntries(t *testing.T) {
	rs := newReplicas(t, 2)
	a := rs.dbs[0].open(t, func(o *Options) { o.NewID = sequence(5) })
	b := rs.dbs[1].open(t, func(o *Options) { o.NewID = sequence(5) })
	mustStore(t, b, req(t, "t1", userBody("What is the capital of France?")), Controls{}, answer("Paris."))
	mustStore(t, a, req(t, "t1", userBody("How tall is the Eiffel tower?")), Controls{}, answer("330 metres."))

	tests := []struct {
		name, query, want, kind string
	}{
		{"point's entry served, not B's own entry of the same id", "how tall is the eiffel tower", "330 metres.", KindSemanticHit},
		{"B's own entry still served exactly", "What is the capital of France?", "Paris.", KindHit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, res := lookup(t, b, req(t, "t1", userBody(tt.query)), Controls{})
			if res.Kind != tt.kind || e.Response.Choices[0].Message.Content.String() != tt.want {
				t.Fatalf("got %+v %+v, want %s %q", res, e, tt.kind, tt.want)
			}
		})
	}
}

// TestLegacyDatabase opens a database whose entries have AUTOINCREMENT ids
// (as stored before ids were random): they are served and indexed, and new
// entries get random ids beside them.
func TestLegacyDatabase(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	if err := migrate(ctx, env.db); err != nil {
		t.Fatal(err)
	}
	c := env.open(t, nil)
	q := c.Prepare(req(t, "t1", userBody("What is the capital of France?")), Controls{})
	vec, _ := wordsEmbedder{}.Embed(ctx, []string{q.keys.query})
	now := env.clock.Now()
	body, _ := json.Marshal(answer("Paris."))
	// The old insert: no id.
	if _, err := env.db.Exec(`INSERT INTO semcache_entries
		(tenant, model, scope, exact_key, query, vector, embedder, response, answered_by, cost, usage, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)`,
		"t1", "gpt-4o-mini", q.keys.scope, q.keys.exact, q.keys.query, encodeVector(vec[0]), wordsEmbedder{}.Name(),
		body, "m", 150, now.UnixMilli(), now.Add(time.Hour).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	env.index = newScanIndex()
	c = env.open(t, nil)
	mustStore(t, c, req(t, "t1", userBody("What is the capital of Italy?")), Controls{}, answer("Rome."))
	written(t, c)
	ids := storedIDs(t, env)
	if len(ids) != 2 || ids[0] != 1 || ids[1] <= 1 {
		t.Fatalf("ids %v, want the legacy 1 and a random one", ids)
	}
	tests := []struct{ name, query, want, kind string }{
		{"legacy entry exact", "What is the capital of France?", "Paris.", KindHit},
		{"legacy entry semantic", "what is the capital of france", "Paris.", KindSemanticHit},
		{"new entry semantic", "what is the capital of italy", "Rome.", KindSemanticHit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, res := lookup(t, c, req(t, "t1", userBody(tt.query)), Controls{})
			if res.Kind != tt.kind || e.Response.Choices[0].Message.Content.String() != tt.want {
				t.Fatalf("got %+v %+v", res, e)
			}
		})
	}
	if p := env.index.points[1]; p.Entry == nil {
		t.Error("the rebuild did not fill Point.Entry")
	} else if s, err := decodeShared(p.Entry); err != nil || s.ID != 1 || s.Query != q.keys.query || s.Cost != 150 {
		t.Errorf("rebuilt entry %+v, %v", s, err)
	}
}

// TestStoreFillsPointEntry: the point Store indexes carries its entry.
func TestStoreFillsPointEntry(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, func(o *Options) { o.NewID = sequence(42) })
	r := req(t, "acme", userBody("What is the capital of France?"))
	resp := answer("Paris.")
	if err := c.Store(context.Background(), c.Prepare(r, Controls{}), resp, "gpt-4o-mini-2024-07-18", 150); err != nil {
		t.Fatal(err)
	}
	p, ok := env.index.points[42]
	if !ok {
		t.Fatal("no point 42")
	}
	s, err := decodeShared(p.Entry)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(resp)
	if s.ID != 42 || s.Scope != p.Scope || s.Tenant != "acme" || s.Model != "gpt-4o-mini" || s.AnsweredBy != "gpt-4o-mini-2024-07-18" ||
		s.Cost != 150 || string(s.Response) != string(want) || s.ExpiresMS != p.ExpiresAt.UnixMilli() ||
		s.CreatedMS != env.clock.Now().UnixMilli() || !strings.Contains(string(s.Usage), `"total_tokens":17`) {
		t.Errorf("entry %+v of point %+v", s, p)
	}
}
