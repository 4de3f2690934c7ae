//! Which leads are due a follow-up, and when follow-ups may go out: pure functions of the
//! `followUp` config, a lead's counters and the time.
//!
//! Step `i` (0-based; follow-up `i + 1`) is due when the lead has been silent for `after[i]`
//! since their last message, has had exactly `i` follow-ups since then, and — for later steps —
//! the previous follow-up went out at least `after[i] - after[i - 1]` ago (so a sequence held
//! back by quiet hours or an outage does not fire two follow-ups back to back).

use std::time::Duration;

use botfleet_api::{ConfigError, FollowUpConfig, QuietHours};
use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

/// The parsed follow-up schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowUpPlan {
    /// Silence since the lead's last message before each follow-up, strictly increasing.
    pub after: Vec<Duration>,
    pub quiet_hours: Option<QuietWindow>,
}

/// A daily window of local time without follow-ups, `[start, end)` in minutes after midnight.
/// `start > end` spans midnight; `start == end` is empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuietWindow {
    pub start_minute: u32,
    pub end_minute: u32,
    pub time_zone: Tz,
}

/// What the scheduler knows about one lead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeadState {
    pub active: bool,
    pub last_inbound_ms: i64,
    pub followups_sent: u32,
    pub last_followup_ms: Option<i64>,
}

impl FollowUpPlan {
    /// `None` when follow-ups are off (no section, `enabled: false`, or no steps).
    pub fn from_config(config: Option<&FollowUpConfig>) -> Result<Option<Self>, ConfigError> {
        let Some(config) = config.filter(|c| c.enabled && !c.after.is_empty()) else {
            return Ok(None);
        };
        let mut after = Vec::with_capacity(config.after.len());
        for (i, delay) in config.after.iter().enumerate() {
            let field = format!("followUp.after[{i}]");
            let d = delay.get();
            if after.last().is_some_and(|prev| d <= *prev) {
                return Err(ConfigError::new(
                    field,
                    "each delay counts from the lead's last message, so it must be longer than the one before",
                ));
            }
            if d.is_zero() {
                return Err(ConfigError::new(field, "must be longer than 0s"));
            }
            after.push(d);
        }
        let quiet_hours = config
            .quiet_hours
            .as_ref()
            .map(QuietWindow::from_config)
            .transpose()?;
        Ok(Some(Self { after, quiet_hours }))
    }

    pub fn steps(&self) -> usize {
        self.after.len()
    }

    /// The latest `last_inbound_at` (ms) for which step `step` is due at `now`.
    pub fn cutoff_ms(&self, step: usize, now: DateTime<Utc>) -> i64 {
        now.timestamp_millis() - millis(self.after[step])
    }

    /// The latest `last_followup_at` (ms) that lets step `step` go out at `now`; `None` for
    /// the first step, which has no previous follow-up to keep a distance from.
    pub fn gap_cutoff_ms(&self, step: usize, now: DateTime<Utc>) -> Option<i64> {
        (step > 0).then(|| now.timestamp_millis() - millis(self.after[step] - self.after[step - 1]))
    }

    /// The step (0-based) due for `lead` at `now`, if any. Quiet hours are not considered here
    /// (see [`FollowUpPlan::is_quiet`]): a lead is due even while sends wait for the morning.
    pub fn due_step(&self, lead: &LeadState, now: DateTime<Utc>) -> Option<usize> {
        if !lead.active {
            return None;
        }
        let step = usize::try_from(lead.followups_sent).ok()?;
        if step >= self.steps() || lead.last_inbound_ms > self.cutoff_ms(step, now) {
            return None;
        }
        match (self.gap_cutoff_ms(step, now), lead.last_followup_ms) {
            (Some(gap_cutoff), Some(last)) if last > gap_cutoff => None,
            _ => Some(step),
        }
    }

    /// True while follow-ups must wait (quiet hours in the configured zone).
    pub fn is_quiet(&self, now: DateTime<Utc>) -> bool {
        self.quiet_hours.as_ref().is_some_and(|q| q.contains(now))
    }
}

impl QuietWindow {
    pub fn from_config(quiet: &QuietHours) -> Result<Self, ConfigError> {
        let zone = quiet.time_zone.as_deref().unwrap_or("UTC");
        let time_zone: Tz = zone.parse().map_err(|_| {
            ConfigError::new(
                "followUp.quietHours.timeZone",
                format!("{zone:?} is not an IANA time zone like Europe/Berlin"),
            )
        })?;
        Ok(Self {
            start_minute: quiet.start.minute_of_day(),
            end_minute: quiet.end.minute_of_day(),
            time_zone,
        })
    }

