-- Documents and knowledge: what the prompt cache saved, each lead's active document, and the
-- response cache (llm.responseCache, off by default).

-- Per call: what its cache-read tokens would have cost as plain input minus what they cost,
-- at the rates the call was charged (nano-USD). Summed per day like the other columns.
ALTER TABLE llm_usage_daily ADD COLUMN cache_saved_nanos BIGINT NOT NULL DEFAULT 0;

-- The document a lead sent last, its text extracted (bounded by the bot: documents.maxTokens).
-- One per chat: a new document replaces it, /forget deletes it.
CREATE TABLE lead_documents (
    chat_id    BIGINT PRIMARY KEY,
    file_name  TEXT NOT NULL,
    -- pdf | text
    kind       TEXT NOT NULL,
    -- PDF pages; NULL for text
    pages      INTEGER,
    -- characters of the extracted text before it was cut to fit
    full_chars BIGINT NOT NULL,
    -- 1 when the stored text is shorter than the document's
    cut        INTEGER NOT NULL CHECK (cut IN (0, 1)),
    text       TEXT NOT NULL,
    -- SHA-256 (hex) of the stored text: the document's version for the response cache
    sha256     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Answers reused for an identical question about the same knowledge and document version.
CREATE TABLE response_cache (
    -- SHA-256 (hex) of model, knowledge version, document version and the normalised question
    key        TEXT PRIMARY KEY,
    answer     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX response_cache_created ON response_cache (created_at);
