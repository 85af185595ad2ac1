package semcache

import "testing"

// TestPreparedCache: analyses are made once while held, the least recently
// used goes past the bound (and is made again when asked), and dropped
// entries are forgotten.
func TestPreparedCache(t *testing.T) {
	made := map[uint64]int{}
	p := newPreparedCache(2)
	get := func(id uint64) any {
		return p.get(id, func() any { made[id]++; return id * 10 })
	}
	steps := []struct {
		name   string
		do     func()
		id     uint64
		made   int // times id's analysis was made so far
		length int
	}{
		{"first use makes it", func() { get(1) }, 1, 1, 1},
		{"second use reuses it", func() { get(1) }, 1, 1, 1},
		{"put holds a ready analysis", func() { p.put(2, uint64(20)) }, 2, 0, 2},
		{"a put one is not made", func() { get(2) }, 2, 0, 2},
		{"use 1 again: 2 is now the oldest", func() { get(1) }, 1, 1, 2},
		{"past the bound the oldest goes", func() { get(3) }, 3, 1, 2},
		{"the dropped one is made again", func() { get(2) }, 2, 1, 2},
		{"drop forgets", func() { p.drop([]uint64{2, 99}) }, 2, 1, 1},
		{"a nil analysis is not held", func() { p.put(5, nil) }, 5, 0, 1},
	}
	for _, s := range steps {
		s.do()
		if made[s.id] != s.made || p.len() != s.length {
			t.Fatalf("%s: id %d made %d times, %d held; want %d, %d", s.name, s.id, made[s.id], p.len(), s.made, s.length)
		}
	}
	if v := get(3); v != uint64(30) {
		t.Fatalf("analysis of 3 = %v", v)
	}
}
