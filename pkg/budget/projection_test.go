package budget

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

func TestProject(t *testing.T) {
	day := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	reset := day.Add(24 * time.Hour)
	daily := func(limit, spent, reserved llm.Micros) PeriodStatus {
		return PeriodStatus{Period: Daily, Limited: true, Limit: limit, Spent: spent, Reserved: reserved,
			Remaining: max(limit-spent-reserved, 0), Start: day, ResetsAt: reset}
	}
	month := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	created := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		s     PeriodStatus
		since time.Time
		now   time.Time
		want  Projection
	}{
		{"$10 in 10 hours with $5 left runs out at 15:00, before the reset",
			daily(15_000_000, 10_000_000, 0), time.Time{}, day.Add(10 * time.Hour),
			Projection{Rate: 1_000_000, At: day.Add(15 * time.Hour), BeforeReset: true}},
		{"half spent at noon runs out exactly at the reset: not before it",
			daily(10_000_000, 5_000_000, 0), time.Time{}, day.Add(12 * time.Hour),
			Projection{Rate: 416_666, At: reset, BeforeReset: false}},
		{"a slow spender lasts past the reset",
			daily(10_000_000, 1_000_000, 0), time.Time{}, day.Add(12 * time.Hour),
			Projection{Rate: 83_333, At: day.Add(12*time.Hour + 108*time.Hour), BeforeReset: false}},
		{"reservations in flight count against what is left",
			daily(15_000_000, 10_000_000, 4_000_000), time.Time{}, day.Add(10 * time.Hour),
			Projection{Rate: 1_000_000, At: day.Add(11 * time.Hour), BeforeReset: true}},
		{"nothing spent: no rate, never runs out",
			daily(10_000_000, 0, 0), time.Time{}, day.Add(10 * time.Hour), Projection{}},
		{"spent up to the limit: exhausted now",
			daily(10_000_000, 10_000_000, 0), time.Time{}, day.Add(3 * time.Hour),
			Projection{Rate: 3_333_333, Exhausted: true, At: day.Add(3 * time.Hour), BeforeReset: true}},
		{"overspent (a lowered limit): exhausted now",
			daily(1_000_000, 3_000_000, 0), time.Time{}, day.Add(3 * time.Hour),
			Projection{Rate: 1_000_000, Exhausted: true, At: day.Add(3 * time.Hour), BeforeReset: true}},
		{"less than a second into the period: no rate yet",
			daily(10_000_000, 5, 0), time.Time{}, day.Add(500 * time.Millisecond), Projection{}},
		{"the total period projects from the key's creation and never resets",
			PeriodStatus{Period: Total, Limited: true, Limit: 100_000_000, Spent: 30_000_000, Remaining: 70_000_000},
			created, created.Add(30 * 24 * time.Hour),
			Projection{Rate: 41_666, At: created.Add(100 * 24 * time.Hour), BeforeReset: true}},
		{"the total period with no known start: no projection",
			PeriodStatus{Period: Total, Limited: true, Limit: 100_000_000, Spent: 30_000_000, Remaining: 70_000_000},
			time.Time{}, created, Projection{}},
		{"a month's large budget does not overflow: $5,000 of $10,000 in 15 days",
			PeriodStatus{Period: Monthly, Limited: true, Limit: 10_000_000_000, Spent: 5_000_000_000, Remaining: 5_000_000_000,
				Start: month, ResetsAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
			time.Time{}, month.Add(15 * 24 * time.Hour),
			Projection{Rate: 13_888_888, At: month.Add(30 * 24 * time.Hour), BeforeReset: true}},
		{"a budget that lasts beyond the horizon never runs out",
			PeriodStatus{Period: Total, Limited: true, Limit: 1_000_000_000_000, Spent: 1, Remaining: 999_999_999_999},
			created, created.Add(24 * time.Hour), Projection{Rate: 0}},
		{"an unlimited period is not projected",
			PeriodStatus{Period: Daily, Spent: 5_000_000, Start: day, ResetsAt: reset}, time.Time{}, day.Add(time.Hour), Projection{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Project(tt.s, tt.since, tt.now)
			if got.Rate != tt.want.Rate || got.Exhausted != tt.want.Exhausted || !got.At.Equal(tt.want.At) || got.BeforeReset != tt.want.BeforeReset {
				t.Fatalf("Project = %+v, want %+v", got, tt.want)
			}
		})
	}
}
