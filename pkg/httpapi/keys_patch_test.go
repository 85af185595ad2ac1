package httpapi_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/openai/openai-go/v3"
)

// TestPatchKeyChangesOnlyWhatIsSent: each PATCH changes the fields it
// sends and keeps every other one, the key's own and its policy's; the
// answer is the key as GET shows it; PUT .../budget, by contrast,
// replaces the whole policy.
func TestPatchKeyChangesOnlyWhatIsSent(t *testing.T) {
	s := newStack(t, stackOptions{budgets: true})
	status, created, raw := adminDo(t, s, "POST", "/admin/keys", `{"name":"team-a","allowed_models":["sim-small","sim-large"],
		"metadata":{"owner":"ana"},"rpm":600,"tpm":200000,"on_exhausted":"downgrade",
		"budgets":[{"period":"daily","limit_usd":5}],"alert_webhooks":[{"url":"https://hooks.example.com/a"}]}`)
	if status != 201 {
		t.Fatalf("%d %s", status, raw)
	}
	id, secret := created["id"].(string), created["key"].(string)

	// want is the key's state after each step, as GET shows it (the
	// fields compared).
	want := map[string]any{}
	for _, f := range []string{"name", "allowed_models", "metadata", "allow_byok", "rpm", "tpm", "on_exhausted", "alert_webhooks", "budgets"} {
		want[f] = created[f]
	}
	budgets := func(period string, limit float64) any {
		return []any{map[string]any{"period": period, "limit_usd": limit}}
	}
	steps := []struct {
		name    string
		body    string
		changed map[string]any
	}{
		{"empty: nothing changes", `{}`, nil},
		{"budgets only: rpm, tpm, on_exhausted and webhooks kept", `{"budgets":[{"period":"weekly","limit_usd":20}]}`,
			map[string]any{"budgets": budgets("weekly", 20)}},
		{"name and rpm", `{"name":"  renamed  ","rpm":100}`, map[string]any{"name": "renamed", "rpm": 100.0}},
		{"allowed models, metadata, byok", `{"allowed_models":["sim-small"],"metadata":{},"allow_byok":true}`,
			map[string]any{"allowed_models": []any{"sim-small"}, "metadata": map[string]any{}, "allow_byok": true}},
		{"webhooks emptied, on_exhausted", `{"alert_webhooks":[],"on_exhausted":"reject","tpm":0}`,
			map[string]any{"alert_webhooks": []any{}, "on_exhausted": "reject", "tpm": 0.0}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			status, got, raw := adminDo(t, s, "PATCH", "/admin/keys/"+id, st.body)
			if status != 200 {
				t.Fatalf("%d %s", status, raw)
			}
			for f, v := range st.changed {
				want[f] = v
			}
			for f, v := range want {
				g := got[f]
				if f == "budgets" { // what was set, not the periods' times and spend
					g, v = trimBudgets(g), trimBudgets(v)
				}
				if !reflect.DeepEqual(g, v) {
					t.Errorf("%s = %#v, want %#v", f, g, v)
				}
			}
			if _, get, getRaw := adminDo(t, s, "GET", "/admin/keys/"+id, ""); !reflect.DeepEqual(get, got) {
				t.Errorf("PATCH answered\n%s\nGET answers\n%s", raw, getRaw)
			}
		})
	}

	// The permissions follow at once: sim-large is no longer allowed.
	params := openai.ChatCompletionNewParams{Model: "sim-large", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
	_, err := s.client(secret).Chat.Completions.New(context.Background(), params)
	assertAPIError(t, err, 403, "")

	// PUT replaces the whole policy: rpm, left out, is reset.
	status, put, raw := adminDo(t, s, "PUT", "/admin/keys/"+id+"/budget", `{"budgets":[{"period":"monthly","limit_usd":50}]}`)
	if status != 200 || put["rpm"] != 0.0 || put["on_exhausted"] != "reject" || len(put["budgets"].([]any)) != 1 {
		t.Fatalf("PUT: %d %s", status, raw)
	}
}

// trimBudgets keeps each budget's period and limit.
func trimBudgets(v any) any {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, b := range list {
		m := b.(map[string]any)
		out = append(out, fmt.Sprint(m["period"], "=", m["limit_usd"]))
	}
	return out
}

// TestPatchKeyRefuses: what PATCH refuses, each in OpenAI's error shape,
// and nothing is changed by a refused request.
func TestPatchKeyRefuses(t *testing.T) {
	s := newStack(t, stackOptions{budgets: true})
	_, created, _ := adminDo(t, s, "POST", "/admin/keys", `{"name":"k","rpm":5}`)
	id := created["id"].(string)
	_, revoked, _ := adminDo(t, s, "POST", "/admin/keys", `{"name":"gone"}`)
	adminDo(t, s, "DELETE", "/admin/keys/"+revoked["id"].(string), "")
	tests := []struct {
		name, id, body string
		status         int
		code, param    string
	}{
		{"unknown field", id, `{"name":"x","colour":"red"}`, 400, "", ""},
		{"a field twice", id, `{"name":"x","name":"y"}`, 400, "", ""},
		{"null field", id, `{"rpm":null}`, 400, "", "rpm"},
		{"empty name", id, `{"name":"   "}`, 400, "", "name"},
		{"empty model name", id, `{"allowed_models":["sim-small",""]}`, 400, "", "allowed_models[1]"},
		{"wrong type", id, `{"rpm":"fast"}`, 400, "", "rpm"},
		{"invalid policy", id, `{"name":"changed","on_exhausted":"panic"}`, 400, "invalid_budget", ""},
		{"negative tpm", id, `{"tpm":-1}`, 400, "invalid_budget", ""},
		{"bad limit", id, `{"budgets":[{"period":"hourly","limit_usd":1}]}`, 400, "invalid_budget", ""},
		{"not JSON", id, `name=x`, 400, "", ""},
		{"unknown key", "key_nope", `{"name":"x"}`, 404, "key_not_found", "id"},
		{"revoked key", revoked["id"].(string), `{"name":"x"}`, 409, "key_revoked", "id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, raw := adminDo(t, s, "PATCH", "/admin/keys/"+tt.id, tt.body)
			assertErrorAnswer(t, status, raw, tt.status, tt.code, tt.param)
		})
	}
	_, got, raw := adminDo(t, s, "GET", "/admin/keys/"+id, "")
	if got["name"] != "k" || got["rpm"] != 5.0 || got["on_exhausted"] != "reject" {
		t.Fatalf("a refused PATCH changed the key: %s", raw)
	}
}

// TestPatchKeyWithoutBudgets: with budgets disabled the key's own fields
// change and a policy field is refused.
func TestPatchKeyWithoutBudgets(t *testing.T) {
	s := newStack(t, stackOptions{})
	_, created, _ := adminDo(t, s, "POST", "/admin/keys", `{"name":"k"}`)
	id := created["id"].(string)
	if status, got, raw := adminDo(t, s, "PATCH", "/admin/keys/"+id, `{"name":"renamed","metadata":{"a":"b"}}`); status != 200 || got["name"] != "renamed" {
		t.Fatalf("%d %s", status, raw)
	}
	if status, _, raw := adminDo(t, s, "PATCH", "/admin/keys/"+id, `{"rpm":5}`); status != 400 {
		t.Fatalf("%d %s", status, raw)
	}
}
