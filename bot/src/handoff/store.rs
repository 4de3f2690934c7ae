//! Handoffs, relayed-message ids and the owner-side outbox in the database.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Db, SqlContext, SqlError};

/// `SELECT <every handoff column> FROM handoffs h <rest>`, as a static string.
macro_rules! select_handoffs {
    ($rest:literal) => {
        concat!(
            "SELECT h.id, h.chat_id, h.reason, h.detail, h.summary, h.triggers, h.opened_at,
                    h.taken_by, h.taken_by_name, h.taken_in_chat, h.last_activity_at, h.closed_at
             FROM handoffs h ",
            $rest
        )
    };
}

/// One handoff, open or closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    pub id: i64,
    pub chat_id: i64,
    pub reason: String,
    pub detail: Option<String>,
    pub summary: Option<String>,
    pub triggers: i64,
    pub opened_at: i64,
    pub taken_by: Option<i64>,
    pub taken_by_name: Option<String>,
    pub taken_in_chat: Option<i64>,
    pub last_activity_at: i64,
    pub closed_at: Option<i64>,
}

impl Handoff {
    /// A row of `select_handoffs!`; `action` names what failed if a column does not read.
    fn from_row(row: &AnyRow, action: &'static str) -> Result<Self, SqlError> {
        let read = || -> Result<Self, sqlx::Error> {
            Ok(Self {
                id: row.try_get("id")?,
                chat_id: row.try_get("chat_id")?,
                reason: row.try_get("reason")?,
                detail: row.try_get("detail")?,
                summary: row.try_get("summary")?,
                triggers: row.try_get("triggers")?,
                opened_at: row.try_get("opened_at")?,
                taken_by: row.try_get("taken_by")?,
                taken_by_name: row.try_get("taken_by_name")?,
                taken_in_chat: row.try_get("taken_in_chat")?,
                last_activity_at: row.try_get("last_activity_at")?,
                closed_at: row.try_get("closed_at")?,
            })
        };
        read().ctx(action)
    }

    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }
}

/// A new handoff's row.
pub struct NewHandoff<'a> {
    pub chat_id: i64,
    pub reason: &'a str,
    pub detail: Option<&'a str>,
    pub summary: Option<&'a str>,
    /// Taken at once (`/takeover`): the owner, their name, and their chat.
    pub taken: Option<(i64, &'a str, i64)>,
}

/// A message for an owner's chat, to deliver through the outbox.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub owner_chat_id: i64,
    pub text: String,
    pub buttons: Vec<(String, String)>,
    pub dedupe_key: String,
    /// None: retried until Telegram takes it; a reminder is given up after this many attempts.
    pub max_attempts: Option<u32>,
}

/// Whether `open` started a handoff or added to the one already open.
#[derive(Debug)]
pub enum Opened {
    New(Handoff),
    Existing(Handoff),
}

/// Opens a handoff for the lead, with its notifications (built from the new id) in the same
/// transaction, so a handoff is never open without its owners' messages queued. A lead with
/// an open handoff gets no second one: its trigger count goes up instead.
pub async fn open<F>(
    db: &Db,
    new: &NewHandoff<'_>,
    now_ms: i64,
    notifications: F,
) -> Result<Opened, SqlError>
where
    F: FnOnce(i64) -> Vec<OutboxMessage>,
{
    let action = "opening a handoff";
    let mut tx = db.pool.begin().await.ctx(action)?;
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO handoffs (chat_id, reason, detail, summary, opened_at, taken_by, taken_by_name,
                               taken_at, taken_in_chat, last_activity_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $5)
         ON CONFLICT (chat_id) WHERE closed_at IS NULL DO NOTHING
         RETURNING id",
    )
    .bind(new.chat_id)
    .bind(new.reason)
    .bind(new.detail)
    .bind(new.summary)
    .bind(now_ms)
    .bind(new.taken.map(|t| t.0))
    .bind(new.taken.map(|t| t.1))
    .bind(new.taken.map(|_| now_ms))
    .bind(new.taken.map(|t| t.2))
    .fetch_optional(&mut *tx)
    .await
    .ctx(action)?;
    let opened = match inserted {
        Some(id) => {
            for message in notifications(id) {
                enqueue(&mut tx, id, &message, now_ms).await?;
            }
            Opened::New(fetch_in(&mut tx, id).await?)
        }
        None => {
            sqlx::query(
                "UPDATE handoffs SET triggers = triggers + 1, last_activity_at = $1
                 WHERE chat_id = $2 AND closed_at IS NULL",
            )
            .bind(now_ms)
            .bind(new.chat_id)
            .execute(&mut *tx)
            .await
            .ctx(action)?;
            let row = sqlx::query(select_handoffs!(
                "WHERE h.chat_id = $1 AND h.closed_at IS NULL"
            ))
            .bind(new.chat_id)
            .fetch_one(&mut *tx)
            .await
            .ctx(action)?;
            Opened::Existing(Handoff::from_row(&row, action)?)
        }
    };
    tx.commit().await.ctx(action)?;
    Ok(opened)
}

