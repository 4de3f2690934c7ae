//! The response cache (`llm.responseCache`, off by default): the same question about the same
//! knowledge and document version, asked again within the TTL, is answered with the stored
//! answer instead of an LLM call. Only a lead's first question (no conversation before it, or
//! only questions about a fresh document) is cached: a follow-up question depends on what was
//! said before, so the same words can deserve another answer.

use sha2::{Digest, Sha256};

use crate::db::{Db, SqlContext, SqlError};

/// What makes two questions the same: the model, the knowledge and document versions and the
/// question with case and spacing normalised.
pub fn key(model: &str, knowledge_version: &str, document_sha256: &str, question: &str) -> String {
    let normalised = normalised(question);
    let mut hash = Sha256::new();
    for part in [
        model,
        knowledge_version,
        document_sha256,
        normalised.as_str(),
    ] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(hash.finalize())
}

/// `text` with case and spacing normalised: the same words are the same text.
pub fn normalised(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The stored answer under `key`, if it is younger than `ttl_ms`.
pub async fn lookup(
    db: &Db,
    key: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<Option<String>, SqlError> {
    sqlx::query_scalar("SELECT answer FROM response_cache WHERE key = $1 AND created_at > $2")
        .bind(key)
        .bind(now_ms - ttl_ms)
        .fetch_optional(&db.pool)
        .await
        .ctx("reading the response cache")
}

/// Stores (or refreshes) an answer, and drops entries older than `ttl_ms`.
pub async fn store(
    db: &Db,
    key: &str,
    answer: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<(), SqlError> {
    sqlx::query(
        "INSERT INTO response_cache (key, answer, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (key) DO UPDATE SET answer = excluded.answer, created_at = excluded.created_at",
    )
    .bind(key)
    .bind(answer)
    .bind(now_ms)
    .execute(&db.pool)
    .await
    .ctx("writing the response cache")?;
    sqlx::query("DELETE FROM response_cache WHERE created_at <= $1")
        .bind(now_ms - ttl_ms)
        .execute(&db.pool)
        .await
        .ctx("expiring the response cache")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_question_in_other_spacing_is_the_same_key() {
        let a = key("m", "k1", "", "What does  Pro cost?");
        assert_eq!(a, key("m", "k1", "", " what does pro COST? "));
        assert_ne!(a, key("m", "k2", "", "What does Pro cost?"));
        assert_ne!(a, key("m", "k1", "d", "What does Pro cost?"));
        assert_ne!(a, key("m2", "k1", "", "What does Pro cost?"));
    }
}
