package providers

import (
	"context"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/llm"
)

// TestSimEmbedDimensions: dimensions may shorten the sim's vectors down to
// 1, never lengthen them past its native size; more is a 400 naming the
// parameter, before a vector is built.
func TestSimEmbedDimensions(t *testing.T) {
	tests := []struct {
		name    string
		native  int // SimConfig.EmbeddingDims; 0: the default, 256
		dims    string
		wantLen int // 0: want a 400 on dimensions
	}{
		{"absent: native size", 0, ``, 256},
		{"shorter", 0, `,"dimensions":64`, 64},
		{"one", 0, `,"dimensions":1`, 1},
		{"exactly native", 0, `,"dimensions":256`, 256},
		{"one more than native", 0, `,"dimensions":257`, 0},
		{"a hundred million", 0, `,"dimensions":100000000`, 0},
		{"configured native size", 1024, `,"dimensions":1024`, 1024},
		{"above a configured native size", 1024, `,"dimensions":4096`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestSim(t, SimConfig{EmbeddingDims: tt.native})
			req := mustEmbedding(t, `{"model":"emb","input":["a","b"]`+tt.dims+`}`)
			resp, err := s.Embed(context.Background(), &EmbedRequest{Embedding: req})
			if tt.wantLen == 0 {
				e := asLLMError(t, err)
				if e.Status != 400 || e.Param != "dimensions" || e.Type != llm.TypeInvalidRequest || e.Retryable || !strings.Contains(e.Message, "at most") {
					t.Fatalf("got %+v, want a 400 on dimensions", e)
				}
				if c := llm.ForClient(err); c.Status != 400 || c.Param != "dimensions" {
					t.Fatalf("the client gets %d %q", c.Status, c.Param)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range resp.Data {
				if n := strings.Count(string(d.Embedding), ",") + 1; n != tt.wantLen {
					t.Fatalf("vector of %d, want %d", n, tt.wantLen)
				}
			}
		})
	}
}
