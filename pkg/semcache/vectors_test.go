package semcache

import (
	"context"
	"sync"
	"testing"
)

// countingEmbedder counts the texts it is asked to embed.
type countingEmbedder struct {
	wordsEmbedder
	mu    sync.Mutex
	texts int
}

func (e *countingEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	e.mu.Lock()
	e.texts += len(texts)
	e.mu.Unlock()
	return e.wordsEmbedder.Embed(ctx, texts)
}

func (e *countingEmbedder) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.texts
}

var _ testing.TB = (*testing.T)(nil)
