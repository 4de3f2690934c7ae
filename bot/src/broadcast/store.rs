//! The broadcast queries: drafts and their states, the recipients' rows, and the claim that
//! keeps two senders from ever sending the same row.
//!
//! A broadcast moves `composing` → `previewed` → `queued` → `running` → `done`, or to
//! `cancelled` from any of those. Its recipients are written when it starts (the leads not
//! opted out at that moment, optionally only the recently active ones). Each recipient row
//! moves `pending` → `sending` (claimed by one sender until `claim_until`) → `sent`, `blocked`
//! or `failed`, or back to `pending` for a retry; a lead who opts out before its turn is
//! `skipped`.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::content::{Content, Media};
use crate::db::{AnyQuery, Db, SqlContext, SqlError};

/// A broadcast row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    pub id: i64,
    pub owner_chat_id: i64,
    pub status: String,
    pub active_within_ms: Option<i64>,
    pub scheduled_at: Option<i64>,
    pub content: Option<Content>,
    pub audience: Option<i64>,
    pub progress_message_id: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

const COLUMNS: &str = "id, owner_chat_id, status, active_within_ms, scheduled_at, text_html, \
    photo_file_id, document_file_id, buttons, audience, progress_message_id, created_at, \
    started_at, finished_at";

/// A row of [`COLUMNS`]; `action` names what failed if a column does not read.
fn broadcast(row: &AnyRow, action: &'static str) -> Result<Broadcast, SqlError> {
    let read = || -> Result<Broadcast, sqlx::Error> {
        let text: Option<String> = row.try_get("text_html")?;
        let photo: Option<String> = row.try_get("photo_file_id")?;
        let document: Option<String> = row.try_get("document_file_id")?;
        let buttons: Option<String> = row.try_get("buttons")?;
        let content = text.map(|text_html| Content {
            text_html,
            media: photo
                .map(Media::Photo)
                .or_else(|| document.map(Media::Document)),
            buttons: Content::buttons_from_json(buttons.as_deref()),
        });
        Ok(Broadcast {
            id: row.try_get("id")?,
            owner_chat_id: row.try_get("owner_chat_id")?,
            status: row.try_get("status")?,
            active_within_ms: row.try_get("active_within_ms")?,
            scheduled_at: row.try_get("scheduled_at")?,
            content,
            audience: row.try_get("audience")?,
            progress_message_id: row.try_get("progress_message_id")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    };
    read().ctx(action)
}

/// The broadcast `query` (selecting [`COLUMNS`]) finds, if any: `finding` names a failed
/// query, `reading` a row that does not read.
async fn find_broadcast(
    db: &Db,
    query: AnyQuery,
    finding: &'static str,
    reading: &'static str,
) -> Result<Option<Broadcast>, SqlError> {
    let row = query.fetch_optional(&db.pool).await.ctx(finding)?;
    row.map(|row| broadcast(&row, reading)).transpose()
}

/// Recipients by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub pending: i64,
    pub sending: i64,
    pub sent: i64,
    pub failed: i64,
    pub blocked: i64,
    pub skipped: i64,
}

impl Counts {
    /// Not yet sent, refused or given up on.
    pub fn remaining(&self) -> i64 {
        self.pending + self.sending
    }

    pub fn total(&self) -> i64 {
        self.remaining() + self.sent + self.failed + self.blocked + self.skipped
    }
}

/// A new draft for `/broadcast`; an owner's earlier unconfirmed draft is dropped.
pub async fn create_draft(
    db: &Db,
    owner_chat_id: i64,
    active_within_ms: Option<i64>,
    scheduled_at: Option<i64>,
    now_ms: i64,
) -> Result<i64, SqlError> {
    let mut tx = db.pool.begin().await.ctx("starting a broadcast draft")?;
    sqlx::query(
        "UPDATE broadcasts SET status = 'cancelled', finished_at = $2
         WHERE owner_chat_id = $1 AND status IN ('composing', 'previewed')",
    )
    .bind(owner_chat_id)
    .bind(now_ms)
    .execute(&mut *tx)
    .await
    .ctx("dropping an earlier broadcast draft")?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO broadcasts (owner_chat_id, status, active_within_ms, scheduled_at, created_at)
         VALUES ($1, 'composing', $2, $3, $4) RETURNING id",
    )
    .bind(owner_chat_id)
    .bind(active_within_ms)
    .bind(scheduled_at)
    .bind(now_ms)
    .fetch_one(&mut *tx)
    .await
    .ctx("creating a broadcast draft")?;
    tx.commit().await.ctx("creating a broadcast draft")?;
    Ok(id)
}

