//! Money as integers. Amounts are nano-USD (`i64`); prices are nano-USD per token.
//!
//! Decimal strings from the resource are parsed exactly; a value that cannot be held exactly is
//! an error, never rounded. Rounding happens only in [`format_usd`], for display.

use crate::text::text_value;

pub const NANOS_PER_USD: i64 = 1_000_000_000;
const TOKENS_PER_MTOK: i64 = 1_000_000;

/// Decimal USD amount, e.g. `"3.00"`: up to 9 digits, up to 9 decimals (always exact in nano-USD).
pub const DECIMAL_PATTERN: &str = r"^[0-9]{1,9}(\.[0-9]{1,9})?$";
/// Price in USD per million tokens, e.g. `"0.30"`: like [`DECIMAL_PATTERN`], but only 3
/// significant decimals (more zeros may follow), so that it is a whole number of nano-USD per
/// token.
pub const PRICE_PATTERN: &str = r"^[0-9]{1,9}(\.[0-9]{1,3}0{0,6})?$";

text_value! {
    /// A USD amount such as a budget limit, written as a decimal (`"5.00"`), held in nano-USD.
    pub struct UsdAmount(i64);
    parse = parse_usd_nanos;
    error = MoneyError;
    pattern = DECIMAL_PATTERN;
}

impl UsdAmount {
    /// The amount in nano-USD.
    pub fn nanos(&self) -> i64 {
        self.value
    }
}

text_value! {
    /// A price in USD per million tokens, written as a decimal (`"3.00"`), held in nano-USD per
    /// token.
    pub struct UsdPerMtok(i64);
    parse = parse_usd_per_mtok;
    error = MoneyError;
    pattern = PRICE_PATTERN;
}

impl UsdPerMtok {
    /// The price in nano-USD per token.
    pub fn nanos_per_token(&self) -> i64 {
        self.value
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("{0:?} is not a decimal amount like \"3.00\"")]
    NotDecimal(String),
    #[error("{0:?} has more than 9 decimals: it cannot be held exactly in nano-USD")]
    TooPrecise(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
    #[error(
        "{0:?} USD per million tokens is not a whole number of nano-USD per token (use at most 3 decimals)"
    )]
    NotWholeNanosPerToken(String),
}

/// Parses a decimal USD amount (`"5.00"`) into nano-USD, exactly.
pub fn parse_usd_nanos(input: &str) -> Result<i64, MoneyError> {
    let (whole, frac) = match input.split_once('.') {
        Some((w, f)) => (w, f),
        None => (input, ""),
    };
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !is_digits(whole) || !is_digits(frac) || input.ends_with('.') {
        return Err(MoneyError::NotDecimal(input.to_owned()));
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 9 {
        return Err(MoneyError::TooPrecise(input.to_owned()));
    }
    let too_large = || MoneyError::TooLarge(input.to_owned());
    let whole: i64 = whole.parse().map_err(|_| too_large())?;
    let frac_nanos: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| too_large())?
    };
    whole
        .checked_mul(NANOS_PER_USD)
        .and_then(|n| n.checked_add(frac_nanos))
        .ok_or_else(too_large)
}

/// Parses a price in USD per million tokens (`"0.30"`) into nano-USD per token, exactly.
pub fn parse_usd_per_mtok(input: &str) -> Result<i64, MoneyError> {
    let nanos_per_mtok = parse_usd_nanos(input)?;
    if nanos_per_mtok % TOKENS_PER_MTOK != 0 {
        return Err(MoneyError::NotWholeNanosPerToken(input.to_owned()));
    }
    Ok(nanos_per_mtok / TOKENS_PER_MTOK)
}

