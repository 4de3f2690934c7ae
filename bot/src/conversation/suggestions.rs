//! The welcome's suggested questions: buttons under `/start`'s reply. Given in the config
//! (`welcome.suggestions`), or written by the LLM once per system prompt
//! (`welcome.writeSuggestions`), kept in the database and priced as request type `suggestions`.
//! A pressed button comes back as a callback query with data `suggest:<n>`; its question is
//! the button's label (or, when Telegram leaves the message out, the n-th current suggestion).

use botfleet_api::WelcomeConfig;
use botfleet_llm::{ChatMessage, CompletionRequest};
use sha2::{Digest, Sha256};

use super::{Pipeline, PipelineError};
use crate::db::{Db, SqlContext, SqlError};
use crate::money::{CallSpec, Metered, RequestType};
use crate::telegram::updates::ButtonPress;

const DATA_PREFIX: &str = "suggest:";
/// Enough for four short questions.
const MAX_OUTPUT_TOKENS: u32 = 256;

/// The callback data of the `index`-th suggestion's button.
pub fn button_data(index: usize) -> String {
    format!("{DATA_PREFIX}{index}")
}

/// Buttons `(label, data)` for `questions`.
pub fn buttons(questions: &[String]) -> Vec<(String, String)> {
    questions
        .iter()
        .enumerate()
        .map(|(i, q)| (q.clone(), button_data(i)))
        .collect()
}

fn index_of(data: &str) -> Option<usize> {
    data.strip_prefix(DATA_PREFIX)?.parse().ok()
}

impl Pipeline {
    /// The questions `/start` offers. An LLM failure or a stopped budget offers none (the
    /// welcome is sent without buttons) rather than failing the welcome.
    pub(super) async fn welcome_suggestions(
        &self,
        chat_id: i64,
        update_id: i64,
    ) -> Result<Vec<String>, PipelineError> {
        let Some(welcome) = &self.ctx.settings.bot.welcome else {
            return Ok(vec![]);
        };
        if !welcome.suggestions.is_empty() {
            return Ok(welcome.suggestions.clone());
        }
        if !welcome.write_suggestions.unwrap_or(false) {
            return Ok(vec![]);
        }
        let key = self.prompt_key();
        if let Some(cached) = cached(&self.ctx.db, &key).await? {
            return Ok(cached);
        }
        // One writer per process; a second /start meanwhile waits and then reads the cache.
        let _writing = self.suggestions_written.lock().await;
        if let Some(cached) = cached(&self.ctx.db, &key).await? {
            return Ok(cached);
        }
        let Some(questions) = self.write_suggestions(chat_id, update_id).await? else {
            return Ok(vec![]);
        };
        let json = serde_json::to_string(&questions).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO welcome_suggestions (prompt_sha256, questions, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (prompt_sha256) DO NOTHING",
        )
        .bind(&key)
        .bind(json)
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(&self.ctx.db.pool)
        .await
        .ctx("caching the suggestions")?;
        tracing::info!(
            count = questions.len(),
            "the LLM wrote the welcome's suggested questions"
        );
        Ok(questions)
    }

    /// The question a pressed suggestion button asks; `None` when it cannot be known.
    pub(super) async fn suggestion_asked(
        &self,
        press: &ButtonPress,
    ) -> Result<Option<String>, PipelineError> {
        let Some(index) = index_of(&press.data) else {
            return Ok(None);
        };
        if let Some(label) = &press.label {
            return Ok(Some(label.clone()));
        }
        let Some(welcome) = &self.ctx.settings.bot.welcome else {
            return Ok(None);
        };
        let current = if welcome.suggestions.is_empty() {
            cached(&self.ctx.db, &self.prompt_key())
                .await?
                .unwrap_or_default()
        } else {
            welcome.suggestions.clone()
        };
        Ok(current.get(index).cloned())
    }

