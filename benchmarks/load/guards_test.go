package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/guardrails"
)

// guardsVariant is proxy-guards' guarded gateway.
func guardsVariant(t *testing.T) variant {
	t.Helper()
	sc, err := findScenario("proxy-guards")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range sc.variants {
		if v.Name == "gateway-guards" {
			return v
		}
	}
	t.Fatal("proxy-guards has no gateway-guards variant")
	return variant{}
}

// guardsPolicy compiles the guards of the config the variant generates,
// as the gateway does, after pkg/config has validated it.
func guardsPolicy(t *testing.T, v variant) *guardrails.Policy {
	t.Helper()
	g := variantConfig(t, v).Guardrails
	if !slices.Equal(g.Default, []string{"pii", "secrets"}) || len(g.Guards) != 2 {
		t.Fatalf("guardrails %+v, want pii and secrets by default", g)
	}
	var uses []guardrails.Use
	for _, gc := range g.Guards {
		spec := gc.Spec()
		if !spec.Request || !spec.Answer {
			t.Errorf("guard %s scans request %v, answer %v: want both", spec.Name, spec.Request, spec.Answer)
		}
		compiled, err := guardrails.Compile(spec)
		if err != nil {
			t.Fatal(err)
		}
		uses = append(uses, guardrails.Use{Guard: compiled})
	}
	var dets []string
	for _, gc := range g.Guards {
		dets = append(dets, gc.Detectors...)
	}
	if slices.Sort(dets); !slices.Equal(dets, guardrails.BuiltinNames()) {
		t.Errorf("detectors %v, want every built-in one %v", dets, guardrails.BuiltinNames())
	}
	p, err := guardrails.NewPolicy(uses, g.ScanLimitBytes)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGuardsMix: the prompt is about 2 KB and the answer about 500 bytes;
// the guarded gateway's config masks every value of the prompt before the
// upstream sees it, restores them in the answer and masks the answer's own
// address, which is what its probe checks once the gateway runs.
func TestGuardsMix(t *testing.T) {
	if n := len(guardPrompt); n < 1900 || n > 2200 {
		t.Errorf("prompt is %d bytes, want about 2 KB", n)
	}
	if n := len(guardAnswer); n < 450 || n > 600 {
		t.Errorf("answer is %d bytes, want about 500", n)
	}
	values := []string{guardEmail, guardEmail2, guardPhone, guardCard}
	run := guardsPolicy(t, guardsVariant(t)).Begin()
	masked, err := run.Request(guardPrompt)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		if strings.Contains(masked, v) {
			t.Errorf("the upstream would see %q", v)
		}
	}
	for _, p := range []string{"[EMAIL_1]", "[EMAIL_2]", "[PHONE_1]", "[CARD_1]", guardBookingRef} {
		if !strings.Contains(masked, p) {
			t.Errorf("masked prompt lacks %s: %s", p, masked)
		}
	}
	answer, err := run.Answer(guardAnswer)
	if err != nil {
		t.Fatal(err)
	}
	answer = run.Unmask(answer)
	for _, v := range values {
		if !strings.Contains(answer, v) {
			t.Errorf("%q not restored in the answer: %s", v, answer)
		}
	}
	if strings.Contains(answer, guardAnswerEmail) {
		t.Errorf("the answer's own address is not masked: %s", answer)
	}

	mix := guardsMix(mixOptions{streamFraction: 0.1})
	streams := 0
	for _, r := range mix {
		if r.stream {
			streams++
		}
		if !bytes.Contains(r.body, []byte(guardBookingRef)) || !bytes.Contains(r.body, []byte(guardCard)) {
			t.Fatalf("%s: body without the prompt: %s", r.name, r.body)
		}
	}
	if streams != 1 || len(mix) != 10 {
		t.Errorf("%d streams of %d requests, want 1 of 10", streams, len(mix))
	}
}

// TestUpstreamAnswersGuardsPrompt: the upstream answers the prompt, as
// clients send it and as a guarded gateway masks it, with the same answer,
// whole and streamed; other prompts keep their answers.
func TestUpstreamAnswersGuardsPrompt(t *testing.T) {
	up := httptest.NewServer(newUpstream())
	defer up.Close()
	g := &gateway{proc: &proc{addr: strings.TrimPrefix(up.URL, "http://")}, key: upstreamAPIKey}
	run := guardsPolicy(t, guardsVariant(t)).Begin()
	masked, err := run.Request(guardPrompt)
	if err != nil {
		t.Fatal(err)
	}
	mix := guardsMix(mixOptions{streamFraction: 0.5})
	for _, tc := range []struct {
		name       string
		from, to   string
		stream     bool
		wantAnswer string
	}{
		{"raw", "", "", false, guardAnswer},
		{"raw/stream", "", "", true, guardAnswer},
		{"masked", guardPrompt, masked, false, guardAnswer},
		{"masked/stream", guardPrompt, masked, true, guardAnswer},
		{"other prompt", guardBookingRef, "ABC-123", false, "The capital of France is Paris."},
		{"other prompt/stream", guardBookingRef, "ABC-123", true, "The capital of France is Paris."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := slices.IndexFunc(mix, func(r request) bool { return r.stream == tc.stream })
			r := mix[i]
			if tc.from != "" {
				r.body = bytes.Replace(r.body, jsonText(tc.from), jsonText(tc.to), 1)
			}
			text, err := g.chatText(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(text, tc.wantAnswer) {
				t.Fatalf("answer %q, want %q", text, tc.wantAnswer)
			}
		})
	}
}

// TestProbeGuardsRefusesAnUnguardedGateway: the probe fails on a gateway
// that passes answers unchanged (here the upstream itself).
func TestProbeGuardsRefusesAnUnguardedGateway(t *testing.T) {
	up := httptest.NewServer(newUpstream())
	defer up.Close()
	g := &gateway{proc: &proc{addr: strings.TrimPrefix(up.URL, "http://")}, key: upstreamAPIKey}
	err := probeGuards(context.Background(), g)
	if err == nil || !strings.Contains(err.Error(), "not restored") {
		t.Fatalf("probe: %v, want a value not restored", err)
	}
}

// jsonText is s as it appears inside a JSON string.
func jsonText(s string) []byte {
	b := mustJSON(s)
	return b[1 : len(b)-1]
}
