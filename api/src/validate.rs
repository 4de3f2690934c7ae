//! Validation of a [`BotConfig`] beyond what its types say. Each error names the field, in the
//! resource's own path syntax, so one line tells a person what to fix.

use crate::{BotConfig, Mode, money, parse_duration};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl ToString) -> Self {
        Self {
            field: field.into(),
            message: message.to_string(),
        }
    }
}

/// Checks what serde cannot: exact prices, durations, time zones' shape, ranges.
pub fn validate(config: &BotConfig) -> Result<(), ConfigError> {
    if config.llm.model.trim().is_empty() {
        return Err(ConfigError::new("llm.model", "must not be empty"));
    }
    if let Some(timeout) = &config.llm.timeout {
        parse_duration(timeout).map_err(|e| ConfigError::new("llm.timeout", e))?;
    }
    if let Some(url) = &config.llm.base_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(ConfigError::new(
            "llm.baseUrl",
            "must start with http:// or https://",
        ));
    }
    if config.mode == Mode::Webhook
        && let Some(path) = config.webhook.as_ref().and_then(|w| w.path.as_deref())
        && !path.starts_with('/')
    {
        return Err(ConfigError::new("webhook.path", "must start with /"));
    }
    if let Some(n) = config.webhook.as_ref().and_then(|w| w.max_connections)
        && !(1..=100).contains(&n)
    {
        return Err(ConfigError::new(
            "webhook.maxConnections",
            "must be 1 to 100",
        ));
    }

    let mut seen = std::collections::HashSet::new();
    for (i, price) in config.pricing.iter().enumerate() {
        if !seen.insert(price.model.as_str()) {
            return Err(ConfigError::new(
                format!("pricing[{i}].model"),
                format!("{:?} is priced twice", price.model),
            ));
        }
        let mut fields = vec![
            ("input", Some(&price.input)),
            ("output", Some(&price.output)),
            ("cacheWrite5m", price.cache_write5m.as_ref()),
            ("cacheWrite1h", price.cache_write1h.as_ref()),
            ("cacheRead", price.cache_read.as_ref()),
        ];
        if let Some(long) = &price.long_prompt {
            fields.extend([
                ("longPrompt.input", Some(&long.input)),
                ("longPrompt.output", Some(&long.output)),
                ("longPrompt.cacheWrite5m", long.cache_write5m.as_ref()),
                ("longPrompt.cacheWrite1h", long.cache_write1h.as_ref()),
                ("longPrompt.cacheRead", long.cache_read.as_ref()),
            ]);
        }
        for (name, value) in fields {
            if let Some(value) = value {
                money::parse_usd_per_mtok(value)
                    .map_err(|e| ConfigError::new(format!("pricing[{i}].{name}"), e))?;
            }
        }
    }

    if let Some(budget) = &config.budget {
        for (name, value) in [("daily", &budget.daily), ("monthly", &budget.monthly)] {
            if let Some(value) = value {
                money::parse_usd_nanos(value)
                    .map_err(|e| ConfigError::new(format!("budget.{name}"), e))?;
            }
        }
        for (i, t) in budget.alert_thresholds().iter().enumerate() {
            if *t == 0 || *t > 1000 {
                return Err(ConfigError::new(
                    format!("budget.alertThresholds[{i}]"),
                    "must be a percentage from 1 to 1000",
                ));
            }
        }
    }

    if let Some(follow_up) = &config.follow_up {
        for (i, after) in follow_up.after.iter().enumerate() {
            parse_duration(after)
                .map_err(|e| ConfigError::new(format!("followUp.after[{i}]"), e))?;
        }
        if follow_up.enabled && follow_up.after.is_empty() {
            return Err(ConfigError::new(
                "followUp.after",
                "must list at least one delay when follow-ups are enabled",
            ));
        }
        if let Some(quiet) = &follow_up.quiet_hours {
            for (name, value) in [("start", &quiet.start), ("end", &quiet.end)] {
                if parse_time_of_day(value).is_none() {
                    return Err(ConfigError::new(
                        format!("followUp.quietHours.{name}"),
                        format!("{value:?} is not a time like 22:00"),
                    ));
                }
            }
        }
    }

    if let Some(rate) = &config.rate_limit {
        if rate.messages == Some(0) {
            return Err(ConfigError::new("rateLimit.messages", "must be at least 1"));
        }
        if let Some(per) = &rate.per {
            let window = parse_duration(per).map_err(|e| ConfigError::new("rateLimit.per", e))?;
            if window.is_zero() {
                return Err(ConfigError::new("rateLimit.per", "must be longer than 0s"));
            }
        }
    }
    Ok(())
}

