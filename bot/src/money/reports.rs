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

pub(crate) async fn lead_stats(db: &Db, now: DateTime<Utc>) -> Result<LeadStats, MoneyError> {
    let today = day_start_millis(now.date_naive());
    let week = day_start_millis(window_first_day(now, 7));
    let count = |condition: &str| {
        format!("COALESCE(CAST(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END) AS BIGINT), 0)")
    };
    let sql = format!(
        "SELECT COUNT(*), {}, {}, {}, {}, {}, {}, {}, {}, {} FROM leads",
        count("first_seen_at >= $1"),
        count("first_seen_at >= $2"),
        count("last_inbound_at >= $1"),
        count("last_inbound_at >= $2"),
        count("last_followup_at >= $1"),
        count("last_followup_at >= $2"),
        count("followups_sent > 0"),
        count("status = 'opted_out'"),
        count("status = 'opted_out' AND opted_out_at >= $2"),
    );
    let r: (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) =
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(today)
            .bind(week)
            .fetch_one(&db.pool)
            .await
            .ctx("counting leads")?;
    Ok(LeadStats {
        total: r.0,
        new_today: r.1,
        new_7d: r.2,
        active_today: r.3,
        active_7d: r.4,
        followed_up_today: r.5,
        followed_up_7d: r.6,
        followed_up_ever: r.7,
        opted_out_total: r.8,
        opted_out_7d: r.9,
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
