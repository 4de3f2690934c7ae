//! The live half of the operator: the kube-rs controller that reconciles `TelegramBot`s, and
//! [`run`], the operator process (`botfleet-operator run`).
//!
//! - [`reconcile`]: one bot — validate, render ([`crate::render`]), server-side apply the
//!   children that differ, delete obsolete ones, register the webhook, write status and events.
//! - [`run`]: logging, `/metrics` `/healthz` `/readyz`, Lease leader election (only the leader
//!   reconciles), one controller per watched namespace (or one for all), graceful shutdown.

pub mod cache;
pub mod children;
pub mod context;
pub mod discovery;
pub mod events;
pub mod reconcile;
pub mod status;
pub mod subset;

pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::{Controller, WatchStreamExt, controller, predicates, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

pub use context::{Context, ContextConfig};
pub use reconcile::{Error, error_policy, reconcile};

use crate::crd::TelegramBot;
use crate::process::http::{HttpState, serve};
use crate::process::metrics::Metrics;
use crate::render::{DEFAULT_BOT_IMAGE, DEFAULT_TELEGRAM_API_URL, RenderDefaults};
use botfleet_api::contract::env as contract_env;

/// `botfleet-operator run` flags (the Helm chart passes them; each has an env fallback).
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Watch only these namespaces (comma-separated); empty: all namespaces.
    #[arg(long, env = "BOTFLEET_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = contract_env::BOTFLEET_METRICS_ADDR, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Name of the Lease the operator replicas contend for.
    #[arg(
        long,
        env = "BOTFLEET_LEADER_ELECTION_LEASE",
        default_value = "botfleet-operator"
    )]
    pub leader_election_lease: String,
    /// Namespace of the Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = contract_env::POD_NAMESPACE)]
    pub leader_election_namespace: Option<String>,
    /// This replica's identity in the Lease (default: the pod name, else the host name).
    #[arg(long, env = contract_env::POD_NAME)]
    pub identity: Option<String>,
    /// Reconcile without a Lease (a single replica, or local development).
    #[arg(long, env = "BOTFLEET_DISABLE_LEADER_ELECTION")]
    pub disable_leader_election: bool,
    /// Bot image for resources without `spec.image`.
    #[arg(long, env = "BOTFLEET_DEFAULT_BOT_IMAGE", default_value = DEFAULT_BOT_IMAGE)]
    pub default_bot_image: String,
    /// `imagePullPolicy` of the bot containers.
    #[arg(
        long,
        env = "BOTFLEET_BOT_IMAGE_PULL_POLICY",
        default_value = "IfNotPresent"
    )]
    pub bot_image_pull_policy: String,
    /// Telegram Bot API for resources without `spec.telegram.apiUrl`.
    #[arg(long, env = contract_env::TELEGRAM_API_URL, default_value = DEFAULT_TELEGRAM_API_URL)]
    pub telegram_api_url: String,
    /// The operator's log format: `json` or `text`.
    #[arg(long, env = contract_env::BOTFLEET_LOG_FORMAT, default_value = "json", value_parser = ["json", "text"])]
    pub log_format: String,
    /// The bots' log format (`BOTFLEET_LOG_FORMAT` of the bot pods).
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    pub bot_log_format: String,
    /// Seconds between reconciles of a healthy polling bot (webhook bots: at most 60).
    #[arg(long, default_value_t = 300)]
    pub resync_seconds: u64,
    /// Reconciles running at once.
    #[arg(long, env = "BOTFLEET_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// Requests per second to the Kubernetes API, on average (with `--api-burst`).
    #[arg(long, env = "BOTFLEET_API_QPS", default_value_t = 100)]
    pub api_qps: u32,
    /// Requests the operator may send at once before `--api-qps` paces it.
    #[arg(long, env = "BOTFLEET_API_BURST", default_value_t = 200)]
    pub api_burst: u32,
    /// Seconds that in-flight reconciles get at SIGTERM before they are abandoned.
    #[arg(long, default_value_t = 8)]
    pub shutdown_grace_seconds: u64,
    /// Namespace of the Ingress controller: the bots' NetworkPolicy opens their webhook port
    /// to it alone.
    #[arg(
        long,
        env = "BOTFLEET_BOT_INGRESS_NAMESPACE",
        default_value = "ingress-nginx"
    )]
    pub bot_ingress_namespace: String,
    /// Namespace of Prometheus: the bots' NetworkPolicy opens their metrics port to it (and to
    /// the operator's namespace).
    #[arg(
        long,
        env = "BOTFLEET_BOT_MONITORING_NAMESPACE",
        default_value = "monitoring"
    )]
    pub bot_monitoring_namespace: String,
}