/// The owner's draft waiting for its message, or the one this very update already filled
/// (the update handled again after a crash).
pub async fn draft_awaiting(
    db: &Db,
    owner_chat_id: i64,
    update_id: i64,
) -> Result<Option<Broadcast>, SqlError> {
    let query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM broadcasts
         WHERE owner_chat_id = $1
           AND (status = 'composing' OR (status = 'previewed' AND content_update_id = $2))
         ORDER BY id DESC LIMIT 1"
    )))
    .bind(owner_chat_id)
    .bind(update_id);
    find_broadcast(
        db,
        query,
        "looking for a broadcast draft",
        "reading a broadcast draft",
    )
    .await
}

/// Stores the draft's message; the draft waits for Confirm.
pub async fn set_content(
    db: &Db,
    id: i64,
    content: &Content,
    update_id: i64,
) -> Result<(), SqlError> {
    let (photo, document) = match &content.media {
        Some(Media::Photo(id)) => (Some(id.as_str()), None),
        Some(Media::Document(id)) => (None, Some(id.as_str())),
        None => (None, None),
    };
    sqlx::query(
        "UPDATE broadcasts SET status = 'previewed', text_html = $2, photo_file_id = $3,
             document_file_id = $4, buttons = $5, content_update_id = $6
         WHERE id = $1 AND status IN ('composing', 'previewed')",
    )
    .bind(id)
    .bind(&content.text_html)
    .bind(photo)
    .bind(document)
    .bind(content.buttons_json())
    .bind(update_id)
    .execute(&db.pool)
    .await
    .ctx("storing a broadcast's message")?;
    Ok(())
}

/// Leads a broadcast would reach now: not opted out, not the owner, and (with a window)
/// active since `active_since_ms`.
pub async fn audience(
    db: &Db,
    owner_chat_id: i64,
    active_since_ms: Option<i64>,
) -> Result<i64, SqlError> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM leads
         WHERE status = 'active' AND chat_id <> $1 AND ($2 IS NULL OR last_inbound_at >= $2)",
    )
    .bind(owner_chat_id)
    .bind(active_since_ms)
    .fetch_one(&db.pool)
    .await
    .ctx("counting a broadcast's audience")
}

pub async fn load(db: &Db, id: i64) -> Result<Option<Broadcast>, SqlError> {
    let query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM broadcasts WHERE id = $1"
    )))
    .bind(id);
    find_broadcast(db, query, "loading a broadcast", "reading a broadcast").await
}

/// Confirm: the previewed draft is queued (the sender starts it when due). False when it is
/// no longer waiting for Confirm (confirmed already, cancelled, replaced).
pub async fn confirm(db: &Db, id: i64, now_ms: i64) -> Result<bool, SqlError> {
    let done = sqlx::query(
        "UPDATE broadcasts SET status = 'queued', confirmed_at = $2
         WHERE id = $1 AND status = 'previewed'",
    )
    .bind(id)
    .bind(now_ms)
    .execute(&db.pool)
    .await
    .ctx("confirming a broadcast")?;
    Ok(done.rows_affected() == 1)
}

