//! `/llm_stats`: LLM usage of today and the last 7 days, read from the daily rollup only (a
//! few rows per day, whatever the size of the ledger).

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, NaiveDate, Utc};

use super::MoneyError;
use super::period::{day_key, window_first_day};
use crate::db::Db;
use crate::db::SqlContext;
use crate::telegram::escape_html;
use botfleet_api::format_usd;

/// Summed rollup counters (read by column name from `llm_usage_daily`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct UsageTotals {
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_5m_tokens: i64,
    pub cache_write_1h_tokens: i64,
    pub output_tokens: i64,
    pub cost_nanos: i64,
    pub unpriced_calls: i64,
    /// What cache-read tokens would have cost as plain input minus what they cost.
    pub cache_saved_nanos: i64,
}

impl UsageTotals {
    fn add(&mut self, o: &UsageTotals) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.input_tokens += o.input_tokens;
        self.cache_read_tokens += o.cache_read_tokens;
        self.cache_write_5m_tokens += o.cache_write_5m_tokens;
        self.cache_write_1h_tokens += o.cache_write_1h_tokens;
        self.output_tokens += o.output_tokens;
        self.cost_nanos += o.cost_nanos;
        self.unpriced_calls += o.unpriced_calls;
        self.cache_saved_nanos += o.cache_saved_nanos;
    }

    /// Every prompt token: uncached input, cache reads and cache writes.
    pub fn prompt_tokens(&self) -> i64 {
        self.input_tokens
            + self.cache_read_tokens
            + self.cache_write_5m_tokens
            + self.cache_write_1h_tokens
    }

    /// Cache hit rate in tenths of a percent (cache reads / all prompt tokens), rounded half
    /// up; `None` when there were no prompt tokens.
    pub fn cache_hit_rate_tenths(&self) -> Option<i64> {
        let prompt = self.prompt_tokens();
        (prompt > 0).then(|| {
            let p = i128::from(prompt);
            ((i128::from(self.cache_read_tokens) * 1000 + p / 2) / p) as i64
        })
    }
}

/// One reporting window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowStats {
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub total: UsageTotals,
    pub by_model: BTreeMap<String, UsageTotals>,
    pub by_request_type: BTreeMap<String, UsageTotals>,
}

impl WindowStats {
    fn new(first_day: NaiveDate, last_day: NaiveDate) -> Self {
        Self {
            first_day,
            last_day,
            total: UsageTotals::default(),
            by_model: BTreeMap::new(),
            by_request_type: BTreeMap::new(),
        }
    }

    fn add(&mut self, model: &str, request_type: &str, t: &UsageTotals) {
        self.total.add(t);
        self.by_model.entry(model.to_owned()).or_default().add(t);
        self.by_request_type
            .entry(request_type.to_owned())
            .or_default()
            .add(t);
    }
}

/// The numbers behind `/llm_stats`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LlmStats {
    pub today: WindowStats,
    pub last_7_days: WindowStats,
    /// The leads with the highest spend this month, dearest first.
    pub top_leads: Vec<super::LeadSpend>,
}

/// One row of the daily rollup `llm_usage_daily`: a day's calls of one model for one kind of
/// request.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RollupRow {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub model: String,
    pub request_type: String,
    #[sqlx(flatten)]
    pub totals: UsageTotals,
}

/// The rollup rows of `first_day` to `last_day` (inclusive), by day, model and request type.
pub(crate) async fn rollup(
    db: &Db,
    first_day: NaiveDate,
    last_day: NaiveDate,
) -> Result<Vec<RollupRow>, MoneyError> {
    let rows = sqlx::query_as(
        "SELECT day, model, request_type, requests, errors, input_tokens, cache_read_tokens, \
         cache_write_5m_tokens, cache_write_1h_tokens, output_tokens, cost_nanos, unpriced_calls, cache_saved_nanos \
         FROM llm_usage_daily WHERE day >= $1 AND day <= $2 ORDER BY day, model, request_type",
    )
    .bind(day_key(first_day))
    .bind(day_key(last_day))
    .fetch_all(&db.pool)
    .await
    .ctx("reading the daily usage rollup")?;
    Ok(rows)
}

pub(crate) async fn llm_stats(db: &Db, now: DateTime<Utc>) -> Result<LlmStats, MoneyError> {
    let today = now.date_naive();
    let first = window_first_day(now, 7);
    let today_key = day_key(today);
    let mut stats = LlmStats {
        today: WindowStats::new(today, today),
        last_7_days: WindowStats::new(first, today),
        top_leads: Vec::new(),
    };
    for row in rollup(db, first, today).await? {
        stats
            .last_7_days
            .add(&row.model, &row.request_type, &row.totals);
        if row.day == today_key {
            stats.today.add(&row.model, &row.request_type, &row.totals);
        }
    }
    Ok(stats)
}

/// One window of the rollup as `/llm_stats` sums it, and each day's totals (`YYYY-MM-DD`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyWindow {
    pub stats: WindowStats,
    pub by_day: BTreeMap<String, UsageTotals>,
}

