package semcache

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCacheable(t *testing.T) {
	env := newTestEnv(t)
	c := env.open(t, func(o *Options) {
		o.SideEffectTools = []string{"send_email"}
		o.RouteMaxTemperature = map[string]float64{"creative": 2}
	})
	toolConv := func(name string) string {
		return `{"model":"m","messages":[{"role":"user","content":"do it"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"` + name + `","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"done"}]}`
	}
	tests := []struct {
		name  string
		model string
		body  string
		want  bool
	}{
		{"plain", "", baseBody, true},
		{"n 1", "", with(`"n":1`), true},
		{"n 2", "", with(`"n":2`), false},
		{"logprobs", "", with(`"logprobs":true`), false},
		{"logprobs false", "", with(`"logprobs":false`), true},
		{"top logprobs", "", with(`"top_logprobs":3`), false},
		{"side-effecting tool result", "", toolConv("send_email"), false},
		{"read-only tool result", "", toolConv("get_weather"), true},
		{"legacy function result", "", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"function","name":"send_email","content":"ok"}]}`, false},
		{"temperature at bound", "", strings.Replace(baseBody, "0.2", "1", 1), true},
		{"temperature above bound", "", strings.Replace(baseBody, "0.2", "1.3", 1), false},
		{"route allows higher temperature", "creative", strings.Replace(baseBody, "0.2", "1.3", 1), true},
		{"no temperature", "", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req(t, "t1", tt.body)
			if tt.model != "" {
				r.Model = tt.model
			}
			ok, why := c.Cacheable(r)
			if ok != tt.want {
				t.Errorf("Cacheable = %v (%s), want %v", ok, why, tt.want)
			}
			if !ok && why == "" {
				t.Error("no reason given")
			}
		})
	}
}

func TestParseControls(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		want    Controls
		errWord string // the header an error must name; "" for no error
	}{
		{"none", nil, Controls{}, ""},
		{"no-cache", map[string]string{"Cache-Control": "no-cache"}, Controls{NoCache: true}, ""},
		{"no-store", map[string]string{"Cache-Control": "No-Store"}, Controls{NoStore: true}, ""},
		{"both and max-age", map[string]string{"Cache-Control": "no-cache, no-store, max-age=60"}, Controls{NoCache: true, NoStore: true, MaxAge: time.Minute}, ""},
		{"max-age=0 is no-cache", map[string]string{"Cache-Control": "max-age=0"}, Controls{NoCache: true}, ""},
		{"unknown directive ignored", map[string]string{"Cache-Control": "private, max-age=5"}, Controls{MaxAge: 5 * time.Second}, ""},
		{"bad max-age", map[string]string{"Cache-Control": "max-age=soon"}, Controls{}, "Cache-Control"},
		{"negative max-age", map[string]string{"Cache-Control": "max-age=-1"}, Controls{}, "Cache-Control"},
		{"max-age without value", map[string]string{"Cache-Control": "max-age"}, Controls{}, "Cache-Control"},
		{"threshold", map[string]string{"x-tollgate-cache-threshold": "0.97"}, Controls{Threshold: 0.97}, ""},
		{"threshold not a number", map[string]string{"x-tollgate-cache-threshold": "high"}, Controls{}, "x-tollgate-cache-threshold"},
		{"threshold above 1", map[string]string{"x-tollgate-cache-threshold": "1.5"}, Controls{}, "x-tollgate-cache-threshold"},
		{"threshold zero", map[string]string{"x-tollgate-cache-threshold": "0"}, Controls{}, "x-tollgate-cache-threshold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			got, err := ParseControls(h)
			if tt.errWord != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errWord) {
					t.Fatalf("err = %v, want one naming %s", err, tt.errWord)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