impl RunArgs {
    pub fn context_config(&self) -> ContextConfig {
        ContextConfig {
            defaults: RenderDefaults {
                image: self.default_bot_image.clone(),
                image_pull_policy: self.bot_image_pull_policy.clone(),
                telegram_api_url: self.telegram_api_url.clone(),
                log_format: self.bot_log_format.clone(),
                network: crate::render::NetworkPeers {
                    ingress_namespace: self.bot_ingress_namespace.clone(),
                    monitoring_namespace: self.bot_monitoring_namespace.clone(),
                    operator_namespace: self.operator_namespace(),
                },
            },
            instance: Some(self.identity()),
            resync: Duration::from_secs(self.resync_seconds.max(10)),
            concurrency: self.concurrency,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_seconds),
            ..ContextConfig::default()
        }
    }

    /// The namespace the operator runs in (its Lease's, from `POD_NAMESPACE`), else `default`.
    fn operator_namespace(&self) -> String {
        self.leader_election_namespace
            .clone()
            .unwrap_or_else(|| "default".into())
    }

    fn identity(&self) -> String {
        self.identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("botfleet-operator-{}", std::process::id()))
    }
}

/// The operator process. Returns after SIGTERM/SIGINT once in-flight reconciles finished and the
/// Lease was released.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    crate::process::init_logging(&args.log_format);
    let shutdown = crate::process::shutdown_on_signals();
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
    let trim = tokio::spawn(crate::process::memory::release_free_memory_periodically(
        shutdown.clone(),
    ));
    let ctx = Arc::new(Context::new(client.clone(), args.context_config(), metrics));
    ready.store(true, Ordering::Relaxed);

    if args.disable_leader_election {
        run_controllers(client, &args.namespaces, ctx, shutdown.clone()).await;
    } else {
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
    shutdown.cancel();
    let _ = http_task.await;
    let _ = trim.await;
    tracing::info!("botfleet operator stopped");
    Ok(())
}

