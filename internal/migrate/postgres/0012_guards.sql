-- guards: a key's own guard list and the guards that fired on a request.
-- api_keys.guards is the key's list as a JSON array of {"name", "action"}
-- objects (action omitted: the guard's own); NULL inherits the routes'
-- guards, '[]' applies none.
ALTER TABLE api_keys ADD COLUMN guards TEXT;
-- budget_ledger.guards counts the guards that fired on the request or its
-- answer: a JSON object guard name → matches, keys sorted ('{}' when
-- none). Never the matched text.
ALTER TABLE budget_ledger ADD COLUMN guards TEXT NOT NULL DEFAULT '{}';
