package budget

import (
	"testing"
	"time"
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("no tzdata for %s: %v", name, err)
	}
	return loc
}

func TestWindow(t *testing.T) {
	ny := mustLoad(t, "America/New_York")
	santiago := mustLoad(t, "America/Santiago")
	utc := time.UTC
	at := func(loc *time.Location, s string) time.Time {
		t.Helper()
		v, err := time.ParseInLocation("2006-01-02 15:04:05", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name       string
		period     Period
		loc        *time.Location
		t          time.Time
		start, end time.Time
		hours      float64 // expected length, 0: do not check
	}{
		{"daily utc", Daily, utc, at(utc, "2026-03-10 13:45:00"), at(utc, "2026-03-10 00:00:00"), at(utc, "2026-03-11 00:00:00"), 24},
		{"daily utc at midnight", Daily, utc, at(utc, "2026-03-10 00:00:00"), at(utc, "2026-03-10 00:00:00"), at(utc, "2026-03-11 00:00:00"), 24},
		{"daily utc last instant", Daily, utc, at(utc, "2026-03-10 23:59:59").Add(999 * time.Millisecond), at(utc, "2026-03-10 00:00:00"), at(utc, "2026-03-11 00:00:00"), 24},
		{"daily nil location is utc", Daily, nil, at(utc, "2026-03-10 13:45:00"), at(utc, "2026-03-10 00:00:00"), at(utc, "2026-03-11 00:00:00"), 24},
		{"daily new york spring forward is 23h", Daily, ny, at(ny, "2026-03-08 12:00:00"), at(ny, "2026-03-08 00:00:00"), at(ny, "2026-03-09 00:00:00"), 23},
		{"daily new york fall back is 25h", Daily, ny, at(ny, "2026-11-01 01:30:00"), at(ny, "2026-11-01 00:00:00"), at(ny, "2026-11-02 00:00:00"), 25},
		{"daily new york is not the utc day", Daily, ny, at(utc, "2026-06-15 02:00:00"), at(ny, "2026-06-14 00:00:00"), at(ny, "2026-06-15 00:00:00"), 24},
		{"daily santiago day without a midnight starts at the jump", Daily, santiago, at(utc, "2018-08-12 12:00:00"),
			time.Date(2018, 8, 12, 4, 0, 0, 0, utc), time.Date(2018, 8, 13, 3, 0, 0, 0, utc), 23},
		{"daily santiago day before the jump is 24h", Daily, santiago, at(utc, "2018-08-12 03:30:00"),
			time.Date(2018, 8, 11, 4, 0, 0, 0, utc), time.Date(2018, 8, 12, 4, 0, 0, 0, utc), 24},
		{"weekly monday start", Weekly, utc, at(utc, "2026-03-11 09:00:00"), at(utc, "2026-03-09 00:00:00"), at(utc, "2026-03-16 00:00:00"), 168},
		{"weekly on monday", Weekly, utc, at(utc, "2026-03-09 00:00:00"), at(utc, "2026-03-09 00:00:00"), at(utc, "2026-03-16 00:00:00"), 168},
		{"weekly on sunday", Weekly, utc, at(utc, "2026-03-15 23:59:59"), at(utc, "2026-03-09 00:00:00"), at(utc, "2026-03-16 00:00:00"), 168},
		{"weekly across a year end", Weekly, utc, at(utc, "2026-01-01 10:00:00"), at(utc, "2025-12-29 00:00:00"), at(utc, "2026-01-05 00:00:00"), 168},
		{"weekly new york with dst change is 167h", Weekly, ny, at(ny, "2026-03-08 12:00:00"), at(ny, "2026-03-02 00:00:00"), at(ny, "2026-03-09 00:00:00"), 167},
		{"monthly", Monthly, utc, at(utc, "2026-03-31 23:59:59"), at(utc, "2026-03-01 00:00:00"), at(utc, "2026-04-01 00:00:00"), 31 * 24},
		{"monthly february leap year", Monthly, utc, at(utc, "2028-02-29 12:00:00"), at(utc, "2028-02-01 00:00:00"), at(utc, "2028-03-01 00:00:00"), 29 * 24},
		{"monthly february", Monthly, utc, at(utc, "2026-02-28 12:00:00"), at(utc, "2026-02-01 00:00:00"), at(utc, "2026-03-01 00:00:00"), 28 * 24},
		{"monthly december", Monthly, utc, at(utc, "2026-12-15 00:00:00"), at(utc, "2026-12-01 00:00:00"), at(utc, "2027-01-01 00:00:00"), 31 * 24},
		{"monthly new york november has 721h", Monthly, ny, at(ny, "2026-11-20 00:00:00"), at(ny, "2026-11-01 00:00:00"), at(ny, "2026-12-01 00:00:00"), 30*24 + 1},
		{"monthly new york first hours are still the previous utc month", Monthly, ny, at(utc, "2026-05-01 02:00:00"), at(ny, "2026-04-01 00:00:00"), at(ny, "2026-05-01 00:00:00"), 0},
		{"total", Total, utc, at(utc, "2026-03-10 13:45:00"), time.Time{}, time.Time{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, end := tt.period.Window(tt.t, tt.loc)
			if !start.Equal(tt.start) || !end.Equal(tt.end) {
				t.Fatalf("Window(%s) = [%s, %s), want [%s, %s)", tt.t, start, end, tt.start, tt.end)
			}
			if tt.period == Total {
				return
			}
			if tt.t.Before(start) || !tt.t.Before(end) {
				t.Fatalf("%s not in [%s, %s)", tt.t, start, end)
			}
			if h := end.Sub(start).Hours(); tt.hours != 0 && h != tt.hours {
				t.Fatalf("period lasts %vh, want %vh", h, tt.hours)
			}
			// The next period starts where this one ends.
			if s2, _ := tt.period.Window(end, tt.loc); !s2.Equal(end) {
				t.Fatalf("next period starts at %s, want %s", s2, end)
			}
		})
	}
}

// TestWindowContiguous walks two years hour by hour in zones with DST and
// checks every instant is in exactly one period of each kind.
func TestWindowContiguous(t *testing.T) {
	for _, name := range []string{"UTC", "America/New_York", "America/Santiago", "Asia/Beirut", "Australia/Lord_Howe"} {
		loc := mustLoad(t, name)
		for _, p := range []Period{Daily, Weekly, Monthly} {
			t.Run(name+"/"+string(p), func(t *testing.T) {
				prevStart, prevEnd := p.Window(time.Date(2018, 1, 1, 0, 30, 0, 0, time.UTC), loc)
				for u := prevStart; u.Year() < 2020; u = u.Add(17 * time.Minute) {
					s, e := p.Window(u, loc)
					if u.Before(s) || !u.Before(e) {
						t.Fatalf("%s not in [%s, %s)", u, s, e)
					}
					if !s.Equal(prevStart) {
						if !s.Equal(prevEnd) {
							t.Fatalf("gap or overlap: [%s, %s) then [%s, %s)", prevStart, prevEnd, s, e)
						}
						prevStart, prevEnd = s, e
					}
				}
			})
		}
	}
}

func TestPeriodValid(t *testing.T) {
	for _, p := range []Period{Daily, Weekly, Monthly, Total} {
		if !p.Valid() {
			t.Errorf("%s not valid", p)
		}
	}
	if Period("hourly").Valid() {
		t.Error("hourly valid")
	}
}
