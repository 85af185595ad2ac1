-- budget: spend by customer and tag, and customers' budgets.
-- customer is whom the key's application served (the request's
-- customer_identifier, customer_params or OpenAI's user; '' when none);
-- tags are the request's metadata as a JSON array of "name=value"
-- strings, sorted ('[]' when none), which reports expand to group by tag.
ALTER TABLE budget_ledger ADD COLUMN customer TEXT NOT NULL DEFAULT '';
ALTER TABLE budget_ledger ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
-- A reservation of a request with a customer budget holds the customer's
-- counters too (their key_id is the customer's account: the key id, a
-- 0x1f byte, the customer), so a lease's expiry releases both.
ALTER TABLE budget_reservations ADD COLUMN customer TEXT NOT NULL DEFAULT '';
