package vecindex

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// TestDeleteExpired checks the sweep, which takes due expiries from a heap
// that still holds those of points deleted or given another expiry since:
// it removes exactly the points expired at now, and the heap stays within
// twice the index.
func TestDeleteExpired(t *testing.T) {
	const dim = 16
	r := rand.New(rand.NewPCG(4, 4))
	later := t0.Add(time.Hour)
	tests := []struct {
		name   string
		setup  func(ctx context.Context, x *Index) error
		sweeps []time.Time // swept in turn; the last one's count is checked
		want   int         // removed by the last sweep
		wantN  int         // Len after it
	}{
		{
			name: "only the points due",
			setup: func(ctx context.Context, x *Index) error {
				for i := range 100 {
					if err := x.Upsert(ctx, point(uint64(i), "A", randomUnit(r, dim), t0.Add(time.Duration(i)*time.Minute))); err != nil {
						return err
					}
				}
				return nil
			},
			sweeps: []time.Time{t0.Add(50 * time.Minute)}, want: 51, wantN: 49,
		},
		{
			name: "replaced with a later expiry: kept",
			setup: func(ctx context.Context, x *Index) error {
				if err := x.Upsert(ctx, point(1, "A", randomUnit(r, dim), t0)); err != nil {
					return err
				}
				return x.Upsert(ctx, point(1, "A", randomUnit(r, dim), later))
			},
			sweeps: []time.Time{t0}, want: 0, wantN: 1,
		},
		{
			name: "replaced with an earlier expiry: removed",
			setup: func(ctx context.Context, x *Index) error {
				if err := x.Upsert(ctx, point(1, "A", randomUnit(r, dim), later)); err != nil {
					return err
				}
				return x.Upsert(ctx, point(1, "B", randomUnit(r, dim), t0))
			},
			sweeps: []time.Time{t0}, want: 1, wantN: 0,
		},
		{
			name: "deleted before it was due: not counted",
			setup: func(ctx context.Context, x *Index) error {
				if err := x.Upsert(ctx, point(1, "A", randomUnit(r, dim), t0), point(2, "A", randomUnit(r, dim), later)); err != nil {
					return err
				}
				return x.Delete(ctx, 1)
			},
			sweeps: []time.Time{t0}, want: 0, wantN: 1,
		},
		{
			name: "added again after a sweep: removed when due again",
			setup: func(ctx context.Context, x *Index) error {
				if err := x.Upsert(ctx, point(1, "A", randomUnit(r, dim), t0)); err != nil {
					return err
				}
				if n, err := x.DeleteExpired(ctx, t0); n != 1 || err != nil {
					t.Errorf("first sweep = %d %v, want 1", n, err)
				}
				return x.Upsert(ctx, point(1, "A", randomUnit(r, dim), later))
			},
			sweeps: []time.Time{later.Add(-time.Second), later}, want: 1, wantN: 0,
		},
		{
			name: "many replacements: heap trimmed, the last expiry counts",
			setup: func(ctx context.Context, x *Index) error {
				for i := range 2000 {
					exp := later
					if i%10 == 9 {
						exp = t0 // the last expiry of each id
					}
					if err := x.Upsert(ctx, point(uint64(i%10), "A", randomUnit(r, dim), exp)); err != nil {
						return err
					}
				}
				return nil
			},
			sweeps: []time.Time{t0}, want: 1, wantN: 9,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			x := New(dim)
			if err := tt.setup(ctx, x); err != nil {
				t.Fatal(err)
			}
			var n int
			for _, now := range tt.sweeps {
				var err error
				if n, err = x.DeleteExpired(ctx, now); err != nil {
					t.Fatal(err)
				}
			}
			if n != tt.want || x.Len() != tt.wantN {
				t.Errorf("last sweep removed %d, %d left; want %d, %d left", n, x.Len(), tt.want, tt.wantN)
			}
			if len(x.expiries) > 2*len(x.locs)+64 {
				t.Errorf("%d expiries for %d points: not trimmed", len(x.expiries), len(x.locs))
			}
			for id, l := range x.locs {
				if l.exp <= nanos(tt.sweeps[len(tt.sweeps)-1]) {
					t.Errorf("point %d expired but kept", id)
				}
			}
		})
	}
}
