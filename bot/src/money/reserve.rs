//! Reservations: before an LLM attempt its worst-case cost is held in `budget_reservations`,
//! checked against every limit that applies (the bot's day and month under `hardStop`, the
//! lead's own), atomically across workers and replicas: every reserver first updates the one
//! `budget_lock` row, which serialises them (SQLite has one writer; PostgreSQL locks the row
//! until commit), then reads the spend and the live reservations and inserts its own only if
//! every limit still holds. A reservation is deleted in the transaction that writes its
//! call's ledger rows; one left by a crashed process stops counting at `expires_at`.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use super::budget::{BudgetLimits, spend_on};
use super::period::{Period, day_start_millis};
use super::{MoneyError, Refusal};
use crate::db::{Db, SqlContext, to_millis};

/// One reservation to take (or to grow, replacing the call's previous one).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hold {
    pub chat_id: Option<i64>,
    /// The worst-case cost of every attempt of the call allowed so far.
    pub amount_nanos: i64,
    /// The call's previous reservation, replaced by this one.
    pub replacing: Option<i64>,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Takes `hold` if it fits every limit: its id, or the first limit it does not fit. A
/// refused first reservation is recorded in `budget_refusals` (the owner notices count
/// them); a refused growth leaves the previous reservation as it was.
pub(crate) async fn reserve(
    db: &Db,
    limits: &BudgetLimits,
    hold: Hold,
) -> Result<Result<i64, Refusal>, MoneyError> {
    let mut tx = db.pool.begin().await.ctx("starting a budget reservation")?;
    sqlx::query("UPDATE budget_lock SET version = version + 1 WHERE id = 1")
        .execute(&mut *tx)
        .await
        .ctx("locking the budget")?;
    sqlx::query("DELETE FROM budget_reservations WHERE expires_at <= $1 OR id = $2")
        .bind(to_millis(hold.now))
        .bind(hold.replacing.unwrap_or(-1))
        .execute(&mut *tx)
        .await
        .ctx("dropping expired budget reservations")?;
    if let Some(refusal) = first_refusal(&mut tx, limits, &hold).await? {
        if hold.replacing.is_some() {
            tx.rollback().await.ctx("keeping a budget reservation")?;
        } else {
            record_refusal(&mut tx, refusal, hold.chat_id, hold.now).await?;
            tx.commit().await.ctx("recording a budget refusal")?;
        }
        return Ok(Err(refusal));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO budget_reservations (chat_id, amount_nanos, created_at, expires_at) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(hold.chat_id)
    .bind(hold.amount_nanos)
    .bind(to_millis(hold.now))
    .bind(to_millis(hold.expires_at))
    .fetch_one(&mut *tx)
    .await
    .ctx("inserting a budget reservation")?;
    tx.commit().await.ctx("committing a budget reservation")?;
    Ok(Ok(id))
}

/// The first limit `hold` would pass, the bot's before the lead's, the day before the month.
async fn first_refusal(
    conn: &mut AnyConnection,
    limits: &BudgetLimits,
    hold: &Hold,
) -> Result<Option<Refusal>, MoneyError> {
    if limits.bot_stops() {
        let spend = spend_on(conn, hold.now).await?;
        let reserved = reserved(conn, None).await?;
        for period in Period::ALL {
            if let Some(limit) = limits.limit(period)
                && !fits(spend.of(period), reserved, hold.amount_nanos, limit)
            {
                return Ok(Some(Refusal::Bot(period)));
            }
        }
    }
    let Some(chat_id) = hold.chat_id else {
        return Ok(None);
    };
    if limits.lead_daily_nanos.is_none() && limits.lead_monthly_nanos.is_none() {
        return Ok(None);
    }
    let (day, month) = lead_spend(conn, chat_id, hold.now).await?;
    let reserved = reserved(conn, Some(chat_id)).await?;
    for (period, spent) in [(Period::Day, day), (Period::Month, month)] {
        if let Some(limit) = limits.lead_limit(period)
            && !fits(spent, reserved, hold.amount_nanos, limit)
        {
            return Ok(Some(Refusal::Lead(period)));
        }
    }
    Ok(None)
}

fn fits(spent: i64, reserved: i64, amount: i64, limit: i64) -> bool {
    i128::from(spent) + i128::from(reserved) + i128::from(amount) <= i128::from(limit)
}

/// The live reservations, of one lead or of all.
async fn reserved(conn: &mut AnyConnection, chat_id: Option<i64>) -> Result<i64, MoneyError> {
    // SUM of BIGINT is NUMERIC in PostgreSQL, which the Any driver cannot read: cast back.
    let query = match chat_id {
        None => sqlx::query_scalar(
            "SELECT COALESCE(CAST(SUM(amount_nanos) AS BIGINT), 0) FROM budget_reservations",
        ),
        Some(chat_id) => sqlx::query_scalar(
            "SELECT COALESCE(CAST(SUM(amount_nanos) AS BIGINT), 0) FROM budget_reservations \
             WHERE chat_id = $1",
        )
        .bind(chat_id),
    };
    Ok(query
        .fetch_one(conn)
        .await
        .ctx("reading the live budget reservations")?)
}

/// One lead's spend today and this month, from the ledger.
pub(crate) async fn lead_spend(
    conn: &mut AnyConnection,
    chat_id: i64,
    now: DateTime<Utc>,
) -> Result<(i64, i64), MoneyError> {
    let row: (i64, i64) = sqlx::query_as(
        "SELECT \
           COALESCE(CAST(SUM(CASE WHEN at >= $2 THEN cost_nanos ELSE 0 END) AS BIGINT), 0), \
           COALESCE(CAST(SUM(cost_nanos) AS BIGINT), 0) \
         FROM llm_ledger WHERE chat_id = $1 AND at >= $3",
    )
    .bind(chat_id)
    .bind(day_start_millis(Period::Day.first_day(now)))
    .bind(day_start_millis(Period::Month.first_day(now)))
    .fetch_one(conn)
    .await
    .ctx("reading a lead's spend")?;
    Ok(row)
}

async fn record_refusal(
    conn: &mut AnyConnection,
    refusal: Refusal,
    chat_id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(), MoneyError> {
    let period = refusal.period();
    sqlx::query(
        "INSERT INTO budget_refusals (scope, period_kind, period_key, chat_id, at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(refusal.scope())
    .bind(period.as_str())
    .bind(period.key(now))
    .bind(chat_id.unwrap_or(0))
    .bind(to_millis(now))
    .execute(conn)
    .await
    .ctx("recording a budget refusal")?;
    Ok(())
}

/// Deletes a reservation (a call that settled with no attempt, or was never made).
pub(crate) async fn release(conn: &mut AnyConnection, id: i64) -> Result<(), MoneyError> {
    sqlx::query("DELETE FROM budget_reservations WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .ctx("releasing a budget reservation")?;
    Ok(())
}
