package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsRoundTrip(t *testing.T) {
	// Every value must land in a bucket whose range holds it, and buckets
	// must be contiguous and non-decreasing, or quantiles come out wrong.
	prevHi := uint64(0)
	for i := 1; i < histBuckets; i++ {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d = [%d, %d] but bucketOf gives %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if rel := float64(hi-lo) / float64(lo); rel > 1.0/subSize {
			t.Fatalf("bucket %d = [%d, %d]: width %.4f of its value", i, lo, hi, rel)
		}
		prevHi = hi
		if hi == ^uint64(0)>>1 {
			break
		}
	}
}

func TestQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		values func() []time.Duration
	}{
		{"one value", func() []time.Duration { return []time.Duration{1234 * time.Microsecond} }},
		{"small exact values", func() []time.Duration {
			v := make([]time.Duration, 100)
			for i := range v {
				v[i] = time.Duration(i + 1)
			}
			return v
		}},
		{"uniform microseconds", func() []time.Duration {
			v := make([]time.Duration, 10000)
			for i := range v {
				v[i] = time.Duration(i+1) * time.Microsecond
			}
			return v
		}},
		{"lognormal-ish with a long tail", func() []time.Duration {
			r := rand.New(rand.NewPCG(1, 2))
			v := make([]time.Duration, 50000)
			for i := range v {
				v[i] = time.Duration(200e3 * (1 + r.ExpFloat64()*r.ExpFloat64()))
			}
			return v
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals := tt.values()
			var h histogram
			for _, v := range vals {
				h.record(v)
			}
			sorted := slices.Clone(vals)
			slices.Sort(sorted)
			if h.n != uint64(len(vals)) || h.quantile(0) != sorted[0] || h.quantile(1) != sorted[len(sorted)-1] {
				t.Fatalf("n=%d min=%v max=%v, want %d %v %v", h.n, h.quantile(0), h.quantile(1), len(vals), sorted[0], sorted[len(sorted)-1])
			}
			for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999} {
				rank := int(q*float64(len(sorted))+0.9999999) - 1
				want := sorted[max(rank, 0)]
				got := h.quantile(q)
				if diff := float64(got-want) / float64(want); diff > 1.0/subSize || diff < -1.0/subSize {
					t.Errorf("q%.3f = %v, exact %v (off by %.2f%%)", q, got, want, diff*100)
				}
			}
		})
	}
}

func TestMergeEqualsRecordingTogether(t *testing.T) {
	var a, b, all histogram
	for i := range 1000 {
		d := time.Duration(i*i) * time.Microsecond
		all.record(d)
		if i%3 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	var m histogram
	m.merge(&a)
	m.merge(&b)
	m.merge(&histogram{}) // an idle worker's histogram changes nothing
	if m != all {
		t.Fatalf("merged histogram differs: n %d/%d min %v/%v max %v/%v", m.n, all.n, m.min, all.min, m.max, all.max)
	}
}

func TestEmptyHistogram(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 || h.mean() != 0 {
		t.Fatal("an empty histogram must report zeros")
	}
}
