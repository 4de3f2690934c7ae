//! Wall-clock times of day, `HH:MM` (24-hour).

use crate::text::text_value;

/// Wall-clock time of day, `HH:MM` (24-hour).
pub const TIME_OF_DAY_PATTERN: &str = r"^([01][0-9]|2[0-3]):[0-5][0-9]$";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a time like 22:00")]
pub struct TimeOfDayError(pub String);

text_value! {
    /// A time of day such as `22:00`, held as minutes after midnight.
    pub struct TimeOfDay(u32);
    parse = parse_time_of_day;
    error = TimeOfDayError;
    pattern = TIME_OF_DAY_PATTERN;
}

impl TimeOfDay {
    /// Minutes after midnight, 0 to 1439.
    pub fn minute_of_day(&self) -> u32 {
        self.value
    }
}

/// `HH:MM` → minutes after midnight.
pub fn parse_time_of_day(input: &str) -> Result<u32, TimeOfDayError> {
    let err = || TimeOfDayError(input.to_owned());
    let (h, m) = input.split_once(':').ok_or_else(err)?;
    let digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(m) {
        return Err(err());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
    if h < 24 && m < 60 {
        Ok(h * 60 + m)
    } else {
        Err(err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hours_and_minutes() {
        assert_eq!(parse_time_of_day("22:00"), Ok(1320));
        assert_eq!(parse_time_of_day("00:00"), Ok(0));
        assert_eq!(parse_time_of_day("23:59"), Ok(1439));
        for bad in ["24:00", "8:00", "08:60", "0800", "+1:00", "ab:cd", ""] {
            assert!(parse_time_of_day(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_time_keeps_its_text_and_a_bad_one_names_its_field() {
        #[derive(serde::Deserialize, serde::Serialize)]
        struct Quiet {
            start: TimeOfDay,
            end: TimeOfDay,
        }
        let yaml = "start: '22:00'\nend: 08:30\n";
        let quiet: Quiet = serde_yaml_ng::from_str(yaml).unwrap();
        assert_eq!(quiet.start.minute_of_day(), 1320);
        assert_eq!(quiet.end.minute_of_day(), 510);
        assert_eq!(quiet.end.as_str(), "08:30");

        let err = serde_path_to_error::deserialize::<_, Quiet>(
            serde_yaml_ng::Deserializer::from_str("start: '25:00'\nend: '08:00'"),
        )
        .err()
        .unwrap();
        assert_eq!(err.path().to_string(), "start");
        assert!(
            err.to_string()
                .contains("\"25:00\" is not a time like 22:00"),
            "{err}"
        );
    }
}
