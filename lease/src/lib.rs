//! Leader election on a Kubernetes `coordination.k8s.io/v1` Lease.
//!
//! Several replicas race for one Lease; the one named in `spec.holderIdentity` leads. Writes
//! carry the `resourceVersion` that was read, so the API server rejects a stale write with 409
//! Conflict: when two candidates write at once, exactly one wins.
//!
//! - A candidate takes the Lease when it does not exist, has no holder (its leader stepped
//!   down), or has expired (`renewTime + leaseDurationSeconds` is in the past: its holder died).
//! - The holder renews it every `renew_interval`; when it cannot renew for
//!   `lease_duration - renew_interval` it stops calling itself leader, before anyone else may
//!   take over.
//! - On shutdown the holder clears `holderIdentity`, so a successor takes over at its next try
//!   instead of waiting out the lease.
//! - `leaseTransitions` counts changes of holder.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use botfleet_lease::{LeaderElector, LeaseConfig};
//! let client = kube::Client::try_default().await?;
//! let config = LeaseConfig::new("sales-bot-scheduler", "bots", "sales-bot-scheduler-7d9f-x2");
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let (mut leading, task) = LeaderElector::new(client, config).spawn(shutdown.clone());
//! while leading.changed().await.is_ok() {
//!     println!("leader: {}", *leading.borrow());
//! }
//! task.await?;
//! # Ok(()) }
//! ```

mod decide;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use decide::{Decision, decide};

/// Which Lease to contend for, as whom, and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Lease name, e.g. `<bot>-scheduler`.
    pub name: String,
    /// Namespace of the Lease (the pod's namespace).
    pub namespace: String,
    /// This candidate's identity, unique among candidates (the pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal (default 15 s).
    pub lease_duration: Duration,
    /// How often the holder renews and others retry (default 5 s). Must be well below
    /// `lease_duration`.
    pub renew_interval: Duration,
}

impl LeaseConfig {
    pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
    pub const DEFAULT_RENEW_INTERVAL: Duration = Duration::from_secs(5);

    /// A config with the default timings (15 s lease, renewed every 5 s).
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Self::DEFAULT_LEASE_DURATION,
            renew_interval: Self::DEFAULT_RENEW_INTERVAL,
        }
    }

    /// How long after its last successful renewal the holder still calls itself leader:
    /// one renew interval short of the lease, so it stops before a successor may start.
    fn leadership_deadline(&self) -> Duration {
        self.lease_duration.saturating_sub(self.renew_interval)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease {namespace}/{name}: {action} failed: {source}")]
    Api {
        namespace: String,
        name: String,
        action: &'static str,
        #[source]
        source: Box<kube::Error>,
    },
}

/// Contends for one Lease. See the crate docs for the protocol.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// When this elector last wrote the Lease as its holder (its own clock).
    last_renewed: Mutex<Option<Instant>>,
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            last_renewed: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    fn error(&self, action: &'static str, source: kube::Error) -> LeaseError {
        LeaseError::Api {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            action,
            source: Box::new(source),
        }
    }

    /// One round: creates, takes over or renews the Lease when allowed. Returns whether this
    /// candidate holds it now. Losing a write race (409) is `Ok(false)`, not an error.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, LeaseError> {
        let now = Timestamp::now();
        let current = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.error("get", e))?;
        let decision = decide(
            current.as_ref(),
            &self.config.identity,
            now,
            self.config.lease_duration,
        );
        let written = match decision {
            Decision::HeldByOther { .. } => {
                *self.last_renewed.lock().await = None;
                return Ok(false);
            }
            Decision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.held_spec(now, now, 0)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Decision::Renew | Decision::TakeOver { .. } => {
                let mut lease = current.expect("decide() only renews or takes over a Lease it saw");
                let old = lease.spec.take().unwrap_or_default();
                let spec = if decision == Decision::Renew {
                    let acquired = old.acquire_time.map(|t| t.0).unwrap_or(now);
                    self.held_spec(now, acquired, old.lease_transitions.unwrap_or(0))
                } else {
                    self.held_spec(now, now, old.lease_transitions.unwrap_or(0) + 1)
                };
                lease.spec = Some(spec);
                // `lease.metadata.resource_version` is what we read: a stale write gets a 409.
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(_) => {
                if let Decision::TakeOver { previous } = &decision {
                    tracing::info!(
                        lease = %self.config.name,
                        identity = %self.config.identity,
                        previous = previous.as_deref().unwrap_or(""),
                        "took over the lease"
                    );
                }
                *self.last_renewed.lock().await = Some(Instant::now());
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
                tracing::debug!(lease = %self.config.name, "lost a lease write race");
                *self.last_renewed.lock().await = None;
                Ok(false)
            }
            Err(e) => Err(self.error(
                if decision == Decision::Create {
                    "create"
                } else {
                    "update"
                },
                e,
            )),
        }
    }

    fn held_spec(&self, now: Timestamp, acquired: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(duration_secs(self.config.lease_duration)),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Gives the Lease up if this candidate holds it: clears the holder so that another
    /// candidate takes over at its next try. A no-op when someone else holds it.
    pub async fn step_down(&self) -> Result<(), LeaseError> {
        *self.last_renewed.lock().await = None;
        let Some(mut lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.error("get", e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                tracing::info!(lease = %self.config.name, identity = %self.config.identity, "stepped down");
                Ok(())
            }
            // Someone else wrote it meanwhile: it is not ours to release any more.
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(()),
            Err(e) => Err(self.error("release", e)),
        }
    }

    /// Whether the last successful renewal is recent enough to keep leading.
    async fn still_leading(&self) -> bool {
        self.last_renewed
            .lock()
            .await
            .is_some_and(|at| at.elapsed() < self.config.leadership_deadline())
    }

    /// Contends in the background until `shutdown` fires, then steps down. The receiver says
    /// whether this candidate leads right now; it starts `false`.
    ///
    /// An API error keeps the current leadership only until the leadership deadline
    /// (`lease_duration - renew_interval` after the last renewal) has passed.
    pub fn spawn(self, shutdown: CancellationToken) -> (watch::Receiver<bool>, JoinHandle<()>) {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let leading = match self.try_acquire_or_renew().await {
                    Ok(leading) => leading,
                    Err(e) => {
                        let keep = self.still_leading().await;
                        tracing::warn!(error = %e, keeping_leadership = keep, "lease round failed");
                        keep
                    }
                };
                tx.send_if_modified(|current| {
                    if *current == leading {
                        return false;
                    }
                    if leading {
                        tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became leader");
                    } else {
                        tracing::warn!(lease = %self.config.name, identity = %self.config.identity, "lost leadership");
                    }
                    *current = leading;
                    true
                });
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(self.config.renew_interval) => {}
                }
            }
            let was_leading = *tx.borrow();
            tx.send_replace(false);
            if was_leading && let Err(e) = self.step_down().await {
                tracing::warn!(error = %e, "could not step down; the lease expires by itself");
            }
        });
        (rx, task)
    }
}

fn duration_secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}