async fn fetch_in(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: i64) -> Result<Handoff, SqlError> {
    let row = sqlx::query(select_handoffs!("WHERE h.id = $1"))
        .bind(id)
        .fetch_one(&mut **tx)
        .await
        .ctx("reading a handoff")?;
    Handoff::from_row(&row, "reading a handoff")
}

async fn enqueue(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    handoff_id: i64,
    message: &OutboxMessage,
    now_ms: i64,
) -> Result<(), SqlError> {
    let buttons = serde_json::to_string(&message.buttons).unwrap_or_else(|_| "[]".into());
    sqlx::query(
        "INSERT INTO handoff_outbox (handoff_id, owner_chat_id, text, buttons, dedupe_key, created_at, next_attempt_at, max_attempts)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7)
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(handoff_id)
    .bind(message.owner_chat_id)
    .bind(&message.text)
    .bind(buttons)
    .bind(&message.dedupe_key)
    .bind(now_ms)
    .bind(message.max_attempts.map(i64::from))
    .execute(&mut **tx)
    .await
    .ctx("queueing a message for an owner")?;
    Ok(())
}

/// Queues messages for owners (relayed lead messages); one row per dedupe key, however often
/// the update is handled.
pub async fn enqueue_all(
    db: &Db,
    handoff_id: i64,
    messages: &[OutboxMessage],
    now_ms: i64,
) -> Result<(), SqlError> {
    let mut tx = db.pool.begin().await.ctx("queueing owner messages")?;
    for message in messages {
        enqueue(&mut tx, handoff_id, message, now_ms).await?;
    }
    tx.commit().await.ctx("queueing owner messages")
}

pub async fn open_for_lead(db: &Db, chat_id: i64) -> Result<Option<Handoff>, SqlError> {
    let row = sqlx::query(select_handoffs!(
        "WHERE h.chat_id = $1 AND h.closed_at IS NULL"
    ))
    .bind(chat_id)
    .fetch_optional(&db.pool)
    .await
    .ctx("looking up a lead's open handoff")?;
    row.map(|r| Handoff::from_row(&r, "reading a handoff"))
        .transpose()
}

pub async fn get(db: &Db, id: i64) -> Result<Option<Handoff>, SqlError> {
    let row = sqlx::query(select_handoffs!("WHERE h.id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await
        .ctx("reading a handoff")?;
    row.map(|r| Handoff::from_row(&r, "reading a handoff"))
        .transpose()
}

/// A message went either way: the silence that `autoResumeAfter` measures starts again.
pub async fn touch(db: &Db, id: i64, now_ms: i64) -> Result<(), SqlError> {
    sqlx::query("UPDATE handoffs SET last_activity_at = $1 WHERE id = $2")
        .bind(now_ms)
        .bind(id)
        .execute(&db.pool)
        .await
        .ctx("noting activity on a handoff")?;
    Ok(())
}

/// An owner takes the handoff: true when it is theirs now (it was waiting, or already theirs).
pub async fn take(
    db: &Db,
    id: i64,
    owner: i64,
    name: &str,
    in_chat: i64,
    now_ms: i64,
) -> Result<bool, SqlError> {
    let result = sqlx::query(
        "UPDATE handoffs SET taken_by = $1, taken_by_name = $2, taken_in_chat = $3,
             taken_at = $4, last_activity_at = $4
         WHERE id = $5 AND closed_at IS NULL AND (taken_by IS NULL OR taken_by = $1)",
    )
    .bind(owner)
    .bind(name)
    .bind(in_chat)
    .bind(now_ms)
    .bind(id)
    .execute(&db.pool)
    .await
    .ctx("taking a handoff")?;
    Ok(result.rows_affected() == 1)
}

/// Closes an open handoff; true when this call closed it (not already closed).
pub async fn close(db: &Db, id: i64, reason: &str, now_ms: i64) -> Result<bool, SqlError> {
    let result = sqlx::query(
        "UPDATE handoffs SET closed_at = $1, close_reason = $2 WHERE id = $3 AND closed_at IS NULL",
    )
    .bind(now_ms)
    .bind(reason)
    .bind(id)
    .execute(&db.pool)
    .await
    .ctx("closing a handoff")?;
    Ok(result.rows_affected() == 1)
}

/// Closes the handoffs silent since `cutoff_ms` (`autoResumeAfter`); returns their leads.
/// Each row is closed by one process only, so the lead is told once.
pub async fn close_idle(db: &Db, cutoff_ms: i64, now_ms: i64) -> Result<Vec<i64>, SqlError> {
    let idle: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT id, chat_id FROM handoffs WHERE closed_at IS NULL AND last_activity_at < $1",
    )
    .bind(cutoff_ms)
    .fetch_all(&db.pool)
    .await
    .ctx("finding idle handoffs")?;
    let mut closed = Vec::new();
    for (id, chat_id) in idle {
        let result = sqlx::query(
            "UPDATE handoffs SET closed_at = $1, close_reason = 'auto'
             WHERE id = $2 AND closed_at IS NULL AND last_activity_at < $3",
        )
        .bind(now_ms)
        .bind(id)
        .bind(cutoff_ms)
        .execute(&db.pool)
        .await
        .ctx("closing an idle handoff")?;
        if result.rows_affected() == 1 {
            closed.push(chat_id);
        }
    }
    Ok(closed)
}

/// An open handoff with its lead, for `/leads`.
#[derive(Debug, Clone)]
pub struct OpenHandoff {
    pub handoff: Handoff,
    pub lead: LeadInfo,
}

/// Who a lead is, for owners.
#[derive(Debug, Clone, Default)]
pub struct LeadInfo {
    pub chat_id: i64,
    pub first_name: Option<String>,
    pub username: Option<String>,
    pub first_seen_at: Option<i64>,
    pub messages: i64,
}

pub async fn list_open(db: &Db) -> Result<Vec<OpenHandoff>, SqlError> {
    let rows = sqlx::query(select_handoffs!(
        "WHERE h.closed_at IS NULL ORDER BY h.opened_at"
    ))
    .fetch_all(&db.pool)
    .await
    .ctx("listing open handoffs")?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let handoff = Handoff::from_row(&row, "reading a handoff")?;
        let lead = lead_info(db, handoff.chat_id).await?;
        out.push(OpenHandoff { handoff, lead });
    }
    Ok(out)
}

pub async fn lead_info(db: &Db, chat_id: i64) -> Result<LeadInfo, SqlError> {
    let action = "reading a lead";
    let row =
        sqlx::query("SELECT first_name, username, first_seen_at FROM leads WHERE chat_id = $1")
            .bind(chat_id)
            .fetch_optional(&db.pool)
            .await
            .ctx(action)?;
    let messages: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE chat_id = $1 AND role = 'user'")
            .bind(chat_id)
            .fetch_one(&db.pool)
            .await
            .ctx(action)?;
    let mut info = LeadInfo {
        chat_id,
        messages,
        ..LeadInfo::default()
    };
    if let Some(row) = row {
        info.first_name = row.try_get("first_name").ctx(action)?;
        info.username = row.try_get("username").ctx(action)?;
        info.first_seen_at = Some(row.try_get("first_seen_at").ctx(action)?);
    }
    Ok(info)
}

/// The lead `/takeover` names: a chat id, or a username with or without `@`.
pub async fn find_lead(db: &Db, name: &str) -> Result<Option<i64>, SqlError> {
    let name = name.trim();
    if let Ok(id) = name.parse::<i64>() {
        let found: Option<i64> = sqlx::query_scalar("SELECT chat_id FROM leads WHERE chat_id = $1")
            .bind(id)
            .fetch_optional(&db.pool)
            .await
            .ctx("finding a lead")?;
        return Ok(found);
    }
    let username = name.trim_start_matches('@').to_lowercase();
    sqlx::query_scalar(
        "SELECT chat_id FROM leads WHERE LOWER(username) = $1 ORDER BY last_inbound_at DESC LIMIT 1",
    )
    .bind(username)
    .fetch_optional(&db.pool)
    .await
    .ctx("finding a lead")
}

/// The bot's replies to the lead since its last real answer (and since its last handoff
/// closed) that said it could not answer (`texts`: the apology, the budget stop), for the
/// `unanswered` trigger.
pub async fn unanswered_in_a_row(db: &Db, chat_id: i64, texts: &[&str]) -> Result<i64, SqlError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT kind, text FROM messages WHERE chat_id = $1 AND role = 'assistant'
           AND created_at > COALESCE((SELECT MAX(closed_at) FROM handoffs WHERE chat_id = $1), 0)
         ORDER BY id DESC LIMIT 100",
    )
    .bind(chat_id)
    .fetch_all(&db.pool)
    .await
    .ctx("counting unanswered messages")?;
    let count = rows
        .iter()
        .take_while(|(kind, _)| kind != "chat")
        .filter(|(kind, text)| kind == "notice" && texts.contains(&text.as_str()))
        .count();
    Ok(count as i64)
}

