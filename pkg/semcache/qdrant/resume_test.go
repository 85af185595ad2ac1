package qdrant

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/semcache"
)

// TestCacheWithQdrantDownAtStart is the must-show, on a semcache
// wired to the index as cmd/server wires it: Qdrant down at start → the
// cache opens, serves exact hits and misses, reports the index unavailable;
// Qdrant up → semantic hits resume (entries stored meanwhile included),
// and an entry deleted meanwhile is never served; Qdrant down again →
// lookups are misses at once.
func TestCacheWithQdrantDownAtStart(t *testing.T) {
	addr := freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	gs := newGatedSleep()
	ix, err := New(t.Context(), Config{Host: host, Port: p, Embedder: wordsEmbedder{}.Name(), Dim: wordsDim, sleep: gs.sleep})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	clock := &manualClock{t: t0}
	a := openReplica(t, openDB(t), ix, clock, 1)
	ctx := t.Context()
	paraphrase := "According to the 2023 survey, how many moons does Jupiter have?"
	lookup := func(tenant, text string) (*semcache.Entry, semcache.Result) {
		t.Helper()
		e, res, err := a.Lookup(ctx, a.Prepare(chatReq(t, tenant, "gpt-4o-mini", text), semcache.Controls{}))
		if err != nil {
			t.Fatal(err)
		}
		return e, res
	}
	store := func(tenant, text string) {
		t.Helper()
		if err := a.Store(ctx, a.Prepare(chatReq(t, tenant, "gpt-4o-mini", text), semcache.Controls{}), answerA(t, "stop"), "m", 250); err != nil {
			t.Fatalf("Store while Qdrant is down: %v", err)
		}
	}
	store("acme", storedQ)
	store("globex", storedQ)
	if _, err := a.Delete(ctx, semcache.Filter{Tenant: "globex"}); err != nil {
		t.Fatalf("Delete while Qdrant is down: %v", err)
	}

	down := []struct {
		name, tenant, text, kind, reason string
	}{
		{name: "exact hit served", tenant: "acme", text: storedQ, kind: semcache.KindHit},
		{name: "paraphrase is a miss with the reason", tenant: "acme", text: paraphrase, kind: semcache.KindMiss, reason: "semantic index unavailable"},
		{name: "deleted entry is a miss", tenant: "globex", text: storedQ, kind: semcache.KindMiss},
	}
	for _, tt := range down {
		t.Run("down/"+tt.name, func(t *testing.T) {
			if _, res := lookup(tt.tenant, tt.text); res.Kind != tt.kind || !strings.Contains(res.Reason, tt.reason) {
				t.Errorf("%+v, want %s (%s)", res, tt.kind, tt.reason)
			}
		})
	}
	st := a.Stats().Index
	if st == nil || st.Ready || st.Kind != "qdrant" || !strings.Contains(st.Error, addr) {
		t.Fatalf("Stats().Index while down = %+v", st)
	}

	// Qdrant comes up.
	<-gs.waits
	_, _, stop := startFakeAt(t, addr)
	close(gs.wake)
	waitReady(t, ix)
	up := []struct {
		name, tenant, text, kind string
	}{
		{name: "paraphrase is a semantic hit", tenant: "acme", text: paraphrase, kind: semcache.KindSemanticHit},
		{name: "deleted entry never comes back", tenant: "globex", text: paraphrase, kind: semcache.KindMiss},
	}
	for _, tt := range up {
		t.Run("up/"+tt.name, func(t *testing.T) {
			if _, res := lookup(tt.tenant, tt.text); res.Kind != tt.kind {
				t.Errorf("%+v, want %s", res, tt.kind)
			}
		})
	}
	if st := a.Stats().Index; st == nil || !st.Ready || st.Error != "" || st.QueuedUpserts != 0 {
		t.Errorf("Stats().Index after return = %+v", st)
	}

	// Qdrant goes away again: the first lookup meets it (bounded by the
	// search timeout), the next ones do not wait at all.
	stop()
	for i := range 2 {
		if _, res := lookup("acme", paraphrase); res.Kind != semcache.KindMiss {
			t.Fatalf("lookup %d after Qdrant stopped: %+v", i, res)
		}
	}
	if ix.Ready() {
		t.Fatal("index still ready after Qdrant stopped")
	}
	if _, res := lookup("acme", storedQ); res.Kind != semcache.KindHit {
		t.Errorf("exact lookup after Qdrant stopped: %+v", res)
	}
}
