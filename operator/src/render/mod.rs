//! Pure rendering: a `TelegramBot` in, the Kubernetes objects that run it out.
//!
//! Nothing here does I/O. The reconciler applies what [`render_all`] returns with server-side
//! apply, creates the webhook Secret from [`render_webhook_secret`] only when it is absent, and
//! deletes children of the bot that are no longer in [`Children`].
//!
//! Names, labels, ports and environment variables are the operator ↔ bot contract; they live in
//! [`names`] and [`contract`] so tests on both sides use the same strings.

mod config;
pub mod contract;
mod meta;
pub mod monitoring;
pub mod names;
mod network;
mod rbac;
mod storage;
mod workload;

use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    networking::v1::{Ingress, NetworkPolicy},
    policy::v1::PodDisruptionBudget,
    rbac::v1::{Role, RoleBinding},
};
use serde::Serialize;

use crate::crd::TelegramBot;
pub use config::{CONFIG_KEY, config_checksum, config_yaml, render_bot_config};
pub use meta::{labels, selector_labels};
pub use monitoring::{ALERT_NAMES, PrometheusRule, ServiceMonitor, prometheus_rules_file};

/// The bot image used when `spec.image` is empty (the default of `--default-bot-image`):
/// `<registry>/botfleet-bot:<workspace version>`, as `scripts/images.sh` tags it. The chart's
/// `image.registry` and `image.tag` (default: appVersion) name the same image and the operator's
/// beside it; `tests/tests/chart.rs` checks that both agree with this constant.
pub const DEFAULT_BOT_IMAGE: &str =
    concat!("ghcr.io/botfleet/botfleet-bot:", env!("CARGO_PKG_VERSION"));
/// The Bot API used when neither `spec.telegram.apiUrl` nor the operator sets one.
pub use botfleet_api::contract::DEFAULT_TELEGRAM_API_URL;
/// Annotation on pod templates: sha256 (hex) of the rendered `config.yaml`. A config change
/// changes it and so rolls the pods; nothing else does.
pub const CONFIG_CHECKSUM_ANNOTATION: &str = "botfleet.dev/config-checksum";
/// Pod template annotation: a digest of the resourceVersions of the ConfigMaps `knowledge`
/// reads, so a changed price list rolls the pods (the bot loads knowledge at start).
pub const KNOWLEDGE_CHECKSUM_ANNOTATION: &str = "botfleet.dev/knowledge-checksum";

/// Operator-wide settings that rendering needs (from the operator's command line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderDefaults {
    /// Bot image when `spec.image` is not set.
    pub image: String,
    /// `imagePullPolicy` of the bot containers (default `IfNotPresent`).
    pub image_pull_policy: String,
    /// Bot API base URL when `spec.telegram.apiUrl` is not set.
    pub telegram_api_url: String,
    /// `BOTFLEET_LOG_FORMAT` of the bot: `json` or `text`.
    pub log_format: String,
    /// Namespaces whose pods the bots' NetworkPolicy lets in.
    pub network: NetworkPeers,
}

/// Who may reach a bot's pods (see [`Children::network_policy`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkPeers {
    /// The Ingress controller's namespace: the webhook port.
    pub ingress_namespace: String,
    /// Prometheus's namespace: the metrics port.
    pub monitoring_namespace: String,
    /// The operator's namespace: the metrics port.
    pub operator_namespace: String,
}

impl Default for NetworkPeers {
    fn default() -> Self {
        Self {
            ingress_namespace: "ingress-nginx".to_owned(),
            monitoring_namespace: "monitoring".to_owned(),
            operator_namespace: "botfleet-system".to_owned(),
        }
    }
}

impl Default for RenderDefaults {
    fn default() -> Self {
        Self {
            image: DEFAULT_BOT_IMAGE.to_owned(),
            image_pull_policy: "IfNotPresent".to_owned(),
            telegram_api_url: DEFAULT_TELEGRAM_API_URL.to_owned(),
            log_format: "json".to_owned(),
            network: NetworkPeers::default(),
        }
    }
}

/// Why a bot cannot be rendered. The message is meant for a condition a person reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The spec breaks a rule of the resource (the same as the CRD's CEL rules); one line each.
    #[error("invalid spec: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The object lacks metadata that rendering needs (name, namespace or uid).
    #[error("the TelegramBot has no metadata.{0}")]
    MissingMetadata(&'static str),
    /// The bot config could not be serialized (should not happen).
    #[error("cannot serialize the bot config: {0}")]
    Config(String),
}

