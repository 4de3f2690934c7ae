//! The botfleet vocabulary: the sections of a `TelegramBot` spec that the bot also reads from
//! its config file.
//!
//! One set of types serves three readers: platform teams writing YAML, the operator (which
//! embeds these sections in the CRD and renders them into the bot's ConfigMap) and the bot
//! (which loads that ConfigMap). Field names and nesting are the resource's `spec`, camelCase.
//!
//! [`contract`] holds the names both sides must agree on: environment variables, ports, paths.
//!
//! Values written as text (amounts, prices, durations, times of day) are parsed where the YAML
//! is read, into the types of [`money`], [`duration`] and [`time`]; see `text.rs`.
//!
//! Everything here is pure: parsing and validation, no I/O.

pub mod config;
pub mod contract;
pub mod duration;
pub mod money;
mod text;
pub mod time;
pub mod validate;

pub use config::*;
pub use duration::{DURATION_PATTERN, DurationError, HumanDuration, parse_duration};
pub use money::{
    DECIMAL_PATTERN, MoneyError, NANOS_PER_USD, PRICE_PATTERN, UsdAmount, UsdPerMtok, format_usd,
    parse_usd_nanos, parse_usd_per_mtok,
};
pub use time::{TIME_OF_DAY_PATTERN, TimeOfDay, TimeOfDayError};
pub use validate::{ConfigError, validate};
