package budget

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// GroupBy names the report dimensions: key id, served model, provider,
// route, day (in the ledger's time zone, YYYY-MM-DD), cache result,
// customer ("" for the rows of requests that named none) and tag.
//
// A tag group's value is "name=value". A row counts in the group of each
// of its tags, so the rows of a report grouped by tag may add up to more
// than its totals, which count each ledger row once; rows without a tag
// form the group "".
//
// A guard group is the name of a guard that fired on the request or its
// answer (the ledger's guards column); like tags, a row counts in the group
// of each guard that fired, and rows where none fired form the group "".
var GroupBy = []string{"key", "model", "provider", "route", "day", "cache", "customer", "tag", "guard"}

// guardColumn is the group column of a guard: each guard that fired on the
// row, or "" for a row where none did (see Store.guardJoin).
const guardColumn = "COALESCE(gd.key, '')"

// tagColumn is the group column of a tag: each element of the row's tags,
// or "" for a row without (see Store.tagJoin).
const tagColumn = "COALESCE(t.value, '')"

var groupColumn = map[string]string{"key": "key_id", "model": "model", "provider": "provider", "route": "route", "cache": "cache",
	"customer": "customer", "tag": tagColumn, "guard": guardColumn}

// ReportFilter narrows a report to some ledger rows. The zero filter
// keeps them all.
type ReportFilter struct {
	// Customer, when set, keeps the rows of that customer ("": the rows
	// of requests that named none).
	Customer *string
	// Tag, when not "", keeps the rows carrying that "name=value" tag.
	Tag string
	// Guard, when not "", keeps the rows on which that guard fired.
	Guard string
}

// where is the filter's SQL condition (each part starting with " AND ")
// and its arguments.
func (s *Store) where(f ReportFilter) (string, []any) {
	var cond string
	var args []any
	if f.Customer != nil {
		cond += ` AND customer = ?`
		args = append(args, *f.Customer)
	}
	if f.Tag != "" {
		elems := `json_each(budget_ledger.tags) AS f`
		if s.pool != nil {
			elems = `jsonb_array_elements_text(budget_ledger.tags::jsonb) AS f (value)`
		}
		cond += ` AND EXISTS (SELECT 1 FROM ` + elems + ` WHERE f.value = ?)`
		args = append(args, f.Tag)
	}
	if f.Guard != "" {
		keys := `json_each(budget_ledger.guards) AS g`
		if s.pool != nil {
			keys = `jsonb_object_keys(budget_ledger.guards::jsonb) AS g (key)`
		}
		cond += ` AND EXISTS (SELECT 1 FROM ` + keys + ` WHERE g.key = ?)`
		args = append(args, f.Guard)
	}
	return cond, args
}

// guardJoin gives each ledger row one row per guard that fired (gd.key),
// or one with a null gd.key when none did, in the store's dialect.
func (s *Store) guardJoin() string {
	if s.pool != nil {
		return ` LEFT JOIN LATERAL jsonb_object_keys(budget_ledger.guards::jsonb) AS gd (key) ON true`
	}
	return ` LEFT JOIN json_each(budget_ledger.guards) AS gd`
}

// tagJoin gives each ledger row one row per tag (t.value), or one with a
// null t.value when it has none, in the store's dialect.
func (s *Store) tagJoin() string {
	if s.pool != nil {
		return ` LEFT JOIN LATERAL jsonb_array_elements_text(budget_ledger.tags::jsonb) AS t (value) ON true`
	}
	return ` LEFT JOIN json_each(budget_ledger.tags) AS t`
}

// ReportRow is one group of a cost report. Sums are exact integers over
// the ledger rows of the group.
type ReportRow struct {
	Group            []string // one value per group_by name, in its order
	Requests         int64
	PromptTokens     int64
	CompletionTokens int64
	Cost, Saved      llm.Micros
}

func (r *ReportRow) add(o ReportRow) {
	r.Requests += o.Requests
	r.PromptTokens += o.PromptTokens
	r.CompletionTokens += o.CompletionTokens
	r.Cost += o.Cost
	r.Saved += o.Saved
}

// Report is a cost report: one row per group, and the totals.
type Report struct {
	GroupBy []string
	Rows    []ReportRow
	Totals  ReportRow
	// KeyName names a key id (ok false: no such key); when set, rows
	// grouped by key carry "key_name" next to "key" (null for an unknown
	// id). The ledger keeps ids only: the names are the key store's.
	KeyName func(id string) (name string, ok bool)
}

