//! The scheduler: every `BOTFLEET_SCHEDULER_INTERVAL` (default 30 s), while this process
//! leads, it sends the follow-ups that are due, sends budget alerts and refreshes the spend
//! gauges — so alerts arrive even when no one is chatting.
//!
//! Broadcasts (`crate::broadcast::sender`) run beside the ticks while this process leads.
//!
//! Leadership: with embedded SQLite the scheduler runs inside `serve` and always leads
//! ([`LeadershipMode::Always`]); in a cluster with PostgreSQL, `botfleet-bot scheduler` runs
//! as several replicas leader-elected on a Lease ([`LeadershipMode::Lease`]). Correctness does
//! not rest on the Lease: each follow-up is claimed in the database before it is sent.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use botfleet_lease::{LeaderElector, LeaseConfig};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::env;
use crate::context::Context;
use crate::followup::FollowUpRunner;
use crate::money::Money;

/// The Lease name when `BOTFLEET_LEASE_NAME` is not set.
pub const DEFAULT_LEASE_NAME: &str = "botfleet-scheduler";
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
/// Ticks never come faster than this, whatever the interval says.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// How this scheduler decides whether it is the active one.
#[derive(Clone, Debug)]
pub enum LeadershipMode {
    /// The only scheduler (embedded SQLite: inside `serve`).
    Always,
    /// One of several replicas; the holder of this Lease is active.
    Lease(LeaseConfig),
}

impl LeadershipMode {
    /// A Lease from the pod's environment: `BOTFLEET_LEASE_NAME` (default
    /// [`DEFAULT_LEASE_NAME`]), `POD_NAMESPACE` (default: the service account's namespace),
    /// `POD_NAME` (default: `HOSTNAME`) as identity.
    pub fn lease_from_env() -> anyhow::Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let name = var(env::BOTFLEET_LEASE_NAME).unwrap_or_else(|| DEFAULT_LEASE_NAME.to_owned());
        let namespace = match var(env::POD_NAMESPACE) {
            Some(ns) => ns,
            None => std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
                .map(|ns| ns.trim().to_owned())
                .with_context(|| {
                    format!(
                        "{} is not set and {SERVICE_ACCOUNT_NAMESPACE} cannot be read",
                        env::POD_NAMESPACE
                    )
                })?,
        };
        let identity = var(env::POD_NAME)
            .or_else(|| var("HOSTNAME"))
            .with_context(|| {
                format!(
                    "{} is not set: it names this scheduler in the Lease",
                    env::POD_NAME
                )
            })?;
        Ok(Self::Lease(LeaseConfig::new(name, namespace, identity)))
    }

    fn identity(&self) -> String {
        match self {
            LeadershipMode::Always => crate::config::process_id(),
            LeadershipMode::Lease(config) => config.identity.clone(),
        }
    }
}

/// Runs until `shutdown` fires. Ticks every `settings.scheduler_interval` while leading;
/// sets `botfleet_scheduler_leader` to 1 while leading and 0 otherwise.
pub async fn run(
    ctx: Context,
    money: Arc<Money>,
    leadership: LeadershipMode,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let identity = leadership.identity();
    let runner = FollowUpRunner::new(&ctx, identity.clone()).context("config")?;
    let broadcast_settings =
        crate::broadcast::Settings::from_config(&ctx.settings.bot).context("config")?;
    if runner.plan().is_none() {
        tracing::info!("follow-ups are off; the scheduler sends budget alerts only");
    }
    let interval = ctx.settings.scheduler_interval.max(MIN_INTERVAL);

    // The elector stops only after the tick loop: we never work after stepping down.
    let stop_elector = CancellationToken::new();
    // `Always` keeps its sender alive for the whole loop, so `changed()` just never fires.
    let always = watch::channel(true);
    let (mut leading, elector_task) = match leadership {
        LeadershipMode::Always => (always.0.subscribe(), None),
        LeadershipMode::Lease(config) => {
            let client = kube::Client::try_default()
                .await
                .context("scheduler: connecting to the Kubernetes API for the Lease")?;
            tracing::info!(lease = %config.name, namespace = %config.namespace, identity = %config.identity, "contending for the scheduler lease");
            let (rx, task) = LeaderElector::new(client, config).spawn(stop_elector.clone());
            (rx, Some(task))
        }
    };

    // Broadcasts run beside the ticks (one takes minutes), under the same leadership.
    let broadcasts = tokio::spawn(crate::broadcast::sender::run(
        ctx.clone(),
        broadcast_settings,
        identity,
        leading.clone(),
        shutdown.clone(),
    ));

    loop {
        let is_leader = *leading.borrow_and_update();
        ctx.metrics.scheduler_leader.set(i64::from(is_leader));
        if !is_leader {
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = leading.changed() => {
                    if changed.is_err() {
                        anyhow::bail!("scheduler: the leader elector stopped");
                    }
                    continue;
                }
            }
        }
        // A tick is not cut short by a lost lease (claims keep a concurrent leader from
        // sending the same follow-up); on shutdown it starts no new lead and finishes the
        // ones in flight.
        tick(&ctx, &money, &runner, &shutdown).await;
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
            changed = leading.changed() => {
                if changed.is_err() {
                    anyhow::bail!("scheduler: the leader elector stopped");
                }
            }
        }
    }

    ctx.metrics.scheduler_leader.set(0);
    // The broadcast sender finishes the message in flight and gives its claims back.
    let _ = broadcasts.await;
    stop_elector.cancel();
    if let Some(task) = elector_task {
        let _ = task.await;
    }
    tracing::info!("scheduler stopped");
    Ok(())
}

/// One pass of the scheduler's duties. Failures are logged; the next tick tries again.
pub async fn tick(ctx: &Context, money: &Money, runner: &FollowUpRunner, stop: &CancellationToken) {
    let now = chrono::Utc::now();
    if let Err(e) = runner.tick(ctx, money, now, stop).await {
        ctx.db.log_failure(&e, "follow-up tick failed");
    }
    match money.check_alerts(&ctx.db, &ctx.delivery, now).await {
        Ok(sent) if !sent.is_empty() => tracing::info!(alerts = sent.len(), "budget alerts sent"),
        Ok(_) => {}
        Err(e) => ctx.db.log_failure(&e, "budget alert check failed"),
    }
    if let Err(e) = money.refresh_gauges(&ctx.db, &ctx.metrics, now).await {
        ctx.db.log_failure(&e, "refreshing the spend gauges failed");
    }
}
