//! The conversation history sent to the LLM: the most recent chat and follow-up messages that
//! fit a token budget, oldest first.

use botfleet_llm::{ChatMessage, Role, estimate_tokens};
use sqlx::Row;

use crate::db::{Db, SqlContext, SqlError};

/// Never more rows than this, whatever the budget.
const MAX_MESSAGES: i64 = 200;

pub async fn recent(
    db: &Db,
    chat_id: i64,
    token_budget: u32,
) -> Result<Vec<ChatMessage>, SqlError> {
    let rows = sqlx::query(
        "SELECT role, text FROM messages WHERE chat_id = $1 AND kind IN ('chat', 'followup')
         ORDER BY id DESC LIMIT $2",
    )
    .bind(chat_id)
    .bind(MAX_MESSAGES)
    .fetch_all(&db.pool)
    .await
    .ctx("loading the conversation history")?;
    let mut newest_first = Vec::new();
    let mut used: u64 = 0;
    for row in rows {
        let role: String = row
            .try_get("role")
            .ctx("loading the conversation history")?;
        let text: String = row
            .try_get("text")
            .ctx("loading the conversation history")?;
        let cost = u64::from(estimate_tokens(&text));
        // Always keep the newest message, even alone over budget.
        if !newest_first.is_empty() && used + cost > u64::from(token_budget) {
            break;
        }
        used += cost;
        let role = if role == "assistant" {
            Role::Assistant
        } else {
            Role::User
        };
        newest_first.push(ChatMessage { role, text });
    }
    newest_first.reverse();
    // The APIs want a conversation that opens with the user.
    let first_user = newest_first
        .iter()
        .position(|m| m.role == Role::User)
        .unwrap_or(newest_first.len());
    Ok(newest_first.split_off(first_user))
}
