-- budget: the semantic-cache judge's verdict and cost in each ledger row.
ALTER TABLE budget_ledger ADD COLUMN judge TEXT NOT NULL DEFAULT ''; -- the judge's verdict on an uncertain semantic candidate: '' | yes | no | failed
ALTER TABLE budget_ledger ADD COLUMN judge_cost INTEGER NOT NULL DEFAULT 0; -- micro-dollars the judge cost (part of cost)
