//! The `TelegramBot` custom resource (`telegrambots.botfleet.dev/v1alpha1`).
//!
//! The spec reuses the section types of `botfleet-spec` (`llm`, `pricing`, `budget`, ...) so the
//! resource, the operator and the bot share one vocabulary; the sections only the operator needs
//! (image, replicas, Secrets, database, scheduler, monitoring, resources) are defined here.
//!
//! Doc comments become the CRD's field descriptions (`kubectl explain telegrambot.spec...`).
//!
//! Cross-field rules are expressed twice: as `x-kubernetes-validations` (CEL) on the spec, so the
//! API server rejects a bad resource at `kubectl apply`, and in [`validate_spec`], so the operator
//! refuses it on clusters that do not evaluate CEL (before 1.25) with the same messages.

use botfleet_spec::{
    BotConfig, BudgetConfig, FollowUpConfig, LlmConfig, Mode, ModelPrice, RateLimitConfig,
    SecretKeyRef, WebhookConfig,
};
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the resource.
pub const GROUP: &str = "botfleet.dev";
/// API version of the resource.
pub const VERSION: &str = "v1alpha1";
/// Kind of the resource.
pub const KIND: &str = "TelegramBot";
/// Name of the CRD object (`<plural>.<group>`), also the file name under `crds/`.
pub const CRD_NAME: &str = "telegrambots.botfleet.dev";

/// One CEL rule of the spec: the expression and the message the API server answers with.
/// [`validate_spec`] enforces each of them in code too.
pub struct CelRule {
    pub rule: &'static str,
    pub message: &'static str,
}

/// The `x-kubernetes-validations` of `.spec`, in order. Kept as data so tests can assert the
/// generated CRD carries them and evaluate them against sample objects.
pub const SPEC_CEL_RULES: &[CelRule] = &[
    CelRule {
        rule: "!has(self.mode) || self.mode != 'webhook' || (has(self.webhook) && has(self.webhook.domain))",
        message: "webhook mode needs webhook.domain",
    },
    CelRule {
        rule: "!has(self.replicas) || self.replicas <= 1 || (has(self.mode) && self.mode == 'webhook')",
        message: "polling mode runs one poller per token: replicas must be at most 1 (use webhook mode to scale out)",
    },
    CelRule {
        rule: "!has(self.replicas) || self.replicas <= 1 || (has(self.database) && has(self.database.urlSecretRef))",
        message: "embedded SQLite runs as one pod: replicas must be at most 1 without database.urlSecretRef",
    },
    CelRule {
        rule: "!has(self.webhook) || !has(self.webhook.tls) || (has(self.webhook.tls.clusterIssuer) ? 1 : 0) + (has(self.webhook.tls.issuer) ? 1 : 0) + (has(self.webhook.tls.secretName) ? 1 : 0) == 1",
        message: "webhook.tls needs exactly one of clusterIssuer, issuer or secretName",
    },
];

fn spec_cel_rules() -> serde_json::Value {
    serde_json::Value::Array(
        SPEC_CEL_RULES
            .iter()
            .map(|r| serde_json::json!({"rule": r.rule, "message": r.message}))
            .collect(),
    )
}

fn add_spec_validations(schema: &mut schemars::Schema) {
    schema.insert("x-kubernetes-validations".into(), spec_cel_rules());
}

fn set_list_map_model(schema: &mut schemars::Schema) {
    // Prices are a map keyed by model: the API server rejects a model priced twice, and
    // server-side apply merges entries by model.
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["model"]),
    );
}

fn set_list_set(schema: &mut schemars::Schema) {
    schema.insert("x-kubernetes-list-type".into(), "set".into());
}

fn set_list_map_type(schema: &mut schemars::Schema) {
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
}