    /// Whether `now` falls in the window, by the local wall clock of the zone.
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.time_zone);
        let minute = local.hour() * 60 + local.minute();
        let (start, end) = (self.start_minute, self.end_minute);
        if start <= end {
            start <= minute && minute < end
        } else {
            minute >= start || minute < end
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const HOUR_MS: i64 = 3_600_000;

    fn plan(after: &[&str], quiet: Option<(&str, &str, &str)>) -> FollowUpPlan {
        FollowUpPlan::from_config(Some(&FollowUpConfig {
            enabled: true,
            after: after.iter().map(|s| s.parse().unwrap()).collect(),
            quiet_hours: quiet.map(|(start, end, tz)| QuietHours {
                start: start.parse().unwrap(),
                end: end.parse().unwrap(),
                time_zone: Some(tz.into()),
            }),
            prompt: None,
        }))
        .unwrap()
        .unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
    }

    fn lead(silent_hours: i64, sent: u32, last_followup_hours_ago: Option<i64>) -> LeadState {
        let now = now().timestamp_millis();
        LeadState {
            active: true,
            last_inbound_ms: now - silent_hours * HOUR_MS,
            followups_sent: sent,
            last_followup_ms: last_followup_hours_ago.map(|h| now - h * HOUR_MS),
        }
    }

    #[test]
    fn first_follow_up_after_the_first_delay() {
        let p = plan(&["24h", "48h"], None);
        assert_eq!(p.due_step(&lead(23, 0, None), now()), None);
        assert_eq!(p.due_step(&lead(24, 0, None), now()), Some(0));
        assert_eq!(p.due_step(&lead(100, 0, None), now()), Some(0));
    }

    #[test]
    fn second_follow_up_counts_from_the_last_message_and_keeps_a_gap() {
        let p = plan(&["24h", "48h"], None);
        // One follow-up sent 24 h ago, lead silent 48 h: step 2 is due.
        assert_eq!(p.due_step(&lead(48, 1, Some(24)), now()), Some(1));
        assert_eq!(p.due_step(&lead(47, 1, Some(23)), now()), None);
        // Silent long enough, but follow-up 1 went out an hour ago (it was held back): wait.
        assert_eq!(p.due_step(&lead(72, 1, Some(1)), now()), None);
        assert_eq!(p.due_step(&lead(72, 1, Some(24)), now()), Some(1));
    }

    #[test]
    fn nothing_after_the_last_step_and_nothing_to_opted_out_leads() {
        let p = plan(&["24h", "48h"], None);
        assert_eq!(p.due_step(&lead(1000, 2, Some(500)), now()), None);
        let mut stopped = lead(100, 0, None);
        stopped.active = false;
        assert_eq!(p.due_step(&stopped, now()), None);
    }

    #[test]
    fn a_reply_starts_the_sequence_over() {
        let p = plan(&["24h", "48h"], None);
        // The lead wrote 2 h ago: counters reset to 0, nothing due until 24 h of silence.
        assert_eq!(p.due_step(&lead(2, 0, Some(30)), now()), None);
        assert_eq!(p.due_step(&lead(24, 0, Some(30)), now()), Some(0));
    }

    #[test]
    fn quiet_hours_span_midnight_in_the_configured_zone() {
        let p = plan(&["24h"], Some(("22:00", "08:00", "Europe/Berlin")));
        let at = |h, m| Utc.with_ymd_and_hms(2026, 1, 15, h, m, 0).unwrap();
        // Berlin is UTC+1 in January.
        assert!(p.is_quiet(at(21, 0)), "22:00 Berlin");
        assert!(p.is_quiet(at(23, 30)), "00:30 Berlin");
        assert!(p.is_quiet(at(6, 59)), "07:59 Berlin");
        assert!(!p.is_quiet(at(7, 0)), "08:00 Berlin: the window has ended");
        assert!(!p.is_quiet(at(20, 59)), "21:59 Berlin");
        // Summer time: UTC+2.
        let summer = Utc.with_ymd_and_hms(2026, 7, 15, 20, 30, 0).unwrap();
        assert!(p.is_quiet(summer), "22:30 Berlin in July");
    }

    #[test]
    fn quiet_hours_within_one_day() {
        let p = plan(&["24h"], Some(("12:00", "14:00", "UTC")));
        let at = |h| Utc.with_ymd_and_hms(2026, 1, 15, h, 0, 0).unwrap();
        assert!(!p.is_quiet(at(11)));
        assert!(p.is_quiet(at(12)));
        assert!(p.is_quiet(at(13)));
        assert!(!p.is_quiet(at(14)));
        assert!(!plan(&["24h"], None).is_quiet(at(3)));
    }

    #[test]
    fn config_errors_name_the_field() {
        let cfg = |after: &[&str], tz: &str| FollowUpConfig {
            enabled: true,
            after: after.iter().map(|s| s.parse().unwrap()).collect(),
            quiet_hours: Some(QuietHours {
                start: "22:00".parse().unwrap(),
                end: "08:00".parse().unwrap(),
                time_zone: Some(tz.into()),
            }),
            prompt: None,
        };
        let err = FollowUpPlan::from_config(Some(&cfg(&["24h"], "Mars/Olympus"))).unwrap_err();
        assert!(
            err.to_string().contains("followUp.quietHours.timeZone"),
            "{err}"
        );
        let err = FollowUpPlan::from_config(Some(&cfg(&["48h", "24h"], "UTC"))).unwrap_err();
        assert!(err.to_string().contains("followUp.after[1]"), "{err}");
        let mut off = cfg(&["24h"], "UTC");
        off.enabled = false;
        assert_eq!(FollowUpPlan::from_config(Some(&off)).unwrap(), None);
        assert_eq!(FollowUpPlan::from_config(None).unwrap(), None);
    }
}
