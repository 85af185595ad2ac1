package use

import (
	"context"
	"strings"
	"sync"
	"testing"
)

var (
	refOnce  sync.Once
	refModel *Model
	refErr   error
)

// testReferenceModel loads the model with fp32 weights (the fp16 values of
// the file, run through the float kernels), once per test binary.
func testReferenceModel(t testing.TB) *Model {
	t.Helper()
	dir := testFetch(t)
	refOnce.Do(func() { refModel, refErr = Load(dir, withReference()) })
	if refErr != nil {
		t.Fatalf("load reference model: %v", refErr)
	}
	return refModel
}

// TestQuantizedMatchesReference checks that the int8 forward pass stays
// within cosine 0.999 of the fp16 weights on varied prompts, so vectors
// stored before the int8 path (same ModelName) remain comparable.
func TestQuantizedMatchesReference(t *testing.T) {
	fast, ref := testModel(t), testReferenceModel(t)
	long, _ := textWithTokens(t, fast, MaxTokens)
	tests := []struct {
		name string
		text string
	}{
		{"empty", ""},
		{"one space", " "},
		{"punctuation only", "?!"},
		{"one word", "hello"},
		{"short question", "What is the capital of France?"},
		{"typo", "waht is teh captial of frnace"},
		{"imperative", "Explain how TCP congestion control works."},
		{"numbers", "Convert 404 and 500 to HTTP status names, then add 17.5%"},
		{"code", "func main() { fmt.Println(\"hi\") } // why does this not compile?"},
		{"french", "Quelle est la capitale de la France ?"},
		{"german", "Wie spät ist es in Berlin, wenn es in Tokio Mittag ist?"},
		{"russian", "Как приготовить борщ без свёклы?"},
		{"chinese", "如何在Go中读取文件?"},
		{"arabic", "مرحبا بالعالم"},
		{"emoji", "🙂🙂 ok 👍"},
		{"shouting", "WHY IS MY BUILD FAILING AGAIN"},
		{"repeated", strings.Repeat("cache ", 40)},
		{"window", long},
		{"past the window", long + " and then a great deal more text that the model never reads"},
	}
	texts := make([]string, len(tests))
	for i, tt := range tests {
		texts[i] = tt.text
	}
	ctx := context.Background()
	batched, err := fast.Embed(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	minCos, worst := 1.0, ""
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fast.Embed(ctx, []string{tt.text})
			if err != nil {
				t.Fatal(err)
			}
			want, err := ref.Embed(ctx, []string{tt.text})
			if err != nil {
				t.Fatal(err)
			}
			c := cosine(got[0], want[0])
			if c < minCos {
				minCos, worst = c, tt.name
			}
			if !(c >= 0.999) {
				t.Errorf("cosine to the fp16 reference %.6f < 0.999", c)
			}
			if c := cosine(batched[i], want[0]); !(c >= 0.999) {
				t.Errorf("batched: cosine to the fp16 reference %.6f < 0.999", c)
			}
		})
	}
	t.Logf("min cosine to the fp16 reference %.6f (%s)", minCos, worst)
}
