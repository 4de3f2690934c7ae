//! Owner notices of refused reservations: "budget reached: N leads got the stop reply" once
//! per period, and "lead X reached its own limit" once per lead and period. Claimed in
//! `budget_notices` before sending (exclusive across replicas, durable across restarts) and
//! given back when Telegram refuses the message, like the threshold alerts.

use chrono::{DateTime, Utc};

use super::budget::BudgetLimits;
use super::period::Period;
use super::{MoneyError, Refusal};
use crate::db::{AnyQuery, Db, SqlContext, to_millis};
use crate::delivery::Delivery;
use crate::telegram::{Format, Priority};
use botfleet_api::format_usd;

/// One notice: the refusal it is about, and the lead (0: the bot-wide notice).
struct Notice {
    refusal: Refusal,
    key: String,
    chat_id: i64,
    text: String,
}

impl Notice {
    /// A statement on this notice's row of `budget_notices` for `owner`, bound as `$1`–`$5`.
    fn row(&self, sql: &'static str, owner: i64) -> AnyQuery {
        sqlx::query(sql)
            .bind(self.refusal.scope())
            .bind(self.refusal.period().as_str())
            .bind(self.key.clone())
            .bind(self.chat_id)
            .bind(owner)
    }
}

/// Sends each owner the notices due and not yet claimed; the number delivered.
pub(crate) async fn send_due(
    db: &Db,
    delivery: &Delivery,
    limits: &BudgetLimits,
    owners: &[i64],
    now: DateTime<Utc>,
) -> Result<usize, MoneyError> {
    if owners.is_empty() || !limits.reserves() {
        return Ok(0);
    }
    let mut sent = 0;
    for notice in due(db, limits, now).await? {
        for &owner in owners {
            const CLAIM: &str = "INSERT INTO budget_notices \
                 (scope, period_kind, period_key, chat_id, owner_id, claimed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";
            let claimed = notice
                .row(CLAIM, owner)
                .bind(to_millis(now))
                .execute(&db.pool)
                .await
                .ctx("claiming a budget refusal notice")?;
            if claimed.rows_affected() != 1 {
                continue;
            }
            match delivery
                .send(owner, &notice.text, Format::Html, Priority::Interactive)
                .await
            {
                Ok(_) => {
                    sent += 1;
                    tracing::info!(
                        scope = notice.refusal.scope(),
                        period_key = %notice.key,
                        "budget refusal notice sent to an owner"
                    );
                }
                Err(error) => {
                    const UNCLAIM: &str = "DELETE FROM budget_notices WHERE scope = $1 \
                         AND period_kind = $2 AND period_key = $3 AND chat_id = $4 \
                         AND owner_id = $5";
                    notice
                        .row(UNCLAIM, owner)
                        .execute(&db.pool)
                        .await
                        .ctx("giving back an undelivered budget refusal notice")?;
                    tracing::warn!(%error, "budget refusal notice not delivered; will retry");
                }
            }
        }
    }
    Ok(sent)
}

/// The notices the refusals of the current day and month call for.
async fn due(
    db: &Db,
    limits: &BudgetLimits,
    now: DateTime<Utc>,
) -> Result<Vec<Notice>, MoneyError> {
    let mut notices = Vec::new();
    for period in Period::ALL {
        let key = period.key(now);
        let refused: Vec<(String, i64)> = sqlx::query_as(
            "SELECT scope, chat_id FROM budget_refusals \
             WHERE period_kind = $1 AND period_key = $2 ORDER BY scope, chat_id",
        )
        .bind(period.as_str())
        .bind(key.as_str())
        .fetch_all(&db.pool)
        .await
        .ctx("reading the budget refusals")?;
        let bot_leads = refused.iter().filter(|(scope, _)| scope == "bot").count();
        if let (true, Some(limit)) = (bot_leads > 0, limits.limit(period)) {
            notices.push(Notice {
                refusal: Refusal::Bot(period),
                key: key.clone(),
                chat_id: 0,
                text: format!(
                    "🛑 <b>LLM budget reached: {bot_leads} lead(s) got the stop reply</b>\n\
                     The {} limit of {} has no room for another call in {key} (UTC); \
                     the bot answers with a polite notice until the period ends or the limit \
                     is raised.",
                    period.adjective(),
                    format_usd(limit, 2),
                ),
            });
        }
        for (_, chat_id) in refused.iter().filter(|(scope, _)| scope == "lead") {
            let limit = limits.lead_limit(period).unwrap_or_default();
            notices.push(Notice {
                refusal: Refusal::Lead(period),
                key: key.clone(),
                chat_id: *chat_id,
                text: format!(
                    "✋ <b>Lead {chat_id} reached its own {} limit</b> of {} in {key} (UTC); \
                     it gets the per-lead notice until the period ends.",
                    period.adjective(),
                    format_usd(limit, 2),
                ),
            });
        }
    }
    Ok(notices)
}
