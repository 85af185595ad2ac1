package main

import (
	"context"
	"path/filepath"

	"github.com/tollgate/tollgate/pkg/sqlite"
)

// ledgerRow is one budget_ledger row, as far as the probes read it.
type ledgerRow struct {
	requestID        string
	keyID            string
	promptTokens     int64
	completionTokens int64
	cost             int64 // micro-dollars charged
	status           int
}

// readLedger reads every budget_ledger row of a gateway's data directory.
// Call it after the gateway has exited: the rows it wrote last go through
// its journal first.
func readLedger(ctx context.Context, dataDir string) ([]ledgerRow, error) {
	db, err := sqlite.Open(filepath.Join(dataDir, "tollgate.db"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT request_id, key_id, prompt_tokens, completion_tokens, cost, status FROM budget_ledger ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ledgerRow
	for rows.Next() {
		var r ledgerRow
		if err := rows.Scan(&r.requestID, &r.keyID, &r.promptTokens, &r.completionTokens, &r.cost, &r.status); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// byRequest indexes rows by request id.
func byRequest(rows []ledgerRow) map[string]ledgerRow {
	m := make(map[string]ledgerRow, len(rows))
	for _, r := range rows {
		m[r.requestID] = r
	}
	return m
}
