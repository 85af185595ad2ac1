-- responses: stored OpenAI Responses API answers (pkg/responses), for
-- GET /v1/responses/{id} and previous_response_id. Each belongs to the key
-- that made it; another key never sees it. response_json is the response
-- object as answered; context_json is the conversation it ended (the chat
-- messages of every input turn and its output, without instructions),
-- which a follow-up turn continues. Times are unix ms, from the clock of
-- the replica that served it; rows past expires_at are never served and
-- are swept.
CREATE TABLE responses (
	id            TEXT PRIMARY KEY,
	key_id        TEXT NOT NULL,
	created_at    BIGINT NOT NULL,
	expires_at    BIGINT NOT NULL,
	response_json TEXT NOT NULL,
	context_json  TEXT NOT NULL
);
CREATE INDEX responses_expiry ON responses (expires_at);