/// Cancels a broadcast that is not over; returns the state it was in (`None`: it was over or
/// unknown). A running one stops at its sender's next row.
pub async fn cancel(db: &Db, id: i64, now_ms: i64) -> Result<Option<String>, SqlError> {
    let Some(before) = load(db, id).await? else {
        return Ok(None);
    };
    let done = sqlx::query(
        "UPDATE broadcasts SET status = 'cancelled', finished_at = $2
         WHERE id = $1 AND status = $3",
    )
    .bind(id)
    .bind(now_ms)
    .bind(&before.status)
    .execute(&db.pool)
    .await
    .ctx("cancelling a broadcast")?;
    let open = matches!(
        before.status.as_str(),
        "composing" | "previewed" | "queued" | "running"
    );
    Ok((open && done.rows_affected() == 1).then_some(before.status))
}

/// The most recent confirmed broadcasts, newest first, with their recipients' counts.
pub async fn recent(db: &Db, limit: i64) -> Result<Vec<(Broadcast, Counts)>, SqlError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM broadcasts WHERE confirmed_at IS NOT NULL ORDER BY id DESC LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(&db.pool)
    .await
    .ctx("listing broadcasts")?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let b = broadcast(row, "reading a broadcast")?;
        let counts = counts(db, b.id).await?;
        out.push((b, counts));
    }
    Ok(out)
}