    fn prompt_key(&self) -> String {
        let prompt = self
            .ctx
            .settings
            .bot
            .llm
            .system_prompt
            .as_deref()
            .unwrap_or_default();
        hex::encode(Sha256::digest(prompt.as_bytes()))
    }

    /// One metered LLM call; `None` when the budget refused it or it failed.
    async fn write_suggestions(
        &self,
        chat_id: i64,
        update_id: i64,
    ) -> Result<Option<Vec<String>>, PipelineError> {
        let llm_config = &self.ctx.settings.bot.llm;
        let Some(prompt) = llm_config.system_prompt.as_deref() else {
            tracing::warn!(
                "welcome.writeSuggestions needs llm.systemPrompt to write from; no suggestions"
            );
            return Ok(None);
        };
        let request = CompletionRequest {
            system: Some(
                "You write the suggested questions a Telegram bot's welcome message offers as \
                 buttons."
                    .into(),
            ),
            context: Vec::new(),
            messages: vec![ChatMessage::user(format!(
                "This is the system prompt of the bot:\n<prompt>\n{prompt}\n</prompt>\n\n\
                 Write 3 questions a new user would most likely ask this bot, in the language \
                 of the prompt, each at most {} characters. One question per line, nothing else.",
                WelcomeConfig::MAX_SUGGESTION_CHARS
            ))],
            max_output_tokens: MAX_OUTPUT_TOKENS,
        };
        let spec = CallSpec {
            request_type: RequestType::Suggestions,
            chat_id: Some(chat_id),
            update_id: Some(update_id),
            request: &request,
            tools: &[],
            at: chrono::Utc::now(),
        };
        match self.ctx.llm.call(spec).await? {
            Metered::Answered(completion) => Ok(Some(parse_questions(&completion.text))),
            Metered::Refused { .. } => Ok(None),
            Metered::Failed { error, .. } => {
                tracing::warn!(%error, "the LLM could not write suggestions; the welcome has none this time");
                Ok(None)
            }
        }
    }
}

async fn cached(db: &Db, key: &str) -> Result<Option<Vec<String>>, SqlError> {
    let questions: Option<String> =
        sqlx::query_scalar("SELECT questions FROM welcome_suggestions WHERE prompt_sha256 = $1")
            .bind(key)
            .fetch_optional(&db.pool)
            .await
            .ctx("reading the cached suggestions")?;
    Ok(questions.map(|json| serde_json::from_str(&json).unwrap_or_default()))
}

/// One question per line; list markers and quotes dropped; too long ones skipped; at most 4.
fn parse_questions(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            let line = line.trim();
            let line = line.trim_start_matches(|c: char| {
                c.is_ascii_digit() || matches!(c, '-' | '*' | '•' | '.' | ')')
            });
            line.trim().trim_matches(|c| matches!(c, '"' | '“' | '”'))
        })
        .map(str::trim)
        .filter(|q| !q.is_empty() && q.chars().count() <= WelcomeConfig::MAX_SUGGESTION_CHARS)
        .take(WelcomeConfig::MAX_SUGGESTIONS)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_are_read_one_per_line() {
        let text = "1. What do you sell?\n- \"How fast do you ship?\"\n\n* Do you ship abroad?\n\
                    4) Is there a warranty?\n5. One too many?";
        assert_eq!(
            parse_questions(text),
            [
                "What do you sell?",
                "How fast do you ship?",
                "Do you ship abroad?",
                "Is there a warranty?"
            ]
        );
        let long = "x".repeat(65);
        assert_eq!(parse_questions(&format!("{long}\nShort?")), ["Short?"]);
    }

    #[test]
    fn button_data_round_trips() {
        assert_eq!(index_of(&button_data(3)), Some(3));
        assert_eq!(index_of("/help"), None);
        assert_eq!(
            buttons(&["A?".into(), "B?".into()]),
            [
                ("A?".to_string(), "suggest:0".to_string()),
                ("B?".to_string(), "suggest:1".to_string())
            ]
        );
    }
}
