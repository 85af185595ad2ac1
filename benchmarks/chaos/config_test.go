package main

import (
	"strings"
	"testing"
	"time"
)

// TestBuildConfig places settings the way a build of the gateway accepts
// them, with pkg/config itself as the judge; the keys used exist in every
// build (timeout, request_timeout) or in none (chaos_no_such_key).
func TestBuildConfig(t *testing.T) {
	for _, tc := range []struct {
		name      string
		settings  []setting
		wantPaths []string // where each setting went ("" nowhere)
		wantNotes int
		wantErr   string
	}{
		{"a provider key", []setting{providerSetting("timeout", "3s")}, []string{"providers[0].timeout"}, 0, ""},
		{"a key only the top has moves there", []setting{providerSetting("request_timeout", "7s")}, []string{"request_timeout"}, 0, ""},
		{"a key no build has is left out", []setting{topSetting("chaos_no_such_key", "1s"), providerSetting("timeout", "3s")}, []string{"", "providers[0].timeout"}, 1, ""},
		{"a bad value is the suite's error", []setting{providerSetting("timeout", "soon")}, nil, 0, "providers[0].timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gc, err := buildConfig(baseConfig("http://127.0.0.1:1/v1"), tc.settings, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range gc.settings {
				if p.path != tc.wantPaths[i] {
					t.Errorf("%s went to %q, want %q", p.key, p.path, tc.wantPaths[i])
				}
			}
			if n := len(gc.notes()); n != tc.wantNotes {
				t.Errorf("%d notes, want %d: %v", n, tc.wantNotes, gc.notes())
			}
		})
	}
}

func TestValuesInForce(t *testing.T) {
	gc, err := buildConfig(baseConfig("http://127.0.0.1:1/v1"), []setting{
		providerSetting("timeout", "3s"), topSetting("max_body_bytes", 2048), topSetting("chaos_no_such_key", 1),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := gc.duration("timeout"); !ok || d != 3*time.Second {
		t.Errorf("timeout %v %v", d, ok)
	}
	if n, ok := gc.bytes("max_body_bytes"); !ok || n != 2048 {
		t.Errorf("max_body_bytes %v %v", n, ok)
	}
	if _, ok := gc.bytes("chaos_no_such_key"); ok {
		t.Error("a key this build does not have has a value")
	}
	if _, ok := gc.duration("no such key"); ok {
		t.Error("a key no build has has a value")
	}
	// A key the probe did not set has its default in force.
	if d, ok := gc.duration("drain_timeout"); !ok || d != 5*time.Second {
		t.Errorf("drain_timeout %v %v", d, ok)
	}
	// Defaults show through: drain_timeout is in the base config, the
	// request timeout is the gateway's own default.
	if v, _ := getPath(gc.tree, "drain_timeout"); v != "5s" {
		t.Errorf("drain_timeout %v", v)
	}
	if v, ok := getPath(gc.tree, "request_timeout"); !ok || v == "" {
		t.Errorf("request_timeout default missing: %v", v)
	}
}

func TestPaths(t *testing.T) {
	tree := map[string]any{"providers": []any{map[string]any{"name": "p"}}}
	for _, tc := range []struct {
		name, path string
		value      any
		wantErr    bool
	}{
		{"top", "listen", "127.0.0.1:1", false},
		{"nested, created", "log.level", "debug", false},
		{"in a list", "providers[0].timeout", "1s", false},
		{"past a list's end", "providers[1].timeout", "1s", true},
		{"bad index", "providers[x].timeout", "1s", true},
		{"empty part", "log..level", "x", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := setPath(tree, tc.path, tc.value)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			if err == nil {
				if v, ok := getPath(tree, tc.path); !ok || v != tc.value {
					t.Fatalf("read back %v %v", v, ok)
				}
			}
		})
	}
	if _, ok := getPath(tree, "providers[0].name.more"); ok {
		t.Error("a path through a string resolved")
	}
}

// TestRejectedByTheGateway: a gateway of another build refusing a key at
// start-up moves the setting on like pkg/config does, and its value is
// then unknown.
func TestRejectedByTheGateway(t *testing.T) {
	settings := []setting{providerSetting("timeout", "3s")}
	gc, err := buildConfig(baseConfig("http://127.0.0.1:1/v1"), settings, nil)
	if err != nil {
		t.Fatal(err)
	}
	startup := "gateway: exited during start-up: exit status 1\n--- gateway.log:\ntollgate: config /tmp/x/tollgate.yaml: providers[0].timeout: unknown field (did you mean ttft_timeout?)"
	if n := rejectUnknown(startup, gc.settings, gc.rejected); n != 1 {
		t.Fatalf("rejected %d paths, want 1", n)
	}
	if n := rejectUnknown(startup, gc.settings, gc.rejected); n != 0 {
		t.Fatalf("a path rejected twice: %d", n)
	}
	// timeout exists only in the provider: with that path refused, it
	// tries the top level, which pkg/config refuses too.
	gc, err = buildConfig(baseConfig("http://127.0.0.1:1/v1"), settings, gc.rejected)
	if err != nil {
		t.Fatal(err)
	}
	if gc.settings[0].path != "" || len(gc.notes()) != 1 {
		t.Fatalf("placed at %q, notes %v", gc.settings[0].path, gc.notes())
	}
	if _, ok := gc.duration("timeout"); ok {
		t.Fatal("a key the gateway refused has a value in force")
	}
}
