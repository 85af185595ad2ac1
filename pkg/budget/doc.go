// Package budget owns keys' budgets: policies (limits per period, rate
// limits, what happens when money runs out, alert receivers), the
// in-memory period counters with reserve / settle / release, the SQLite
// spend ledger written by group commit, alert thresholds with a durable
// webhook outbox, and cost reports over the ledger. Key ids are plain
// strings: the gateway connects this package to the key store.
//
// Open wires four parts, each used on its own (a *Ledger only holds them
// and closes them):
//
//	Ledger.Limits    *RateLimits  rpm/tpm of every request, in memory
//	Ledger.Accounts  *Accounts    policies and period counters: Reserve, Settle, Release, Record
//	Ledger.Store     *Store       the ledger rows: writer, journal, Spend, Report, CSV
//	Ledger.Alerts    *Alerts      threshold alerts: rendering, outbox, delivery
//
// Accounts hands each row, with the alerts its charge crossed, to the
// Store, which writes them in one batch; the Alerts deliverer reads the
// outbox back through the Store.
//
// # Request flow (what the gateway calls)
//
//	Limits.Allow(key, promptTokens)              rpm/tpm; 429 *llm.Error with x-ratelimit-* headers
//	cache hit → Accounts.Record(entry)           costs nothing, served even when the budget is spent
//	Accounts.ReserveFor(ctx, key, customer, requestID, max)   max = prompt × input price + max_tokens × output price
//	  ErrExhausted and policy Downgrade → Accounts.Fits(key, cheaperMax) per candidate, Reserve the pick
//	upstream call
//	  ok     → Accounts.Settle(ctx, r, entry)    actual cost; returns once the ledger row is on disk
//	  failed → Accounts.Release(r); Accounts.Record(entry)
//
// # Periods and rollover
//
// Limits are daily, weekly (ISO: Monday 00:00), monthly (the 1st) or total
// (never resets), aligned to the calendar of Options.Location (UTC by
// default): see Period.Window, which handles 23- and 25-hour days and days
// without a midnight. A request belongs to the periods that contain the
// instant it was admitted (its reservation time, the ledger row's ts): a
// request reserved at 23:59:59 and settled after midnight is charged to
// the day it started in, since that is the day whose budget admitted it;
// the new day starts with its whole budget. Retry-After of a 402 is the
// time until every refusing period has reset (none when a total budget
// refuses).
//
// # Exactness under concurrency
//
// Each key has its own state and mutex (a sync.Map of keys; requests of
// different keys never contend). Reserve checks spent + reserved + amount
// against every limit of the key under that mutex and holds the amount in
// all of them or in none, so no interleaving can admit more than a limit.
// Settle moves the hold to the actual cost. The cost is charged as given
// to every period even if it exceeds the reservation (an upstream that
// ignored the output limit it was sent, or counted more prompt tokens than
// tollgate did): the ledger records what was spent, a key left over a
// limit is refused until that period resets, and an overspend alert
// fires. An upstream that ignores the limit can therefore overrun a limit
// by at most one response's overage per request in flight. Counters
// saturate at the int64 bounds, so an absurd cost keeps a key blocked
// rather than wrapping its spend negative. Reservation ids are request ids: reserving an id that holds a
// reservation returns it; settling twice is a no-op; a settled id cannot
// reserve again (ErrSettled; the last 4096 to 8192 settled ids of each key
// are remembered); a released id can (a fallback to another model).
//
// # Durability
//
// The ledger row is the durable settle: there is no separate counter
// table. A single writer goroutine commits rows in batches (group commit):
// while one transaction commits, the next batch fills, so an idle gateway
// writes each row at once and a busy one writes hundreds per transaction.
// Settle waits until its batch has committed, so every request
// acknowledged to a client is in the ledger; Record (cache hits, failures)
// does not wait, its row goes with the next batch, and Close flushes.
// Reservations live only in memory: a crash drops them, correctly, since
// those requests were never acknowledged. At Open, each key's spend in the
// current periods is rebuilt as the sum of its rows since each period's
// start (one scan of the ledger: about 0.8 s for a million rows here), so
// after kill -9 the spend is exactly the sum of the settled rows.
// Threshold alerts are inserted in the same transaction as the row that
// crossed them.
//
// The database is opened by package sqlite in WAL mode with
// synchronous=NORMAL: a commit has been written to the WAL file (the
// kernel's page cache) when it returns, so it survives the death of the
// process, which is what this package promises. It does not survive a
// power loss or kernel crash (the WAL is synced only at checkpoints);
// synchronous=FULL would, at the price of one fsync per commit, which
// group commit amortises over a batch. The ledger is indexed by time only:
// an index by key, written at random places by many keys, cost half the
// throughput; a key's history scans its time range.
//
// # The journal
//
// With Options.JournalPath (the gateway's mode), the durable point of a
// settle is an append to an append-only journal file instead of an SQLite
// transaction: at 4,000 req/s a commit ends before the next request comes,
// so batches held one row and BEGIN/INSERT/COMMIT cost ~15% of the CPU.
// The writer still groups rows, but writes each batch as one
// length-prefixed, CRC-32C-checked record with one write(2) to the file
// opened O_APPEND, and Settle returns after that write: the record is in
// the kernel's page cache, so it survives kill -9, the same promise as a
// WAL commit with synchronous=NORMAL. It is not fsynced: a power loss or
// kernel crash may lose the last moments of settles, as before (the WAL
// is synced only at checkpoints). An applier moves journaled batches into
// SQLite every ApplyInterval (50 ms) or ApplyRows (1000), whichever comes
// first, inserting rows and alert outbox rows as the direct path does and
// storing the journal offset applied in the same transaction; once all is
// applied, the file is truncated to 0 and then the offset reset (a crash
// in between leaves offset > size: nothing to replay). Open replays the
// records past the stored offset before the spend is rebuilt (each record
// exactly once, as the offset commits with its rows) and drops a torn or
// corrupt tail, a write a crash cut, with a warning: its Settles never
// returned. The ledger tables are read only through the Store (Spend,
// Report, the CSV, alert delivery, the rebuild at Open), which first waits
// for the rows handed to it and applies the journal, so a reader sees
// every row whose Settle or Record returned before it asked; Close applies
// everything. One record per batch keeps a row and the alerts it crossed
// all or nothing, as one transaction did.
//
// # Background workers
//
// The ledger writer, the journal mover and the alert deliverer run under
// Options.Supervisor: a panic is logged with its stack and the loop run
// again, or, after too many in a row, given up and reported by
// Supervisor.Err, which turns /readyz red. None takes the process down. A
// restarted loop finds its work where the panic left it: the writer
// retries the batch it was writing unless that batch had reached its
// durable point (then it only tells the waiters), and tells the waiters
// the error if it panics a second time; the mover keeps what it took
// until it is in SQLite; the deliverer tries again the deliveries not
// marked done (at least once, as after a crash). Close stops every loop,
// whatever became of it, and writes what is left itself.
//
// # Rate limits
//
// rpm and tpm (prompt tokens counted before the call) are per key
// (Accounts tells RateLimits each policy it loads or stores), each a GCRA (a
// token bucket of rpm or tpm units refilled continuously over a minute, kept
// as one timestamp). A request is charged to both or neither. The buckets
// live in a RateStore: in memory (the default, one process), or shared by
// replicas in PostgreSQL (one INSERT ... ON CONFLICT DO UPDATE statement per
// check, on an UNLOGGED table: a PostgreSQL crash refills the buckets) or
// Redis (one Lua script); the shared stores take the time from the
// server's clock, so replicas agree. Measured here from one process over
// 1,000 keys: memory 4-6 million checks/s, PostgreSQL 14,000-23,000/s on 4
// connections, Redis 36,000-46,000/s. The gateway does not wire the shared
// stores yet (store.driver: postgres is refused until budgets are shared). RateState carries OpenAI's x-ratelimit-limit-,
// -remaining- and -reset-requests/-tokens values; reset is the time until
// the bucket is full again.
//
// # Alerts
//
// Events: threshold_reached (default thresholds 50%, 80%, 100% of each
// limit, of settled spend), budget_exhausted (the first refused
// reservation of a period: with reservations, spend may stop short of
// 100%), projected_exhaustion, and overspend (a settled cost above its
// reservation; once per such request, for the key's limit with the least
// room left, with the request id, the reservation and the actual cost).
// The first three fire at most once per key, period, period start,
// threshold and limit amount (changing a limit re-arms it), in memory and
// in budget_alerts, so a restart does not fire them again. projected_exhaustion uses the period's average burn rate so
// far (spent / elapsed, so the projection at the period's end is spent ×
// length / elapsed); it is made only once ProjectionMinElapsed (10%) of
// the period has passed, never for total, and fires when the projection
// reaches the limit, with the estimated time of exhaustion.
//
// Every alert goes to the global webhooks and the key's own, through the
// budget_outbox table: the deliverer posts the JSON Event (or
// Slack's {"text"} for Slack webhooks), signed with x-tollgate-signature:
// t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)> (VerifySignature
// checks it), retries failures with exponential backoff and equal jitter
// (RetryBase doubling to RetryMax, honouring a longer Retry-After) up to
// MaxAttempts, and picks pending rows up again after a restart. Delivery
// is at least once (a crash between the receiver's 200 and the update
// resends); Event.ID lets receivers drop duplicates.
//
// # Reports
//
// Store.Report, ReportEach and WriteReportCSV sum the ledger by any of key,
// model, provider, route, day (local to Options.Location), cache, customer
// and tag (a row counts in the group of each of its tags; the totals count
// it once), filtered by customer and tag (ReportFilter), with
// requests, tokens, cost and saved money as exact integer sums; grouping by
// day runs one query per day, so a CSV of any range streams with one day's
// groups in memory. Spend and SpendEach return one key's rows.
//
// # Customers
//
// Every row records the request's customer and tags. A key's policy may
// give its customers budgets (Policy.Customers): each customer is an
// account of its own (customers.go), reserved, settled and released with
// its key's, all or none, under the key's lock then the customer's; with
// a shared store, in the same statement as the key's counters.
//
// Budgets are exact per instance: replicas sharing keys need a shared
// store (see ARCHITECTURE.md).
package budget
