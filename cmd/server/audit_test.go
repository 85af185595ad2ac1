package main

import (
	"net/http"
	"testing"
)

// TestAuditLogIsWired: the gateway records admin actions in its store and
// GET /admin/audit lists them; on PostgreSQL every replica lists the
// actions served by the others.
func TestAuditLogIsWired(t *testing.T) {
	tests := []struct {
		name     string
		replicas int
		opts     func(t *testing.T) replicaOptions
	}{
		{"sqlite", 1, func(*testing.T) replicaOptions { return replicaOptions{cache: true} }},
		{"postgres replicas", 2, func(t *testing.T) replicaOptions {
			return replicaOptions{postgresURL: replicaSchema(t), cache: true}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := startReplicas(t, tt.replicas, replicaConfig(t, tt.opts(t)))
			first, last := rs[0].url, rs[len(rs)-1].url
			id, _ := createReplicaKey(t, first, `{"name":"audited"}`)
			if st := adminCall(t, first, "DELETE", "/admin/keys/"+id, "", nil); st != http.StatusOK {
				t.Fatalf("revoke: %d", st)
			}
			if st := adminCall(t, last, "DELETE", "/admin/cache", "", nil); st != http.StatusOK {
				t.Fatalf("cache delete: %d", st)
			}
			for _, base := range []string{first, last} {
				var l struct {
					Data []struct{ Action, Target string }
				}
				if st := adminCall(t, base, "GET", "/admin/audit", "", &l); st != http.StatusOK {
					t.Fatalf("GET /admin/audit: %d", st)
				}
				want := []string{"cache.delete cache", "key.revoke " + id, "key.create " + id}
				if len(l.Data) != len(want) {
					t.Fatalf("%s lists %+v, want %v", base, l.Data, want)
				}
				for i, e := range l.Data {
					if e.Action+" "+e.Target != want[i] {
						t.Fatalf("%s lists %+v, want %v", base, l.Data, want)
					}
				}
			}
		})
	}
}
