-- Broadcasts: an owner's announcement to every opted-in lead (bot/src/broadcast).

-- One broadcast, from the owner's /broadcast to its final report.
CREATE TABLE broadcasts (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- the owner's private chat: previews, progress and reports go there
    owner_chat_id       BIGINT NOT NULL,
    -- composing (waiting for the message) | previewed (waiting for Confirm) | queued (confirmed,
    -- waiting for scheduled_at) | running | done | cancelled
    status              TEXT NOT NULL,
    -- only leads whose last message is at most this old (ms); NULL: every opted-in lead
    active_within_ms    BIGINT,
    -- when to start (ms); NULL: at once
    scheduled_at        BIGINT,
    -- the message: Telegram HTML, and an optional photo or document (Telegram file_id)
    text_html           TEXT,
    photo_file_id       TEXT,
    document_file_id    TEXT,
    -- JSON [[label, url], ...]: URL buttons under the message
    buttons             TEXT,
    -- the owner's update that carried the message (handled twice after a crash: same preview)
    content_update_id   BIGINT,
    -- recipients, counted when the broadcast starts
    audience            BIGINT,
    -- the owner's message that shows the progress (edited in place)
    progress_message_id BIGINT,
    created_at          BIGINT NOT NULL,
    confirmed_at        BIGINT,
    started_at          BIGINT,
    finished_at         BIGINT
);
CREATE INDEX broadcasts_by_owner ON broadcasts (owner_chat_id, status);
CREATE INDEX broadcasts_due ON broadcasts (status, scheduled_at);

-- One row per recipient of a broadcast: the durable job. A sender claims a few pending rows
-- at a time (status 'sending', claimed_by/claim_until: a lease that expires, so a crashed
-- sender's rows are taken again), sends, and marks each row as it goes.
CREATE TABLE broadcast_recipients (
    broadcast_id    BIGINT NOT NULL,
    chat_id         BIGINT NOT NULL,
    -- pending | sending | sent | failed | blocked | skipped (opted out before its turn)
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- a retried row waits until then (backoff)
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    claimed_by      TEXT,
    claim_until     BIGINT,
    sent_at         BIGINT,
    last_error      TEXT,
    PRIMARY KEY (broadcast_id, chat_id)
);
CREATE INDEX broadcast_recipients_pending ON broadcast_recipients (broadcast_id, chat_id)
    WHERE status = 'pending';
CREATE INDEX broadcast_recipients_sending ON broadcast_recipients (claimed_by)
    WHERE status = 'sending';
