-- The money side: one ledger row per LLM API call, a daily rollup that reports read instead
-- of the ledger, and the durable record of budget alerts already sent.
-- Money is BIGINT nano-USD; prices are BIGINT nano-USD per token; timestamps BIGINT ms.

-- One row per HTTP call to the LLM API (failed ones too, with the usage they reported).
CREATE TABLE llm_ledger (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    at                    BIGINT NOT NULL,
    chat_id               BIGINT,
    update_id             BIGINT,
    model                 TEXT NOT NULL,
    -- chat | followup | summary
    request_type          TEXT NOT NULL,
    -- ok | rate_limited | overloaded | server_error | timeout | client_error | spend_limit
    outcome               TEXT NOT NULL,
    http_status           INTEGER,
    input_tokens          BIGINT NOT NULL,
    cache_read_tokens     BIGINT NOT NULL,
    cache_write_5m_tokens BIGINT NOT NULL,
    cache_write_1h_tokens BIGINT NOT NULL,
    output_tokens         BIGINT NOT NULL,
    -- exact cost of this call; 0 when unpriced
    cost_nanos            BIGINT NOT NULL,
    -- 1 when the model had a price, 0 when it had none (the cost is then unknown, not free)
    priced                INTEGER NOT NULL CHECK (priced IN (0, 1)),
    -- the rates this call was charged at (nano-USD per token); NULL when unpriced
    input_rate            BIGINT,
    cache_read_rate       BIGINT,
    cache_write_5m_rate   BIGINT,
    cache_write_1h_rate   BIGINT,
    output_rate           BIGINT,
    -- 1 when the long-prompt tier applied
    long_prompt           INTEGER NOT NULL DEFAULT 0 CHECK (long_prompt IN (0, 1)),
    latency_ms            BIGINT NOT NULL
);
CREATE INDEX llm_ledger_at ON llm_ledger (at);
CREATE INDEX llm_ledger_chat ON llm_ledger (chat_id, at) WHERE chat_id IS NOT NULL;

-- Per UTC day, model and request type: upserted in the same transaction as the ledger rows.
CREATE TABLE llm_usage_daily (
    -- YYYY-MM-DD (UTC); sorts and compares as text
    day                   TEXT NOT NULL,
    model                 TEXT NOT NULL,
    request_type          TEXT NOT NULL,
    requests              BIGINT NOT NULL DEFAULT 0,
    errors                BIGINT NOT NULL DEFAULT 0,
    input_tokens          BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens     BIGINT NOT NULL DEFAULT 0,
    cache_write_5m_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens         BIGINT NOT NULL DEFAULT 0,
    cost_nanos            BIGINT NOT NULL DEFAULT 0,
    unpriced_calls        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, model, request_type)
);

-- A budget alert claimed for one owner, period and threshold. The row is inserted before the
-- message is sent (the primary key makes the claim exclusive across replicas) and deleted if
-- sending fails, so the alert is retried but never sent twice. A new period is a new key.
CREATE TABLE budget_alerts (
    -- day | month
    period_kind TEXT NOT NULL,
    -- YYYY-MM-DD or YYYY-MM (UTC)
    period_key  TEXT NOT NULL,
    -- percent of the limit
    threshold   BIGINT NOT NULL,
    owner_id    BIGINT NOT NULL,
    claimed_at  BIGINT NOT NULL,
    sent_at     BIGINT,
    PRIMARY KEY (period_kind, period_key, threshold, owner_id)
);
