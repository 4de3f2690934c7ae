//! What the dashboard shows for a period, read through the same functions `/llm_stats`,
//! `/stats`, `/budget`, `/leads` and `/broadcasts` use, so every number is theirs.

use chrono::{DateTime, Days, NaiveDate, Utc};

use crate::broadcast::store::{self as broadcasts, Broadcast, Counts};
use crate::db::Db;
use crate::handoff::store::{self as handoffs, OpenHandoff};
use crate::money::{
    DailyWindow, LeadCounts, LeadSpend, LeadStats, Money, MoneyError, Period, Spend,
};

/// How many recent broadcasts the dashboard lists.
const RECENT_BROADCASTS: i64 = 5;

/// The dashboard's period filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum View {
    /// Today (UTC): `/llm_stats`'s "Today".
    Day,
    /// The last 7 days with today: `/llm_stats`'s "Last 7 days".
    #[default]
    Week,
    /// This calendar month (UTC): `/budget`'s "This month".
    Month,
}

impl View {
    pub const ALL: [View; 3] = [View::Day, View::Week, View::Month];

    /// `day`, `week` or `month` (the `period` query parameter).
    pub fn parse(text: &str) -> Option<View> {
        View::ALL.into_iter().find(|v| v.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            View::Day => "day",
            View::Week => "week",
            View::Month => "month",
        }
    }

    /// The first day of the view's window ending today.
    pub fn first_day(self, now: DateTime<Utc>) -> NaiveDate {
        match self {
            View::Day => Period::Day.first_day(now),
            View::Week => crate::money::window_first_day(now, 7),
            View::Month => Period::Month.first_day(now),
        }
    }

    /// The window's title, as `/llm_stats` and `/budget` name it.
    pub fn title(self, first: NaiveDate, last: NaiveDate) -> String {
        match self {
            View::Day => format!("Today ({last} UTC)"),
            View::Week => format!("Last 7 days ({first} – {last})"),
            View::Month => format!("This month ({first} – {last})"),
        }
    }
}

/// One UTC day of leads: `/stats`'s counts and the handoffs opened that day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeadDay {
    pub day: NaiveDate,
    pub counts: LeadCounts,
    pub handed_over: i64,
}

/// Everything one view of the dashboard shows.
#[derive(Clone, Debug)]
pub struct Dashboard {
    pub view: View,
    pub now: DateTime<Utc>,
    pub usage: DailyWindow,
    pub spend: Spend,
    /// `/llm_stats`' top leads: this month's, whatever the view.
    pub top_leads: Vec<LeadSpend>,
    pub lead_days: Vec<LeadDay>,
    pub lead_stats: LeadStats,
    pub open_handoffs: Vec<OpenHandoff>,
    pub broadcasts: Vec<(Broadcast, Counts)>,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error(transparent)]
    Sql(#[from] crate::db::SqlError),
}

/// Reads the dashboard of `view` at `now`.
pub async fn load(
    db: &Db,
    money: &Money,
    view: View,
    now: DateTime<Utc>,
) -> Result<Dashboard, DataError> {
    let (first, today) = (view.first_day(now), now.date_naive());
    Ok(Dashboard {
        view,
        now,
        usage: money.daily_window(db, first, today).await?,
        spend: money.spend(db, now).await?,
        top_leads: money.top_leads(db, now).await?,
        lead_days: lead_days(db, money, first, today).await?,
        lead_stats: money.lead_stats(db, now).await?,
        open_handoffs: handoffs::list_open(db).await?,
        broadcasts: broadcasts::recent(db, RECENT_BROADCASTS).await?,
    })
}

/// Each day of `first..=last`, counted as `/stats` counts leads; handed over = handoffs opened
/// that day (the difference of two "opened since" counts, as `/stats` counts them).
async fn lead_days(
    db: &Db,
    money: &Money,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<Vec<LeadDay>, DataError> {
    let mut days = Vec::new();
    let mut day = first;
    while day <= last {
        let next = day.checked_add_days(Days::new(1)).unwrap_or(day);
        let (from, until) = (
            crate::money::day_start_millis(day),
            crate::money::day_start_millis(next),
        );
        let handed_over =
            handoffs::opened_since(db, from).await? - handoffs::opened_since(db, until).await?;
        days.push(LeadDay {
            day,
            counts: money.lead_counts(db, from, until).await?,
            handed_over,
        });
        if next == day {
            break;
        }
        day = next;
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn views_are_the_commands_windows() {
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap();
        assert_eq!(View::Day.first_day(now).to_string(), "2026-12-03");
        assert_eq!(View::Week.first_day(now).to_string(), "2026-11-27");
        assert_eq!(View::Month.first_day(now).to_string(), "2026-12-01");
        assert_eq!(View::parse("month"), Some(View::Month));
        assert_eq!(View::parse("year"), None);
    }
}