/// Formats nano-USD for reading: `$` and `decimals` places, rounded half away from zero.
pub fn format_usd(nanos: i64, decimals: u32) -> String {
    let decimals = decimals.min(9);
    let unit = 10_i128.pow(9 - decimals);
    let n = nanos as i128;
    let rounded = (n.abs() + unit / 2) / unit;
    let scale = 10_i128.pow(decimals);
    let sign = if n < 0 && rounded != 0 { "-" } else { "" };
    if decimals == 0 {
        return format!("{sign}${rounded}");
    }
    format!(
        "{sign}${}.{:0width$}",
        rounded / scale,
        rounded % scale,
        width = decimals as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_amounts_exactly() {
        assert_eq!(parse_usd_nanos("5.00").unwrap(), 5 * NANOS_PER_USD);
        assert_eq!(parse_usd_nanos("0.000000001").unwrap(), 1);
        assert_eq!(parse_usd_nanos("100").unwrap(), 100 * NANOS_PER_USD);
        assert_eq!(parse_usd_nanos("0.1000000000").unwrap(), 100_000_000);
    }

    #[test]
    fn rejects_inexact_or_malformed_amounts() {
        assert!(matches!(
            parse_usd_nanos("0.0000000001"),
            Err(MoneyError::TooPrecise(_))
        ));
        for bad in ["", ".5", "5.", "-1", "1e3", "1,5", "abc", " 1"] {
            assert!(
                matches!(parse_usd_nanos(bad), Err(MoneyError::NotDecimal(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_usd_nanos("99999999999"),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn prices_per_mtok_become_nanos_per_token() {
        assert_eq!(parse_usd_per_mtok("3.00").unwrap(), 3_000);
        assert_eq!(parse_usd_per_mtok("15").unwrap(), 15_000);
        assert_eq!(parse_usd_per_mtok("0.30").unwrap(), 300);
        assert_eq!(parse_usd_per_mtok("0.075").unwrap(), 75);
        assert_eq!(parse_usd_per_mtok("0").unwrap(), 0);
        assert!(matches!(
            parse_usd_per_mtok("0.0375"),
            Err(MoneyError::NotWholeNanosPerToken(_))
        ));
    }

    #[test]
    fn what_the_patterns_admit_parses() {
        // The API server checks the pattern; the operator must then be able to parse the value.
        let decimal = regex::Regex::new(DECIMAL_PATTERN).unwrap();
        let price = regex::Regex::new(PRICE_PATTERN).unwrap();
        for text in [
            "0",
            "3",
            "3.00",
            "0.30",
            "0.075",
            "15.000000",
            "999999999.999",
            "0.0375",
            "5.",
            ".5",
            "1,5",
            "0.0000000001",
            "999999999.999999999",
            "0.000000001",
        ] {
            if decimal.is_match(text) {
                parse_usd_nanos(text).unwrap();
            }
            if price.is_match(text) {
                parse_usd_per_mtok(text).unwrap();
            }
        }
        for text in ["3.00", "0.30", "0.075", "15.000000", "999999999.999"] {
            assert!(price.is_match(text), "{text}");
        }
        for text in ["0.0375", "0.000000001", "5.", ".5", "1,5"] {
            assert!(!price.is_match(text), "{text}");
        }
    }

    #[test]
    fn amounts_and_prices_keep_their_text_and_name_their_field() {
        #[derive(serde::Deserialize, serde::Serialize)]
        struct Budget {
            daily: UsdAmount,
            price: UsdPerMtok,
        }
        let yaml = "daily: '5.50'\nprice: '0.30'\n";
        let budget: Budget = serde_yaml_ng::from_str(yaml).unwrap();
        assert_eq!(budget.daily.nanos(), 5_500_000_000);
        assert_eq!(budget.price.nanos_per_token(), 300);
        assert_eq!(serde_yaml_ng::to_string(&budget).unwrap(), yaml);

        let bad = "daily: '5.50'\nprice: '0.0375'\n";
        let err = serde_path_to_error::deserialize::<_, Budget>(
            serde_yaml_ng::Deserializer::from_str(bad),
        )
        .err()
        .unwrap();
        assert_eq!(err.path().to_string(), "price");
        assert!(err.to_string().contains("nano-USD per token"), "{err}");
    }

    #[test]
    fn formats_rounding_only_for_display() {
        assert_eq!(format_usd(300_000_000, 2), "$0.30");
        assert_eq!(format_usd(4_999_999, 2), "$0.00");
        assert_eq!(format_usd(5_000_000, 2), "$0.01");
        assert_eq!(format_usd(1_234_567_891, 4), "$1.2346");
        assert_eq!(format_usd(-5_000_000_000, 2), "-$5.00");
        assert_eq!(format_usd(7, 9), "$0.000000007");
        assert_eq!(format_usd(2_600_000_000, 0), "$3");
    }
}
