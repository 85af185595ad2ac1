package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// check is one figure a probe measured and, when it has one, the target
// it is held to.
type check struct {
	Figure string `json:"figure"`
	Target string `json:"target,omitempty"`
	// Pass is nil for a figure reported without a target.
	Pass *bool `json:"pass,omitempty"`
}

// result is one probe's outcome.
type result struct {
	Probe   string   `json:"probe"`
	Doc     string   `json:"doc"`
	Checks  []check  `json:"checks"`
	Notes   []string `json:"notes,omitempty"`
	Error   string   `json:"error,omitempty"` // the probe could not run to its end
	Seconds float64  `json:"seconds"`
	Pass    bool     `json:"pass"`
}

// check records a figure held to a target.
func (r *result) check(pass bool, target, figure string, args ...any) {
	r.Checks = append(r.Checks, check{Figure: fmt.Sprintf(figure, args...), Target: target, Pass: &pass})
}

// figure records a figure without a target.
func (r *result) figure(format string, args ...any) {
	r.Checks = append(r.Checks, check{Figure: fmt.Sprintf(format, args...)})
}

func (r *result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// passed: the probe ran to its end, held at least one target, and met
// every target it held.
func (r *result) passed() bool {
	if r.Error != "" {
		return false
	}
	held := false
	for _, c := range r.Checks {
		if c.Pass != nil {
			held = true
			if !*c.Pass {
				return false
			}
		}
	}
	return held
}

// report is a whole run.
type report struct {
	Short   bool      `json:"short"`
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	Results []result  `json:"results"`
}

func (rep *report) failed() []string {
	var out []string
	for _, r := range rep.Results {
		if !r.Pass {
			out = append(out, r.Probe)
		}
	}
	return out
}

func writeJSON(w io.Writer, rep *report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(rep)
}

// printTable writes one table: a row per figure, the probe's name on its
// first row, then the notes and a summary.
func printTable(w io.Writer, rep *report) {
	form := "full"
	if rep.Short {
		form = "short"
	}
	fmt.Fprintf(w, "chaos suite (%s form), %s, %.0fs\n\n", form, rep.Started.Format(time.DateTime), rep.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROBE\tFIGURE\tTARGET\tRESULT")
	for _, r := range rep.Results {
		name := r.Probe
		row := func(figure, target, verdict string) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, oneLine(figure), oneLine(target), verdict)
			name = ""
		}
		for _, c := range r.Checks {
			verdict := "-"
			if c.Pass != nil {
				verdict = "PASS"
				if !*c.Pass {
					verdict = "FAIL"
				}
			}
			row(c.Figure, c.Target, verdict)
		}
		if r.Error != "" {
			row("error: "+r.Error, "runs to its end", "FAIL")
		}
		if len(r.Checks) == 0 && r.Error == "" {
			row("no figure", "at least one target held", "FAIL")
		}
	}
	tw.Flush()
	var notes []string
	for _, r := range rep.Results {
		for _, n := range r.Notes {
			notes = append(notes, r.Probe+": "+n)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range notes {
			fmt.Fprintln(w, "  "+oneLine(n))
		}
	}
	failed := rep.failed()
	fmt.Fprintf(w, "\n%d of %d probes passed", len(rep.Results)-len(failed), len(rep.Results))
	if len(failed) > 0 {
		fmt.Fprintf(w, "; failed: %s", strings.Join(failed, ", "))
	}
	fmt.Fprintln(w)
}

// maxCell bounds a table cell; the JSON report has every figure whole.
const maxCell = 120

// oneLine keeps a cell on its row (and bounded: a figure may quote what
// a hostile gateway sent).
func oneLine(s string) string {
	return truncate(strings.Join(strings.Fields(s), " "), maxCell)
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Units. Sizes are reported in MB (10^6 bytes) as the targets are written,
// limits that are whole MiB in MiB.
func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func size(n int64) string {
	switch {
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n > 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return mb(n)
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// usd formats micro-dollars.
func usd(micros int64) string { return fmt.Sprintf("$%.6f", float64(micros)/1e6) }
