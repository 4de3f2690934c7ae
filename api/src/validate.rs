//! Validation of a [`BotConfig`] beyond what its types say. Each error names the field, in the
//! resource's own path syntax, so one line tells a person what to fix.

use crate::{BotConfig, BroadcastConfig, Mode, WelcomeConfig};

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

/// Checks what the types cannot: ranges and rules across fields. Amounts, prices, durations
/// and times of day are already parsed (a bad one fails deserialization, naming its field).
pub fn validate(config: &BotConfig) -> Result<(), ConfigError> {
    if config.llm.model.trim().is_empty() {
        return Err(ConfigError::new("llm.model", "must not be empty"));
    }
    if config.llm.timeout().is_zero() {
        return Err(ConfigError::new("llm.timeout", "must be longer than 0s"));
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
    for (i, source) in config.knowledge.iter().enumerate() {
        let given = [
            source.config_map_key_ref.is_some(),
            source.inline.is_some(),
            source.path.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(ConfigError::new(
                format!("knowledge[{i}]"),
                "give exactly one of configMapKeyRef, inline or path",
            ));
        }
    }

    let mut seen = std::collections::HashSet::new();
    for (i, price) in config.pricing.iter().enumerate() {
        if !seen.insert(price.model.as_str()) {
            return Err(ConfigError::new(
                format!("pricing[{i}].model"),
                format!("{:?} is priced twice", price.model),
            ));
        }
    }

    if let Some(budget) = &config.budget {
        for (i, t) in budget.alert_thresholds().iter().enumerate() {
            if *t == 0 || *t > 1000 {
                return Err(ConfigError::new(
                    format!("budget.alertThresholds[{i}]"),
                    "must be a percentage from 1 to 1000",
                ));
            }
        }
    }

    if let Some(follow_up) = &config.follow_up
        && follow_up.enabled
        && follow_up.after.is_empty()
    {
        return Err(ConfigError::new(
            "followUp.after",
            "must list at least one delay when follow-ups are enabled",
        ));
    }

    if let Some(rate) = &config.rate_limit {
        if rate.messages == Some(0) {
            return Err(ConfigError::new("rateLimit.messages", "must be at least 1"));
        }
        if rate.per().is_zero() {
            return Err(ConfigError::new("rateLimit.per", "must be longer than 0s"));
        }
    }

    if let Some(welcome) = &config.welcome {
        if welcome.suggestions.len() > WelcomeConfig::MAX_SUGGESTIONS {
            return Err(ConfigError::new(
                "welcome.suggestions",
                format!("at most {} suggestions", WelcomeConfig::MAX_SUGGESTIONS),
            ));
        }
        for (i, suggestion) in welcome.suggestions.iter().enumerate() {
            let chars = suggestion.trim().chars().count();
            if chars == 0 || chars > WelcomeConfig::MAX_SUGGESTION_CHARS {
                return Err(ConfigError::new(
                    format!("welcome.suggestions[{i}]"),
                    format!(
                        "must be 1 to {} characters",
                        WelcomeConfig::MAX_SUGGESTION_CHARS
                    ),
                ));
            }
        }
    }

    if let Some(broadcast) = &config.broadcast {
        if broadcast
            .max_attempts
            .is_some_and(|n| !(1..=10).contains(&n))
        {
            return Err(ConfigError::new(
                "broadcast.maxAttempts",
                "must be from 1 to 10",
            ));
        }
        if let Some(line) = &broadcast.opt_out_line
            && line.chars().count() > BroadcastConfig::MAX_OPT_OUT_LINE_CHARS
        {
            return Err(ConfigError::new(
                "broadcast.optOutLine",
                format!(
                    "must be at most {} characters",
                    BroadcastConfig::MAX_OPT_OUT_LINE_CHARS
                ),
            ));
        }
    }
    if let Some(handoff) = &config.handoff {
        validate_handoff(handoff, &config.owners)?;
    }
    Ok(())
}

fn validate_handoff(handoff: &crate::HandoffConfig, owners: &[i64]) -> Result<(), ConfigError> {
    if !handoff.enabled() {
        return Ok(());
    }
    if handoff.unanswered_limit == Some(0) {
        return Err(ConfigError::new(
            "handoff.unansweredLimit",
            "must be at least 1",
        ));
    }
    if handoff.auto_resume_after().is_some_and(|d| d.is_zero()) {
        return Err(ConfigError::new(
            "handoff.autoResumeAfter",
            "must be longer than 0s",
        ));
    }
    let notify = handoff.notify.clone().unwrap_or_default();
    if notify.chat_id.is_some_and(|id| id >= 0) {
        return Err(ConfigError::new(
            "handoff.notify.chatId",
            "must be a group chat id (negative, e.g. -1001234567890)",
        ));
    }
    if notify.owners.is_empty() && notify.chat_id.is_none() && owners.is_empty() {
        return Err(ConfigError::new(
            "handoff.notify",
            "no one to tell: set `owners`, `handoff.notify.owners` or `handoff.notify.chatId`",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FollowUpConfig, LlmConfig, RateLimitConfig};

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
    fn a_knowledge_source_is_exactly_one_thing() {
        let mut config = base();
        config.knowledge = vec![
            crate::KnowledgeSource {
                inline: Some("Prices: ...".into()),
                ..Default::default()
            },
            crate::KnowledgeSource {
                inline: Some("x".into()),
                path: Some("faq.md".into()),
                ..Default::default()
            },
        ];
        let error = validate(&config).unwrap_err();
        assert_eq!(error.field, "knowledge[1]");
        config.knowledge[1] = crate::KnowledgeSource::default();
        assert_eq!(validate(&config).unwrap_err().field, "knowledge[1]");
        config.knowledge.pop();
        assert_eq!(validate(&config), Ok(()));
    }

    /// Deserializes like the bot's loader: the error names the field path.
    fn parse(yaml: &str) -> Result<BotConfig, String> {
        serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(yaml))
            .map_err(|e| format!("{}: {}", e.path(), e.inner()))
    }

    #[test]
    fn a_minimal_config_is_valid() {
        validate(&base()).unwrap();
    }

    #[test]
    fn the_handoff_section_is_read_and_checked() {
        let config = parse(
            r#"{llm: {model: m}, owners: [1], handoff: {triggers: [command, llmFailure], autoResumeAfter: 2h, notify: {chatId: -100123}, unansweredLimit: 2}}"#,
        )
        .unwrap();
        validate(&config).unwrap();
        let handoff = config.handoff.unwrap();
        assert!(handoff.triggers_on(crate::HandoffTrigger::LlmFailure));
        assert!(!handoff.triggers_on(crate::HandoffTrigger::Llm));
        assert_eq!(
            handoff.auto_resume_after(),
            Some(std::time::Duration::from_secs(7200))
        );
        assert_eq!(
            handoff.wait_alert_after(),
            crate::HandoffConfig::DEFAULT_WAIT_ALERT_AFTER
        );
        assert!(parse(r#"{llm: {model: m}, handoff: {trigger: [command]}}"#).is_err());
        assert!(parse(r#"{llm: {model: m}, handoff: {triggers: [phone]}}"#).is_err());

        let nobody = parse(r#"{llm: {model: m}, handoff: {}}"#).unwrap();
        assert_eq!(validate(&nobody).unwrap_err().field, "handoff.notify");
        let user_id =
            parse(r#"{llm: {model: m}, owners: [1], handoff: {notify: {chatId: 5}}}"#).unwrap();
        assert_eq!(
            validate(&user_id).unwrap_err().field,
            "handoff.notify.chatId"
        );
        let off = parse(r#"{llm: {model: m}, handoff: {enabled: false}}"#).unwrap();
        validate(&off).unwrap();
    }

    #[test]
    fn a_value_that_does_not_parse_is_refused_at_its_field() {
        let cases = [
            (
                r#"{llm: {model: m}, pricing: [{model: m, input: "3.00", output: "15.00", cacheRead: "0.0375"}]}"#,
                "pricing[0].cacheRead: ",
                "nano-USD per token",
            ),
            (
                r#"{llm: {model: m}, budget: {daily: five}}"#,
                "budget.daily: ",
                "not a decimal amount",
            ),
            (
                r#"{llm: {model: m, timeout: soon}}"#,
                "llm.timeout: ",
                "invalid duration",
            ),
            (
                r#"{llm: {model: m}, followUp: {enabled: true, after: ["24h", "2 days"]}}"#,
                "followUp.after[1]: ",
                "invalid duration \"2 days\"",
            ),
            (
                r#"{llm: {model: m}, followUp: {quietHours: {start: "25:00", end: "08:00"}}}"#,
                "followUp.quietHours.start: ",
                "not a time like 22:00",
            ),
            (
                r#"{llm: {model: m}, rateLimit: {per: "1 minute"}}"#,
                "rateLimit.per: ",
                "invalid duration",
            ),
        ];
        for (yaml, path, message) in cases {
            let err = parse(yaml).unwrap_err();
            assert!(err.starts_with(path), "{yaml}: {err}");
            assert!(err.contains(message), "{yaml}: {err}");
        }
    }

    #[test]
    fn rules_across_fields_name_their_field() {
        let mut config = base();
        config.pricing = parse(
            r#"{llm: {model: m}, pricing: [{model: a, input: "1", output: "2"}, {model: a, input: "1", output: "2"}]}"#,
        )
        .unwrap()
        .pricing;
        assert_eq!(validate(&config).unwrap_err().field, "pricing[1].model");

        let mut config = base();
        config.follow_up = Some(FollowUpConfig {
            enabled: true,
            ..Default::default()
        });
        assert_eq!(validate(&config).unwrap_err().field, "followUp.after");

        let mut config = base();
        config.rate_limit = Some(RateLimitConfig {
            messages: None,
            per: Some("0s".parse().unwrap()),
        });
        assert_eq!(validate(&config).unwrap_err().field, "rateLimit.per");

        let mut config = base();
        config.llm.timeout = Some("0ms".parse().unwrap());
        assert_eq!(validate(&config).unwrap_err().field, "llm.timeout");
    }

    #[test]
    fn the_config_round_trips_through_yaml_in_spec_vocabulary() {
        let yaml = r#"
mode: webhook
webhook: {domain: bots.example.com, path: /telegram/sales-bot, maxConnections: 40}
llm: {provider: anthropic, model: claude-sonnet-4-5, fallbackModel: claude-haiku-4-5, maxOutputTokens: 1024, timeout: 45s}
pricing:
  - {model: claude-sonnet-4-5, input: "3.00", output: "15.00", cacheWrite5m: "3.75", cacheWrite1h: "6.00", cacheRead: "0.30"}
budget: {daily: "5.00", monthly: "100.00", alertThresholds: [50, 80, 100], hardStop: true}
owners: [123456789]
followUp: {enabled: true, after: ["24h", "48h"], quietHours: {start: "22:00", end: "08:00", timeZone: Europe/Berlin}}
rateLimit: {messages: 5, per: 1m30s}
"#;
        let config = parse(yaml).unwrap();
        validate(&config).unwrap();
        assert_eq!(config.mode, Mode::Webhook);
        let price = &config.pricing[0];
        assert_eq!(price.cache_write1h.as_ref().unwrap().as_str(), "6.00");
        assert_eq!(
            price.cache_write1h.as_ref().unwrap().nanos_per_token(),
            6_000
        );
        assert_eq!(
            config
                .budget
                .as_ref()
                .unwrap()
                .daily
                .as_ref()
                .unwrap()
                .nanos(),
            5_000_000_000
        );
        assert_eq!(config.llm.timeout(), std::time::Duration::from_secs(45));
        assert_eq!(config.rate_limit.as_ref().unwrap().per().as_secs(), 90);
        assert_eq!(config.owners, vec![123456789]);
        let text = serde_yaml_ng::to_string(&config).unwrap();
        assert!(
            text.contains("cacheRead: '0.30'"),
            "the text as written: {text}"
        );
        assert!(text.contains("- 24h"), "{text}");
        assert_eq!(parse(&text).unwrap(), config);
    }
}
