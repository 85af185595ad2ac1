-- budget: how far a replica's settle journal has been moved into the tables.
CREATE TABLE budget_journal (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	applied BIGINT NOT NULL -- journal offset whose records are all in budget_ledger / budget_alerts
);
