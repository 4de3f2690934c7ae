-- Human handoff: a lead handed over to a person, the messages relayed between them, and the
-- owner-side messages still to deliver (durable: a failed send is retried, never dropped).

-- One row per handoff; at most one open (closed_at IS NULL) per lead.
CREATE TABLE handoffs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chat_id          BIGINT NOT NULL,
    -- command | button | llm | llm_failure | unanswered | takeover
    reason           TEXT NOT NULL,
    -- the LLM's own words for why (tool call), when it gave them
    detail           TEXT,
    -- the LLM-written summary the owners were sent (NULL: the summary call failed)
    summary          TEXT,
    -- triggers while open: a second /human adds to the open handoff
    triggers         INTEGER NOT NULL DEFAULT 1,
    opened_at        BIGINT NOT NULL,
    -- who took it (NULL: still waiting for a person)
    taken_by         BIGINT,
    taken_by_name    TEXT,
    taken_at         BIGINT,
    -- where the taker works: their private chat with the bot, or the operators' group
    taken_in_chat    BIGINT,
    -- the last message either way, for autoResumeAfter
    last_activity_at BIGINT NOT NULL,
    closed_at        BIGINT,
    -- resolved | returned | auto
    close_reason     TEXT
);
CREATE UNIQUE INDEX handoffs_one_open ON handoffs (chat_id) WHERE closed_at IS NULL;
CREATE INDEX handoffs_opened ON handoffs (opened_at);

-- A message the bot showed an owner (a notification or a relayed lead message): an owner's
-- Telegram reply to it goes to that lead, on whichever replica handles the reply.
CREATE TABLE handoff_relays (
    owner_chat_id BIGINT NOT NULL,
    message_id    BIGINT NOT NULL,
    handoff_id    BIGINT NOT NULL,
    lead_chat_id  BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (owner_chat_id, message_id)
);

-- Owner-side messages (notifications, relayed lead messages) to deliver; sent_at NULL until
-- Telegram took them. A row is claimed (claim_until) while a process sends it.
CREATE TABLE handoff_outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    handoff_id      BIGINT NOT NULL,
    owner_chat_id   BIGINT NOT NULL,
    -- Telegram HTML
    text            TEXT NOT NULL,
    -- JSON array of [label, callback data]
    buttons         TEXT NOT NULL,
    -- one row per notification or relayed update and recipient, however often it is retried
    dedupe_key      TEXT NOT NULL UNIQUE,
    created_at      BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claim_until     BIGINT,
    sent_at         BIGINT,
    last_error      TEXT
);
CREATE INDEX handoff_outbox_due ON handoff_outbox (next_attempt_at) WHERE sent_at IS NULL;