pub async fn counts(db: &Db, id: i64) -> Result<Counts, SqlError> {
    let rows = sqlx::query(
        "SELECT status, COUNT(*) AS n FROM broadcast_recipients WHERE broadcast_id = $1 GROUP BY status",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await
    .ctx("counting a broadcast's recipients")?;
    let mut c = Counts::default();
    for row in rows {
        let status: String = row.try_get("status").ctx("reading recipient counts")?;
        let n: i64 = row.try_get("n").ctx("reading recipient counts")?;
        match status.as_str() {
            "pending" => c.pending = n,
            "sending" => c.sending = n,
            "sent" => c.sent = n,
            "failed" => c.failed = n,
            "blocked" => c.blocked = n,
            "skipped" => c.skipped = n,
            _ => {}
        }
    }
    Ok(c)
}

/// The broadcast a sender should work on now: a running one (resumed after a restart), else
/// the oldest queued one that is due.
pub async fn next_due(db: &Db, now_ms: i64) -> Result<Option<i64>, SqlError> {
    sqlx::query_scalar(
        "SELECT id FROM broadcasts
         WHERE status = 'running' OR (status = 'queued' AND (scheduled_at IS NULL OR scheduled_at <= $1))
         ORDER BY CASE WHEN status = 'running' THEN 0 ELSE 1 END, id LIMIT 1",
    )
    .bind(now_ms)
    .fetch_optional(&db.pool)
    .await
    .ctx("looking for a due broadcast")
}

/// Starts a queued broadcast: writes one row per recipient, in the same transaction as the
/// state change (so a crash leaves it queued, or running with every recipient written).
/// False when it was not queued any more (another sender started it, or it was cancelled).
pub async fn start(db: &Db, id: i64, now_ms: i64) -> Result<bool, SqlError> {
    let mut tx = db.pool.begin().await.ctx("starting a broadcast")?;
    let started = sqlx::query(
        "UPDATE broadcasts SET status = 'running', started_at = $2 WHERE id = $1 AND status = 'queued'",
    )
    .bind(id)
    .bind(now_ms)
    .execute(&mut *tx)
    .await
    .ctx("starting a broadcast")?
    .rows_affected()
        == 1;
    if !started {
        return Ok(false);
    }
    let b: (i64, Option<i64>) =
        sqlx::query_as("SELECT owner_chat_id, active_within_ms FROM broadcasts WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .ctx("starting a broadcast")?;
    let active_since = b.1.map(|window| now_ms - window);
    let written = sqlx::query(
        "INSERT INTO broadcast_recipients (broadcast_id, chat_id)
         SELECT $1, chat_id FROM leads
         WHERE status = 'active' AND chat_id <> $2 AND ($3 IS NULL OR last_inbound_at >= $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(b.0)
    .bind(active_since)
    .execute(&mut *tx)
    .await
    .ctx("writing a broadcast's recipients")?
    .rows_affected();
    sqlx::query("UPDATE broadcasts SET audience = $2 WHERE id = $1")
        .bind(id)
        .bind(i64::try_from(written).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .ctx("starting a broadcast")?;
    tx.commit().await.ctx("starting a broadcast")?;
    Ok(true)
}

/// A claimed recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub chat_id: i64,
    /// This attempt's number, from 1.
    pub attempt: u32,
}

/// Claims up to `limit` due recipients of a running broadcast for `token` until `until_ms`,
/// lowest chat id first, and skips those whose lead opted out since the broadcast started.
/// The conditional UPDATE is the guard: a row another sender claimed meanwhile is no longer
/// `pending` and is not taken (PostgreSQL re-checks the condition on the locked row; SQLite
/// has one writer at a time). Every statement is an index lookup whatever the table's size.
pub async fn claim(
    db: &Db,
    id: i64,
    token: &str,
    now_ms: i64,
    until_ms: i64,
    limit: i64,
) -> Result<Vec<Claimed>, SqlError> {
    // The due rows' range first, then the claim of that range by primary key: two plain
    // index range scans, where one `UPDATE … WHERE chat_id IN (SELECT … LIMIT n)` gets a
    // generic plan on PostgreSQL that reads every pending row.
    let (first, last): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT MIN(chat_id), MAX(chat_id) FROM (
             SELECT chat_id FROM broadcast_recipients
             WHERE broadcast_id = $1 AND status = 'pending' AND next_attempt_at <= $2
             ORDER BY chat_id LIMIT $3) due",
    )
    .bind(id)
    .bind(now_ms)
    .bind(limit)
    .fetch_one(&db.pool)
    .await
    .ctx("finding due broadcast recipients")?;
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(vec![]);
    };
    let rows = sqlx::query(
        "UPDATE broadcast_recipients
         SET status = 'sending', claimed_by = $2, claim_until = $4, attempts = attempts + 1
         WHERE broadcast_id = $1 AND chat_id >= $5 AND chat_id <= $6
           AND status = 'pending' AND next_attempt_at <= $3
           AND EXISTS (SELECT 1 FROM broadcasts b WHERE b.id = $1 AND b.status = 'running')
         RETURNING chat_id, attempts",
    )
    .bind(id)
    .bind(token)
    .bind(now_ms)
    .bind(until_ms)
    .bind(first)
    .bind(last)
    .fetch_all(&db.pool)
    .await
    .ctx("claiming broadcast recipients")?;
    let action = "reading claimed recipients";
    let mut claimed = rows
        .iter()
        .map(|row| {
            let chat_id = row.try_get("chat_id").ctx(action)?;
            let attempts: i64 = row.try_get("attempts").ctx(action)?;
            Ok(Claimed {
                chat_id,
                attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
            })
        })
        .collect::<Result<Vec<_>, SqlError>>()?;
    if claimed.is_empty() {
        return Ok(claimed);
    }
    let skipped: Vec<i64> = sqlx::query_scalar(
        "UPDATE broadcast_recipients SET status = 'skipped', claimed_by = NULL, claim_until = NULL
         WHERE claimed_by = $2 AND status = 'sending' AND broadcast_id = $1
           AND EXISTS (SELECT 1 FROM leads l
                       WHERE l.chat_id = broadcast_recipients.chat_id AND l.status <> 'active')
         RETURNING chat_id",
    )
    .bind(id)
    .bind(token)
    .fetch_all(&db.pool)
    .await
    .ctx("skipping opted-out recipients")?;
    claimed.retain(|c| !skipped.contains(&c.chat_id));
    claimed.sort_by_key(|c| c.chat_id);
    Ok(claimed)
}

/// How a claimed row ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// The chat refuses messages (the lead is opted out).
    Blocked(String),
    Failed(String),
    /// Tried again from `at` (ms).
    RetryAt(i64, String),
}

/// Records what became of a claimed row, if the claim is still ours.
pub async fn finish_row(
    db: &Db,
    id: i64,
    chat_id: i64,
    token: &str,
    outcome: &Outcome,
    now_ms: i64,
) -> Result<(), SqlError> {
    let (status, sent_at, next_at, error) = match outcome {
        Outcome::Sent => ("sent", Some(now_ms), 0, None),
        Outcome::Blocked(why) => ("blocked", None, 0, Some(why.as_str())),
        Outcome::Failed(why) => ("failed", None, 0, Some(why.as_str())),
        Outcome::RetryAt(at, why) => ("pending", None, *at, Some(why.as_str())),
    };
    sqlx::query(
        "UPDATE broadcast_recipients
         SET status = $4, sent_at = $5, next_attempt_at = $6, last_error = $7,
             claimed_by = NULL, claim_until = NULL
         WHERE broadcast_id = $1 AND chat_id = $2 AND claimed_by = $3",
    )
    .bind(id)
    .bind(chat_id)
    .bind(token)
    .bind(status)
    .bind(sent_at)
    .bind(next_at)
    .bind(error)
    .execute(&db.pool)
    .await
    .ctx("recording a broadcast send")?;
    Ok(())
}

/// Gives rows claimed by `token` (or, with `prefix`, by any token starting with it) back
/// without counting the attempt: they were not sent.
pub async fn release(db: &Db, token: &str, prefix: bool) -> Result<u64, SqlError> {
    let condition = if prefix {
        "substr(claimed_by, 1, length($1)) = $1"
    } else {
        "claimed_by = $1"
    };
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE broadcast_recipients
         SET status = 'pending', claimed_by = NULL, claim_until = NULL, attempts = attempts - 1
         WHERE status = 'sending' AND {condition}"
    )))
    .bind(token)
    .execute(&db.pool)
    .await
    .ctx("releasing broadcast recipients")?;
    Ok(done.rows_affected())
}

