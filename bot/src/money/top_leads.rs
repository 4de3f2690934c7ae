//! The leads that cost the most this month, from the ledger (its `chat_id`): shown by
//! `/llm_stats` and `GET /api/v1/usage`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::MoneyError;
use super::period::{Period, day_start_millis};
use crate::db::{Db, SqlContext};

/// How many leads the reports list.
pub const TOP_LEADS: i64 = 5;

/// One lead's spend in the current UTC day and month (exact nano-USD).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeadSpend {
    pub chat_id: i64,
    pub spend_today_nanos: i64,
    pub spend_month_nanos: i64,
}

/// The [`TOP_LEADS`] leads with the highest spend this month, dearest first.
pub(crate) async fn top_leads(db: &Db, now: DateTime<Utc>) -> Result<Vec<LeadSpend>, MoneyError> {
    // SUM of BIGINT is NUMERIC in PostgreSQL, which the Any driver cannot read: cast back.
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT chat_id, \
           CAST(SUM(CASE WHEN at >= $1 THEN cost_nanos ELSE 0 END) AS BIGINT), \
           CAST(SUM(cost_nanos) AS BIGINT) \
         FROM llm_ledger WHERE chat_id IS NOT NULL AND at >= $2 \
         GROUP BY chat_id HAVING SUM(cost_nanos) > 0 \
         ORDER BY 3 DESC, chat_id LIMIT $3",
    )
    .bind(day_start_millis(Period::Day.first_day(now)))
    .bind(day_start_millis(Period::Month.first_day(now)))
    .bind(TOP_LEADS)
    .fetch_all(&db.pool)
    .await
    .ctx("reading the top leads by spend")?;
    Ok(rows
        .into_iter()
        .map(|(chat_id, today, month)| LeadSpend {
            chat_id,
            spend_today_nanos: today,
            spend_month_nanos: month,
        })
        .collect())
}
