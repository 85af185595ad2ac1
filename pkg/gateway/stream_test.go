package gateway

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate/pkg/router"
	"github.com/tollgate/tollgate/pkg/tokens"
)

// TestTextCounterCountsWithoutHoldingTheText: counting a stream's text run
// by run gives the whole text's count, while at most a few KiB are held.
func TestTextCounterCountsWithoutHoldingTheText(t *testing.T) {
	counter := tokens.NewCounter()
	prose := strings.Repeat("The gateway relays every chunk as it comes, and counts it without keeping it. ", 2_000)
	tests := []struct {
		name   string
		text   string
		pieces int // bytes per added piece
		slack  int // tokens the cuts may differ by
	}{
		{"prose in small chunks", prose, 7, 2},
		{"prose in large chunks", prose, 5_000, 2},
		{"no whitespace at all", strings.Repeat("abcdefghij", 20_000), 13, 8},
		{"short", "Hello there", 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := textCounter{tokens: counter, tokenizer: router.TokenizerO200k}
			held := 0
			for i := 0; i < len(tt.text); i += tt.pieces {
				tc.add(tt.text[i:min(i+tt.pieces, len(tt.text))])
				held = max(held, cap(tc.pending))
			}
			want := counter.CountText(router.TokenizerO200k, tt.text)
			if got := tc.count(); got < want-tt.slack || got > want+tt.slack {
				t.Fatalf("count %d, whole text %d (slack %d)", got, want, tt.slack)
			}
			if tc.len() != len(tt.text) {
				t.Fatalf("len %d, want %d", tc.len(), len(tt.text))
			}
			if held > 32*textBlock {
				t.Fatalf("held %d bytes of %d", held, len(tt.text))
			}
		})
	}
}