/// Takes back rows whose sender's claim ran out (it crashed or lost the database): they may
/// have been sent just before it died, like a reply whose sending was not recorded.
pub async fn release_expired(db: &Db, id: i64, now_ms: i64) -> Result<u64, SqlError> {
    let done = sqlx::query(
        "UPDATE broadcast_recipients SET status = 'pending', claimed_by = NULL, claim_until = NULL
         WHERE broadcast_id = $1 AND status = 'sending' AND claim_until < $2",
    )
    .bind(id)
    .bind(now_ms)
    .execute(&db.pool)
    .await
    .ctx("taking back expired broadcast claims")?;
    Ok(done.rows_affected())
}

/// When the earliest row waiting for a retry is due (ms).
pub async fn next_retry_at(db: &Db, id: i64) -> Result<Option<i64>, SqlError> {
    sqlx::query_scalar(
        "SELECT MIN(next_attempt_at) FROM broadcast_recipients WHERE broadcast_id = $1 AND status = 'pending'",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await
    .ctx("looking for retries")
}

/// The broadcast is over: every recipient was sent, refused or given up on.
pub async fn mark_done(db: &Db, id: i64, now_ms: i64) -> Result<bool, SqlError> {
    let done = sqlx::query(
        "UPDATE broadcasts SET status = 'done', finished_at = $2 WHERE id = $1 AND status = 'running'",
    )
    .bind(id)
    .bind(now_ms)
    .execute(&db.pool)
    .await
    .ctx("finishing a broadcast")?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_progress_message(db: &Db, id: i64, message_id: i64) -> Result<(), SqlError> {
    sqlx::query("UPDATE broadcasts SET progress_message_id = $2 WHERE id = $1")
        .bind(id)
        .bind(message_id)
        .execute(&db.pool)
        .await
        .ctx("recording a broadcast's progress message")?;
    Ok(())
}

pub async fn status(db: &Db, id: i64) -> Result<Option<String>, SqlError> {
    sqlx::query_scalar("SELECT status FROM broadcasts WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await
        .ctx("reading a broadcast's state")
}
