//! What a candidate may do with the Lease it just read: pure, so it is tested without an API.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The next step of a candidate, given the Lease as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease yet: create it with us as holder.
    Create,
    /// We hold it: write a fresh `renewTime`.
    Renew,
    /// Nobody holds it, or its holder stopped renewing: write us as holder.
    TakeOver { previous: Option<String> },
    /// Someone else holds a valid Lease: wait.
    HeldByOther { holder: String },
}

/// Decides from the Lease as read, our identity, the time now and our lease duration (used
/// when the Lease does not say its own).
pub fn decide(
    lease: Option<&Lease>,
    identity: &str,
    now: Timestamp,
    default_duration: Duration,
) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.filter(|h| !h.is_empty());
    let Some(holder) = holder else {
        return Decision::TakeOver { previous: None };
    };
    if holder == identity {
        return Decision::Renew;
    }
    let duration = spec
        .lease_duration_seconds
        .filter(|s| *s > 0)
        .map(|s| SignedDuration::from_secs(i64::from(s)))
        .unwrap_or_else(|| {
            SignedDuration::try_from(default_duration).unwrap_or(SignedDuration::MAX)
        });
    // No renewTime at all: treat as long expired (a holder that never renewed).
    let expired = match spec.renew_time {
        None => true,
        Some(renewed) => renewed
            .0
            .checked_add(duration)
            .is_ok_and(|expiry| expiry < now),
    };
    if expired {
        Decision::TakeOver {
            previous: Some(holder),
        }
    } else {
        Decision::HeldByOther { holder }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    const FIFTEEN: Duration = Duration::from_secs(15);

    fn lease(
        holder: Option<&str>,
        renewed_secs_ago: i64,
        duration_secs: i32,
    ) -> (Lease, Timestamp) {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let renewed = now - SignedDuration::from_secs(renewed_secs_ago);
        let lease = Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(duration_secs),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        (lease, now)
    }

    #[test]
    fn absent_lease_is_created() {
        assert_eq!(
            decide(None, "a", Timestamp::now(), FIFTEEN),
            Decision::Create
        );
    }

    #[test]
    fn own_lease_is_renewed_even_when_expired() {
        let (l, now) = lease(Some("a"), 100, 15);
        assert_eq!(decide(Some(&l), "a", now, FIFTEEN), Decision::Renew);
    }

    #[test]
    fn a_valid_lease_of_another_is_respected() {
        let (l, now) = lease(Some("b"), 14, 15);
        assert_eq!(
            decide(Some(&l), "a", now, FIFTEEN),
            Decision::HeldByOther { holder: "b".into() }
        );
    }

    #[test]
    fn an_expired_lease_is_taken_over() {
        let (l, now) = lease(Some("b"), 16, 15);
        assert_eq!(
            decide(Some(&l), "a", now, FIFTEEN),
            Decision::TakeOver {
                previous: Some("b".into())
            }
        );
    }

    #[test]
    fn the_lease_own_duration_wins_over_ours() {
        // The holder wrote 60 s; our 15 s default must not cut its lease short.
        let (l, now) = lease(Some("b"), 30, 60);
        assert!(matches!(
            decide(Some(&l), "a", now, FIFTEEN),
            Decision::HeldByOther { .. }
        ));
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let (l, now) = lease(None, 0, 1);
        assert_eq!(
            decide(Some(&l), "a", now, FIFTEEN),
            Decision::TakeOver { previous: None }
        );
        let (l, now) = lease(Some(""), 0, 15);
        assert_eq!(
            decide(Some(&l), "a", now, FIFTEEN),
            Decision::TakeOver { previous: None }
        );
    }
}
