package keys

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/migrate"
)

func ptr[T any](v T) *T { return &v }

// TestUpdateChangesOnlyWhatIsSet: each Change sets some fields and keeps
// the others; the change is what Authenticate returns at once and what a
// restarted store reads; revoked and unknown keys are refused.
func TestUpdateChangesOnlyWhatIsSet(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() *sql.DB) {
		ctx := context.Background()
		s := openStore(t, open(), Options{Now: fixedNow})
		k, secret, err := s.Create(ctx, New{Name: "app", AllowedModels: []string{"sim-small"}, Metadata: map[string]string{"team": "a"}})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name    string
			change  Change
			name_   string
			allowed []string
			meta    map[string]string
			byok    bool
		}{
			{"nothing", Change{}, "app", []string{"sim-small"}, map[string]string{"team": "a"}, false},
			{"name only", Change{Name: ptr("renamed")}, "renamed", []string{"sim-small"}, map[string]string{"team": "a"}, false},
			{"allowed models only", Change{AllowedModels: ptr([]string{"sim-large", "gpt-4o*"})}, "renamed", []string{"sim-large", "gpt-4o*"}, map[string]string{"team": "a"}, false},
			{"metadata and byok", Change{Metadata: ptr(map[string]string{"owner": "ana"}), AllowBYOK: ptr(true)}, "renamed", []string{"sim-large", "gpt-4o*"}, map[string]string{"owner": "ana"}, true},
			{"every model again, metadata emptied", Change{AllowedModels: ptr([]string{}), Metadata: ptr(map[string]string(nil))}, "renamed", []string{}, map[string]string{}, true},
		}
		check := func(t *testing.T, got *Key, name string, allowed []string, meta map[string]string, byok bool) {
			t.Helper()
			if got.ID != k.ID || got.Name != name || !slices.Equal(got.AllowedModels, allowed) || !maps.Equal(got.Metadata, meta) || got.AllowBYOK != byok || !got.CreatedAt.Equal(k.CreatedAt) {
				t.Fatalf("got %+v, want name %q allowed %v metadata %v byok %v", got, name, allowed, meta, byok)
			}
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.Update(ctx, k.ID, tt.change)
				if err != nil {
					t.Fatal(err)
				}
				check(t, got, tt.name_, tt.allowed, tt.meta, tt.byok)
				auth, err := s.Authenticate(secret)
				if err != nil {
					t.Fatal(err)
				}
				check(t, auth, tt.name_, tt.allowed, tt.meta, tt.byok)
			})
		}
		last := tests[len(tests)-1]
		restarted := openStore(t, open(), Options{Now: fixedNow})
		got, ok := restarted.Get(k.ID)
		if !ok {
			t.Fatal("the key is gone after a restart")
		}
		check(t, got, last.name_, last.allowed, last.meta, last.byok)

		if _, err := s.Update(ctx, "key_nope", Change{Name: ptr("x")}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown key: %v", err)
		}
		if _, err := s.Revoke(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, k.ID, Change{Name: ptr("back")}); !errors.Is(err, ErrRevoked) {
			t.Fatalf("revoked key: %v", err)
		}
		if _, err := s.Authenticate(secret); !errors.Is(err, ErrUnknown) {
			t.Fatalf("a revoked key authenticates after an Update: %v", err)
		}
	})
}

// TestReplicasSeeUpdates: a change made on replica A reaches B (its
// notification), and B's permissions follow it.
func TestReplicasSeeUpdates(t *testing.T) {
	ctx := context.Background()
	a, b, _ := replicas(t, Options{Now: fixedNow})
	k, secret, err := a.Create(ctx, New{Name: "shared", AllowedModels: []string{"m"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Authenticate(secret); err != nil || !got.Allows("m") {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := a.Update(ctx, k.ID, Change{AllowedModels: ptr([]string{"other"})}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "B applies A's change", func() bool {
		got, err := b.Authenticate(secret)
		return err == nil && got.Allows("other") && !got.Allows("m")
	})
}

func TestUpdateQueries(t *testing.T) {
	if q := queriesFor(migrate.SQLite).update; !strings.Contains(q, "WHERE id = ? AND revoked_at IS NULL") {
		t.Errorf("sqlite: %q", q)
	}
	if q := queriesFor(migrate.Postgres).update; !strings.Contains(q, "WHERE id = $7 AND revoked_at IS NULL") || !strings.Contains(q, "pg_notify('tollgate_keys', u.id)") {
		t.Errorf("postgres: %q", q)
	}
}
