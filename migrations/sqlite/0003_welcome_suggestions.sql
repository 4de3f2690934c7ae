-- Suggested questions the LLM wrote for the welcome's buttons (`welcome.writeSuggestions`),
-- once per system prompt: a changed prompt gets new ones, a restart reuses these.
CREATE TABLE welcome_suggestions (
    -- SHA-256 (hex) of llm.systemPrompt
    prompt_sha256 TEXT PRIMARY KEY,
    -- JSON array of strings
    questions     TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
