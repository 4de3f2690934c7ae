-- The support desk: each lead message's intent and topic, the classifier's cache, and
-- reminders about untaken handoffs (outbox rows that give up after a number of attempts).

-- Classifications by the message's normalised text (and the classifier model): a repeat
-- costs no call.
CREATE TABLE classification_cache (
    -- SHA-256 (hex) of the classifier model and the normalised text
    key        TEXT PRIMARY KEY,
    intent     TEXT NOT NULL,
    topic      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- What each classified lead message was: /stats counts them, incidents are read from them.
CREATE TABLE message_intents (
    update_id  BIGINT PRIMARY KEY,
    chat_id    BIGINT NOT NULL,
    -- question | purchase | complaint | tech_support | human | spam | other
    intent     TEXT NOT NULL,
    topic      TEXT NOT NULL,
    text       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX message_intents_created ON message_intents (created_at);

-- The reminder steps (handoff.remindAfter) already due for a handoff: a step is taken once,
-- by one process, in the transaction that queues its messages.
ALTER TABLE handoffs ADD COLUMN reminder_steps BIGINT NOT NULL DEFAULT 0;

-- NULL: retried until Telegram takes it (notifications, relayed messages); set on a reminder,
-- which is given up (given_up_at, never sent_at) after this many failed attempts
ALTER TABLE handoff_outbox ADD COLUMN max_attempts BIGINT;
ALTER TABLE handoff_outbox ADD COLUMN given_up_at BIGINT;