/// The desired bot: its Telegram token, how updates arrive, the model, prices and budget,
/// the database, and what the operator should create to run and monitor it.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "botfleet.dev",
    version = "v1alpha1",
    kind = "TelegramBot",
    plural = "telegrambots",
    singular = "telegrambot",
    shortname = "tgbot",
    category = "botfleet",
    namespaced,
    status = "TelegramBotStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A Telegram bot whose replies are written by an LLM, with priced usage, budgets and follow-ups. The operator runs it (Deployments, Service, Ingress, ...), registers its webhook and monitors it.",
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.mode",
        description = "polling or webhook"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the bot is ready"
    ),
    printcolumn(
        name = "Webhook URL",
        type_ = "string",
        json_path = ".status.webhookUrl",
        description = "URL registered with Telegram (webhook mode)"
    ),
    printcolumn(
        name = "Spend Today",
        type_ = "string",
        json_path = ".status.spendToday",
        description = "LLM spend today (UTC), USD"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = add_spec_validations)]
pub struct TelegramBotSpec {
    /// Container image of the bot (`botfleet-bot`). Default: the operator's `--bot-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,

    /// Pods that handle updates. Webhook mode with PostgreSQL scales out; polling mode and
    /// embedded SQLite allow at most 1. 0 stops the bot.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,

    /// The Telegram bot token and API endpoint.
    pub telegram: TelegramSpec,

    /// How the bot receives updates: `polling` (default) or `webhook`.
    #[serde(default)]
    pub mode: Mode,

    /// Webhook endpoint settings (webhook mode): domain, path, Ingress class and TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,

    /// The language model that writes the replies.
    pub llm: LlmConfig,

    /// Prices per model, USD per million tokens, as decimal strings. A model without a price
    /// is counted and alerted on, never treated as free.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = set_list_map_model, length(max = 64))]
    pub pricing: Vec<ModelPrice>,

    /// Spend limits in USD and the thresholds at which the owners are told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetConfig>,

    /// Telegram user ids allowed to use the owner commands (/llm_stats, /stats, /budget); they
    /// also receive budget alerts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = set_list_set)]
    pub owners: Vec<i64>,

    /// Follow-up messages to leads who went quiet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<FollowUpConfig>,

    /// Per-user message rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,

    /// The bot's database: PostgreSQL via a Secret, or embedded SQLite on a volume when
    /// `urlSecretRef` is left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,

    /// The scheduler (follow-ups, budget alerts). With PostgreSQL it is its own leader-elected
    /// Deployment; with embedded SQLite the bot pod runs it and this section is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<SchedulerSpec>,

    /// Prometheus Operator objects for the bot: a ServiceMonitor and a PrometheusRule with its
    /// alerts. Created only when their CRDs are installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringSpec>,

    /// CPU and memory of the bot containers. Default: requests 50m CPU and 64Mi memory,
    /// limits 500m CPU and 256Mi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

fn default_replicas() -> i32 {
    1
}

/// The Telegram side of the bot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelegramSpec {
    /// Secret key holding the bot token from @BotFather (passed to the bot as
    /// `TELEGRAM_BOT_TOKEN`).
    pub token_secret_ref: SecretKeyRef,

    /// Base URL of the Bot API, e.g. a self-hosted Bot API server. Default: the operator's
    /// `--telegram-api-url`, itself `https://api.telegram.org` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub api_url: Option<String>,

    /// Secret key holding the webhook secret token that Telegram sends in
    /// `X-Telegram-Bot-Api-Secret-Token` (1-256 characters of `A-Z a-z 0-9 _ -`). Default: the
    /// operator generates the Secret `<name>-webhook` (key `secretToken`) once and keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_ref: Option<SecretKeyRef>,
}

/// The bot's database.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// Secret key holding a PostgreSQL URL (`postgres://user:pass@host/db`), passed to the bot as
    /// `DATABASE_URL`. Leave out for embedded SQLite on a PersistentVolumeClaim (one pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretKeyRef>,

    /// The PersistentVolumeClaim of embedded SQLite (ignored with PostgreSQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
}

/// Volume of the embedded SQLite database.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size, e.g. `1Gi` (default). It can grow later if the StorageClass allows
    /// expansion; it cannot shrink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"))]
    pub size: Option<String>,

    /// StorageClass of the claim. Default: the cluster's default StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// The scheduler: follow-ups and budget alerts, one active instance at a time (Lease).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulerSpec {
    /// Scheduler pods (PostgreSQL only; with embedded SQLite the bot pod runs the scheduler
    /// itself): one leads, the others stand by. Default 2; 0 runs no scheduler (no follow-ups,
    /// no budget alert messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 5))]
    pub replicas: Option<i32>,
}

