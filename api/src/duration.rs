//! Durations written as `30s`, `15m`, `24h`, `1h30m`, `2d`, `500ms`.

use std::time::Duration;

use crate::text::text_value;

/// Duration such as `30s`, `15m`, `24h`, `1h30m`, `2d`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h|d))+$";

text_value! {
    /// A duration written as `30s`, `15m`, `24h`, `1h30m`, `2d` or `500ms`.
    pub struct HumanDuration(Duration);
    parse = parse_duration;
    error = DurationError;
    pattern = DURATION_PATTERN;
}

impl HumanDuration {
    pub fn get(&self) -> Duration {
        self.value
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (use e.g. 30s, 15m, 24h, 1h30m)")]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        input: input.to_owned(),
        reason,
    };
    if input.is_empty() {
        return Err(err("empty"));
    }
    let mut total = Duration::ZERO;
    let mut rest = input;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err("expected a number"));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| err("number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_millis: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        rest = &rest[unit_len..];
        let millis = value
            .checked_mul(unit_millis)
            .ok_or_else(|| err("too large"))?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(|| err("too large"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn a_duration_keeps_its_text_and_a_bad_one_names_its_field() {
        #[derive(serde::Deserialize, serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct FollowUp {
            after: Vec<HumanDuration>,
        }
        let yaml = "after:\n- 24h\n- 1h30m\n";
        let follow_up: FollowUp = serde_yaml_ng::from_str(yaml).unwrap();
        assert_eq!(follow_up.after[1].get(), Duration::from_secs(5_400));
        assert_eq!(serde_yaml_ng::to_string(&follow_up).unwrap(), yaml);

        let bad = "after: [24h, 2 days]";
        let err = serde_path_to_error::deserialize::<_, FollowUp>(
            serde_yaml_ng::Deserializer::from_str(bad),
        )
        .err()
        .unwrap();
        assert_eq!(err.path().to_string(), "after[1]");
        assert!(err.to_string().contains("\"2 days\""), "{err}");
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for bad in ["", "10", "h", "1x", "1.5h", "-1h", "1h 30m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
