//! The follow-up queries: due-lead selection (an index range scan per step), the claim that
//! makes each follow-up go out once even with two active schedulers, and its completion.
//!
//! The claim is a conditional UPDATE: it only succeeds while the lead is still in the state
//! the scheduler saw (same step, same `last_inbound_at`) and nobody else holds a live claim.
//! A lead who writes again bumps `last_inbound_at`, resets `followups_sent` and clears the
//! claim (see `leads::record_inbound`), which voids a claim in flight.

use sqlx::Row;

use crate::db::{Db, SqlContext, SqlError};

/// A due lead as selected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DueLead {
    pub chat_id: i64,
    pub last_inbound_ms: i64,
    pub step: u32,
}

/// Leads due step `step`: active, `step` follow-ups so far, silent since `cutoff_ms`, and (for
/// later steps) the previous follow-up sent before `gap_cutoff_ms`, and not handed over to a
/// person (an open handoff). Oldest silence first.
/// Served by the partial index `leads_followup_due (followups_sent, last_inbound_at) WHERE
/// status = 'active'`.
pub async fn select_due(
    db: &Db,
    step: u32,
    cutoff_ms: i64,
    gap_cutoff_ms: Option<i64>,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<DueLead>, SqlError> {
    let rows = sqlx::query(
        "SELECT chat_id, last_inbound_at FROM leads
         WHERE status = 'active' AND followups_sent = $1 AND last_inbound_at <= $2
           AND ($3 IS NULL OR last_followup_at IS NULL OR last_followup_at <= $3)
           AND (followup_claim IS NULL OR followup_claim_until < $4)
           AND NOT EXISTS (SELECT 1 FROM handoffs h WHERE h.chat_id = leads.chat_id AND h.closed_at IS NULL)
         ORDER BY last_inbound_at
         LIMIT $5",
    )
    .bind(i64::from(step))
    .bind(cutoff_ms)
    .bind(gap_cutoff_ms)
    .bind(now_ms)
    .bind(limit)
    .fetch_all(&db.pool)
    .await
    .ctx("selecting due follow-ups")?;
    rows.iter()
        .map(|row| {
            Ok(DueLead {
                chat_id: row.try_get("chat_id").ctx("selecting due follow-ups")?,
                last_inbound_ms: row
                    .try_get("last_inbound_at")
                    .ctx("selecting due follow-ups")?,
                step,
            })
        })
        .collect()
}

/// How many leads are due step `step` (silent since `cutoff_ms`): for the gauges.
pub async fn count_due(db: &Db, step: u32, cutoff_ms: i64) -> Result<i64, SqlError> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM leads
         WHERE status = 'active' AND followups_sent = $1 AND last_inbound_at <= $2
           AND NOT EXISTS (SELECT 1 FROM handoffs h WHERE h.chat_id = leads.chat_id AND h.closed_at IS NULL)",
    )
    .bind(i64::from(step))
    .bind(cutoff_ms)
    .fetch_one(&db.pool)
    .await
    .ctx("counting due follow-ups")
}

/// Claims `lead` for this scheduler until `until_ms`. True when this call won the claim.
pub async fn claim(
    db: &Db,
    lead: &DueLead,
    token: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<bool, SqlError> {
    let result = sqlx::query(
        "UPDATE leads SET followup_claim = $1, followup_claim_until = $2
         WHERE chat_id = $3 AND status = 'active' AND followups_sent = $4 AND last_inbound_at = $5
           AND (followup_claim IS NULL OR followup_claim_until < $6)
           AND NOT EXISTS (SELECT 1 FROM handoffs h WHERE h.chat_id = leads.chat_id AND h.closed_at IS NULL)",
    )
    .bind(token)
    .bind(until_ms)
    .bind(lead.chat_id)
    .bind(i64::from(lead.step))
    .bind(lead.last_inbound_ms)
    .bind(now_ms)
    .execute(&db.pool)
    .await
    .ctx("claiming a follow-up")?;
    Ok(result.rows_affected() == 1)
}

/// Gives a claim back without sending (a transient failure): the next tick tries again.
pub async fn release(db: &Db, chat_id: i64, token: &str) -> Result<(), SqlError> {
    sqlx::query(
        "UPDATE leads SET followup_claim = NULL, followup_claim_until = NULL
         WHERE chat_id = $1 AND followup_claim = $2",
    )
    .bind(chat_id)
    .bind(token)
    .execute(&db.pool)
    .await
    .ctx("releasing a follow-up claim")?;
    Ok(())
}

/// After Telegram accepted the follow-up: records it in the conversation and advances the
/// lead's counter, in one transaction. The counter moves only while our claim stands (a lead
/// who wrote meanwhile has started a new sequence); the message is recorded either way, since
/// it was sent. Returns whether the counter moved.
pub async fn complete(
    db: &Db,
    lead: &DueLead,
    token: &str,
    text: &str,
    now_ms: i64,
) -> Result<bool, SqlError> {
    let mut tx = db.pool.begin().await.ctx("recording a sent follow-up")?;
    sqlx::query(
        "INSERT INTO messages (chat_id, role, kind, text, created_at, sent_at)
         VALUES ($1, 'assistant', 'followup', $2, $3, $3)",
    )
    .bind(lead.chat_id)
    .bind(text)
    .bind(now_ms)
    .execute(&mut *tx)
    .await
    .ctx("recording a sent follow-up")?;
    let advanced = sqlx::query(
        "UPDATE leads SET followups_sent = $1, last_followup_at = $2, last_outbound_at = $2,
             followup_claim = NULL, followup_claim_until = NULL
         WHERE chat_id = $3 AND followup_claim = $4",
    )
    .bind(i64::from(lead.step) + 1)
    .bind(now_ms)
    .bind(lead.chat_id)
    .bind(token)
    .execute(&mut *tx)
    .await
    .ctx("recording a sent follow-up")?
    .rows_affected()
        == 1;
    if !advanced {
        sqlx::query("UPDATE leads SET last_outbound_at = $1 WHERE chat_id = $2")
            .bind(now_ms)
            .bind(lead.chat_id)
            .execute(&mut *tx)
            .await
            .ctx("recording a sent follow-up")?;
    }
    tx.commit().await.ctx("recording a sent follow-up")?;
    Ok(advanced)
}

/// The chat is gone (the user blocked the bot or deleted their account): no more follow-ups
/// in this sequence. The status stays as it is; `followups_sent` jumps to the last step.
pub async fn give_up(db: &Db, chat_id: i64, token: &str, last_step: u32) -> Result<(), SqlError> {
    sqlx::query(
        "UPDATE leads SET followups_sent = $1, followup_claim = NULL, followup_claim_until = NULL
         WHERE chat_id = $2 AND followup_claim = $3",
    )
    .bind(i64::from(last_step))
    .bind(chat_id)
    .bind(token)
    .execute(&db.pool)
    .await
    .ctx("giving up a follow-up")?;
    Ok(())
}