/// Everything the operator keeps in the cluster for one bot (the generated webhook Secret
/// aside: see [`render_webhook_secret`]). `None` / absent means "must not exist": a child of
/// that kind and name left over from an earlier spec is obsolete.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    /// `<bot>`: the identity of the bot pods.
    pub service_account: ServiceAccount,
    /// `<bot>-scheduler`: get/update/patch on the Lease `<bot>-scheduler`, and create.
    pub role: Role,
    /// `<bot>-scheduler`: binds the Role to the ServiceAccount.
    pub role_binding: RoleBinding,
    /// `<bot>-config`: the bot's `config.yaml`.
    pub config_map: ConfigMap,
    /// `<bot>`: update handlers (with SQLite: the one pod that also runs the scheduler).
    pub deployment: Deployment,
    /// `<bot>-scheduler`: the leader-elected scheduler (PostgreSQL only).
    pub scheduler_deployment: Option<Deployment>,
    /// `<bot>`: ports `http` (webhook) and `metrics`, selecting the update handlers.
    pub service: Service,
    /// `<bot>-scheduler`: headless, port `metrics`, so the ServiceMonitor finds the schedulers.
    pub scheduler_service: Option<Service>,
    /// `<bot>`: the webhook endpoint (webhook mode) and the owners' dashboard (`dashboard.enabled`
    /// with a domain).
    pub ingress: Option<Ingress>,
    /// `<bot>-data`: embedded SQLite's volume (without PostgreSQL only).
    pub pvc: Option<PersistentVolumeClaim>,
    /// `<bot>` (handlers) and/or `<bot>-scheduler`, for each Deployment with more than one replica.
    pub pdbs: Vec<PodDisruptionBudget>,
    /// `<bot>` (when `monitoring.serviceMonitor.enabled`).
    pub service_monitor: Option<ServiceMonitor>,
    /// `<bot>` (when `monitoring.prometheusRule.enabled`).
    pub prometheus_rule: Option<PrometheusRule>,
    /// `<bot>`: only the Ingress controller reaches the webhook port, only monitoring and the
    /// operator the metrics port (unless `spec.networkPolicy.enabled: false`).
    pub network_policy: Option<NetworkPolicy>,
}

/// Identifies one child: what `kubectl get <kind> <name>` would take.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChildRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

impl Children {
    /// Every child as JSON (with `apiVersion` and `kind`), in a sensible apply order:
    /// identity and config first, then storage, workloads, networking, monitoring.
    pub fn objects(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        fn push<T: Serialize>(out: &mut Vec<serde_json::Value>, obj: &T) {
            out.push(serde_json::to_value(obj).expect("k8s objects serialize"));
        }
        push(&mut out, &self.service_account);
        push(&mut out, &self.role);
        push(&mut out, &self.role_binding);
        push(&mut out, &self.config_map);
        if let Some(pvc) = &self.pvc {
            push(&mut out, pvc);
        }
        push(&mut out, &self.deployment);
        if let Some(d) = &self.scheduler_deployment {
            push(&mut out, d);
        }
        push(&mut out, &self.service);
        if let Some(s) = &self.scheduler_service {
            push(&mut out, s);
        }
        if let Some(i) = &self.ingress {
            push(&mut out, i);
        }
        for pdb in &self.pdbs {
            push(&mut out, pdb);
        }
        if let Some(sm) = &self.service_monitor {
            push(&mut out, sm);
        }
        if let Some(pr) = &self.prometheus_rule {
            push(&mut out, pr);
        }
        if let Some(np) = &self.network_policy {
            push(&mut out, np);
        }
        out
    }

