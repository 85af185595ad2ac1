package budget

import (
	"fmt"
	"time"
)

// Period is the span a limit applies to. Periods are aligned to the
// calendar of the ledger's time zone (Options.Location, UTC by default).
type Period string

// The periods a budget can have.
const (
	Daily   Period = "daily"   // from local midnight to the next
	Weekly  Period = "weekly"  // from Monday 00:00 (ISO 8601 weeks)
	Monthly Period = "monthly" // from the 1st, 00:00
	Total   Period = "total"   // never resets
)

// periods lists every period, in the order counters are kept.
var periods = [...]Period{Daily, Weekly, Monthly, Total}

// index is the period's slot in a key's counters, -1 if it is unknown.
func (p Period) index() int {
	for i, q := range periods {
		if q == p {
			return i
		}
	}
	return -1
}

// Valid reports whether p is one of the known periods.
func (p Period) Valid() bool { return p.index() >= 0 }

// Window returns the period that contains t in loc: start <= t < end. The
// Total period has a zero start and a zero end (it never resets). A day is
// the span between two local midnights, so it lasts 23 or 25 hours across a
// daylight-saving change; where midnight itself does not exist (the clocks
// jump from 23:59:59 to 01:00), the day starts at the jump.
func (p Period) Window(t time.Time, loc *time.Location) (start, end time.Time) {
	if loc == nil {
		loc = time.UTC
	}
	y, m, d := t.In(loc).Date()
	switch p {
	case Daily:
		return midnight(y, m, d, loc), midnight(y, m, d+1, loc)
	case Weekly:
		back := (int(t.In(loc).Weekday()) + 6) % 7 // days since Monday
		return midnight(y, m, d-back, loc), midnight(y, m, d-back+7, loc)
	case Monthly:
		return midnight(y, m, 1, loc), midnight(y, m+1, 1, loc)
	case Total:
		return time.Time{}, time.Time{}
	}
	panic(fmt.Sprintf("budget: unknown period %q", p))
}

// midnight is the first instant of the local date y-m-d (normalised like
// time.Date). When 00:00 does not exist that day, time.Date answers with
// an instant of the day before (23:00 at the old offset); the day then
// really starts where that zone ends.
func midnight(y int, m time.Month, d int, loc *time.Location) time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	want := time.Date(y, m, d, 12, 0, 0, 0, time.UTC) // normalised date, no DST involved
	if t.Day() != want.Day() {
		if _, end := t.ZoneBounds(); !end.IsZero() {
			return end
		}
	}
	return t
}