pub(crate) async fn daily_window(
    db: &Db,
    first_day: NaiveDate,
    last_day: NaiveDate,
) -> Result<DailyWindow, MoneyError> {
    let mut window = DailyWindow {
        stats: WindowStats::new(first_day, last_day),
        by_day: BTreeMap::new(),
    };
    for row in rollup(db, first_day, last_day).await? {
        window.stats.add(&row.model, &row.request_type, &row.totals);
        window.by_day.entry(row.day).or_default().add(&row.totals);
    }
    Ok(window)
}

/// Telegram HTML of `/llm_stats`. Model names come from config: escaped.
pub fn render_llm_stats(stats: &LlmStats) -> String {
    let mut out = String::from("<b>LLM usage</b>\n");
    render_window(
        &mut out,
        &format!("Today ({} UTC)", stats.today.last_day),
        &stats.today,
    );
    out.push('\n');
    render_window(
        &mut out,
        &format!(
            "Last 7 days ({} – {})",
            stats.last_7_days.first_day, stats.last_7_days.last_day
        ),
        &stats.last_7_days,
    );
    if !stats.top_leads.is_empty() {
        out.push('\n');
        out.push_str(&render_top_leads(&stats.top_leads));
    }
    out
}

/// The "Top leads this month" part of `/llm_stats` as Telegram HTML (the dashboard shows it
/// too); empty when no lead has spent anything this month.
pub fn render_top_leads(leads: &[super::LeadSpend]) -> String {
    let mut out = String::new();
    if leads.is_empty() {
        return out;
    }
    out.push_str("<b>Top leads this month</b>\n");
    for (i, lead) in leads.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}. {} — {} (today {})",
            i + 1,
            lead.chat_id,
            format_usd(lead.spend_month_nanos, 4),
            format_usd(lead.spend_today_nanos, 4),
        );
    }
    out
}

/// One window of `/llm_stats` as Telegram HTML (a subset of HTML: the dashboard shows it as
/// it is), under `title`.
pub fn render_window_html(title: &str, w: &WindowStats) -> String {
    let mut out = String::new();
    render_window(&mut out, title, w);
    out
}

fn render_window(out: &mut String, title: &str, w: &WindowStats) {
    let t = &w.total;
    let _ = writeln!(out, "\n<b>{}</b>", escape_html(title));
    if t.requests == 0 {
        out.push_str("No LLM calls.\n");
        return;
    }
    let _ = writeln!(
        out,
        "Requests: {} ({} failed)",
        group(t.requests),
        group(t.errors)
    );
    let _ = writeln!(
        out,
        "Tokens: input {} · cache read {} · cache write 5m {} · cache write 1h {} · output {}",
        group(t.input_tokens),
        group(t.cache_read_tokens),
        group(t.cache_write_5m_tokens),
        group(t.cache_write_1h_tokens),
        group(t.output_tokens),
    );
    let _ = writeln!(
        out,
        "Cache hit rate: {} · saved {}",
        hit_rate(t),
        format_usd(t.cache_saved_nanos, 4)
    );
    let _ = writeln!(out, "Cost: {}", format_usd(t.cost_nanos, 4));
    if t.unpriced_calls > 0 {
        let _ = writeln!(
            out,
            "⚠️ Unpriced calls: {} (cost unknown, not included)",
            group(t.unpriced_calls)
        );
    }
    out.push_str("By model:\n");
    for (model, m) in &w.by_model {
        render_line(out, &format!("<code>{}</code>", escape_html(model)), m);
    }
    out.push_str("By request type:\n");
    for (request_type, m) in &w.by_request_type {
        render_line(out, &escape_html(request_type), m);
    }
}

fn render_line(out: &mut String, name: &str, t: &UsageTotals) {
    let _ = write!(
        out,
        "• {name}: {} req, in {} / cached {} / out {}, cache {}, {}",
        group(t.requests),
        group(t.input_tokens + t.cache_write_5m_tokens + t.cache_write_1h_tokens),
        group(t.cache_read_tokens),
        group(t.output_tokens),
        hit_rate(t),
        format_usd(t.cost_nanos, 4),
    );
    if t.unpriced_calls > 0 {
        let _ = write!(out, " (+{} unpriced)", group(t.unpriced_calls));
    }
    out.push('\n');
}

fn hit_rate(t: &UsageTotals) -> String {
    match t.cache_hit_rate_tenths() {
        Some(tenths) => format!("{}.{}%", tenths / 10, tenths % 10),
        None => "–".to_owned(),
    }
}

/// `1234567` → `1,234,567`.
pub fn group(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_digits() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }

    #[test]
    fn cache_hit_rate_counts_every_prompt_token() {
        let t = UsageTotals {
            input_tokens: 100,
            cache_read_tokens: 700,
            cache_write_5m_tokens: 150,
            cache_write_1h_tokens: 50,
            ..Default::default()
        };
        assert_eq!(t.cache_hit_rate_tenths(), Some(700));
        assert_eq!(UsageTotals::default().cache_hit_rate_tenths(), None);
    }
}
