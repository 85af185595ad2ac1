package budget

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/internal/migrate"
	"github.com/tollgate/tollgate/internal/safe"
	"github.com/tollgate/tollgate/pkg/llm"
)

// Store is the spend ledger: one row per request in budget_ledger, with
// the alerts its charge crossed in budget_alerts and budget_outbox, all
// written by group commit (writer.go) and, with Options.JournalPath,
// through the journal (journal.go). Its readers (Spend, Report,
// WriteReportCSV, the alert deliverer, the rebuild at Open) reach the
// tables only through settled, which first moves what is journaled into
// SQLite: nobody can read the ledger without the rows whose Settle has
// returned. Safe for concurrent use.
type Store struct {
	db            *sql.DB
	loc           *time.Location // of the report's days and of Spend's times
	log           *slog.Logger
	sup           *safe.Supervisor
	applyInterval time.Duration
	applyRows     int
	hooks         testHooks
	onAlerts      func() // alert rows reached the outbox: wake the deliverer
	now           func() time.Time
	lag           lagTracker

	// pool is the shared store's PostgreSQL (Options.Shared): the writer
	// commits there, and queries are rebound to its placeholders. Nil:
	// SQLite.
	pool *pgxpool.Pool

	insert    *sql.Stmt // SQLite only
	w         *writer
	j         *journal // nil: each batch is an SQLite transaction
	closeOnce sync.Once
}

// openStore prepares the writer and, with a journal, replays into SQLite
// what the journal holds beyond the stored offset. start runs the
// background workers.
func openStore(ctx context.Context, db *sql.DB, o Options, onAlerts func()) (*Store, error) {
	if sh := o.Shared; sh != nil {
		// The ledger rows go to PostgreSQL by group commit, durable at
		// commit (synchronous_commit on): no journal.
		s := &Store{db: db, loc: o.Location, log: o.Logger, sup: o.Supervisor, hooks: o.hooks, onAlerts: onAlerts, pool: sh.Pool, now: o.Now}
		s.w = newWriter(s)
		return s, nil
	}
	insert, err := db.PrepareContext(ctx, insertEntry)
	if err != nil {
		return nil, fmt.Errorf("budget: prepare: %w", err)
	}
	s := &Store{db: db, loc: o.Location, log: o.Logger, sup: o.Supervisor, applyInterval: o.ApplyInterval, applyRows: o.ApplyRows,
		hooks: o.hooks, onAlerts: onAlerts, insert: insert, now: o.Now}
	s.w = newWriter(s)
	if o.JournalPath != "" {
		if s.j, err = openJournal(ctx, s, o.JournalPath); err != nil {
			insert.Close()
			return nil, err
		}
	}
	return s, nil
}

// start runs the writer and the journal mover.
func (s *Store) start() {
	s.w.start()
	if s.j != nil {
		s.j.start()
	}
}

// close writes every pending row and alert into SQLite and stops the
// workers. Closing again does nothing.
func (s *Store) close() (err error) {
	s.closeOnce.Do(func() {
		err = s.w.close()
		if s.j != nil {
			if jerr := s.j.close(); err == nil {
				err = jerr
			}
		}
		if s.insert != nil {
			s.insert.Close()
		}
	})
	return err
}

// add hands a row (may be nil) and alerts to the next batch and returns
// that batch, to wait on or not.
func (s *Store) add(e *Entry, alerts []alertRow) *batch { return s.w.add(e, alerts) }

// flushWAL returns once PostgreSQL's WAL is flushed past every commit made
// before the call, by group commit: one flush for every caller waiting at
// once (and for the rows of the same batch). SQLite: nothing to wait for.
func (s *Store) flushWAL(ctx context.Context) error {
	if s.pool == nil {
		return nil
	}
	return s.w.addSync(nil, nil, true).wait(ctx)
}

// Flush waits until every row handed to the store so far is committed to
// SQLite (with a journal: journaled, then applied). Readers need not call
// it: they do as much themselves.
func (s *Store) Flush(ctx context.Context) error {
	_, err := s.settled(ctx)
	return err
}

// settled returns the database once every row and alert handed to the
// store before the call is in its tables: it waits for the writer to
// write them and, with a journal, moves what is journaled into SQLite. It
// is the only way to read the ledger tables, so no reader sees a ledger
// older than the counters it was charged with.
func (s *Store) settled(ctx context.Context) (*sql.DB, error) {
	if err := s.w.add(nil, nil).wait(ctx); err != nil {
		return nil, err
	}
	if s.j != nil {
		if err := s.j.apply(ctx); err != nil {
			return nil, err
		}
	}
	return s.db, nil
}