/// Prometheus Operator objects for the bot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// A ServiceMonitor that scrapes the bot's `/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_monitor: Option<ServiceMonitorSpec>,

    /// A PrometheusRule with the bot's alerts (budget, burn rate, LLM errors, unpriced models,
    /// backlog, no ready replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_rule: Option<PrometheusRuleSpec>,
}

/// ServiceMonitor settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    /// Create the ServiceMonitor.
    #[serde(default)]
    pub enabled: bool,

    /// Scrape interval, e.g. `30s` (default: Prometheus' own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
    ))]
    pub interval: Option<String>,
}

/// PrometheusRule settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRuleSpec {
    /// Create the PrometheusRule.
    #[serde(default)]
    pub enabled: bool,
}

/// What the operator observed. Written only by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelegramBotStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `Progressing`, `Degraded`, `WebhookReady` and `MonitoringReady`, each with a
    /// reason and a message a person can act on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = set_list_map_type)]
    pub conditions: Vec<Condition>,

    /// The URL registered with Telegram (webhook mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,

    /// Update-handler pods that exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,

    /// Update-handler pods that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,

    /// Updates Telegram holds for the webhook, not yet delivered (`getWebhookInfo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_update_count: Option<i64>,

    /// The last error Telegram reported delivering to the webhook, with its time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_webhook_error: Option<String>,

    /// LLM spend today (UTC) in USD, e.g. `1.23`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_today: Option<String>,
}

/// Condition types the operator writes.
pub mod condition_types {
    pub const READY: &str = "Ready";
    pub const PROGRESSING: &str = "Progressing";
    pub const DEGRADED: &str = "Degraded";
    pub const WEBHOOK_READY: &str = "WebhookReady";
    pub const MONITORING_READY: &str = "MonitoringReady";
}

impl TelegramBotSpec {
    /// True when the bot uses PostgreSQL (a `database.urlSecretRef` is given).
    pub fn uses_postgres(&self) -> bool {
        self.database
            .as_ref()
            .and_then(|d| d.url_secret_ref.as_ref())
            .is_some()
    }

    /// Default scheduler replicas with PostgreSQL: one leader and one on standby.
    pub const DEFAULT_SCHEDULER_REPLICAS: i32 = 2;

    /// Scheduler replicas (PostgreSQL), default [`Self::DEFAULT_SCHEDULER_REPLICAS`].
    pub fn scheduler_replicas(&self) -> i32 {
        self.scheduler
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(Self::DEFAULT_SCHEDULER_REPLICAS)
    }

    /// Whether a ServiceMonitor is wanted.
    pub fn service_monitor_enabled(&self) -> bool {
        self.monitoring
            .as_ref()
            .and_then(|m| m.service_monitor.as_ref())
            .is_some_and(|s| s.enabled)
    }

    /// Whether a PrometheusRule is wanted.
    pub fn prometheus_rule_enabled(&self) -> bool {
        self.monitoring
            .as_ref()
            .and_then(|m| m.prometheus_rule.as_ref())
            .is_some_and(|s| s.enabled)
    }

    /// The webhook path: `webhook.path`, default `/telegram/<bot name>`.
    pub fn webhook_path(&self, bot_name: &str) -> String {
        self.webhook
            .as_ref()
            .and_then(|w| w.path.clone())
            .unwrap_or_else(|| format!("/telegram/{bot_name}"))
    }

    /// `https://<domain><path>` in webhook mode with a domain; `None` otherwise.
    pub fn webhook_url(&self, bot_name: &str) -> Option<String> {
        if self.mode != Mode::Webhook {
            return None;
        }
        let domain = self.webhook.as_ref()?.domain.as_ref()?;
        Some(format!("https://{domain}{}", self.webhook_path(bot_name)))
    }

