package use

import (
	"context"
	"math"
	"testing"
)

func TestHashed(t *testing.T) {
	h := NewHashed(256)
	if h.Dim() != 256 || h.Name() != "hashed-ngram-v1-256" {
		t.Fatalf("Dim %d Name %q", h.Dim(), h.Name())
	}
	tests := []struct {
		name string
		a, b string
		lo   float64
		hi   float64
	}{
		{"identical", "What is the capital of France?", "What is the capital of France?", 0.9999, 1.0001},
		{"case and punctuation", "What is the capital of France?", "what is the capital of france", 0.9999, 1.0001},
		{"shared words", "How do I reset my password?", "How can I reset my password?", 0.5, 1},
		{"unrelated", "How do I reset my password?", "Give me a recipe for pancakes.", -0.3, 0.3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := h.Embed(context.Background(), []string{tt.a, tt.b})
			if err != nil {
				t.Fatal(err)
			}
			if c := cosine(v[0], v[1]); c < tt.lo || c > tt.hi {
				t.Errorf("cosine %.3f, want in [%v, %v]", c, tt.lo, tt.hi)
			}
		})
	}
	t.Run("empty text is the zero vector", func(t *testing.T) {
		v, err := h.Embed(context.Background(), []string{"", "  ?! "})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range v {
			for _, f := range x {
				if f != 0 {
					t.Fatalf("got %v", x)
				}
			}
		}
	})
	t.Run("unit length", func(t *testing.T) {
		v, _ := h.Embed(context.Background(), []string{"naïve café 😀 42"})
		if n := math.Sqrt(float64(dot(v[0], v[0]))); math.Abs(n-1) > 1e-5 {
			t.Errorf("norm %v", n)
		}
	})
	t.Run("tiny dim is raised", func(t *testing.T) {
		if d := NewHashed(0).Dim(); d != 16 {
			t.Errorf("Dim %d", d)
		}
	})
}

func BenchmarkHashed(b *testing.B) {
	h := NewHashed(512)
	in := []string{"How do I sort a dictionary by value in Python?"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Embed(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}