// q is query in the store's dialect: SQLite's ? placeholders become
// PostgreSQL's $1, $2, ... (no query here has a ? inside a string).
func (s *Store) q(query string) string {
	if s.pool == nil {
		return query
	}
	return migrate.Rebind(migrate.Postgres, query)
}

// The judge's verdicts, as Entry.Judge records them.
const (
	JudgeYes    = "yes"
	JudgeNo     = "no"
	JudgeFailed = "failed"
)

// Entry is one ledger row: one request, whatever became of it (a request
// whose semantic candidate went to the judge included: the judge's call is
// part of its row, not a row of its own).
type Entry struct {
	// Time is when the request was admitted; its period is the one that
	// contains Time. Settle sets it to the reservation's time.
	Time           time.Time
	RequestID      string
	KeyID          string
	Route          string
	RequestedModel string
	Model          string // the model that served it
	Provider       string
	// Tokens: prompt, completion, and the prompt tokens the provider read
	// from its own cache.
	PromptTokens, CompletionTokens, CachedTokens int
	// Cost is charged to the key; Saved is what the cache or a downgrade
	// saved against the requested model.
	Cost, Saved llm.Micros
	// Estimated: the cost comes from tokens tollgate counted, not from
	// usage the provider reported. Unpriced: the model has no price, so a
	// zero Cost means "unknown", not "free".
	Estimated, Unpriced bool
	Cache               string // hit | semantic-hit | miss | bypass
	// Judge is the verdict of the judge asked about an uncertain semantic
	// candidate (cache.semantic.verify): "" when none was asked, JudgeYes
	// (the row is a semantic hit), JudgeNo, or JudgeFailed (an error, a
	// timeout, an answer that was not yes or no, a budget that could not
	// cover the judge: a miss). JudgeCost is what the judge cost, part of
	// Cost.
	Judge     string
	JudgeCost llm.Micros
	Status    int // HTTP status the client got
	Latency   time.Duration
	Attempts  int
	// Customer is whom the key's application served ("" when the request
	// named none); Tags are the request's metadata, name → value.
	Customer string
	Tags     map[string]string
	// Guards counts the guards that fired on the request or its answer,
	// guard name → matches (never the matched text); a blocked request's
	// row names the guard that refused it with its count.
	Guards map[string]int
}

// noTags is the tags column of a row without tags, boxed once: a row
// without tags costs the ledger writer no allocation.
var noTags any = "[]"

// tagsArg is tagsColumn as a statement's argument.
func (e *Entry) tagsArg() any {
	if len(e.Tags) == 0 {
		return noTags
	}
	return e.tagsColumn()
}

// tagsColumn is e's tags as the ledger stores them: a JSON array of
// "name=value" strings, sorted, "[]" when there is none.
func (e *Entry) tagsColumn() string {
	if len(e.Tags) == 0 {
		return "[]"
	}
	list := make([]string, 0, len(e.Tags))
	for name, v := range e.Tags {
		list = append(list, name+"="+v)
	}
	slices.Sort(list)
	b, _ := json.Marshal(list)
	return string(b)
}

// noGuards is the guards column of a row no guard fired on, boxed once.
var noGuards any = "{}"

// guardsArg is guardsColumn as a statement's argument.
func (e *Entry) guardsArg() any {
	if len(e.Guards) == 0 {
		return noGuards
	}
	return e.guardsColumn()
}

// guardsColumn is e's guards as the ledger stores them: a JSON object
// guard name → matches, its keys sorted (encoding/json sorts a map's),
// "{}" when none fired.
func (e *Entry) guardsColumn() string {
	if len(e.Guards) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(e.Guards)
	return string(b)
}

// parseGuards reads the guards column back: nil when no guard fired.
func parseGuards(col string) (map[string]int, error) {
	var guards map[string]int
	if err := json.Unmarshal([]byte(col), &guards); err != nil {
		return nil, fmt.Errorf("budget: guards column %q: %w", col, err)
	}
	if len(guards) == 0 {
		return nil, nil
	}
	return guards, nil
}

// parseTags reads the tags column back.
func parseTags(col string) (map[string]string, error) {
	var list []string
	if err := json.Unmarshal([]byte(col), &list); err != nil {
		return nil, fmt.Errorf("budget: tags column %q: %w", col, err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	tags := make(map[string]string, len(list))
	for _, t := range list {
		name, v, _ := strings.Cut(t, "=")
		tags[name] = v
	}
	return tags, nil
}
