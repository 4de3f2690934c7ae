//! The flags of `botfleet-operator run` (the Helm chart passes them; each has an env fallback),
//! and the reconciler settings they make.

use std::net::SocketAddr;
use std::time::Duration;

use botfleet_api::contract::env as contract_env;

use crate::controller::ContextConfig;
use crate::render::{DEFAULT_BOT_IMAGE, DEFAULT_TELEGRAM_API_URL, NetworkPeers, RenderDefaults};

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
                network: NetworkPeers {
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
    pub fn operator_namespace(&self) -> String {
        self.leader_election_namespace
            .clone()
            .unwrap_or_else(|| "default".into())
    }

    /// This replica's identity in the Lease: `--identity`, else the host name.
    pub fn identity(&self) -> String {
        self.identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("botfleet-operator-{}", std::process::id()))
    }
}