// MarshalJSON writes {"group_by": [...], "rows": [{"key": ..., "key_name":
// ..., "requests", "prompt_tokens", "completion_tokens", "cost_usd",
// "saved_usd"}], "totals": {...}}, amounts as exact decimals with six
// places (never a float's exponent form).
func (r *Report) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	g, _ := json.Marshal(r.GroupBy)
	fmt.Fprintf(&b, `{"group_by":%s,"rows":[`, g)
	for i, row := range r.Rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		for j, name := range r.GroupBy {
			v, _ := json.Marshal(row.Group[j])
			fmt.Fprintf(&b, `"%s":%s,`, name, v)
			if name == "key" && r.KeyName != nil {
				n := []byte("null")
				if kn, ok := r.KeyName(row.Group[j]); ok {
					n, _ = json.Marshal(kn)
				}
				fmt.Fprintf(&b, `"key_name":%s,`, n)
			}
		}
		writeSums(&b, row)
		b.WriteByte('}')
	}
	b.WriteString(`],"totals":{`)
	writeSums(&b, r.Totals)
	b.WriteString(`}}`)
	return b.Bytes(), nil
}

func writeSums(b *bytes.Buffer, r ReportRow) {
	fmt.Fprintf(b, `"requests":%d,"prompt_tokens":%d,"completion_tokens":%d,"cost_usd":%s,"saved_usd":%s`,
		r.Requests, r.PromptTokens, r.CompletionTokens, r.Cost, r.Saved)
}

// validGroupBy checks the names, naming the first bad one.
func validGroupBy(groupBy []string) error {
	seen := map[string]bool{}
	for _, g := range groupBy {
		if _, ok := groupColumn[g]; !ok && g != "day" {
			return fmt.Errorf("budget: unknown group_by %q (want %s)", g, strings.Join(GroupBy, ", "))
		}
		if seen[g] {
			return fmt.Errorf("budget: group_by %q given twice", g)
		}
		seen[g] = true
	}
	return nil
}

// sumCast follows a SUM of the ledger's integers: PostgreSQL's SUM of a
// bigint is numeric.
func (s *Store) sumCast() string {
	if s.pool != nil {
		return "::bigint"
	}
	return ""
}

// Report sums the ledger rows admitted in [from, to) that f keeps, by
// group. A zero from or to leaves that side open.
func (s *Store) Report(ctx context.Context, from, to time.Time, groupBy []string, f ReportFilter) (*Report, error) {
	r := &Report{GroupBy: append([]string{}, groupBy...), Rows: []ReportRow{}}
	total, err := s.ReportEach(ctx, from, to, groupBy, f, func(row ReportRow) error {
		r.Rows = append(r.Rows, row)
		return nil
	})
	r.Totals = total
	return r, err
}

// ReportEach streams the report's rows to fn in order (by day first when
// grouped by day, then by the other names' values) and returns the totals,
// which count each ledger row once (see GroupBy about tags). Only one
// day's groups are in memory at a time, so any range can be reported.
func (s *Store) ReportEach(ctx context.Context, from, to time.Time, groupBy []string, f ReportFilter, fn func(ReportRow) error) (ReportRow, error) {
	var total ReportRow
	if err := validGroupBy(groupBy); err != nil {
		return total, err
	}
	db, err := s.settled(ctx)
	if err != nil {
		return total, err
	}
	lo, hi := int64(0), int64(1)<<62
	if !from.IsZero() {
		lo = from.UnixMilli()
	}
	if !to.IsZero() {
		hi = to.UnixMilli()
	}
	var cols []string
	day, byTag, byGuard := -1, false, false
	for i, g := range groupBy {
		if g == "day" {
			day = i
			continue
		}
		byTag = byTag || g == "tag"
		byGuard = byGuard || g == "guard"
		cols = append(cols, groupColumn[g])
	}
	// A row with two tags (or guards) is in two groups: the totals count
	// it once.
	spread := byTag || byGuard
	cond, condArgs := s.where(f)
	// PostgreSQL sums bigints as numeric: cast back (a sum past int64 is an
	// error there, as it is in SQLite).
	sums := `COUNT(*), COALESCE(SUM(prompt_tokens), 0)` + s.sumCast() + `, COALESCE(SUM(completion_tokens), 0)` + s.sumCast() +
		`, COALESCE(SUM(cost), 0)` + s.sumCast() + `, COALESCE(SUM(saved), 0)` + s.sumCast()
	query := `SELECT `
	for _, c := range cols {
		query += c + `, `
	}
	query += sums + ` FROM budget_ledger`
	if byTag {
		query += s.tagJoin()
	}
	if byGuard {
		query += s.guardJoin()
	}
	query = s.q(query + ` WHERE ts >= ? AND ts < ?` + cond)
	if len(cols) > 0 {
		list := strings.Join(cols, ", ")
		query += ` GROUP BY ` + list + ` ORDER BY ` + list
	}
	args := func(lo, hi int64) []any { return append([]any{lo, hi}, condArgs...) }
	emit := func(lo, hi int64, dayName string) error {
		rows, err := db.QueryContext(ctx, query, args(lo, hi)...)
		if err != nil {
			return fmt.Errorf("budget: report: %w", err)
		}
		defer rows.Close()
		vals := make([]string, len(cols))
		dest := make([]any, 0, len(cols)+5)
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		var row ReportRow
		dest = append(dest, &row.Requests, &row.PromptTokens, &row.CompletionTokens, &row.Cost, &row.Saved)
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return fmt.Errorf("budget: report: %w", err)
			}
			if row.Requests == 0 {
				continue // no GROUP BY and no rows
			}
			out := row
			out.Group = make([]string, 0, len(groupBy))
			out.Group = append(out.Group, vals...)
			if day >= 0 {
				out.Group = append(out.Group[:day], append([]string{dayName}, out.Group[day:]...)...)
			}
			if !spread {
				total.add(out)
			}
			if err := fn(out); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	if spread {
		err := db.QueryRowContext(ctx, s.q(`SELECT `+sums+` FROM budget_ledger WHERE ts >= ? AND ts < ?`+cond), args(lo, hi)...).
			Scan(&total.Requests, &total.PromptTokens, &total.CompletionTokens, &total.Cost, &total.Saved)
		if err != nil {
			return total, fmt.Errorf("budget: report: %w", err)
		}
	}
	if day < 0 {
		return total, emit(lo, hi, "")
	}
	// One query per local day, from the first row's day to the last's.
	var first, last sql.NullInt64
	if err := db.QueryRowContext(ctx, s.q(`SELECT MIN(ts), MAX(ts) FROM budget_ledger WHERE ts >= ? AND ts < ?`+cond), args(lo, hi)...).Scan(&first, &last); err != nil {
		return total, fmt.Errorf("budget: report: %w", err)
	}
	if !first.Valid {
		return total, nil
	}
	for t := time.UnixMilli(first.Int64); t.UnixMilli() <= last.Int64; {
		start, end := Daily.Window(t, s.loc)
		if err := emit(max(lo, start.UnixMilli()), min(hi, end.UnixMilli()), start.In(s.loc).Format(time.DateOnly)); err != nil {
			return total, err
		}
		t = end
	}
	return total, nil
}

