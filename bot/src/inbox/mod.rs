//! The durable inbox: every accepted update is stored here before Telegram gets its 200, and
//! workers take rows from it. Nothing accepted is lost: a worker's claim is a lease that
//! expires, so a row taken by a process that died is taken again.
//!
//! Updates of one chat are handled in order: only the oldest unfinished row of a chat can be
//! claimed, so a chat's next update waits until the previous one is done.
//!
//! Rows come in by the batch ([`batch`]): the webhook's concurrent requests share a transaction
//! through the group-commit [`Writer`], and polling stores each `getUpdates` answer in one.

pub mod batch;
pub mod writer;

use std::time::Duration;

use sqlx::Row;

use crate::db::{Db, SqlContext, SqlError};

pub use batch::{Enqueued, MAX_BATCH, NewUpdate};
pub use writer::{WriteError, Writer};

/// A row that keeps failing is parked (marked done with its error) after this many attempts,
/// so one poisonous update cannot block its chat forever.
pub const MAX_ATTEMPTS: i64 = 5;
/// Done rows are kept this long so that a repeated `update_id` is still recognised.
pub const KEEP_DONE_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// A claimed row, to be completed (or released) by the claimant.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub update_id: i64,
    pub chat_id: Option<i64>,
    pub payload: String,
    /// Including this one.
    pub attempts: i64,
    /// When the update arrived (Unix milliseconds).
    pub received_at_ms: i64,
}

/// Which rows [`claim_next`] may take besides unclaimed ones.
pub struct Claimable<'a> {
    /// A claim that ran out before this (Unix ms) may be taken over; `i64::MIN`: none.
    pub expired_before: i64,
    /// Rows this process holds in memory: never taken, whatever their claim says.
    pub held: &'a (dyn Fn(i64) -> bool + Sync),
}

/// Claims the next row that may run now: unfinished, unclaimed (or its claim expired, as
/// `claimable` allows), and the oldest unfinished row of its chat. Returns `None` when there is
/// nothing to do.
pub async fn claim_next(
    db: &Db,
    worker: &str,
    claim_for: Duration,
    now_ms: i64,
    claimable: Claimable<'_>,
) -> Result<Option<Claimed>, SqlError> {
    let candidates: Vec<i64> = sqlx::query_scalar(
        "SELECT i.update_id FROM inbox i
         WHERE i.done_at IS NULL
           AND (i.claim_until IS NULL OR i.claim_until < $1)
           AND NOT EXISTS (
               SELECT 1 FROM inbox p
               WHERE p.done_at IS NULL AND p.chat_id = i.chat_id AND p.update_id < i.update_id)
         ORDER BY i.update_id
         LIMIT 16",
    )
    // Not a cached prepared statement: PostgreSQL's generic plan for it, chosen while the
    // inbox is empty, takes seconds per call once a backlog builds. Planned with the real
    // parameters each time it stays a fraction of a millisecond.
    .persistent(false)
    .bind(claimable.expired_before)
    .fetch_all(&db.pool)
    .await
    .ctx("claiming the next update")?;
    let until = now_ms + claim_for.as_millis() as i64;
    for update_id in candidates.into_iter().filter(|&id| !(claimable.held)(id)) {
        // Conditional update: of several workers racing for this row, one changes it.
        let won = sqlx::query(
            "UPDATE inbox SET claimed_by = $1, claim_until = $2, attempts = attempts + 1
             WHERE update_id = $3 AND done_at IS NULL AND (claim_until IS NULL OR claim_until < $4)",
        )
        .bind(worker)
        .bind(until)
        .bind(update_id)
        .bind(claimable.expired_before)
        .execute(&db.pool)
        .await.ctx("claiming the next update")?
        .rows_affected()
            == 1;
        if won {
            let row = sqlx::query(
                "SELECT chat_id, payload, attempts, received_at FROM inbox WHERE update_id = $1",
            )
            .bind(update_id)
            .fetch_one(&db.pool)
            .await
            .ctx("claiming the next update")?;
            return Ok(Some(Claimed {
                update_id,
                chat_id: row.try_get("chat_id").ctx("claiming the next update")?,
                payload: row.try_get("payload").ctx("claiming the next update")?,
                attempts: row
                    .try_get::<i64, _>("attempts")
                    .ctx("claiming the next update")?,
                received_at_ms: row
                    .try_get::<i64, _>("received_at")
                    .ctx("claiming the next update")?,
            }));
        }
    }
    Ok(None)
}

/// Extends a claim while its work goes on. False when the claim was lost (it expired and
/// another worker took the row): the caller should stop.
pub async fn extend_claim(
    db: &Db,
    update_id: i64,
    worker: &str,
    until_ms: i64,
) -> Result<bool, SqlError> {
    let changed = sqlx::query(
        "UPDATE inbox SET claim_until = $1 WHERE update_id = $2 AND claimed_by = $3 AND done_at IS NULL",
    )
    .bind(until_ms)
    .bind(update_id)
    .bind(worker)
    .execute(&db.pool)
    .await.ctx("extending an update's claim")?
    .rows_affected();
    Ok(changed == 1)
}

/// Marks a row done (with the error that parked it, if any).
pub async fn complete(
    db: &Db,
    update_id: i64,
    now_ms: i64,
    error: Option<&str>,
) -> Result<(), SqlError> {
    sqlx::query(
        "UPDATE inbox SET done_at = $1, last_error = $2, claim_until = NULL WHERE update_id = $3",
    )
    .bind(now_ms)
    .bind(error)
    .bind(update_id)
    .execute(&db.pool)
    .await
    .ctx("marking an update done")?;
    Ok(())
}

/// Gives a row back for another attempt (a transient failure), keeping the error for operators.
pub async fn release(db: &Db, update_id: i64, worker: &str, error: &str) -> Result<(), SqlError> {
    sqlx::query(
        "UPDATE inbox SET claimed_by = NULL, claim_until = NULL, last_error = $1
         WHERE update_id = $2 AND claimed_by = $3 AND done_at IS NULL",
    )
    .bind(error)
    .bind(update_id)
    .bind(worker)
    .execute(&db.pool)
    .await
    .ctx("giving an update back")?;
    Ok(())
}

/// Gives back every unfinished row this worker holds (at shutdown, past the grace period), so
/// the next process takes them at once instead of waiting for the claims to expire.
pub async fn release_all(db: &Db, worker_prefix: &str) -> Result<u64, SqlError> {
    Ok(sqlx::query(
        "UPDATE inbox SET claimed_by = NULL, claim_until = NULL
         WHERE done_at IS NULL AND claimed_by LIKE $1",
    )
    .bind(format!("{worker_prefix}%"))
    .execute(&db.pool)
    .await
    .ctx("releasing this process's claims")?
    .rows_affected())
}

pub async fn pending_count(db: &Db) -> Result<i64, SqlError> {
    sqlx::query_scalar("SELECT COUNT(*) FROM inbox WHERE done_at IS NULL")
        .fetch_one(&db.pool)
        .await
        .ctx("counting pending updates")
}

/// Deletes done rows older than [`KEEP_DONE_FOR`].
pub async fn prune(db: &Db, now_ms: i64) -> Result<u64, SqlError> {
    Ok(
        sqlx::query("DELETE FROM inbox WHERE done_at IS NOT NULL AND done_at < $1")
            .bind(now_ms - KEEP_DONE_FOR.as_millis() as i64)
            .execute(&db.pool)
            .await
            .ctx("pruning done updates")?
            .rows_affected(),
    )
}
