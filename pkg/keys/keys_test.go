package keys

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/sqlite"
)

func openDB(t *testing.T) (*sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tollgate.db")
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func fixedNow() time.Time { return time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC) }

func TestCreateAuthenticateRevokeSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	db, path := openDB(t)
	s, err := Open(ctx, db, fixedNow, nil)
	if err != nil {
		t.Fatal(err)
	}
	k, secret, err := s.Create(ctx, New{Name: "app", AllowedModels: []string{"sim-small"}, Metadata: map[string]string{"team": "a"}, AllowBYOK: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, SecretPrefix) || len(secret) < 30 || !strings.HasPrefix(secret, k.Hint) {
		t.Fatalf("secret %q hint %q", secret, k.Hint)
	}
	got, err := s.Authenticate(secret)
	if err != nil || got.ID != k.ID {
		t.Fatalf("authenticate: %v %v", got, err)
	}

	// Only the hash is stored.
	var stored []byte
	if err := db.QueryRow(`SELECT secret_hash FROM api_keys WHERE id = ?`, k.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(secret))
	if !bytes.Equal(stored, h[:]) {
		t.Fatal("stored value is not the SHA-256 of the secret")
	}
	var n int
	db.QueryRow(`SELECT count(*) FROM api_keys WHERE instr(CAST(secret_hash AS TEXT), ?) > 0 OR instr(name, ?) > 0`, secret, secret).Scan(&n)
	if n != 0 {
		t.Fatal("secret stored in clear")
	}

	// A new store on the same file sees the key.
	db2, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	s2, err := Open(ctx, db2, fixedNow, nil)
	if err != nil {
		t.Fatal(err)
	}
	got2, err := s2.Authenticate(secret)
	if err != nil || got2.Name != "app" || got2.Metadata["team"] != "a" || !got2.Allows("sim-small") || got2.Allows("sim-large") || !got2.AllowBYOK {
		t.Fatalf("after restart: %+v %v", got2, err)
	}

	if _, err := s.Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(secret); !errors.Is(err, ErrUnknown) {
		t.Fatalf("revoked key still authenticates: %v", err)
	}
	if k2, _ := s.Get(k.ID); k2.RevokedAt == nil {
		t.Fatal("revocation not recorded")
	}
	if _, err := s.Revoke(ctx, "key_nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
	s3, _ := Open(ctx, db2, fixedNow, nil)
	if _, err := s3.Authenticate(secret); err == nil {
		t.Fatal("revocation lost on restart")
	}
}

func TestAuthenticateRejects(t *testing.T) {
	db, _ := openDB(t)
	s, _ := Open(context.Background(), db, fixedNow, nil)
	for _, secret := range []string{"", "tg-", "sk-abc", "tg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", strings.Repeat("x", 10000)} {
		if _, err := s.Authenticate(secret); !errors.Is(err, ErrUnknown) {
			t.Errorf("%q: %v", secret, err)
		}
	}
}

func TestAllows(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		model   string
		want    bool
	}{
		{"empty allows all", nil, "gpt-4o", true},
		{"exact", []string{"gpt-4o"}, "gpt-4o", true},
		{"other", []string{"gpt-4o"}, "gpt-4o-mini", false},
		{"prefix wildcard", []string{"gpt-4o*"}, "gpt-4o-mini", true},
		{"star", []string{"*"}, "anything", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (&Key{AllowedModels: tt.allowed}).Allows(tt.model); got != tt.want {
				t.Fatalf("got %v", got)
			}
		})
	}
}

func TestConcurrentCreateAndAuthenticate(t *testing.T) {
	ctx := context.Background()
	db, _ := openDB(t)
	s, _ := Open(ctx, db, nil, nil)
	var wg sync.WaitGroup
	secrets := make(chan string, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, sec, err := s.Create(ctx, New{Name: "c"})
			if err != nil {
				t.Error(err)
				return
			}
			secrets <- sec
		}()
	}
	wg.Wait()
	close(secrets)
	for sec := range secrets {
		if _, err := s.Authenticate(sec); err != nil {
			t.Fatal(err)
		}
	}
	if s.Len() != 40 || len(s.List()) != 40 {
		t.Fatalf("len = %d", s.Len())
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	db, err := sqlite.Open(filepath.Join(b.TempDir(), "k.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s, _ := Open(context.Background(), db, nil, nil)
	_, secret, _ := s.Create(context.Background(), New{Name: "b"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Authenticate(secret); err != nil {
				b.Fatal(err)
			}
		}
	})
}
