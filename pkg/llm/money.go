package llm

import (
	"strconv"
)

// Micros is an amount of US dollars in millionths of a dollar. All money in
// tollgate is integer micro-dollars; floats appear only at the edges (config,
// JSON reports, headers).
type Micros int64

// MicrosPerUSD is one dollar.
const MicrosPerUSD Micros = 1_000_000

// USD converts a dollar amount to micro-dollars, rounding to the nearest.
func USD(dollars float64) Micros {
	if dollars < 0 {
		return -Micros(-dollars*1e6 + 0.5)
	}
	return Micros(dollars*1e6 + 0.5)
}

// Dollars is the amount as a float, for display only.
func (m Micros) Dollars() float64 { return float64(m) / 1e6 }

// String formats the amount in dollars with all six decimals, e.g. "0.000150".
func (m Micros) String() string {
	neg := m < 0
	if neg {
		m = -m
	}
	whole := strconv.FormatInt(int64(m/MicrosPerUSD), 10)
	frac := strconv.FormatInt(int64(m%MicrosPerUSD), 10)
	for len(frac) < 6 {
		frac = "0" + frac
	}
	if neg {
		return "-" + whole + "." + frac
	}
	return whole + "." + frac
}
