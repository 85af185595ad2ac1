-- budget: the semantic-cache judge's verdict and cost in each ledger row.
ALTER TABLE budget_ledger ADD COLUMN judge TEXT NOT NULL DEFAULT ''; -- '' | yes | no | failed
ALTER TABLE budget_ledger ADD COLUMN judge_cost BIGINT NOT NULL DEFAULT 0; -- micro-dollars the judge cost (part of cost)
