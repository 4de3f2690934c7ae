//! `/stats` (leads) and `/budget` (spend against limits) for owners, as Telegram HTML.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::MoneyError;
use super::budget::{BudgetLimits, Spend, percent_of, reached};
use super::period::{Period, day_start_millis, window_first_day};
use super::stats::group;
use crate::db::Db;
use crate::db::SqlContext;
use botfleet_api::format_usd;

/// Lead counts behind `/stats`. "Today" is the UTC day; "7 days" includes today.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeadStats {
    pub total: i64,
    pub new_today: i64,
    pub new_7d: i64,
    /// Leads who wrote to the bot in the window.
    pub active_today: i64,
    pub active_7d: i64,
    /// Leads who got a follow-up in the window.
    pub followed_up_today: i64,
    pub followed_up_7d: i64,
    /// Leads who ever got at least one follow-up.
    pub followed_up_ever: i64,
    pub opted_out_total: i64,
    pub opted_out_7d: i64,
}

/// Leads counted in `[from_ms, until_ms)`: each count by the time its column records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeadCounts {
    /// First wrote to the bot.
    pub new: i64,
    /// Last wrote to the bot.
    pub active: i64,
    /// Last got a follow-up.
    pub followed_up: i64,
    pub opted_out: i64,
}

pub(crate) async fn lead_counts(
    db: &Db,
    from_ms: i64,
    until_ms: i64,
) -> Result<LeadCounts, MoneyError> {
    let count = |condition: &str| {
        format!("COALESCE(CAST(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END) AS BIGINT), 0)")
    };
    let within = |column: &str| count(&format!("{column} >= $1 AND {column} < $2"));
    let sql = format!(
        "SELECT {}, {}, {}, {} FROM leads",
        within("first_seen_at"),
        within("last_inbound_at"),
        within("last_followup_at"),
        count("status = 'opted_out' AND opted_out_at >= $1 AND opted_out_at < $2"),
    );
    let r: (i64, i64, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(from_ms)
        .bind(until_ms)
        .fetch_one(&db.pool)
        .await
        .ctx("counting leads")?;
    Ok(LeadCounts {
        new: r.0,
        active: r.1,
        followed_up: r.2,
        opted_out: r.3,
    })
}

pub(crate) async fn lead_stats(db: &Db, now: DateTime<Utc>) -> Result<LeadStats, MoneyError> {
    let today = lead_counts(db, day_start_millis(now.date_naive()), i64::MAX).await?;
    let week = lead_counts(db, day_start_millis(window_first_day(now, 7)), i64::MAX).await?;
    let totals: (i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), \
         COALESCE(CAST(SUM(CASE WHEN followups_sent > 0 THEN 1 ELSE 0 END) AS BIGINT), 0), \
         COALESCE(CAST(SUM(CASE WHEN status = 'opted_out' THEN 1 ELSE 0 END) AS BIGINT), 0) \
         FROM leads",
    )
    .fetch_one(&db.pool)
    .await
    .ctx("counting leads")?;
    Ok(LeadStats {
        total: totals.0,
        new_today: today.new,
        new_7d: week.new,
        active_today: today.active,
        active_7d: week.active,
        followed_up_today: today.followed_up,
        followed_up_7d: week.followed_up,
        followed_up_ever: totals.1,
        opted_out_total: totals.2,
        opted_out_7d: week.opted_out,
    })
}

/// `1,204 today · 8,310 in 7 days`.
fn today_and_7_days(today: i64, last_7_days: i64) -> String {
    format!("{} today · {} in 7 days", group(today), group(last_7_days))
}

pub fn render_lead_stats(s: &LeadStats) -> String {
    let mut out = String::from("<b>Leads</b>\n");
    let _ = writeln!(out, "Total: {}", group(s.total));
    let _ = writeln!(out, "New: {}", today_and_7_days(s.new_today, s.new_7d));
    let _ = writeln!(
        out,
        "Active (wrote to the bot): {}",
        today_and_7_days(s.active_today, s.active_7d)
    );
    let _ = writeln!(
        out,
        "Followed up: {} · {} ever",
        today_and_7_days(s.followed_up_today, s.followed_up_7d),
        group(s.followed_up_ever)
    );
    let _ = writeln!(
        out,
        "Opted out: {} in 7 days · {} in total",
        group(s.opted_out_7d),
        group(s.opted_out_total)
    );
    out
}

pub fn render_budget(limits: &BudgetLimits, spend: &Spend, now: DateTime<Utc>) -> String {
    let mut out = String::from("<b>LLM budget</b>\n");
    for period in Period::ALL {
        let label = match period {
            Period::Day => format!("Today ({} UTC)", period.key(now)),
            Period::Month => format!("This month ({})", period.key(now)),
        };
        let spent = spend.of(period);
        match limits.limit(period) {
            Some(limit) => {
                let _ = write!(
                    out,
                    "{label}: {} of {} ({})",
                    format_usd(spent, 4),
                    format_usd(limit, 2),
                    percent_of(spent, limit)
                );
                if reached(spent, limit, 100) {
                    out.push_str(" — <b>limit reached</b>");
                }
                out.push('\n');
            }
            None => {
                let _ = writeln!(
                    out,
                    "{label}: {} (no {} limit)",
                    format_usd(spent, 4),
                    period.adjective()
                );
            }
        }
    }
    if spend.unpriced_calls_today > 0 {
        let _ = writeln!(
            out,
            "⚠️ {} unpriced calls today: their cost is not included.",
            group(spend.unpriced_calls_today)
        );
    }
    if limits.daily_nanos.is_some() || limits.monthly_nanos.is_some() {
        let thresholds: Vec<String> = limits
            .alert_thresholds
            .iter()
            .map(|t| format!("{t}%"))
            .collect();
        if thresholds.is_empty() {
            out.push_str("Alerts: none.\n");
        } else {
            let _ = writeln!(out, "Alerts at {}.", thresholds.join(", "));
        }
        out.push_str(if limits.hard_stop {
            "Hard stop: on (no LLM calls once a limit is reached).\n"
        } else {
            "Hard stop: off (limits only alert).\n"
        });
    }
    out
}
