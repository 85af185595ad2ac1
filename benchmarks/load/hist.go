package main

import (
	"math/bits"
	"time"
)

// histogram is a log-linear latency histogram in the spirit of HdrHistogram:
// values below 2^subBits nanoseconds are counted exactly, larger ones in
// buckets 2^subBits to a power of two, so every recorded value is known to
// within 1/2^subBits (< 0.8%) of itself. It has a fixed size whatever the
// run's length, records without allocating, and merges by addition, so each
// load worker keeps its own and nothing is shared on the hot path.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	min    time.Duration
	max    time.Duration
	sum    time.Duration
}

const (
	subBits = 7
	subSize = 1 << subBits
	// Shifts run from 0 to 64-subBits-1; each covers subSize buckets on top
	// of the subSize exact ones.
	histBuckets = (64 - subBits + 1) * subSize
)

// bucketOf maps a non-negative value to its bucket: v itself below 2*subSize,
// then subSize buckets per power of two.
func bucketOf(v uint64) int {
	shift := bits.Len64(v) - subBits - 1
	if shift < 0 {
		shift = 0
	}
	return shift*subSize + int(v>>uint(shift))
}

// bucketRange is the inverse of bucketOf: the smallest and largest value
// that land in bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < 2*subSize {
		return uint64(i), uint64(i)
	}
	shift := uint(i/subSize - 1)
	m := uint64(i - int(shift)*subSize)
	return m << shift, (m+1)<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += d
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// quantile returns the value at quantile q (0..1): the middle of the bucket
// holding the ceil(q*n)-th smallest value, clamped to the exact min and max,
// so q=0 and q=1 are exact and the rest are within the bucket precision.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(q*float64(h.n) + 0.9999999) // ceil without float surprises at exact products
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := time.Duration(lo + (hi-lo)/2)
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}
