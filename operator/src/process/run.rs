//! The operator process (`botfleet-operator run`): logging, the HTTP endpoints, the API client,
//! and the leader loop that runs the controllers while this replica holds the Lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::Client;
use tokio_util::sync::CancellationToken;

use super::args::RunArgs;
use super::http::{HttpState, serve};
use super::metrics::Metrics;
use crate::controller::{Context, run_controllers};

/// The operator process. Returns after SIGTERM/SIGINT once in-flight reconciles finished and the
/// Lease was released.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    super::init_logging(&args.log_format);
    let shutdown = super::shutdown_on_signals();
    let config = kube::Config::infer().await?;
    let client = rate_limited_client(config, args.api_qps, args.api_burst)?;
    run_with_client(client, args, shutdown).await
}

/// A client that sends at most `burst` requests in any `burst / qps` seconds (tower's
/// fixed-window rate limit): bursts up to `burst`, `qps` on average.
pub fn rate_limited_client(config: kube::Config, qps: u32, burst: u32) -> anyhow::Result<Client> {
    let qps = qps.max(1);
    let burst = burst.max(1);
    let window = Duration::from_secs_f64(f64::from(burst) / f64::from(qps));
    let layer = tower::limit::RateLimitLayer::new(u64::from(burst), window);
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&layer)
        .build())
}

/// [`run`] with a given client and shutdown token (tests use an in-memory API server).
pub async fn run_with_client(
    client: Client,
    args: RunArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (addr, http_task) = serve(
        args.metrics_addr,
        HttpState {
            metrics: metrics.clone(),
            ready: ready.clone(),
        },
        shutdown.clone(),
    )
    .await?;
    tracing::info!(%addr, namespaces = ?args.namespaces, "botfleet operator starting");
    let trim = tokio::spawn(super::memory::release_free_memory_periodically(
        shutdown.clone(),
    ));
    let ctx = Arc::new(Context::new(client.clone(), args.context_config(), metrics));
    ready.store(true, Ordering::Relaxed);

    if args.disable_leader_election {
        run_controllers(client, &args.namespaces, ctx, shutdown.clone()).await;
    } else {
        lead_while_elected(client, &args, ctx, &shutdown).await;
    }
    shutdown.cancel();
    let _ = http_task.await;
    let _ = trim.await;
    tracing::info!("botfleet operator stopped");
    Ok(())
}

/// Contends for the Lease until `shutdown`; runs the controllers each time this replica leads
/// and stops them when it loses the Lease.
async fn lead_while_elected(
    client: Client,
    args: &RunArgs,
    ctx: Arc<Context>,
    shutdown: &CancellationToken,
) {
    let config = botfleet_lease::LeaseConfig::new(
        args.leader_election_lease.clone(),
        args.operator_namespace(),
        args.identity(),
    );
    let (mut leading, lease_task) =
        botfleet_lease::LeaderElector::new(client.clone(), config).spawn(shutdown.clone());
    while !shutdown.is_cancelled() {
        // Stand by until this replica leads.
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = leading.wait_for(|l| *l) => if changed.is_err() { break },
        }
        tracing::info!("leading: reconciling TelegramBots");
        let lost = CancellationToken::new();
        let stop = lost.clone();
        let mut watch_leading = leading.clone();
        let shutdown_for_watch = shutdown.clone();
        let watcher_task = tokio::spawn(async move {
            tokio::select! {
                () = shutdown_for_watch.cancelled() => {}
                _ = watch_leading.wait_for(|l| !*l) => {
                    tracing::warn!("lost the Lease: stopping the controllers");
                }
            }
            stop.cancel();
        });
        run_controllers(client.clone(), &args.namespaces, ctx.clone(), lost).await;
        watcher_task.abort();
    }
    if let Err(e) = lease_task.await {
        tracing::warn!(error = %e, "lease task ended abnormally");
    }
}
