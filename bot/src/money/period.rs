//! Budget periods: UTC days and months, and the keys they are stored under.

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};

/// A budget period. Both are UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Period {
    Day,
    Month,
}

impl Period {
    pub const ALL: [Period; 2] = [Period::Day, Period::Month];

    /// The `period` metric label and the `period_kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// The key of the period containing `now`: `2026-11-22` or `2026-11`. A new key is a new
    /// period: alerts claimed under the old key no longer apply.
    pub fn key(self, now: DateTime<Utc>) -> String {
        match self {
            Period::Day => day_key(now.date_naive()),
            Period::Month => now.format("%Y-%m").to_string(),
        }
    }

    /// The first day of the period containing `now`.
    pub fn first_day(self, now: DateTime<Utc>) -> NaiveDate {
        let today = now.date_naive();
        match self {
            Period::Day => today,
            Period::Month => today.with_day(1).unwrap_or(today),
        }
    }

    /// "daily" / "monthly", for people.
    pub fn adjective(self) -> &'static str {
        match self {
            Period::Day => "daily",
            Period::Month => "monthly",
        }
    }
}

/// The rollup's `day` column: `YYYY-MM-DD`, which sorts and compares correctly as text.
pub fn day_key(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// The first day of the `days`-day window ending today (today counts as one).
pub fn window_first_day(now: DateTime<Utc>, days: u64) -> NaiveDate {
    let today = now.date_naive();
    today
        .checked_sub_days(Days::new(days.saturating_sub(1)))
        .unwrap_or(today)
}

/// Milliseconds since the epoch at 00:00 UTC of `day`.
pub fn day_start_millis(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keys_roll_over_at_utc_midnight_and_month_start() {
        let before = Utc.with_ymd_and_hms(2026, 11, 30, 23, 59, 59).unwrap();
        let after = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        assert_eq!(Period::Day.key(before), "2026-11-30");
        assert_eq!(Period::Day.key(after), "2026-12-01");
        assert_eq!(Period::Month.key(before), "2026-11");
        assert_eq!(Period::Month.key(after), "2026-12");
        assert_eq!(Period::Month.first_day(before).to_string(), "2026-11-01");
        assert_eq!(window_first_day(after, 7).to_string(), "2026-11-25");
        assert_eq!(
            day_start_millis(after.date_naive()),
            after.timestamp_millis()
        );
    }
}