/// Records that `message_id` in an owner's chat stands for the lead of `handoff_id`.
pub async fn record_relay(
    db: &Db,
    owner_chat_id: i64,
    message_id: i64,
    handoff_id: i64,
    lead_chat_id: i64,
    now_ms: i64,
) -> Result<(), SqlError> {
    sqlx::query(
        "INSERT INTO handoff_relays (owner_chat_id, message_id, handoff_id, lead_chat_id, created_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (owner_chat_id, message_id) DO NOTHING",
    )
    .bind(owner_chat_id)
    .bind(message_id)
    .bind(handoff_id)
    .bind(lead_chat_id)
    .bind(now_ms)
    .execute(&db.pool)
    .await
    .ctx("recording a relayed message")?;
    Ok(())
}

/// The handoff and lead an owner's reply to `message_id` in `owner_chat_id` is for.
pub async fn relay_target(
    db: &Db,
    owner_chat_id: i64,
    message_id: i64,
) -> Result<Option<(i64, i64)>, SqlError> {
    sqlx::query_as(
        "SELECT handoff_id, lead_chat_id FROM handoff_relays WHERE owner_chat_id = $1 AND message_id = $2",
    )
    .bind(owner_chat_id)
    .bind(message_id)
    .fetch_optional(&db.pool)
    .await
    .ctx("looking up a relayed message")
}