/// `HH:MM` → minutes after midnight.
pub fn parse_time_of_day(input: &str) -> Option<u32> {
    let (h, m) = input.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BudgetConfig, FollowUpConfig, LlmConfig, ModelPrice};

    fn base() -> BotConfig {
        BotConfig {
            llm: LlmConfig {
                model: "claude-sonnet-4-5".into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_minimal_config_is_valid() {
        validate(&base()).unwrap();
    }

    #[test]
    fn an_inexact_price_names_its_field() {
        let mut config = base();
        config.pricing.push(ModelPrice {
            model: "m".into(),
            input: "3.00".into(),
            output: "15.00".into(),
            cache_read: Some("0.0375".into()),
            ..Default::default()
        });
        let err = validate(&config).unwrap_err();
        assert_eq!(err.field, "pricing[0].cacheRead");
        assert!(err.to_string().contains("nano-USD per token"), "{err}");
    }

    #[test]
    fn bad_budget_follow_up_and_quiet_hours_name_their_fields() {
        let mut config = base();
        config.budget = Some(BudgetConfig {
            daily: Some("five".into()),
            ..Default::default()
        });
        assert_eq!(validate(&config).unwrap_err().field, "budget.daily");

        let mut config = base();
        config.follow_up = Some(FollowUpConfig {
            enabled: true,
            after: vec!["24h".into(), "2 days".into()],
            ..Default::default()
        });
        assert_eq!(validate(&config).unwrap_err().field, "followUp.after[1]");

        let mut config = base();
        config.follow_up = Some(FollowUpConfig {
            enabled: true,
            after: vec!["24h".into()],
            quiet_hours: Some(crate::QuietHours {
                start: "25:00".into(),
                end: "08:00".into(),
                time_zone: None,
            }),
            ..Default::default()
        });
        assert_eq!(
            validate(&config).unwrap_err().field,
            "followUp.quietHours.start"
        );
    }

    #[test]
    fn the_config_round_trips_through_yaml_in_spec_vocabulary() {
        let yaml = r#"
mode: webhook
webhook: {domain: bots.example.com, path: /telegram/sales-bot, maxConnections: 40}
llm: {provider: anthropic, model: claude-sonnet-4-5, fallbackModel: claude-haiku-4-5, maxOutputTokens: 1024}
pricing:
  - {model: claude-sonnet-4-5, input: "3.00", output: "15.00", cacheWrite5m: "3.75", cacheWrite1h: "6.00", cacheRead: "0.30"}
budget: {daily: "5.00", monthly: "100.00", alertThresholds: [50, 80, 100], hardStop: true}
owners: [123456789]
followUp: {enabled: true, after: ["24h", "48h"], quietHours: {start: "22:00", end: "08:00", timeZone: Europe/Berlin}}
"#;
        let config: BotConfig = serde_yaml_ng::from_str(yaml).unwrap();
        validate(&config).unwrap();
        assert_eq!(config.mode, Mode::Webhook);
        assert_eq!(config.pricing[0].cache_write1h.as_deref(), Some("6.00"));
        assert_eq!(config.owners, vec![123456789]);
        let again: BotConfig =
            serde_yaml_ng::from_str(&serde_yaml_ng::to_string(&config).unwrap()).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn time_of_day() {
        assert_eq!(parse_time_of_day("22:00"), Some(1320));
        assert_eq!(parse_time_of_day("00:00"), Some(0));
        assert_eq!(parse_time_of_day("24:00"), None);
        assert_eq!(parse_time_of_day("8:00"), None);
    }
}
