-- Core tables of the bot: the durable inbox of updates, leads and their conversations.
-- Timestamps are BIGINT milliseconds since the Unix epoch (one format for both dialects).

-- Every accepted update, written before Telegram gets its 200. A row is pending until done_at
-- is set; a worker claims it by setting claimed_by/claim_until (a lease that expires, so a
-- crashed worker's row is taken again).
CREATE TABLE inbox (
    update_id   BIGINT PRIMARY KEY,
    chat_id     BIGINT,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    claimed_by  TEXT,
    claim_until BIGINT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    done_at     BIGINT,
    last_error  TEXT
);
CREATE INDEX inbox_pending_by_chat ON inbox (chat_id, update_id) WHERE done_at IS NULL;
CREATE INDEX inbox_pending ON inbox (update_id) WHERE done_at IS NULL;
CREATE INDEX inbox_done_at ON inbox (done_at) WHERE done_at IS NOT NULL;

-- One lead per private chat with the bot.
CREATE TABLE leads (
    chat_id              BIGINT PRIMARY KEY,
    user_id              BIGINT,
    username             TEXT,
    first_name           TEXT,
    first_seen_at        BIGINT NOT NULL,
    last_inbound_at      BIGINT NOT NULL,
    last_outbound_at     BIGINT,
    -- active | opted_out | converted
    status               TEXT NOT NULL DEFAULT 'active',
    opted_out_at         BIGINT,
    followups_sent       INTEGER NOT NULL DEFAULT 0,
    last_followup_at     BIGINT,
    followup_claim       TEXT,
    followup_claim_until BIGINT
);
CREATE INDEX leads_followup_due ON leads (followups_sent, last_inbound_at) WHERE status = 'active';
CREATE INDEX leads_first_seen ON leads (first_seen_at);
CREATE INDEX leads_last_inbound ON leads (last_inbound_at);

-- The conversation: what the user wrote and what the bot answered.
CREATE TABLE messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id    BIGINT NOT NULL,
    -- user | assistant
    role       TEXT NOT NULL,
    -- chat | followup | command | notice
    kind       TEXT NOT NULL,
    text       TEXT NOT NULL,
    -- the update this message came from or answers; NULL for follow-ups
    update_id  BIGINT,
    created_at BIGINT NOT NULL,
    -- assistant messages: when Telegram accepted the last part (NULL: not yet sent)
    sent_at    BIGINT
);
CREATE INDEX messages_by_chat ON messages (chat_id, id);
CREATE INDEX messages_user_recent ON messages (chat_id, created_at) WHERE role = 'user';
-- Re-processing an update after a crash finds the reply it already wrote instead of asking the
-- LLM (and paying) again.
CREATE UNIQUE INDEX messages_once_per_update ON messages (update_id, role) WHERE update_id IS NOT NULL;