/// An outbox row to send.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    pub handoff_id: i64,
    pub lead_chat_id: i64,
    pub owner_chat_id: i64,
    pub text: String,
    pub buttons: Vec<(String, String)>,
    pub attempts: i64,
    /// Set on a reminder: given up after this many failed attempts.
    pub max_attempts: Option<i64>,
}

impl Pending {
    pub fn is_reminder(&self) -> bool {
        self.max_attempts.is_some()
    }

    /// This failed attempt was the last one allowed.
    pub fn last_attempt(&self) -> bool {
        self.max_attempts
            .is_some_and(|max| self.attempts + 1 >= max)
    }
}

/// Claims up to `limit` due outbox rows (of `handoff_id` only, when given) until `until_ms`.
/// A row is claimed by one process at a time.
pub async fn claim_due(
    db: &Db,
    handoff_id: Option<i64>,
    now_ms: i64,
    until_ms: i64,
    limit: i64,
) -> Result<Vec<Pending>, SqlError> {
    let action = "claiming owner messages to send";
    let rows = sqlx::query(
        "SELECT o.id, o.handoff_id, o.owner_chat_id, o.text, o.buttons, o.attempts, o.max_attempts,
                h.chat_id
         FROM handoff_outbox o JOIN handoffs h ON h.id = o.handoff_id
         WHERE o.sent_at IS NULL AND o.given_up_at IS NULL AND o.next_attempt_at <= $1
           AND (o.max_attempts IS NULL OR (h.closed_at IS NULL AND h.taken_by IS NULL))
           AND (o.claim_until IS NULL OR o.claim_until < $1)
           AND ($2 IS NULL OR o.handoff_id = $2)
         ORDER BY o.id LIMIT $3",
    )
    .bind(now_ms)
    .bind(handoff_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await
    .ctx(action)?;
    let mut claimed = Vec::new();
    for row in rows {
        let id: i64 = row.try_get("id").ctx(action)?;
        let won = sqlx::query(
            "UPDATE handoff_outbox SET claim_until = $1
             WHERE id = $2 AND sent_at IS NULL AND (claim_until IS NULL OR claim_until < $3)",
        )
        .bind(until_ms)
        .bind(id)
        .bind(now_ms)
        .execute(&db.pool)
        .await
        .ctx(action)?
        .rows_affected()
            == 1;
        if !won {
            continue;
        }
        let buttons: String = row.try_get("buttons").ctx(action)?;
        claimed.push(Pending {
            id,
            handoff_id: row.try_get("handoff_id").ctx(action)?,
            lead_chat_id: row.try_get("chat_id").ctx(action)?,
            owner_chat_id: row.try_get("owner_chat_id").ctx(action)?,
            text: row.try_get("text").ctx(action)?,
            buttons: serde_json::from_str(&buttons).unwrap_or_default(),
            attempts: row.try_get("attempts").ctx(action)?,
            max_attempts: row.try_get("max_attempts").ctx(action)?,
        });
    }
    Ok(claimed)
}

pub async fn outbox_sent(db: &Db, id: i64, now_ms: i64) -> Result<(), SqlError> {
    sqlx::query("UPDATE handoff_outbox SET sent_at = $1, claim_until = NULL WHERE id = $2")
        .bind(now_ms)
        .bind(id)
        .execute(&db.pool)
        .await
        .ctx("recording a sent owner message")?;
    Ok(())
}

/// What happens to an outbox row after a failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Tried again from this time (ms).
    RetryAt(i64),
    /// A reminder's last allowed attempt: given up at this time (ms), never marked sent.
    GiveUp(i64),
}

