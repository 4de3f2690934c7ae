//! The support desk's tables: the classifier's cache and each classified message.

use botfleet_api::Intent;
use sha2::{Digest, Sha256};

use super::classify::Classification;
use crate::db::{Db, SqlContext, SqlError};
use crate::knowledge::response_cache::normalised;

/// The cache key of `text` classified by `model`: the same words in other case or spacing
/// are the same message.
pub fn cache_key(model: &str, text: &str) -> String {
    let text = normalised(text);
    let mut hash = Sha256::new();
    for part in [model, text.as_str()] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(hash.finalize())
}

pub async fn cached(db: &Db, key: &str) -> Result<Option<Classification>, SqlError> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT intent, topic FROM classification_cache WHERE key = $1")
            .bind(key)
            .fetch_optional(&db.pool)
            .await
            .ctx("reading the classification cache")?;
    Ok(row.and_then(|(intent, topic)| {
        Some(Classification {
            intent: Intent::parse(&intent)?,
            topic,
        })
    }))
}

pub async fn remember(
    db: &Db,
    key: &str,
    classification: &Classification,
    now_ms: i64,
) -> Result<(), SqlError> {
    sqlx::query(
        "INSERT INTO classification_cache (key, intent, topic, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(classification.intent.as_str())
    .bind(&classification.topic)
    .bind(now_ms)
    .execute(&db.pool)
    .await
    .ctx("writing the classification cache")?;
    Ok(())
}

/// One classified lead message (once per update, however often it is handled).
pub struct ClassifiedMessage<'a> {
    pub update_id: i64,
    pub chat_id: i64,
    pub text: &'a str,
    pub classification: &'a Classification,
}

pub async fn record(db: &Db, message: &ClassifiedMessage<'_>, now_ms: i64) -> Result<(), SqlError> {
    sqlx::query(
        "INSERT INTO message_intents (update_id, chat_id, intent, topic, text, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (update_id) DO NOTHING",
    )
    .bind(message.update_id)
    .bind(message.chat_id)
    .bind(message.classification.intent.as_str())
    .bind(&message.classification.topic)
    .bind(message.text)
    .bind(now_ms)
    .execute(&db.pool)
    .await
    .ctx("recording a message's intent")?;
    Ok(())
}

/// Classified messages since `since_ms`, by intent, most first.
pub async fn intents_since(db: &Db, since_ms: i64) -> Result<Vec<(String, i64)>, SqlError> {
    sqlx::query_as(
        "SELECT intent, COUNT(*) AS n FROM message_intents WHERE created_at >= $1
         GROUP BY intent ORDER BY n DESC, intent",
    )
    .bind(since_ms)
    .fetch_all(&db.pool)
    .await
    .ctx("counting classified messages")
}
