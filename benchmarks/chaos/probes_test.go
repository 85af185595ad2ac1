package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEchoed(t *testing.T) {
	const secret = "BCDFGHJKLMNP"
	for _, tc := range []struct {
		name  string
		texts []string
		want  string
	}{
		{"nothing", []string{`{"error":{"message":"invalid admin key"}}`, "req_0a1b2c3d4e5f_1"}, ""},
		{"OpenAI-style redaction", []string{"Incorrect API key provided: BCDF****KLMNP."}, "BCDF"},
		{"its end in a header", []string{"", "Www-Authenticate: Bearer KLMN"}, "KLMN"},
		{"three in a row is no echo", []string{"BCD GHJ"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var texts [][]byte
			for _, s := range tc.texts {
				texts = append(texts, []byte(s))
			}
			if got := echoed(secret, texts...); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSecretsAvoidCommonText: the admin keys the suite makes cannot be
// mistaken for request ids or words.
func TestSecretsAvoidCommonText(t *testing.T) {
	s := randomSecret(40)
	if len(s) != 40 || strings.Trim(s, secretAlphabet) != "" {
		t.Fatalf("secret %q", s)
	}
	if run := echoed(s, []byte("req_0123456789abcdef_1 Incorrect API key provided the request body JSON")); run != "" {
		t.Fatalf("%q found in ordinary text", run)
	}
}

func TestReadAccessLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.log")
	log := strings.Join([]string{
		`tollgate: listening on http://127.0.0.1:1`,
		`{"time":"t","level":"INFO","msg":"listening","addr":"127.0.0.1:1"}`,
		`{"time":"t","level":"INFO","msg":"request","id":"req_1","path":"/v1/chat/completions","status":200,"latency":2500000000}`,
		`{"time":"t","level":"WARN","msg":"request","id":"req_2","path":"/healthz","status":200,"latency":"1.5s"}`,
		`{"time":"t","level":"INFO","msg":"request","id":"req_3"`, // cut by a kill
	}, "\n")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	lines, err := readAccessLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || lines[0].ID != "req_1" || lines[0].latency != 2500*time.Millisecond || lines[1].latency != 1500*time.Millisecond {
		t.Fatalf("%+v", lines)
	}
	if n, err := longestLine(path); err != nil || n != len(`{"time":"t","level":"INFO","msg":"request","id":"req_1","path":"/v1/chat/completions","status":200,"latency":2500000000}`) {
		t.Fatalf("longest %d %v", n, err)
	}
}

func TestDrainLog(t *testing.T) {
	long := `{"msg":"request","id":"req_9","path":"/chaos-` + strings.Repeat("x", 100<<10) + `"}`
	in := strings.Join([]string{
		`{"msg":"request","id":"req_1","path":"/healthz"}`,
		`{"time":"t","level":"WARN","msg":"log: dropped 12 lines","dropped":12}`,
		`log: dropped 3 lines`,
		long,
		`{"msg":"listening"}`,
	}, "\n") + "\n"
	var kept strings.Builder
	d := drainLog(strings.NewReader(in), &kept)
	<-d.done
	if d.dropped.Load() != 15 || d.notices.Load() != 2 {
		t.Errorf("dropped %d in %d notices, want 15 in 2", d.dropped.Load(), d.notices.Load())
	}
	if len(d.lines) != 2 || d.lines[1].ID != "req_9" {
		t.Errorf("access lines %d", len(d.lines))
	}
	if kept.String() != in {
		t.Error("the kept copy differs from the stream")
	}
}

func TestLimitedWriter(t *testing.T) {
	var b strings.Builder
	w := &limitedWriter{w: &b, n: 5}
	for _, s := range []string{"abc", "defg", "hij"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if b.String() != "abcde" {
		t.Fatalf("kept %q", b.String())
	}
}

func TestTally(t *testing.T) {
	got := tally([]string{"cut", "error event", "cut"}, func(s string) string { return s })
	if got != "2 cut, 1 error event" {
		t.Fatalf("got %q", got)
	}
}

func TestSelectProbes(t *testing.T) {
	all, err := selectProbes("")
	if err != nil || len(all) != len(probes) {
		t.Fatalf("all: %d %v", len(all), err)
	}
	two, err := selectProbes("drip-body, giant-line")
	if err != nil || len(two) != 2 || two[0].name != "drip-body" {
		t.Fatalf("two: %v", err)
	}
	if _, err := selectProbes("giant-line,nope"); err == nil || !strings.Contains(err.Error(), `unknown probe "nope"`) {
		t.Fatalf("unknown: %v", err)
	}
}

// TestScalesMirrorTheIssue holds the full form to the issue's numbers and
// the short form below them.
func TestScalesMirrorTheIssue(t *testing.T) {
	f, s := fullScale, shortScale
	if f.nonReaders != 200 || f.sigtermStreams != 200 || f.logRequests != 1000 || f.lineBytes != 300e6 || f.responseBytes != 100e6 || f.short {
		t.Errorf("full form %+v", f)
	}
	if !s.short || s.nonReaders >= f.nonReaders || s.lineBytes >= f.lineBytes || s.probeTimeout > time.Minute {
		t.Errorf("short form %+v", s)
	}
	for _, sc := range []scale{f, s} {
		// The hostile sizes must exceed the limits they test.
		if sc.maxEventBytes > 0 && sc.lineBytes <= sc.maxEventBytes || sc.maxRespBytes > 0 && sc.responseBytes <= sc.maxRespBytes ||
			sc.maxStreamBytes > 0 && sc.endlessCap <= 2*sc.maxStreamBytes {
			t.Errorf("a hostile size within its limit: %+v", sc)
		}
	}
}
