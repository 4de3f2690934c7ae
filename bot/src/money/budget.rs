//! Budgets: spend read from the daily rollup (so a restart changes nothing), the hard-stop
//! gate, and threshold alerts deduplicated durably in `budget_alerts`.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use super::MoneyError;
use super::period::{Period, day_key};
use crate::db::{AnyQuery, Db, to_millis};
use crate::db::{SqlContext, SqlError};
use crate::delivery::Delivery;
use crate::telegram::{Format, Priority};
use botfleet_api::format_usd;

/// Limits, thresholds and the hard-stop switch, from the config's `budget`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BudgetLimits {
    pub daily_nanos: Option<i64>,
    pub monthly_nanos: Option<i64>,
    /// Percentages of a limit, ascending, without duplicates.
    pub alert_thresholds: Vec<u32>,
    pub hard_stop: bool,
    /// `budget.perLead`: one lead's own limits (always enforced: a cap, not an alert).
    pub lead_daily_nanos: Option<i64>,
    pub lead_monthly_nanos: Option<i64>,
}

impl BudgetLimits {
    pub fn limit(&self, period: Period) -> Option<i64> {
        match period {
            Period::Day => self.daily_nanos,
            Period::Month => self.monthly_nanos,
        }
    }

    pub fn lead_limit(&self, period: Period) -> Option<i64> {
        match period {
            Period::Day => self.lead_daily_nanos,
            Period::Month => self.lead_monthly_nanos,
        }
    }

    /// The bot's limits stop calls (`hardStop` with a limit set).
    pub fn bot_stops(&self) -> bool {
        self.hard_stop && (self.daily_nanos.is_some() || self.monthly_nanos.is_some())
    }

    /// Some limit stops calls: each call then reserves its worst-case cost first.
    pub fn reserves(&self) -> bool {
        self.bot_stops() || self.lead_daily_nanos.is_some() || self.lead_monthly_nanos.is_some()
    }
}

/// What the rollup says about the current day and month.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spend {
    pub day_nanos: i64,
    pub month_nanos: i64,
    pub requests_today: i64,
    pub unpriced_calls_today: i64,
}

impl Spend {
    pub fn of(&self, period: Period) -> i64 {
        match period {
            Period::Day => self.day_nanos,
            Period::Month => self.month_nanos,
        }
    }
}

/// Today's and this month's spend, from the rollup only.
pub(crate) async fn current_spend(db: &Db, now: DateTime<Utc>) -> Result<Spend, MoneyError> {
    let mut conn = db
        .pool
        .acquire()
        .await
        .ctx("reading the spend of the current day and month")?;
    spend_on(&mut conn, now).await
}

/// [`current_spend`] on one connection (inside a transaction, when it is one).
pub(crate) async fn spend_on(
    conn: &mut AnyConnection,
    now: DateTime<Utc>,
) -> Result<Spend, MoneyError> {
    let today = day_key(now.date_naive());
    let month_start = day_key(Period::Month.first_day(now));
    // SUM of BIGINT is NUMERIC in PostgreSQL, which the Any driver cannot read: cast back.
    let row: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT \
           COALESCE(CAST(SUM(CASE WHEN day = $2 THEN cost_nanos ELSE 0 END) AS BIGINT), 0), \
           COALESCE(CAST(SUM(cost_nanos) AS BIGINT), 0), \
           COALESCE(CAST(SUM(CASE WHEN day = $2 THEN requests ELSE 0 END) AS BIGINT), 0), \
           COALESCE(CAST(SUM(CASE WHEN day = $2 THEN unpriced_calls ELSE 0 END) AS BIGINT), 0) \
         FROM llm_usage_daily WHERE day >= $1 AND day <= $2",
    )
    .bind(month_start.as_str())
    .bind(today.as_str())
    .fetch_one(conn)
    .await
    .ctx("reading the spend of the current day and month")?;
    Ok(Spend {
        day_nanos: row.0,
        month_nanos: row.1,
        requests_today: row.2,
        unpriced_calls_today: row.3,
    })
}

/// Whether `spend` has reached `percent` % of `limit`, exactly.
pub fn reached(spend: i64, limit: i64, percent: u32) -> bool {
    i128::from(spend) * 100 >= i128::from(limit) * i128::from(percent)
}

/// `spend` as a percentage of `limit` with one decimal, rounded for display.
pub fn percent_of(spend: i64, limit: i64) -> String {
    if limit <= 0 {
        return if spend > 0 {
            "∞%".into()
        } else {
            "100.0%".into()
        };
    }
    let tenths = (i128::from(spend) * 1000 + i128::from(limit) / 2) / i128::from(limit);
    format!("{}.{}%", tenths / 10, tenths % 10)
}

/// The first period whose limit is reached, if any (day first: it is the one that resets soonest).
pub(crate) fn exhausted(limits: &BudgetLimits, spend: &Spend) -> Option<Period> {
    Period::ALL.into_iter().find(|&period| {
        limits
            .limit(period)
            .is_some_and(|limit| reached(spend.of(period), limit, 100))
    })
}

/// A budget alert that was delivered to one owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentAlert {
    pub owner_id: i64,
    pub period: Period,
    pub period_key: String,
    /// The highest threshold the message announced; lower ones crossed at the same time were
    /// claimed with it (one message, not one per threshold).
    pub threshold: u32,
    /// Every threshold this message covered.
    pub thresholds: Vec<u32>,
    pub spend_nanos: i64,
    pub limit_nanos: i64,
}

