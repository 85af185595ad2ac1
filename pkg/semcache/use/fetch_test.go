package use

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// tarball builds an npm-style .tgz holding files under package/.
func tarball(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: "package/" + name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func integrity(b []byte) string {
	sum := sha512.Sum512(b)
	return "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
}

// serve returns a test server answering every request with body, and a
// counter of the requests it saw.
func serve(t *testing.T, status int, body []byte) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		t.Errorf("left %s in %s", e.Name(), dir)
	}
}

func TestFetchFailures(t *testing.T) {
	good := tarball(t, map[string]string{"dist/model.json": `{"modelTopology":{"node":[{"name":"x","op":"Const"}]},"weightsManifest":[]}`, "dist/vocab.json": `[]`})
	corrupted := bytes.Clone(good)
	corrupted[len(corrupted)/2] ^= 0xff
	noModel := tarball(t, map[string]string{"dist/vocab.json": `[]`})
	tests := []struct {
		name      string
		status    int
		body      []byte
		integrity string
		wantErr   error  // matched with errors.Is when set
		wantText  string // else a substring of the error
	}{
		{"corrupted tarball", 200, corrupted, integrity(good), ErrIntegrity, ""},
		{"pinned integrity, other bytes", 200, good, DefaultSource.Integrity, ErrIntegrity, ""},
		{"not found", 404, []byte("nope"), integrity(good), nil, "404"},
		{"not gzip", 200, []byte("plain"), integrity([]byte("plain")), nil, "tarball"},
		{"no model.json", 200, noModel, integrity(noModel), nil, "no dist/model.json"},
		{"another graph", 200, good, integrity(good), nil, "not the USE-lite graph"},
		{"unsupported integrity", 200, good, "sha1-abc", nil, "unsupported integrity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := serve(t, tt.status, tt.body)
			dir := t.TempDir()
			err := FetchSource(context.Background(), dir, srv.Client(), Source{URL: srv.URL + "/pkg.tgz", Integrity: tt.integrity})
			switch {
			case err == nil:
				t.Fatal("want an error")
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			case tt.wantErr == nil && !strings.Contains(err.Error(), tt.wantText):
				t.Fatalf("error %q, want it to mention %q", err, tt.wantText)
			}
			assertEmptyDir(t, dir)
		})
	}
}

// validFile is a converted file whose checksum holds, converted from the
// default source (its contents are not a usable model).
func validFile() []byte {
	return encodeBundle(&bundle{source: DefaultSource.Integrity, pieces: []string{"a"}, scores: []float64{0}})
}

func TestFetchSkipsDownloadWhenFileVerifies(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), validFile(), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, hits := serve(t, 500, nil)
	if err := FetchSource(context.Background(), dir, srv.Client(), Source{URL: srv.URL, Integrity: DefaultSource.Integrity}); err != nil {
		t.Fatal(err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("made %d requests, want none", n)
	}
}

func TestFetchReplacesFileFromOtherWeights(t *testing.T) {
	dir := t.TempDir()
	old := encodeBundle(&bundle{source: "sha512-older", pieces: []string{"a"}, scores: []float64{0}})
	os.WriteFile(filepath.Join(dir, FileName), old, 0o644)
	srv, hits := serve(t, 404, nil)
	err := FetchSource(context.Background(), dir, srv.Client(), Source{URL: srv.URL, Integrity: DefaultSource.Integrity})
	if err == nil || hits.Load() != 1 {
		t.Fatalf("want a download for the new pin, got %v after %d requests", err, hits.Load())
	}
}

func TestFetchReplacesCorruptFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	bad := validFile()
	bad[len(bad)-1] ^= 1
	os.WriteFile(path, bad, 0o644)
	srv, hits := serve(t, 404, nil)
	err := FetchSource(context.Background(), dir, srv.Client(), Source{URL: srv.URL, Integrity: DefaultSource.Integrity})
	if err == nil || hits.Load() != 1 {
		t.Fatalf("want a download attempt and its error, got %v after %d requests", err, hits.Load())
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, bad) {
		t.Error("a failed fetch must leave the old file as it was")
	}
}

func TestLoadRejectsBadFiles(t *testing.T) {
	good := validFile()
	flipped := bytes.Clone(good)
	flipped[headerSize+3] ^= 0x10
	badMagic := bytes.Clone(good)
	badMagic[0] = 'X'
	tests := []struct {
		name     string
		data     []byte // nil: no file
		wantText string
		corrupt  bool
	}{
		{"missing", nil, "no such file", false},
		{"empty", []byte{}, "shorter than the header", true},
		{"truncated header", good[:20], "shorter than the header", true},
		{"truncated payload", good[:len(good)-5], "truncated", true},
		{"flipped byte", flipped, "checksum mismatch", true},
		{"bad magic", badMagic, "bad magic", true},
		{"verifies but is no model", good, "vocabulary has 1 pieces", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.data != nil {
				os.WriteFile(filepath.Join(dir, FileName), tt.data, 0o644)
			}
			m, err := Load(dir)
			if err == nil || m != nil {
				t.Fatalf("Load = %v, %v; want an error", m, err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q, want it to mention %q", err, tt.wantText)
			}
			if errors.Is(err, ErrCorrupt) != tt.corrupt {
				t.Errorf("errors.Is(err, ErrCorrupt) = %v, want %v", !tt.corrupt, tt.corrupt)
			}
		})
	}
}

func TestDecodeBundleRoundTrip(t *testing.T) {
	b := &bundle{
		source: "src",
		pieces: []string{"�", "▁a", "b"},
		scores: []float64{0, -1.25, -3.5},
		tensors: []tensor{
			{name: "w", shape: []int{2, 2}, data: []float32{1, -2, 0.5, 65504}, half: true},
			{name: "s", shape: []int{}, data: []float32{1e-12}},
		},
	}
	payload, err := verifyFile(encodeBundle(b))
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeBundle(payload)
	if err != nil {
		t.Fatal(err)
	}
	if got.source != b.source || len(got.pieces) != 3 || got.pieces[1] != "▁a" || got.scores[2] != -3.5 {
		t.Errorf("vocabulary: %+v", got)
	}
	for i, want := range b.tensors {
		g := got.tensors[i]
		if g.name != want.name || g.half != want.half || len(g.data) != len(want.data) {
			t.Fatalf("tensor %d: %+v", i, g)
		}
		for j := range want.data {
			if g.data[j] != want.data[j] {
				t.Errorf("tensor %s[%d] = %v, want %v", g.name, j, g.data[j], want.data[j])
			}
		}
	}
}

// TestFetchIsIdempotent uses the real model: a second Fetch must not rewrite
// the verified file.
func TestFetchIsIdempotent(t *testing.T) {
	dir := testFetch(t)
	path := filepath.Join(dir, FileName)
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Fetch(context.Background(), dir, &http.Client{Transport: failTransport{}}); err != nil {
		t.Fatalf("second Fetch: %v", err)
	}
	after, _ := os.Stat(path)
	if !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
		t.Error("second Fetch rewrote the converted file")
	}
	if before.Size() > 16<<20 {
		t.Errorf("converted file is %d bytes, want fp16 (< 16 MB)", before.Size())
	}
}

type failTransport struct{}

func (failTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network expected")
}
