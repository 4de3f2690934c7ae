//! The body of `GET /api/v1/usage` on the metrics port (shape fixed by the operator contract).

use serde::{Deserialize, Serialize};

/// Spend of the current UTC day and month. USD strings are rounded to 4 decimals for reading;
/// the `*Nanos` fields are exact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageSummary {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// `YYYY-MM`, UTC.
    pub month: String,
    pub spend_today_nanos: i64,
    pub spend_today_usd: String,
    pub spend_month_nanos: i64,
    pub spend_month_usd: String,
    pub budget_daily_nanos: Option<i64>,
    pub budget_monthly_nanos: Option<i64>,
    pub requests_today: i64,
    pub unpriced_calls_today: i64,
    /// True when `hardStop` is on and a limit is reached: the bot is making no LLM calls.
    pub hard_stopped: bool,
    /// The leads with the highest spend this month, dearest first (at most `TOP_LEADS`).
    pub top_leads: Vec<super::LeadSpend>,
}

/// `"0.0001"`: USD with 4 decimals and no currency sign.
pub fn usd_plain(nanos: i64) -> String {
    botfleet_api::format_usd(nanos, 4).replacen('$', "", 1)
}