/// Sends each owner the alerts of thresholds crossed and not yet claimed in this period.
pub(crate) async fn send_due_alerts(
    db: &Db,
    delivery: &Delivery,
    limits: &BudgetLimits,
    owners: &[i64],
    now: DateTime<Utc>,
) -> Result<Vec<SentAlert>, MoneyError> {
    let mut sent = Vec::new();
    if owners.is_empty() || limits.alert_thresholds.is_empty() {
        return Ok(sent);
    }
    let spend = current_spend(db, now).await?;
    for period in Period::ALL {
        let Some(limit) = limits.limit(period) else {
            continue;
        };
        let spent = spend.of(period);
        let crossed: Vec<u32> = limits
            .alert_thresholds
            .iter()
            .copied()
            .filter(|&t| reached(spent, limit, t))
            .collect();
        if crossed.is_empty() {
            continue;
        }
        let key = period.key(now);
        for &owner in owners {
            let mut claimed = Vec::new();
            for &threshold in &crossed {
                if claim(db, period, &key, threshold, owner, now).await? {
                    claimed.push(threshold);
                }
            }
            let Some(&highest) = claimed.last() else {
                continue;
            };
            let text = alert_html(period, &key, highest, spent, limit, limits.hard_stop);
            match delivery
                .send(owner, &text, Format::Html, Priority::Interactive)
                .await
            {
                Ok(_) => {
                    db.record_send("marking a budget alert sent", || {
                        mark_sent(db, period, &key, &claimed, owner, now)
                    })
                    .await;
                    tracing::info!(
                        period = period.as_str(),
                        period_key = %key,
                        threshold = highest,
                        "budget alert sent to an owner"
                    );
                    sent.push(SentAlert {
                        owner_id: owner,
                        period,
                        period_key: key.clone(),
                        threshold: highest,
                        thresholds: claimed,
                        spend_nanos: spent,
                        limit_nanos: limit,
                    });
                }
                Err(error) => {
                    // Give the claim back so that the next check retries this alert.
                    release(db, period, &key, &claimed, owner).await?;
                    tracing::warn!(
                        period = period.as_str(),
                        period_key = %key,
                        threshold = highest,
                        %error,
                        "budget alert not delivered; will retry"
                    );
                }
            }
        }
    }
    Ok(sent)
}

/// A statement on one row of `budget_alerts`, its key bound as `$1`–`$4`: period kind, period
/// key, threshold, owner.
fn alert_row(sql: &'static str, period: Period, key: &str, threshold: u32, owner: i64) -> AnyQuery {
    sqlx::query(sql)
        .bind(period.as_str())
        .bind(key)
        .bind(i64::from(threshold))
        .bind(owner)
}

/// Claims one alert; true when this caller won the claim (no one had it yet).
///
/// Delivery is at most once: a claim is released only when Telegram refuses the message. If
/// the process dies between claiming and sending, that alert is not sent for this period (a
/// lost alert is preferred to a duplicate; the `/budget` command and the spend gauges still
/// show the state).
async fn claim(
    db: &Db,
    period: Period,
    key: &str,
    threshold: u32,
    owner: i64,
    now: DateTime<Utc>,
) -> Result<bool, MoneyError> {
    const CLAIM: &str = "INSERT INTO budget_alerts \
         (period_kind, period_key, threshold, owner_id, claimed_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
    let result = alert_row(CLAIM, period, key, threshold, owner)
        .bind(to_millis(now))
        .execute(&db.pool)
        .await
        .ctx("claiming a budget alert")?;
    Ok(result.rows_affected() == 1)
}

async fn mark_sent(
    db: &Db,
    period: Period,
    key: &str,
    thresholds: &[u32],
    owner: i64,
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    const MARK_SENT: &str = "UPDATE budget_alerts SET sent_at = $5 \
         WHERE period_kind = $1 AND period_key = $2 AND threshold = $3 AND owner_id = $4";
    for &threshold in thresholds {
        alert_row(MARK_SENT, period, key, threshold, owner)
            .bind(to_millis(now))
            .execute(&db.pool)
            .await
            .ctx("marking a budget alert sent")?;
    }
    Ok(())
}

async fn release(
    db: &Db,
    period: Period,
    key: &str,
    thresholds: &[u32],
    owner: i64,
) -> Result<(), MoneyError> {
    const RELEASE: &str = "DELETE FROM budget_alerts \
         WHERE period_kind = $1 AND period_key = $2 AND threshold = $3 AND owner_id = $4 \
         AND sent_at IS NULL";
    for &threshold in thresholds {
        alert_row(RELEASE, period, key, threshold, owner)
            .execute(&db.pool)
            .await
            .ctx("releasing an undelivered budget alert")?;
    }
    Ok(())
}

fn alert_html(
    period: Period,
    key: &str,
    threshold: u32,
    spent: i64,
    limit: i64,
    hard_stop: bool,
) -> String {
    let mut text = format!(
        "⚠️ <b>LLM budget: {threshold}% of the {} limit reached</b>\n\
         Spent {} of {} ({}) in {} {key} (UTC).",
        period.adjective(),
        format_usd(spent, 4),
        format_usd(limit, 2),
        percent_of(spent, limit),
        match period {
            Period::Day => "day",
            Period::Month => "month",
        },
    );
    if hard_stop && reached(spent, limit, 100) {
        text.push_str(
            "\nHard stop is on: the bot makes no LLM calls and answers with a polite notice until the period ends or the limit is raised.",
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_compare_exactly() {
        let limit = 5_000_000_000;
        assert!(!reached(3_999_999_999, limit, 80));
        assert!(reached(4_000_000_000, limit, 80));
        assert!(reached(limit, limit, 100));
        assert!(!reached(limit - 1, limit, 100));
        assert_eq!(percent_of(1_234_000_000, limit), "24.7%");
        assert_eq!(percent_of(limit, limit), "100.0%");
    }
}
