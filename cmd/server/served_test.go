package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStartSaysWhatIsServed: a config file that does not configure
// providers keeps the simulator (sim-small answers) and the start log says
// so at INFO; a file with `providers: []` serves nothing, and the start
// log says that at WARN.
func TestStartSaysWhatIsServed(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		status   int    // of a sim-small completion
		logLine  string // the start line: its level and message
		logAttrs string
	}{
		{"a file that only sets logging keeps the simulator", "log: {level: info, format: text}\n", 200,
			`level=INFO msg="serving 3 models from 1 provider: sim (3 models)"`, "routes=auto"},
		{"providers: [] serves nothing", "providers: []\n", 404,
			`level=WARN msg="NOTHING IS SERVED: no model of the catalog has a configured provider`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "tollgate.yaml")
			// The hashed embedder: no model file to load.
			if err := os.WriteFile(cfg, []byte(tt.yaml+"cache: {semantic: {embedder: hashed}}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			var log lockedBuffer
			r := startWithStderr(t, nil, &log, "-config", cfg, "-data", dir)
			secret := devKeyRE.FindStringSubmatch(r.stdout.String())[1]
			req, _ := http.NewRequest("POST", r.url+"/v1/chat/completions", strings.NewReader(`{"model":"sim-small","messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("Authorization", "Bearer "+secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("sim-small: %d, want %d", resp.StatusCode, tt.status)
			}
			if err := r.stop(t); err != nil {
				t.Fatal(err)
			}
			var line string
			for _, l := range strings.Split(log.String(), "\n") {
				if strings.Contains(l, tt.logLine) {
					line = l
				}
			}
			if line == "" || !strings.Contains(line, tt.logAttrs) {
				t.Fatalf("no start line %q with %q in the log:\n%s", tt.logLine, tt.logAttrs, log.String())
			}
		})
	}
}
