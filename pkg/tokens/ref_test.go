package tokens

import (
	"sync"
	"testing"

	"github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// The reference implementation, loaded offline.
var (
	refOnce sync.Once
	refEnc  map[string]*tiktoken.Tiktoken
)

func reference(t testing.TB, name string) *tiktoken.Tiktoken {
	t.Helper()
	refOnce.Do(func() {
		tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader())
		refEnc = map[string]*tiktoken.Tiktoken{}
		for _, n := range []string{O200K, CL100K} {
			e, err := tiktoken.GetEncoding(n)
			if err != nil {
				panic(err)
			}
			refEnc[n] = e
		}
	})
	return refEnc[name]
}

func refCount(t testing.TB, name, s string) int {
	return len(reference(t, name).Encode(s, nil, nil))
}