    /// The bot's config file: the parts of the spec the bot reads, with the webhook path
    /// defaulted to `/telegram/<bot name>` in webhook mode.
    pub fn bot_config(&self, bot_name: &str) -> BotConfig {
        let webhook = match (self.mode, &self.webhook) {
            (Mode::Webhook, w) => {
                let mut w = w.clone().unwrap_or_default();
                w.path = Some(self.webhook_path(bot_name));
                Some(w)
            }
            (Mode::Polling, w) => w.clone(),
        };
        BotConfig {
            mode: self.mode,
            webhook,
            llm: self.llm.clone(),
            pricing: self.pricing.clone(),
            budget: self.budget.clone(),
            owners: self.owners.clone(),
            follow_up: self.follow_up.clone(),
            rate_limit: self.rate_limit.clone(),
        }
    }
}

/// Checks a `TelegramBot` in code: the cross-field rules of [`SPEC_CEL_RULES`] (clusters before
/// 1.25 do not evaluate them), the constraints of the schema that matter to rendering, and
/// [`botfleet_spec::validate`] of the bot config the operator would render. Every problem is
/// reported, each as one line naming the field.
pub fn validate_spec(bot: &TelegramBot) -> Result<(), Vec<String>> {
    let spec = &bot.spec;
    let mut errors = Vec::new();
    let postgres = spec.uses_postgres();

    if spec.replicas < 0 {
        errors.push("spec.replicas: must not be negative".to_owned());
    }
    if spec.mode == Mode::Webhook
        && spec
            .webhook
            .as_ref()
            .and_then(|w| w.domain.as_ref())
            .is_none()
    {
        errors.push(format!(
            "spec.webhook.domain: {}",
            SPEC_CEL_RULES[0].message
        ));
    }
    if spec.replicas > 1 && spec.mode != Mode::Webhook {
        errors.push(format!("spec.replicas: {}", SPEC_CEL_RULES[1].message));
    }
    if spec.replicas > 1 && !postgres {
        errors.push(format!("spec.replicas: {}", SPEC_CEL_RULES[2].message));
    }
    if spec.scheduler_replicas() < 0 {
        errors.push("spec.scheduler.replicas: must not be negative".to_owned());
    }
    if let Some(tls) = spec.webhook.as_ref().and_then(|w| w.tls.as_ref()) {
        let given = [&tls.cluster_issuer, &tls.issuer, &tls.secret_name]
            .iter()
            .filter(|v| v.is_some())
            .count();
        if given != 1 {
            errors.push(format!("spec.webhook.tls: {}", SPEC_CEL_RULES[3].message));
        }
    }
    if let Some(url) = &spec.telegram.api_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        errors.push("spec.telegram.apiUrl: must start with http:// or https://".to_owned());
    }
    for (field, r) in [
        (
            "spec.telegram.tokenSecretRef",
            Some(&spec.telegram.token_secret_ref),
        ),
        (
            "spec.telegram.webhookSecretRef",
            spec.telegram.webhook_secret_ref.as_ref(),
        ),
        (
            "spec.llm.apiKeySecretRef",
            spec.llm.api_key_secret_ref.as_ref(),
        ),
        (
            "spec.database.urlSecretRef",
            spec.database
                .as_ref()
                .and_then(|d| d.url_secret_ref.as_ref()),
        ),
    ] {
        if let Some(r) = r
            && (r.name.is_empty() || r.key.is_empty())
        {
            errors.push(format!("{field}: needs a name and a key"));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, price) in spec.pricing.iter().enumerate() {
        if !seen.insert(price.model.as_str()) {
            errors.push(format!(
                "spec.pricing[{i}].model: {:?} is priced twice",
                price.model
            ));
        }
    }
    if let Some(size) = spec
        .database
        .as_ref()
        .and_then(|d| d.storage.as_ref())
        .and_then(|s| s.size.as_ref())
        && !is_quantity(size)
    {
        errors.push(format!(
            "spec.database.storage.size: {size:?} is not a size like 1Gi"
        ));
    }

    let name = bot.metadata.name.as_deref().unwrap_or("bot");
    if let Err(e) = botfleet_spec::validate(&spec.bot_config(name)) {
        let line = format!("spec.{e}");
        if !errors.contains(&line)
            && !(e.field.starts_with("pricing[") && e.message.contains("priced twice"))
        {
            errors.push(line);
        }
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn is_quantity(s: &str) -> bool {
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    !num.is_empty()
        && num.parse::<f64>().is_ok()
        && ["", "Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T"].contains(&unit)
}
