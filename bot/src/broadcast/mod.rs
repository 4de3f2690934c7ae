//! Broadcasts: an owner's announcement reaches every opted-in lead once, within Telegram's
//! limits.
//!
//! - [`compose`]: the owner's side. `/broadcast [30d] [at 2026-12-24 10:00]`, then the message
//!   (text with its formatting, a photo or a document, link buttons); a preview with the
//!   audience and Confirm / Cancel buttons; `/broadcasts`; `/broadcast_cancel <id>`.
//! - [`store`]: the durable job — a broadcast row and one row per recipient, claimed in the
//!   database so no two senders send the same row.
//! - [`sender`]: runs confirmed broadcasts (in the scheduler, so one sender: the leader),
//!   paced by the outbound limiter at `Priority::Bulk` (replies go first), resumable after a
//!   crash where it stopped.
//! - [`progress`]: the owner's progress message, edited in place, and the final report.
//! - [`content`]: the message itself, and sending it to one chat.
//!
//! Opt-out: `/stop` (or blocking the bot) stops broadcasts as it stops follow-ups; a 403 while
//! broadcasting opts the lead out the same way. `broadcast.optOutLine` ends every message.

pub mod compose;
pub mod content;
pub mod progress;
pub mod sender;
pub mod store;

use botfleet_api::{BotConfig, BroadcastConfig, ConfigError};
use chrono_tz::Tz;

use crate::db::SqlError;
use crate::telegram::TelegramError;

#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error("broadcast: {0}")]
    Telegram(#[from] TelegramError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl BroadcastError {
    pub fn is_transient(&self) -> bool {
        match self {
            BroadcastError::Sql(_) => true,
            BroadcastError::Telegram(e) => e.is_transient(),
            BroadcastError::Config(_) => false,
        }
    }
}

/// The `broadcast` section, read.
#[derive(Debug, Clone)]
pub struct Settings {
    pub opt_out_line: Option<String>,
    pub time_zone: Tz,
    pub max_attempts: u32,
}

impl Settings {
    pub fn from_config(config: &BotConfig) -> Result<Self, ConfigError> {
        let section = config.broadcast.clone().unwrap_or_default();
        let (field, zone) = match (&section.time_zone, quiet_hours_zone(config)) {
            (Some(zone), _) => ("broadcast.timeZone", zone.as_str()),
            (None, Some(zone)) => ("followUp.quietHours.timeZone", zone),
            (None, None) => ("broadcast.timeZone", "UTC"),
        };
        let time_zone: Tz = zone
            .parse()
            .map_err(|_| ConfigError::new(field, format!("{zone:?} is not an IANA time zone")))?;
        Ok(Self {
            opt_out_line: section
                .opt_out_line
                .as_deref()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
            time_zone,
            max_attempts: section.max_attempts(),
        })
    }

    /// Characters the opt-out line adds to a message (with the blank line before it).
    pub fn opt_out_chars(&self) -> usize {
        self.opt_out_line
            .as_deref()
            .map_or(0, |l| l.encode_utf16().count() + 2)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            opt_out_line: None,
            time_zone: Tz::UTC,
            max_attempts: BroadcastConfig::DEFAULT_MAX_ATTEMPTS,
        }
    }
}

fn quiet_hours_zone(config: &BotConfig) -> Option<&str> {
    config
        .follow_up
        .as_ref()?
        .quiet_hours
        .as_ref()?
        .time_zone
        .as_deref()
}
