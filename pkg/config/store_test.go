package config

import (
	"strings"
	"testing"
)

const secretPassword = "s3cr3t-pw"

// TestStore: store.driver and store.postgres_url, read from the file or
// from env:, and the problems reported, which never show the URL (it may
// hold a password).
func TestStore(t *testing.T) {
	for _, tc := range []struct {
		name   string
		yaml   string
		env    map[string]string
		driver string
		url    string
		errs   []string
	}{
		{"default", "", nil, "sqlite", "", nil},
		{"postgres from env", "store: {driver: postgres, postgres_url: env:PG}\n",
			map[string]string{"PG": "postgres://tg:" + secretPassword + "@db:5432/tollgate?sslmode=disable"},
			"postgres", "postgres://tg:" + secretPassword + "@db:5432/tollgate?sslmode=disable", nil},
		{"postgresql scheme", "store: {driver: postgres, postgres_url: 'postgresql://db/tollgate'}\n", nil, "postgres", "postgresql://db/tollgate", nil},
		{"unknown driver", "store: {driver: mysql}\n", nil, "", "", []string{
			`store.driver: must be sqlite or postgres, got "mysql"`,
		}},
		{"postgres needs a url", "store: {driver: postgres}\n", nil, "", "", []string{
			"store.postgres_url: required with driver postgres, e.g. env:TOLLGATE_POSTGRES_URL holding postgres://tollgate:PASSWORD@db:5432/tollgate",
		}},
		{"unset env", "store: {driver: postgres, postgres_url: env:NOPE_PG}\n", nil, "", "", []string{
			"store.postgres_url: environment variable NOPE_PG is not set",
		}},
		{"wrong scheme, value not shown", "store: {driver: postgres, postgres_url: 'mysql://u:" + secretPassword + "@db/x'}\n", nil, "", "", []string{
			"store.postgres_url: not a URL: the scheme must be postgres or postgresql (the value is not shown: it may hold a password)",
		}},
		{"no host, value not shown", "store: {driver: postgres, postgres_url: 'postgres:" + secretPassword + "'}\n", nil, "", "", []string{
			"store.postgres_url: not a URL: no host (the value is not shown: it may hold a password)",
		}},
		{"not a URL, value not shown", "store: {driver: postgres, postgres_url: 'postgres://u:" + secretPassword + "@db:port/x'}\n", nil, "", "", []string{
			"store.postgres_url: not a URL (the value is not shown: it may hold a password)",
		}},
		{"url without postgres", "store: {postgres_url: 'postgres://db/x'}\n", nil, "", "", []string{
			"store.postgres_url: only with driver postgres",
		}},
		{"lease and redis", "store: {driver: postgres, postgres_url: 'postgres://db/x', reservation_lease: 15m, redis_url: env:R}\n",
			map[string]string{"R": "redis://:" + secretPassword + "@cache:6379/0"}, "postgres", "postgres://db/x", nil},
		{"bad redis url, value not shown", "store: {driver: postgres, postgres_url: 'postgres://db/x', redis_url: 'http://:" + secretPassword + "@cache'}\n", nil, "", "", []string{
			"store.redis_url: not a redis:// or rediss:// URL with a host (the value is not shown: it may hold a password)",
		}},
		{"zero lease", "store: {driver: postgres, postgres_url: 'postgres://db/x', reservation_lease: 0s}\n", nil, "", "", []string{
			"store.reservation_lease: must be positive",
		}},
		{"redis without postgres", "store: {redis_url: 'redis://cache:6379'}\n", nil, "", "", []string{
			"store.redis_url: only with driver postgres (one process keeps its rate limits in memory)",
		}},
		{"typo", "store: {drivr: postgres}\n", nil, "", "", []string{
			"store.drivr: unknown field (did you mean driver?)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse(strings.NewReader(tc.yaml), env(tc.env))
			if tc.errs != nil {
				if err == nil {
					t.Fatal("no error")
				}
				if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tc.errs, "\n") {
					t.Fatalf("errors:\n%s\nwant:\n%s", err, strings.Join(tc.errs, "\n"))
				}
				if strings.Contains(err.Error(), secretPassword) {
					t.Fatalf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Store.Driver != tc.driver || cfg.Store.PostgresURL != tc.url {
				t.Fatalf("store = %q %q, want %q %q", cfg.Store.Driver, cfg.Store.PostgresURL, tc.driver, tc.url)
			}
			if s := cfg.Store.String(); strings.Contains(s, secretPassword) {
				t.Fatalf("String shows the password: %s", s)
			}
		})
	}
}