pub async fn outbox_failed(
    db: &Db,
    id: i64,
    error: &str,
    after: AfterFailure,
) -> Result<(), SqlError> {
    let (retry_at, given_up_at) = match after {
        AfterFailure::RetryAt(at) => (Some(at), None),
        AfterFailure::GiveUp(at) => (None, Some(at)),
    };
    sqlx::query(
        "UPDATE handoff_outbox SET attempts = attempts + 1, last_error = $1,
             next_attempt_at = COALESCE($2, next_attempt_at), given_up_at = $3, claim_until = NULL
         WHERE id = $4",
    )
    .bind(error)
    .bind(retry_at)
    .bind(given_up_at)
    .bind(id)
    .execute(&db.pool)
    .await
    .ctx("recording a failed owner message")?;
    Ok(())
}

/// An open handoff nobody has taken, and how many reminder steps it has had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    pub id: i64,
    pub chat_id: i64,
    pub opened_at: i64,
    pub reminder_steps: i64,
}

/// Open, untaken handoffs that have had fewer than `steps` reminder steps.
pub async fn waiting_for_reminders(db: &Db, steps: i64) -> Result<Vec<Waiting>, SqlError> {
    let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT id, chat_id, opened_at, reminder_steps FROM handoffs
         WHERE closed_at IS NULL AND taken_by IS NULL AND reminder_steps < $1
         ORDER BY id",
    )
    .bind(steps)
    .fetch_all(&db.pool)
    .await
    .ctx("reading handoffs waiting for a reminder")?;
    Ok(rows
        .into_iter()
        .map(|(id, chat_id, opened_at, reminder_steps)| Waiting {
            id,
            chat_id,
            opened_at,
            reminder_steps,
        })
        .collect())
}

/// Moves `waiting` to reminder step `step` and queues its messages, in one transaction; false
/// when another process took the step first (or the handoff was taken or closed meanwhile).
pub async fn take_reminder_step(
    db: &Db,
    waiting: &Waiting,
    step: i64,
    messages: &[OutboxMessage],
    now_ms: i64,
) -> Result<bool, SqlError> {
    let action = "queueing a handoff reminder";
    let mut tx = db.pool.begin().await.ctx(action)?;
    let won = sqlx::query(
        "UPDATE handoffs SET reminder_steps = $1
         WHERE id = $2 AND reminder_steps = $3 AND closed_at IS NULL AND taken_by IS NULL",
    )
    .bind(step)
    .bind(waiting.id)
    .bind(waiting.reminder_steps)
    .execute(&mut *tx)
    .await
    .ctx(action)?
    .rows_affected()
        == 1;
    if !won {
        return Ok(false);
    }
    for message in messages {
        enqueue(&mut tx, waiting.id, message, now_ms).await?;
    }
    tx.commit().await.ctx(action)?;
    Ok(true)
}

/// Open handoffs, and when the longest-waiting untaken one opened (for the gauges).
pub async fn open_counts(db: &Db) -> Result<(i64, Option<i64>), SqlError> {
    let action = "counting open handoffs";
    let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM handoffs WHERE closed_at IS NULL")
        .fetch_one(&db.pool)
        .await
        .ctx(action)?;
    let oldest: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(opened_at) FROM handoffs WHERE closed_at IS NULL AND taken_by IS NULL",
    )
    .fetch_one(&db.pool)
    .await
    .ctx(action)?;
    Ok((open, oldest))
}

/// Handoffs opened since `since_ms`.
pub async fn opened_since(db: &Db, since_ms: i64) -> Result<i64, SqlError> {
    sqlx::query_scalar("SELECT COUNT(*) FROM handoffs WHERE opened_at >= $1")
        .bind(since_ms)
        .fetch_one(&db.pool)
        .await
        .ctx("counting handoffs")
}