    /// The `apiVersion`/`kind`/`name` of every child in [`Children::objects`] order.
    pub fn refs(&self) -> Vec<ChildRef> {
        self.objects()
            .iter()
            .map(|o| ChildRef {
                api_version: o["apiVersion"].as_str().unwrap_or_default().to_owned(),
                kind: o["kind"].as_str().unwrap_or_default().to_owned(),
                name: o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect()
    }

    /// Sets [`KNOWLEDGE_CHECKSUM_ANNOTATION`] on the pod templates from the resourceVersions
    /// of the knowledge ConfigMaps, `(name, resourceVersion)` (an absent ConfigMap as an empty
    /// version). Nothing is set for a bot without knowledge ConfigMaps.
    pub fn with_knowledge_versions(mut self, versions: &[(String, String)]) -> Self {
        if versions.is_empty() {
            return self;
        }
        use sha2::Digest;
        let mut digest = sha2::Sha256::new();
        for (name, version) in versions {
            digest.update(format!("{name}={version}\n").as_bytes());
        }
        let checksum = hex::encode(digest.finalize());
        for deployment in
            std::iter::once(&mut self.deployment).chain(self.scheduler_deployment.as_mut())
        {
            if let Some(meta) = deployment
                .spec
                .as_mut()
                .and_then(|s| s.template.metadata.as_mut())
            {
                meta.annotations
                    .get_or_insert_with(Default::default)
                    .insert(KNOWLEDGE_CHECKSUM_ANNOTATION.to_owned(), checksum.clone());
            }
        }
        self
    }

    /// All children as one multi-document YAML stream (`---` between objects).
    pub fn to_yaml(&self) -> String {
        self.objects()
            .iter()
            .map(|o| serde_yaml_ng::to_string(o).expect("JSON values serialize to YAML"))
            .collect::<Vec<_>>()
            .join("---\n")
    }
}

/// Renders every child of `bot`. Fails when the spec breaks a rule ([`crate::crd::validate_spec`])
/// or `metadata.name`, `metadata.namespace` or `metadata.uid` is missing (the uid goes into the
/// owner references).
pub fn render_all(bot: &TelegramBot, defaults: &RenderDefaults) -> Result<Children, RenderError> {
    crate::crd::validate_spec(bot).map_err(RenderError::Invalid)?;
    let ctx = meta::Ctx::new(bot, defaults)?;
    let config_text = config_yaml(bot)?;
    let checksum = config_checksum(&config_text);
    let spec = &bot.spec;

    let pdbs = [
        Some(workload::pdb(&ctx, meta::Component::Handler, spec.replicas)),
        spec.uses_postgres()
            .then(|| workload::pdb(&ctx, meta::Component::Scheduler, spec.scheduler_replicas())),
    ]
    .into_iter()
    .flatten()
    .flatten()
    .collect();

    Ok(Children {
        service_account: rbac::service_account(&ctx),
        role: rbac::role(&ctx),
        role_binding: rbac::role_binding(&ctx),
        config_map: config::config_map(&ctx, config_text),
        deployment: workload::handler_deployment(&ctx, &checksum),
        scheduler_deployment: spec
            .uses_postgres()
            .then(|| workload::scheduler_deployment(&ctx, &checksum)),
        service: network::service(&ctx),
        scheduler_service: spec
            .uses_postgres()
            .then(|| network::scheduler_service(&ctx)),
        ingress: network::ingress(&ctx),
        pvc: (!spec.uses_postgres()).then(|| storage::pvc(&ctx)),
        pdbs,
        service_monitor: spec
            .service_monitor_enabled()
            .then(|| monitoring::service_monitor(&ctx)),
        prometheus_rule: spec
            .prometheus_rule_enabled()
            .then(|| monitoring::prometheus_rule(&ctx)),
        network_policy: network::network_policy(&ctx),
    })
}

/// Whether the operator must provide the webhook secret token: webhook mode without
/// `spec.telegram.webhookSecretRef`. The Secret is then [`names::webhook_secret`].
pub fn needs_generated_webhook_secret(bot: &TelegramBot) -> bool {
    bot.spec.bot.mode == botfleet_api::Mode::Webhook
        && bot.spec.telegram.webhook_secret_ref.is_none()
}

/// Where the webhook secret token is (webhook mode only): `spec.telegram.webhookSecretRef`, or
/// the generated Secret `<bot>-webhook`, key `secretToken`. The operator reads it for
/// `setWebhook`; the bot gets it as `WEBHOOK_SECRET_TOKEN`.
pub fn webhook_secret_ref(bot: &TelegramBot) -> Option<botfleet_api::SecretKeyRef> {
    if bot.spec.bot.mode != botfleet_api::Mode::Webhook {
        return None;
    }
    Some(
        bot.spec
            .telegram
            .webhook_secret_ref
            .clone()
            .unwrap_or_else(|| botfleet_api::SecretKeyRef {
                name: names::webhook_secret(&bot_name(bot)),
                key: contract::WEBHOOK_SECRET_KEY.to_owned(),
            }),
    )
}

/// The generated webhook Secret `<bot>-webhook` holding `token` under `secretToken`, labelled
/// and owned like every child. Create it only when absent ([`needs_generated_webhook_secret`])
/// and never overwrite it: the token is generated once (1-256 characters of `A-Za-z0-9_-`,
/// e.g. 64 random hex digits) and stays.
pub fn render_webhook_secret(bot: &TelegramBot, token: &str) -> Result<Secret, RenderError> {
    let defaults = RenderDefaults::default();
    let ctx = meta::Ctx::new(bot, &defaults)?;
    Ok(Secret {
        metadata: ctx.metadata(names::webhook_secret(&ctx.name), meta::Component::Webhook),
        type_: Some("Opaque".to_owned()),
        string_data: Some(
            [(contract::WEBHOOK_SECRET_KEY.to_owned(), token.to_owned())]
                .into_iter()
                .collect(),
        ),
        ..Default::default()
    })
}

/// The Telegram Bot API URL the bot uses: `spec.telegram.apiUrl`, else the operator default.
pub fn telegram_api_url(bot: &TelegramBot, defaults: &RenderDefaults) -> String {
    bot.spec
        .telegram
        .api_url
        .clone()
        .unwrap_or_else(|| defaults.telegram_api_url.clone())
}

fn bot_name(bot: &TelegramBot) -> String {
    bot.metadata.name.clone().unwrap_or_default()
}
