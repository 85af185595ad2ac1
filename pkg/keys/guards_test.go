package keys

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"
)

// sameGuards tells nil (the routes' guards) from [] (none).
func sameGuards(a, b []Guard) bool {
	return (a == nil) == (b == nil) && slices.Equal(a, b)
}

// TestGuardsPersist: a key's guards are created, changed to none, back to
// the routes' (NULL) and to a list, and kept by a change that does not set
// them; each state is what Update returns, what Authenticate returns at
// once and what a store opened afterwards on the same database reads.
func TestGuardsPersist(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() *sql.DB) {
		ctx := context.Background()
		s := openStore(t, open(), Options{Now: fixedNow})
		pii := []Guard{{Name: "pii"}, {Name: "secrets", Action: "block"}}
		k, secret, err := s.Create(ctx, New{Name: "app", Guards: pii})
		if err != nil {
			t.Fatal(err)
		}
		plain, _, err := s.Create(ctx, New{Name: "plain"})
		if err != nil {
			t.Fatal(err)
		}
		check := func(t *testing.T, st *Store, id string, want []Guard) {
			t.Helper()
			got, ok := st.Get(id)
			if !ok {
				t.Fatalf("key %s missing", id)
			}
			if !sameGuards(got.Guards, want) {
				t.Fatalf("guards %#v, want %#v", got.Guards, want)
			}
		}
		check(t, s, k.ID, pii)
		check(t, openStore(t, open(), Options{Now: fixedNow}), k.ID, pii)
		check(t, openStore(t, open(), Options{Now: fixedNow}), plain.ID, nil)

		tests := []struct {
			name   string
			change Change
			want   []Guard
		}{
			{"none", Change{Guards: ptr([]Guard{})}, []Guard{}},
			{"another field kept them", Change{Name: ptr("renamed")}, []Guard{}},
			{"back to the routes'", Change{Guards: ptr([]Guard(nil))}, nil},
			{"a list again", Change{Guards: ptr([]Guard{{Name: "pii", Action: "log"}})}, []Guard{{Name: "pii", Action: "log"}}},
			{"kept by an empty change", Change{}, []Guard{{Name: "pii", Action: "log"}}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.Update(ctx, k.ID, tt.change)
				if err != nil {
					t.Fatal(err)
				}
				if !sameGuards(got.Guards, tt.want) {
					t.Fatalf("Update: guards %#v, want %#v", got.Guards, tt.want)
				}
				auth, err := s.Authenticate(secret)
				if err != nil || !sameGuards(auth.Guards, tt.want) {
					t.Fatalf("Authenticate: %+v %v", auth, err)
				}
				check(t, openStore(t, open(), Options{Now: fixedNow}), k.ID, tt.want)
			})
		}
		check(t, s, plain.ID, nil) // another key's column is untouched
	})
}

// TestReplicasSeeGuards: a change of guards on replica A reaches B,
// nil and [] told apart (the reload must not take one for the other).
func TestReplicasSeeGuards(t *testing.T) {
	ctx := context.Background()
	a, b, _ := replicas(t, Options{Now: fixedNow})
	k, secret, err := a.Create(ctx, New{Name: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Authenticate(secret); err != nil || got.Guards != nil {
		t.Fatalf("%+v %v", got, err)
	}
	for _, want := range [][]Guard{{}, {{Name: "pii", Action: "mask"}}, nil} {
		if _, err := a.Update(ctx, k.ID, Change{Guards: &want}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "B applies A's guards", func() bool {
			got, err := b.Authenticate(secret)
			return err == nil && sameGuards(got.Guards, want)
		})
	}
}