/// Runs one controller per namespace (or one for all namespaces) until `stop` fires; in-flight
/// reconciles finish first.
pub async fn run_controllers(
    client: Client,
    namespaces: &[String],
    ctx: Arc<Context>,
    stop: CancellationToken,
) {
    ctx.clear_stores();
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.clone())).collect()
    };
    let controllers = scopes
        .into_iter()
        .map(|namespace| controller(client.clone(), namespace, ctx.clone(), stop.clone()));
    // A deleted bot is never reconciled again; the gauge follows the caches on a timer too.
    let refresher = {
        let ctx = ctx.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(15)) => ctx.refresh_managed_bots(),
                }
            }
        })
    };
    futures::future::join_all(controllers).await;
    refresher.abort();
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn controller(
    client: Client,
    namespace: Option<String>,
    ctx: Arc<Context>,
    stop: CancellationToken,
) {
    let ns = namespace.as_deref();
    let (bots, writer) = reflector::store();
    ctx.register_store(bots.clone());
    // Only spec changes (and deletion, which bumps the generation) reconcile a bot: the
    // operator's own status and annotation writes do not come back as a reconcile.
    let bot_events = watcher(scoped::<TelegramBot>(&client, ns), cache::watch_config())
        .default_backoff()
        .modify(|bot| bot.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let monitoring = ctx.monitoring.served(&client).await.unwrap_or(false);
    let readers = bots.clone();
    let mut controller = Controller::for_stream(bot_events, bots).with_config(
        controller::Config::default()
            .concurrency(ctx.config.concurrency)
            .debounce(ctx.config.debounce),
    );
    for kind in children::KINDS {
        // A watch of kinds the cluster does not serve would only fail; they are read from the
        // API server when the CRDs appear later (until the operator restarts).
        if kind.is_monitoring() && !monitoring {
            continue;
        }
        controller = controller.owns_stream_with(
            ctx.cache
                .watch_kind(client.clone(), namespace.clone(), kind),
            kind.api_resource(),
        );
    }
    controller = controller.owns_stream(ctx.cache.watch_secrets(client.clone(), namespace.clone()));
    // A changed knowledge ConfigMap reconciles the bots that read it (new checksum, new pods).
    controller = controller.watches_stream(
        ctx.cache
            .watch_config_maps(client.clone(), namespace.clone()),
        move |config_map| knowledge_readers(&readers, &config_map),
    );
    let grace = ctx.config.shutdown_grace;
    let stopping = stop.clone();
    let run = controller
        .graceful_shutdown_on(async move { stopping.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((bot, _)) => tracing::debug!(bot = %bot, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "controller event"),
            }
        });
    // In-flight reconciles get `grace` to finish; after that they are abandoned (the next
    // leader applies everything again, so nothing half-written matters).
    tokio::select! {
        () = run => {}
        () = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_secs = grace.as_secs(), "reconciles still running at shutdown: abandoned");
        }
    }
}

/// The bots of the ConfigMap's namespace whose `knowledge` reads it.
fn knowledge_readers(
    bots: &reflector::Store<TelegramBot>,
    config_map: &kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::ConfigMap>,
) -> Vec<reflector::ObjectRef<TelegramBot>> {
    // The operator's own ConfigMaps (every bot's config) are never knowledge; skipping them
    // spares a pass over every bot per config applied.
    if config_map
        .labels()
        .get("app.kubernetes.io/managed-by")
        .is_some_and(|m| m == children::FIELD_MANAGER)
    {
        return Vec::new();
    }
    let namespace = config_map.namespace();
    let name = config_map.name_any();
    bots.state()
        .iter()
        .filter(|bot| bot.namespace() == namespace)
        .filter(|bot| bot.spec.knowledge_config_maps().contains(&name))
        .map(|bot| reflector::ObjectRef::from_obj(bot.as_ref()))
        .collect()
}

/// Runs the watches of the children (and Secrets) of `namespace` (None: all) without a
/// controller, so that [`reconcile`] can be called directly (tests, benchmarks). Returns when
/// `stop` fires.
pub async fn watch_children(
    client: Client,
    namespace: Option<String>,
    ctx: Arc<Context>,
    stop: CancellationToken,
) {
    let monitoring = ctx.monitoring.served(&client).await.unwrap_or(false);
    let mut streams: Vec<futures::stream::BoxStream<'static, ()>> = Vec::new();
    for kind in children::KINDS {
        if kind.is_monitoring() && !monitoring {
            continue;
        }
        streams.push(
            ctx.cache
                .watch_kind(client.clone(), namespace.clone(), kind)
                .map(|_| ())
                .boxed(),
        );
    }
    streams.push(
        ctx.cache
            .watch_secrets(client.clone(), namespace.clone())
            .map(|_| ())
            .boxed(),
    );
    streams.push(
        ctx.cache
            .watch_config_maps(client.clone(), namespace.clone())
            .map(|_| ())
            .boxed(),
    );
    let all = futures::stream::select_all(streams).for_each(|()| async {});
    tokio::select! {
        () = all => {}
        () = stop.cancelled() => {}
    }
}
