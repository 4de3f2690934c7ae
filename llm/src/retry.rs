//! When to try again: exponential backoff with full jitter, and the server's `retry-after`.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

/// Exponential backoff with full jitter: before retry `n` (0-based) wait a uniformly random
/// time in `[0, min(cap, base * 2^n)]`, so that many clients failing together spread out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(20),
        }
    }
}

impl Backoff {
    /// The longest wait before retry `retry` (0-based): `min(cap, base * 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(31));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A random wait before retry `retry`, at most `ceiling(retry)`.
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = u64::try_from(self.ceiling(retry).as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::random_range(0..=ceiling))
    }
}

/// How long the server asks us to wait: `retry-after-ms` (OpenAI), else `retry-after` as
/// seconds (integer or decimal) or as an HTTP date. `None` when absent or unreadable.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(millis) = header("retry-after-ms").and_then(parse_seconds) {
        return Some(millis.mul_f64(0.001));
    }
    let value = header("retry-after")?;
    if let Some(seconds) = parse_seconds(value) {
        return Some(seconds);
    }
    let date = httpdate::parse_http_date(value).ok()?;
    // A date in the past means "now".
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A non-negative decimal number as a duration in seconds (`"2"`, `"0.5"`).
fn parse_seconds(value: &str) -> Option<Duration> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let seconds: f64 = value.parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn ceiling_doubles_from_base_up_to_cap() {
        let backoff = Backoff::default();
        assert_eq!(backoff.ceiling(0), Duration::from_millis(500));
        assert_eq!(backoff.ceiling(1), Duration::from_secs(1));
        assert_eq!(backoff.ceiling(3), Duration::from_secs(4));
        assert_eq!(backoff.ceiling(10), Duration::from_secs(20));
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(20));
    }

    #[test]
    fn jittered_delays_stay_under_the_ceiling_and_vary() {
        let backoff = Backoff::default();
        let delays: Vec<Duration> = (0..50).map(|_| backoff.delay(2)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(
            delays.iter().any(|d| *d != delays[0]),
            "no jitter: {delays:?}"
        );
    }

    #[test]
    fn retry_after_seconds_decimal_and_milliseconds() {
        let now = SystemTime::now();
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "0.5")]), now),
            Some(Duration::from_millis(500))
        );
        // retry-after-ms is more precise and wins.
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "1"), ("retry-after-ms", "250")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(retry_after(&headers(&[]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-3")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
    }

    #[test]
    fn retry_after_http_date() {
        let now = httpdate::parse_http_date("Sun, 22 Nov 2026 10:00:00 GMT").unwrap();
        let later = headers(&[("retry-after", "Sun, 22 Nov 2026 10:00:30 GMT")]);
        assert_eq!(retry_after(&later, now), Some(Duration::from_secs(30)));
        let past = headers(&[("retry-after", "Sun, 22 Nov 2026 09:00:00 GMT")]);
        assert_eq!(retry_after(&past, now), Some(Duration::ZERO));
    }
}
