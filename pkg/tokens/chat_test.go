package tokens

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/png"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/llm"
)

type chatGolden struct {
	Requests map[string]json.RawMessage `json:"requests"`
	Cases    []struct {
		Name, Request, Model, Tokenizer, Source string
		Want                                    int
	} `json:"cases"`
}

func pngDataURL(t testing.TB, w, h int) string {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
}

// TestCountChatGolden replays chat requests whose prompt_tokens OpenAI
// reported (testdata/tokens/chat_golden.json says where each number comes
// from). CountChat must reproduce every one exactly.
func TestCountChatGolden(t *testing.T) {
	var g chatGolden
	raw := strings.ReplaceAll(readTestdata(t, "chat_golden.json"), "{{png128x64}}", pngDataURL(t, 128, 64))
	if err := json.Unmarshal([]byte(raw), &g); err != nil {
		t.Fatal(err)
	}
	c := NewCounter()
	for _, tc := range g.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			var req llm.ChatRequest
			if err := json.Unmarshal(g.Requests[tc.Request], &req); err != nil {
				t.Fatalf("request %q: %v", tc.Request, err)
			}
			for range 2 { // the second pass is served by the segment cache
				got, err := c.CountChat(tc.Tokenizer, tc.Model, &req)
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.Want {
					t.Errorf("CountChat = %d, OpenAI reported %d (source: %s)", got, tc.Want, tc.Source)
				}
			}
		})
	}
}

// TestCountGolden: token counts printed in the OpenAI cookbook "How to count
// tokens with tiktoken", section 5 (cl100k_base), and its example string.
func TestCountGolden(t *testing.T) {
	c := NewCounter()
	for _, tc := range []struct {
		name, tokenizer, text string
		want                  int
	}{
		{"tiktoken is great", CL100K, "tiktoken is great!", 6},
		{"antidisestablishmentarianism", CL100K, "antidisestablishmentarianism", 6},
		{"arithmetic", CL100K, "2 + 2 = 4", 7},
		{"japanese", CL100K, "お誕生日おめでとう", 9},
		{"empty", O200K, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Count(tc.tokenizer, tc.text)
			if err != nil || got != tc.want {
				t.Errorf("Count = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}
