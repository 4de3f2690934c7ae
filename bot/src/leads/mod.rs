//! Leads and their messages in the database.
//!
//! The lead store: the bottom layer every feature reads leads, messages and opt-outs from.

pub mod history;

use sqlx::Row;

use crate::db::{Db, SqlContext, SqlError};

/// Who wrote, from the update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub update_id: i64,
    pub chat_id: i64,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub text: String,
    /// A private chat with the user (`chat.type` is `private`): where replies stream as
    /// drafts. Groups, supergroups and channels are not.
    pub private_chat: bool,
}

/// Message kinds: `chat` and `followup` are conversation (sent to the LLM as history);
/// `command` and `notice` (rate limit, budget, apology) are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Followup,
    Command,
    Notice,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::Followup => "followup",
            Kind::Command => "command",
            Kind::Notice => "notice",
        }
    }
}

/// Records that the lead wrote: creates the lead on first contact, moves `last_inbound_at`, and
/// restarts the follow-up sequence (a lead who writes again is no longer quiet).
pub async fn record_inbound(
    db: &Db,
    inbound: &Inbound,
    kind: Kind,
    now_ms: i64,
) -> Result<(), SqlError> {
    let mut tx = db.pool.begin().await.ctx("recording the lead's message")?;
    sqlx::query(
        "INSERT INTO leads (chat_id, user_id, username, first_name, first_seen_at, last_inbound_at)
         VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (chat_id) DO UPDATE SET
             user_id = excluded.user_id,
             username = excluded.username,
             first_name = excluded.first_name,
             last_inbound_at = excluded.last_inbound_at,
             followups_sent = 0,
             followup_claim = NULL,
             followup_claim_until = NULL",
    )
    .bind(inbound.chat_id)
    .bind(inbound.user_id)
    .bind(inbound.username.as_deref())
    .bind(inbound.first_name.as_deref())
    .bind(now_ms)
    .execute(&mut *tx)
    .await
    .ctx("recording the lead's message")?;
    sqlx::query(
        "INSERT INTO messages (chat_id, role, kind, text, update_id, created_at) VALUES ($1, 'user', $2, $3, $4, $5)
         ON CONFLICT (update_id, role) WHERE update_id IS NOT NULL DO NOTHING",
    )
    .bind(inbound.chat_id)
    .bind(kind.as_str())
    .bind(&inbound.text)
    .bind(inbound.update_id)
    .bind(now_ms)
    .execute(&mut *tx)
    .await.ctx("recording the lead's message")?;
    tx.commit().await.ctx("recording the lead's message")
}

/// A reply already written for an update (found when an update is processed again).
#[derive(Debug, Clone)]
pub struct StoredReply {
    pub id: i64,
    pub text: String,
    pub kind: String,
    pub sent: bool,
}

pub async fn reply_for_update(db: &Db, update_id: i64) -> Result<Option<StoredReply>, SqlError> {
    let row = sqlx::query(
        "SELECT id, text, kind, sent_at FROM messages WHERE update_id = $1 AND role = 'assistant'",
    )
    .bind(update_id)
    .fetch_optional(&db.pool)
    .await
    .ctx("looking up the stored reply")?;
    row.map(|row| {
        Ok(StoredReply {
            id: row.try_get("id").ctx("looking up the stored reply")?,
            text: row.try_get("text").ctx("looking up the stored reply")?,
            kind: row.try_get("kind").ctx("looking up the stored reply")?,
            sent: row
                .try_get::<Option<i64>, _>("sent_at")
                .ctx("looking up the stored reply")?
                .is_some(),
        })
    })
    .transpose()
}

/// Stores the bot's reply before it is sent; returns its id (or the id of the reply an earlier
/// attempt stored for the same update).
pub async fn store_reply(
    db: &Db,
    chat_id: i64,
    update_id: Option<i64>,
    kind: Kind,
    text: &str,
    now_ms: i64,
) -> Result<i64, SqlError> {
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO messages (chat_id, role, kind, text, update_id, created_at) VALUES ($1, 'assistant', $2, $3, $4, $5)
         ON CONFLICT (update_id, role) WHERE update_id IS NOT NULL DO NOTHING
         RETURNING id",
    )
    .bind(chat_id)
    .bind(kind.as_str())
    .bind(text)
    .bind(update_id)
    .bind(now_ms)
    .fetch_optional(&db.pool)
    .await.ctx("storing the reply")?;
    match (inserted, update_id) {
        (Some(id), _) => Ok(id),
        (None, Some(update_id)) => sqlx::query_scalar(
            "SELECT id FROM messages WHERE update_id = $1 AND role = 'assistant'",
        )
        .bind(update_id)
        .fetch_one(&db.pool)
        .await
        .ctx("storing the reply"),
        (None, None) => Err(sqlx::Error::RowNotFound).ctx("storing the reply"),
    }
}

/// Records that Telegram took stored message `message_id`: through any database outage, before
/// workers claim again (see [`Db::record_send`]), so it is not sent again.
pub async fn record_sent(db: &Db, message_id: i64, chat_id: i64) {
    db.record_send("recording a sent reply", || {
        mark_sent(
            db,
            message_id,
            chat_id,
            chrono::Utc::now().timestamp_millis(),
        )
    })
    .await
}

pub async fn mark_sent(
    db: &Db,
    message_id: i64,
    chat_id: i64,
    now_ms: i64,
) -> Result<(), SqlError> {
    let mut tx = db.pool.begin().await.ctx("marking the reply sent")?;
    sqlx::query("UPDATE messages SET sent_at = $1 WHERE id = $2")
        .bind(now_ms)
        .bind(message_id)
        .execute(&mut *tx)
        .await
        .ctx("marking the reply sent")?;
    sqlx::query("UPDATE leads SET last_outbound_at = $1 WHERE chat_id = $2")
        .bind(now_ms)
        .bind(chat_id)
        .execute(&mut *tx)
        .await
        .ctx("marking the reply sent")?;
    tx.commit().await.ctx("marking the reply sent")
}

/// `/stop`: no more follow-ups. `/start` undoes it.
pub async fn set_opted_out(
    db: &Db,
    chat_id: i64,
    opted_out: bool,
    now_ms: i64,
) -> Result<(), SqlError> {
    let (status, at) = if opted_out {
        ("opted_out", Some(now_ms))
    } else {
        ("active", None)
    };
    sqlx::query("UPDATE leads SET status = $1, opted_out_at = $2 WHERE chat_id = $3")
        .bind(status)
        .bind(at)
        .bind(chat_id)
        .execute(&db.pool)
        .await
        .ctx("setting the lead's opt-out")?;
    Ok(())
}

/// Messages the user sent in the window (the rate limit's count).
pub async fn user_messages_since(db: &Db, chat_id: i64, since_ms: i64) -> Result<i64, SqlError> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM messages WHERE chat_id = $1 AND role = 'user' AND created_at > $2",
    )
    .bind(chat_id)
    .bind(since_ms)
    .fetch_one(&db.pool)
    .await
    .ctx("counting the lead's recent messages")
}