// WriteReportCSV streams the report as CSV: a header (the group_by names,
// requests, prompt_tokens, completion_tokens, cost_usd, saved_usd), one
// line per group, and, when grouped, a last line of totals whose first
// column is "total" and other group columns are empty. Amounts are exact
// decimals in dollars.
func (s *Store) WriteReportCSV(ctx context.Context, w io.Writer, from, to time.Time, groupBy []string, f ReportFilter) error {
	if err := validGroupBy(groupBy); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	header := append(append([]string{}, groupBy...), "requests", "prompt_tokens", "completion_tokens", "cost_usd", "saved_usd")
	if err := cw.Write(header); err != nil {
		return err
	}
	record := func(group []string, r ReportRow) error {
		rec := append(append(make([]string, 0, len(header)), group...),
			strconv.FormatInt(r.Requests, 10), strconv.FormatInt(r.PromptTokens, 10), strconv.FormatInt(r.CompletionTokens, 10),
			r.Cost.String(), r.Saved.String())
		return cw.Write(rec)
	}
	n := 0
	total, err := s.ReportEach(ctx, from, to, groupBy, f, func(r ReportRow) error {
		if err := record(r.Group, r); err != nil {
			return err
		}
		if n++; n%256 == 0 {
			cw.Flush() // hand the bytes on as they come
			return cw.Error()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(groupBy) > 0 {
		group := make([]string, len(groupBy))
		group[0] = "total"
		err = record(group, total)
	} else if n == 0 {
		err = record(nil, total)
	}
	if err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// Spend returns the key's ledger rows admitted in [from, to), oldest
// first. A zero from or to leaves that side open. It holds them all in
// memory: the admin API pages with SpendPage instead.
func (s *Store) Spend(ctx context.Context, keyID string, from, to time.Time) ([]Entry, error) {
	out := []Entry{}
	err := s.SpendEach(ctx, keyID, from, to, func(e Entry) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

// SpendEach streams the key's ledger rows admitted in [from, to) to fn,
// oldest first.
func (s *Store) SpendEach(ctx context.Context, keyID string, from, to time.Time, fn func(Entry) error) error {
	_, err := s.spend(ctx, keyID, from, to, SpendCursor{}, -1, func(e Entry, _ SpendCursor) error { return fn(e) })
	return err
}

// SpendCursor is a position in a key's ledger rows, which are ordered by
// the time they were admitted and then by the order they were written:
// the position just after one row. The zero cursor is the start. Its text
// form (String, ParseSpendCursor) is opaque to clients.
type SpendCursor struct {
	ts, id int64 // the row's admission time (unix ms) and row id
}

// String is the cursor's opaque text form: URL-safe base64.
func (c SpendCursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.ts, 10) + "." + strconv.FormatInt(c.id, 10)))
}

// ErrBadCursor is a spend cursor that String did not make.
var ErrBadCursor = errors.New("budget: not a spend cursor")

// ParseSpendCursor reads a cursor's text form.
func ParseSpendCursor(s string) (SpendCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 41 {
		return SpendCursor{}, ErrBadCursor
	}
	ts, id, ok := strings.Cut(string(b), ".")
	if !ok {
		return SpendCursor{}, ErrBadCursor
	}
	var c SpendCursor
	if c.ts, err = strconv.ParseInt(ts, 10, 64); err != nil {
		return SpendCursor{}, ErrBadCursor
	}
	if c.id, err = strconv.ParseInt(id, 10, 64); err != nil || c.id < 1 {
		return SpendCursor{}, ErrBadCursor
	}
	return c, nil
}

// SpendPage streams to fn at most limit (at least 1) of the key's ledger
// rows admitted in [from, to) that come after the cursor (the zero cursor:
// from the first), in the order SpendCursor describes. It returns the
// cursor of the next page, or nil when no row is left. Rows are read from
// SQLite one by one, never more than a page's worth.
//
// The order is stable, so the pages of a range cover each of its rows
// once. A row is written when its request ends, so one still running when
// a page is read, admitted before that page's cursor, lands behind the
// cursor: read a range that has ended to see every row.
func (s *Store) SpendPage(ctx context.Context, keyID string, from, to time.Time, after SpendCursor, limit int, fn func(Entry) error) (*SpendCursor, error) {
	if limit < 1 {
		return nil, fmt.Errorf("budget: spend page limit %d: must be at least 1", limit)
	}
	var last SpendCursor
	n := 0
	more, err := s.spend(ctx, keyID, from, to, after, limit+1, func(e Entry, at SpendCursor) error {
		if n == limit {
			return errPageFull // the extra row: there is a next page
		}
		n++
		last = at
		return fn(e)
	})
	if err != nil {
		return nil, err
	}
	if !more {
		return nil, nil
	}
	return &last, nil
}

var errPageFull = errors.New("page full")

// spend runs fn over the key's rows in [from, to) after the cursor, at
// most limit of them (-1: all). It reports whether fn stopped it with
// errPageFull.
func (s *Store) spend(ctx context.Context, keyID string, from, to time.Time, after SpendCursor, limit int, fn func(Entry, SpendCursor) error) (bool, error) {
	db, err := s.settled(ctx)
	if err != nil {
		return false, err
	}
	lo, hi := int64(0), int64(1)<<62
	if !from.IsZero() {
		lo = from.UnixMilli()
	}
	if !to.IsZero() {
		hi = to.UnixMilli()
	}
	if limit < 0 {
		limit = math.MaxInt64 // all: PostgreSQL refuses SQLite's LIMIT -1
	}
	// ts >= max(lo, after.ts) lets the ts index start at the cursor; the
	// row id orders the rows of one millisecond, as the index does.
	rows, err := db.QueryContext(ctx, s.q(`SELECT id, ts, request_id, key_id, route, requested_model, model, provider,
		prompt_tokens, completion_tokens, cached_tokens, cost, saved, estimated, unpriced, cache, status, latency_ms, attempts, judge, judge_cost,
		customer, tags, guards
		FROM budget_ledger WHERE key_id = ? AND ts >= ? AND ts < ? AND (ts > ? OR id > ?) ORDER BY ts, id LIMIT ?`),
		keyID, max(lo, after.ts), hi, after.ts, after.id, limit)
	if err != nil {
		return false, fmt.Errorf("budget: spend: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e Entry
		var at SpendCursor
		var latency int64
		var tags, guards string
		if err := rows.Scan(&at.id, &at.ts, &e.RequestID, &e.KeyID, &e.Route, &e.RequestedModel, &e.Model, &e.Provider,
			&e.PromptTokens, &e.CompletionTokens, &e.CachedTokens, &e.Cost, &e.Saved, &e.Estimated, &e.Unpriced,
			&e.Cache, &e.Status, &latency, &e.Attempts, &e.Judge, &e.JudgeCost, &e.Customer, &tags, &guards); err != nil {
			return false, fmt.Errorf("budget: spend: %w", err)
		}
		if e.Tags, err = parseTags(tags); err != nil {
			return false, err
		}
		if e.Guards, err = parseGuards(guards); err != nil {
			return false, err
		}
		e.Time = time.UnixMilli(at.ts).In(s.loc)
		e.Latency = time.Duration(latency) * time.Millisecond
		if err := fn(e, at); err != nil {
			if errors.Is(err, errPageFull) {
				return true, nil
			}
			return false, err
		}
	}
	return false, rows.Err()
}
