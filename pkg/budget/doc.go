// Package budget owns keys' budgets: policies (limits per period, rate
// limits, what happens when money runs out, alert receivers), the
// in-memory period counters with reserve / settle / release, the SQLite
// spend ledger written by group commit, alert thresholds with a durable
// webhook outbox, and cost reports over the ledger.
package budget
