//! A small token bucket per user: a burst of [`BURST`] requests, refilled at [`PER_SECOND`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

const BURST: f64 = 20.0;
const PER_SECOND: f64 = 1.0;
/// Past this many users, full buckets are forgotten (owners are few; this only bounds memory).
const MAX_USERS: usize = 1024;

#[derive(Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<i64, (f64, Instant)>>,
}

impl Limiter {
    /// Takes a token of `user_id`'s bucket; false when it is empty.
    pub fn allow(&self, user_id: i64) -> bool {
        self.allow_at(user_id, Instant::now())
    }

    fn allow_at(&self, user_id: i64, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_USERS {
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * PER_SECOND < BURST
            });
        }
        let (tokens, at) = buckets.entry(user_id).or_insert((BURST, now));
        *tokens =
            (*tokens + now.saturating_duration_since(*at).as_secs_f64() * PER_SECOND).min(BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_one_a_second_per_user() {
        let limiter = Limiter::default();
        let start = Instant::now();
        for _ in 0..20 {
            assert!(limiter.allow_at(1, start));
        }
        assert!(!limiter.allow_at(1, start));
        assert!(
            limiter.allow_at(2, start),
            "another user has their own bucket"
        );
        assert!(limiter.allow_at(1, start + Duration::from_secs(1)));
        assert!(!limiter.allow_at(1, start + Duration::from_secs(1)));
    }
}
