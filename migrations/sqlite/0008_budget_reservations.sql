-- Budgets that cannot be overspent: before every LLM call the worst-case cost is reserved
-- here, against every limit, under the lock of the one budget_lock row (taken by updating it
-- first, so that SQLite's single writer and PostgreSQL's row lock both serialise reservers
-- across workers and replicas). Settling a call deletes its reservation in the transaction
-- that writes its ledger rows; a crashed process's reservation stops counting at expires_at.

CREATE TABLE budget_lock (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    -- bumped by every reservation: the write that takes the lock
    version BIGINT NOT NULL DEFAULT 0
);
INSERT INTO budget_lock (id, version) VALUES (1, 0);

CREATE TABLE budget_reservations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    -- the lead the call is for, when there is one
    chat_id      BIGINT,
    -- worst-case cost of the attempts allowed so far (nano-USD)
    amount_nanos BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    -- ms; after this the reservation no longer counts (its call cannot still be running)
    expires_at   BIGINT NOT NULL
);
CREATE INDEX budget_reservations_expires ON budget_reservations (expires_at);
CREATE INDEX budget_reservations_chat ON budget_reservations (chat_id) WHERE chat_id IS NOT NULL;

-- A lead that got a stop reply because a reservation did not fit: scope 'bot' (the bot's
-- daily or monthly limit) or 'lead' (budget.perLead), once per lead and period. The owner
-- notices count these.
CREATE TABLE budget_refusals (
    -- bot | lead
    scope       TEXT NOT NULL,
    -- day | month
    period_kind TEXT NOT NULL,
    -- YYYY-MM-DD or YYYY-MM (UTC)
    period_key  TEXT NOT NULL,
    -- 0 when the call was for no lead
    chat_id     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (scope, period_kind, period_key, chat_id)
);

-- Owner notices about refusals, claimed before sending like budget_alerts: once per owner,
-- scope, period and lead (0 for the bot-wide "budget reached" notice).
CREATE TABLE budget_notices (
    scope       TEXT NOT NULL,
    period_kind TEXT NOT NULL,
    period_key  TEXT NOT NULL,
    chat_id     BIGINT NOT NULL,
    owner_id    BIGINT NOT NULL,
    claimed_at  BIGINT NOT NULL,
    sent_at     BIGINT,
    PRIMARY KEY (scope, period_kind, period_key, chat_id, owner_id)
);
