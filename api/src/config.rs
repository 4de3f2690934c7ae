//! The config sections shared by the `TelegramBot` spec and the bot's config file.
//!
//! Doc comments here become the CRD's field descriptions (`kubectl explain`), so they are
//! written for the person editing the YAML.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use std::time::Duration;

use crate::{HumanDuration, TimeOfDay, UsdAmount, UsdPerMtok};

/// How the bot receives updates from Telegram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The bot long-polls `getUpdates`. One poller per token: never scaled out.
    #[default]
    Polling,
    /// Telegram pushes updates to an HTTPS endpoint (an Ingress) that the operator registers.
    Webhook,
}

/// The bot's config file: the parts of the `TelegramBot` spec the bot itself needs, with the
/// same names and nesting. The spec embeds this struct (flattened, so the fields stand directly
/// under `spec`) and the operator renders it into the bot's ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BotConfig {
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
    #[schemars(transform = list_keyed_by_model, length(max = 64))]
    pub pricing: Vec<ModelPrice>,

    /// Spend limits in USD and the thresholds at which the owners are told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetConfig>,

    /// Telegram user ids allowed to use the owner commands (/llm_stats, /stats, /budget); they
    /// also receive budget alerts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = list_of_unique_values)]
    pub owners: Vec<i64>,

    /// Follow-up messages to leads who went quiet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<FollowUpConfig>,

    /// Per-user message rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,

    /// What `/start` offers a new lead: suggested questions as buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome: Option<WelcomeConfig>,

    /// Handing a lead over to a person (an owner or a group of operators) and back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<HandoffConfig>,

    /// The owner's reference texts (price list, FAQ, terms; Markdown, text or PDF) put into the system prompt within `llm.knowledgeTokens`. In a cluster use `configMapKeyRef` or `inline`: the operator mounts the ConfigMaps read-only and restarts the bot when one changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub knowledge: Vec<KnowledgeSource>,

    /// Documents leads send (PDF, TXT, Markdown): size limit and how much of one goes into a prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documents: Option<DocumentsConfig>,

    /// Owners' announcements to every opted-in lead (`/broadcast`): the opt-out line, the
    /// time zone of scheduled broadcasts, attempts per recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<BroadcastConfig>,

    /// The owners' dashboard: a Telegram Mini App served by the bot at `<webhook path>/app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<DashboardConfig>,

    /// The support desk: every lead message classified by intent and topic before it is answered, and routed by intent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support: Option<SupportConfig>,
}

/// The owners' dashboard, a Telegram Mini App (spend, leads, handoffs, broadcasts) opened from
/// the owners' menu button or `/dashboard`. Telegram opens Mini Apps over HTTPS only: the
/// operator gives it an Ingress on `domain` (or the webhook's).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DashboardConfig {
    /// Serve the dashboard at all (default false). A polling bot then listens on its `http` port too.
    #[serde(default)]
    pub enabled: bool,
    /// Public DNS name of the dashboard, e.g. `bots.example.com` (default: `webhook.domain`). When set, the operator makes an Ingress for `<webhook path>/app` on it, also for a polling bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$"
    ))]
    pub domain: Option<String>,
    /// How old Telegram's signed launch data (`initData`) may be before the dashboard refuses it (default `1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<HumanDuration>,
}

impl DashboardConfig {
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);

    /// `maxAge`, default [`Self::DEFAULT_MAX_AGE`].
    pub fn max_age(&self) -> Duration {
        self.max_age
            .as_ref()
            .map_or(Self::DEFAULT_MAX_AGE, HumanDuration::get)
    }
}

impl BotConfig {
    /// The dashboard's section when `dashboard.enabled`.
    pub fn dashboard_enabled(&self) -> Option<&DashboardConfig> {
        self.dashboard.as_ref().filter(|d| d.enabled)
    }

    /// The host name the dashboard is served on: `dashboard.domain`, else `webhook.domain`.
    pub fn dashboard_domain(&self) -> Option<&str> {
        let dashboard = self.dashboard_enabled()?;
        dashboard
            .domain
            .as_deref()
            .or_else(|| self.webhook.as_ref()?.domain.as_deref())
    }
}

/// `pricing` is a list keyed by model (Kubernetes list-map): the API server rejects a model
/// priced twice, and server-side apply merges entries by model.
fn list_keyed_by_model(schema: &mut schemars::Schema) {
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["model"]),
    );
}

/// `owners` is a set (Kubernetes list-set): each id at most once.
fn list_of_unique_values(schema: &mut schemars::Schema) {
    schema.insert("x-kubernetes-list-type".into(), "set".into());
}

/// One source of owner knowledge: give exactly one of `configMapKeyRef`, `inline` or `path`.
/// Markdown or plain text; a key or file whose name ends in `.pdf` is read as a PDF.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KnowledgeSource {
    /// A key of a ConfigMap in the bot's namespace; the operator mounts it read-only and restarts the bot when it changes (a PDF goes into the ConfigMap's `binaryData`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<ConfigMapKeyRef>,
    /// The text itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// A file the bot reads at start (console and local runs; in a cluster use `configMapKeyRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A key of a ConfigMap in the bot's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMapKeyRef {
    /// Name of the ConfigMap.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key within the ConfigMap (`data` or `binaryData`).
    #[schemars(length(min = 1))]
    pub key: String,
}

impl ConfigMapKeyRef {
    /// Where the operator mounts the ConfigMaps of `knowledge` in the bot's pods: one
    /// directory per ConfigMap, one file per key.
    pub const MOUNT_ROOT: &'static str = "/etc/botfleet/knowledge";

    /// The file this key is mounted as.
    pub fn mounted_path(&self) -> String {
        format!("{}/{}/{}", Self::MOUNT_ROOT, self.name, self.key)
    }
}

/// Documents leads send.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DocumentsConfig {
    /// Accept documents at all (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Largest file accepted, in bytes (default 10485760, 10 MiB; the Bot API serves at most 20 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 20971520))]
    pub max_bytes: Option<u64>,
    /// Approximate tokens of the document sent with each question (default 30000); a longer document is cut and the lead is told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub max_tokens: Option<u32>,
    /// Time limit of extracting a document's text (default `20s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract_timeout: Option<HumanDuration>,
}

impl DocumentsConfig {
    pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
    pub const DEFAULT_MAX_TOKENS: u32 = 30_000;
    pub const DEFAULT_EXTRACT_TIMEOUT: Duration = Duration::from_secs(20);

    pub fn enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes.unwrap_or(Self::DEFAULT_MAX_BYTES)
    }

    pub fn max_tokens(&self) -> u32 {
        self.max_tokens.unwrap_or(Self::DEFAULT_MAX_TOKENS)
    }

    pub fn extract_timeout(&self) -> Duration {
        self.extract_timeout
            .as_ref()
            .map_or(Self::DEFAULT_EXTRACT_TIMEOUT, HumanDuration::get)
    }
}

/// Webhook settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookConfig {
    /// Public DNS name that Telegram calls, e.g. `bots.example.com`. Required in webhook mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$"
    ))]
    pub domain: Option<String>,
    /// HTTP path of the webhook endpoint. Default `/telegram/<bot name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/[A-Za-z0-9/_.-]*$"))]
    pub path: Option<String>,
    /// IngressClass of the Ingress that exposes the webhook, e.g. `nginx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_class_name: Option<String>,
    /// TLS for the webhook Ingress: a cert-manager issuer or an existing Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<WebhookTls>,
    /// Maximum simultaneous HTTPS connections Telegram opens to the webhook (1-100, default 40).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_connections: Option<u32>,
}

impl WebhookConfig {
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 40;
}

/// TLS for the webhook Ingress. Give exactly one of `clusterIssuer`, `issuer` or `secretName`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookTls {
    /// cert-manager ClusterIssuer that issues the certificate (sets `cert-manager.io/cluster-issuer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_issuer: Option<String>,
    /// cert-manager Issuer in the bot's namespace (sets `cert-manager.io/issuer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// An existing `kubernetes.io/tls` Secret to use as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// A key of a Secret in the bot's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret.
    pub key: String,
}

/// The LLM API flavour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LlmProvider {
    /// Anthropic Messages API.
    #[default]
    Anthropic,
    /// OpenAI Chat Completions, or any API compatible with it.
    Openai,
}

/// The language model that writes the replies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LlmConfig {
    /// `anthropic` or `openai` (any OpenAI-compatible chat completions API).
    #[serde(default)]
    pub provider: LlmProvider,
    /// Model name sent to the API, e.g. `claude-sonnet-4-5`.
    #[schemars(length(min = 1))]
    pub model: String,
    /// Model tried when the primary model keeps failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_model: Option<String>,
    /// API base URL. Default `https://api.anthropic.com` or `https://api.openai.com/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Secret key holding the API key (the operator passes it to the bot as `LLM_API_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,
    /// System prompt: who the bot is and how it talks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Maximum tokens of one reply (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 200000))]
    pub max_output_tokens: Option<u32>,
    /// Approximate token budget of conversation history sent with each request (default 8000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000000))]
    pub history_tokens: Option<u32>,
    /// Timeout of one API request (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// Retries of one model on 429, 529, 5xx and timeouts, before the fallback model (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub max_retries: Option<u32>,
    /// Stream replies: the lead sees a draft that grows while the model writes (private chats only; default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<bool>,
    /// How often the draft of a streamed reply is updated while the model writes (default `400ms`; the first text is shown at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft_interval: Option<HumanDuration>,
    /// What to do when a streamed answer breaks off after some text: `retry` from the start (default; the broken attempt stays in the ledger as `stream_cut`) or `complete` with the text that arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_stream_cut: Option<StreamCutPolicy>,
    /// OpenAI flavour: the request field of the output limit, `max_completion_tokens` (default for api.openai.com; newer models reject `max_tokens`) or `max_tokens` (default for other OpenAI-compatible servers). Anthropic always uses `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_field: Option<MaxTokensField>,
    /// Anthropic prompt cache lifetime of the stable prefix (system prompt and knowledge): `5m` (default) or `1h` (writes cost more, reads stay cached for an hour of quiet). OpenAI-compatible APIs cache on their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_ttl: Option<PromptCacheTtl>,
    /// Approximate token budget of the owner's `knowledge` in the system prompt (default 20000). What does not fit is cut at section boundaries, with a warning at start and the metric `botfleet_knowledge_tokens{state="cut"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000000))]
    pub knowledge_tokens: Option<u32>,
    /// Answers an identical question about the same knowledge and document again from the database, without an LLM call (off by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_cache: Option<ResponseCacheConfig>,
}

/// Lifetime of Anthropic prompt cache entries written for the stable prefix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PromptCacheTtl {
    /// Five minutes, refreshed by every read (the API's default; writes cost 1.25× input).
    #[default]
    #[serde(rename = "5m")]
    FiveMinutes,
    /// One hour (writes cost 2× input).
    #[serde(rename = "1h")]
    OneHour,
}

/// The response cache: the same question about the same knowledge and document, answered
/// again from the database within `ttl`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseCacheConfig {
    /// Use it at all (default false).
    #[serde(default)]
    pub enabled: bool,
    /// How long a stored answer is reused, e.g. `24h` (default `1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<HumanDuration>,
}

impl ResponseCacheConfig {
    pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

    /// `ttl`, default [`Self::DEFAULT_TTL`].
    pub fn ttl(&self) -> Duration {
        self.ttl
            .as_ref()
            .map_or(Self::DEFAULT_TTL, HumanDuration::get)
    }
}

/// What a streamed answer that breaks off after some text becomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamCutPolicy {
    /// Ask again from the start (counts as one retry of the model).
    #[default]
    Retry,
    /// Use the text that arrived as the answer.
    Complete,
}

/// The request field that carries the output limit in the OpenAI flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// `max_tokens`: older models and most OpenAI-compatible servers.
    MaxTokens,
    /// `max_completion_tokens`: what api.openai.com asks for (reasoning models reject `max_tokens`).
    MaxCompletionTokens,
}

impl MaxTokensField {
    pub fn as_str(self) -> &'static str {
        match self {
            MaxTokensField::MaxTokens => "max_tokens",
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
        }
    }
}

impl LlmConfig {
    pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 1024;
    pub const DEFAULT_HISTORY_TOKENS: u32 = 8000;
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_MAX_RETRIES: u32 = 3;
    pub const DEFAULT_KNOWLEDGE_TOKENS: u32 = 20_000;

    pub const DEFAULT_DRAFT_INTERVAL: Duration = Duration::from_millis(400);

    /// `draftInterval`, default [`Self::DEFAULT_DRAFT_INTERVAL`].
    pub fn draft_interval(&self) -> Duration {
        self.draft_interval
            .as_ref()
            .map_or(Self::DEFAULT_DRAFT_INTERVAL, HumanDuration::get)
    }

    /// Whether replies in private chats are streamed as drafts (`streaming`, default true).
    pub fn streams(&self) -> bool {
        self.streaming.unwrap_or(true)
    }

    /// `timeout`, default [`Self::DEFAULT_TIMEOUT`].
    pub fn timeout(&self) -> Duration {
        self.timeout
            .as_ref()
            .map_or(Self::DEFAULT_TIMEOUT, HumanDuration::get)
    }

    pub fn default_base_url(&self) -> &'static str {
        match self.provider {
            LlmProvider::Anthropic => "https://api.anthropic.com",
            LlmProvider::Openai => "https://api.openai.com/v1",
        }
    }
}

/// Declares a price tier: its own leading fields, the prices every tier has (input, output,
/// and the three cache prices, which default to the tier's input price), then its own trailing
/// fields. One list of the prices for both tiers: flattening a shared struct instead is not
/// possible with `deny_unknown_fields` (serde refuses the combination, and the schema would
/// lose `additionalProperties: false`).
macro_rules! price_tier {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$lead_meta:meta])* pub $lead:ident: $lead_ty:ty,)*
            ..prices..
            $($(#[$tail_meta:meta])* pub $tail:ident: $tail_ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            $($(#[$lead_meta])* pub $lead: $lead_ty,)*
            /// Uncached input tokens.
            pub input: UsdPerMtok,
            /// Output tokens.
            pub output: UsdPerMtok,
            /// Cache writes with a 5-minute lifetime. Default: `input`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub cache_write5m: Option<UsdPerMtok>,
            /// Cache writes with a 1-hour lifetime. Default: `input`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub cache_write1h: Option<UsdPerMtok>,
            /// Cache reads. Default: `input`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub cache_read: Option<UsdPerMtok>,
            $($(#[$tail_meta])* pub $tail: $tail_ty,)*
        }
    };
}

price_tier! {
    /// Prices of one model, USD per million tokens, as decimal strings (e.g. `"3.00"`).
    /// Each must be a whole number of nano-USD per token (at most three decimals).
    pub struct ModelPrice {
        /// Model name as the API reports it.
        #[schemars(length(min = 1))]
        pub model: String,
        ..prices..
        /// Higher prices that apply to a whole request once its prompt exceeds a size.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub long_prompt: Option<LongPromptPrice>,
    }
}

price_tier! {
    /// Long-prompt price tier: applies to every token of a request whose prompt (input + cache
    /// read + cache write tokens) exceeds `aboveInputTokens`.
    pub struct LongPromptPrice {
        /// Prompt size in tokens above which this tier applies, e.g. 200000.
        #[schemars(range(min = 1))]
        pub above_input_tokens: u64,
        ..prices..
    }
}

/// Spend limits (USD, decimal strings) and their alerts. Periods are UTC days and months.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetConfig {
    /// Daily limit in USD, e.g. `"5.00"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<UsdAmount>,
    /// Monthly limit in USD, e.g. `"100.00"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<UsdAmount>,
    /// Percentages of a limit at which the owners get one Telegram message per period (default 50, 80, 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_thresholds: Option<Vec<u32>>,
    /// Past 100 % of a limit, make no LLM call and answer with a fixed polite text (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_stop: Option<bool>,
    /// Limits of one lead's spend (its chats, documents, follow-ups); a lead past its own limit gets a polite reply of its own, and the owners are told once per lead and period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_lead: Option<PerLeadBudget>,
}

/// One lead's daily and monthly limits in USD.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PerLeadBudget {
    /// Daily limit of one lead in USD, e.g. `"0.50"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<UsdAmount>,
    /// Monthly limit of one lead in USD, e.g. `"5.00"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<UsdAmount>,
}

impl BudgetConfig {
    pub const DEFAULT_ALERT_THRESHOLDS: [u32; 3] = [50, 80, 100];

    pub fn alert_thresholds(&self) -> Vec<u32> {
        self.alert_thresholds
            .clone()
            .unwrap_or_else(|| Self::DEFAULT_ALERT_THRESHOLDS.to_vec())
    }

    pub fn hard_stop(&self) -> bool {
        self.hard_stop.unwrap_or(true)
    }
}

/// Follow-up messages to leads who went quiet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FollowUpConfig {
    /// Send follow-ups at all.
    #[serde(default)]
    pub enabled: bool,
    /// Silence since the lead's last message before follow-up 1, 2, ... e.g. `["24h", "48h"]`.
    #[serde(default)]
    pub after: Vec<HumanDuration>,
    /// No follow-ups between these local times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// Extra instruction to the LLM for writing a follow-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

/// A daily window of local time with no follow-ups. `start` after `end` spans midnight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuietHours {
    /// Start, `HH:MM`, e.g. `22:00`.
    pub start: TimeOfDay,
    /// End, `HH:MM`, e.g. `08:00`.
    pub end: TimeOfDay,
    /// IANA time zone, e.g. `Europe/Berlin` (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// Per-user message rate limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Messages one user may send per window (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub messages: Option<u32>,
    /// The window, e.g. `1m` (default `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<HumanDuration>,
}

impl RateLimitConfig {
    pub const DEFAULT_MESSAGES: u32 = 20;
    pub const DEFAULT_PER: Duration = Duration::from_secs(60);

    /// `messages`, default [`Self::DEFAULT_MESSAGES`].
    pub fn messages(&self) -> u32 {
        self.messages.unwrap_or(Self::DEFAULT_MESSAGES)
    }

    /// `per`, default [`Self::DEFAULT_PER`].
    pub fn per(&self) -> Duration {
        self.per
            .as_ref()
            .map_or(Self::DEFAULT_PER, HumanDuration::get)
    }
}

/// What `/start` offers a new lead: suggested questions as buttons under the welcome. Pressing
/// one asks that question as if the lead had typed it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WelcomeConfig {
    /// Suggested questions, 1 to 4, each at most 64 characters, e.g. `["What do you sell?", "How fast do you ship?"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub suggestions: Vec<String>,
    /// Without `suggestions`: let the LLM write 2 to 4 from `llm.systemPrompt`, once per prompt (the result is kept in the database; the call is in the ledger as request type `suggestions`). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_suggestions: Option<bool>,
}

impl WelcomeConfig {
    /// The longest suggestion, in characters (a button's label must stay readable).
    pub const MAX_SUGGESTION_CHARS: usize = 64;
    pub const MAX_SUGGESTIONS: usize = 4;
}

/// Handing a lead over to a person: the bot stops answering that lead with the LLM, tells the
/// owners (or a group of operators) with a summary, and relays messages both ways until the
/// lead is handed back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HandoffConfig {
    /// Hand leads over at all (default true once the section is there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// What hands a lead over (default: all of them): `command` (the lead sends /human), `button` (a "Talk to a person" button under the welcome), `llm` (the model decides from the lead's words, through a tool call), `llmFailure` (every LLM attempt failed), `unanswered` (`unansweredLimit` messages in a row the bot could not answer), `takeover` (an owner sends /takeover), `intent` (the support desk classified the message with an intent in `support.handoffOn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Vec<HandoffTrigger>>,
    /// What the lead is told when handed over (default: a short note that a person will answer here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What the lead is told when handed back to the bot (default: a short note that the bot answers again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_message: Option<String>,
    /// Hand the lead back to the bot after this much silence on both sides, e.g. `2h` (default: never on its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_resume_after: Option<HumanDuration>,
    /// Who is told about a handoff (default: the `owners`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<HandoffNotify>,
    /// Messages in a row the bot could not answer (failures, empty answers, budget stop) before the lead is handed over (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub unanswered_limit: Option<u32>,
    /// Alert (PrometheusRule `BotfleetHandoffWaiting`) when a handed-over lead waits longer than this for a person to take it (default `15m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_alert_after: Option<HumanDuration>,
    /// Remind the people notified while a handed-over lead waits untaken, once at each of these waits since the handoff opened (default `[15m, 30m, 1d]`; `[]`: no reminders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10))]
    pub remind_after: Option<Vec<HumanDuration>>,
    /// Attempts to send one reminder (Telegram refusing it) before it is given up, counted and never recorded as sent (1-10, default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub reminder_max_attempts: Option<u32>,
}

/// What can hand a lead over to a person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum HandoffTrigger {
    /// The lead sends `/human`.
    Command,
    /// The lead presses "Talk to a person" under the welcome.
    Button,
    /// The LLM calls its `handoff_to_human` tool.
    Llm,
    /// Every attempt of an LLM call failed.
    LlmFailure,
    /// `unansweredLimit` messages in a row the bot could not answer.
    Unanswered,
    /// An owner sends `/takeover <lead>`.
    Takeover,
    /// The support desk classified the message with an intent in `support.handoffOn`.
    Intent,
}

impl HandoffTrigger {
    pub const ALL: [HandoffTrigger; 7] = [
        HandoffTrigger::Command,
        HandoffTrigger::Button,
        HandoffTrigger::Llm,
        HandoffTrigger::LlmFailure,
        HandoffTrigger::Unanswered,
        HandoffTrigger::Takeover,
        HandoffTrigger::Intent,
    ];

    /// The `reason` label of `botfleet_handoffs_total` and the word stored with the handoff.
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffTrigger::Command => "command",
            HandoffTrigger::Button => "button",
            HandoffTrigger::Llm => "llm",
            HandoffTrigger::LlmFailure => "llm_failure",
            HandoffTrigger::Unanswered => "unanswered",
            HandoffTrigger::Takeover => "takeover",
            HandoffTrigger::Intent => "intent",
        }
    }
}

/// Who is told about a handoff: owners in their private chats, or one Telegram group of operators (or both).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HandoffNotify {
    /// Telegram user ids told in their private chat with the bot (default: `owners`, unless `chatId` is set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<i64>,
    /// A Telegram group chat id (negative, e.g. `-1001234567890`) of operators: the bot must be a member; anyone in the group may take, answer and resolve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<i64>,
}

impl HandoffConfig {
    pub const DEFAULT_UNANSWERED_LIMIT: u32 = 3;
    pub const DEFAULT_WAIT_ALERT_AFTER: Duration = Duration::from_secs(15 * 60);
    pub const DEFAULT_MESSAGE: &'static str = "I'm passing you to a person from our team — \
they will answer you right here in this chat.";
    pub const DEFAULT_RESUME_MESSAGE: &'static str =
        "Thanks for waiting! I'm the bot again — ask me anything, any time.";

    pub fn enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    /// Whether `trigger` hands a lead over (the section enabled, the trigger listed or no list).
    pub fn triggers_on(&self, trigger: HandoffTrigger) -> bool {
        self.enabled()
            && self
                .triggers
                .as_ref()
                .is_none_or(|list| list.contains(&trigger))
    }

    pub fn unanswered_limit(&self) -> u32 {
        self.unanswered_limit
            .unwrap_or(Self::DEFAULT_UNANSWERED_LIMIT)
    }

    pub fn wait_alert_after(&self) -> Duration {
        self.wait_alert_after
            .as_ref()
            .map_or(Self::DEFAULT_WAIT_ALERT_AFTER, HumanDuration::get)
    }

    pub const DEFAULT_REMIND_AFTER: [Duration; 3] = [
        Duration::from_secs(15 * 60),
        Duration::from_secs(30 * 60),
        Duration::from_secs(24 * 3600),
    ];
    pub const DEFAULT_REMINDER_MAX_ATTEMPTS: u32 = 3;

    /// `remindAfter`, default [`Self::DEFAULT_REMIND_AFTER`], shortest first.
    pub fn remind_after(&self) -> Vec<Duration> {
        let mut steps = self.remind_after.as_ref().map_or_else(
            || Self::DEFAULT_REMIND_AFTER.to_vec(),
            |list| list.iter().map(HumanDuration::get).collect(),
        );
        steps.sort();
        steps.dedup();
        steps
    }

    /// `reminderMaxAttempts`, default [`Self::DEFAULT_REMINDER_MAX_ATTEMPTS`].
    pub fn reminder_max_attempts(&self) -> u32 {
        self.reminder_max_attempts
            .unwrap_or(Self::DEFAULT_REMINDER_MAX_ATTEMPTS)
            .clamp(1, 10)
    }

    pub fn auto_resume_after(&self) -> Option<Duration> {
        self.auto_resume_after.as_ref().map(HumanDuration::get)
    }

    pub fn message(&self) -> &str {
        self.message
            .as_deref()
            .filter(|m| !m.trim().is_empty())
            .unwrap_or(Self::DEFAULT_MESSAGE)
    }

    pub fn resume_message(&self) -> &str {
        self.resume_message
            .as_deref()
            .filter(|m| !m.trim().is_empty())
            .unwrap_or(Self::DEFAULT_RESUME_MESSAGE)
    }
}

/// Owners' announcements to every opted-in lead (`/broadcast`). Leads who sent `/stop` (or
/// blocked the bot) get no broadcasts, as they get no follow-ups.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BroadcastConfig {
    /// A line added at the end of every broadcast message, e.g. `Send /stop to get no more announcements.` (plain text; default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub opt_out_line: Option<String>,
    /// IANA time zone of `/broadcast at 2026-12-24 10:00`, e.g. `Europe/Berlin` (default: `followUp.quietHours.timeZone`, else `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Attempts per recipient on transient failures (server errors, timeouts) before it counts as failed (1-10, default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub max_attempts: Option<u32>,
}

impl BroadcastConfig {
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
    pub const MAX_OPT_OUT_LINE_CHARS: usize = 200;

    /// `maxAttempts`, default [`Self::DEFAULT_MAX_ATTEMPTS`].
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
            .unwrap_or(Self::DEFAULT_MAX_ATTEMPTS)
            .clamp(1, 10)
    }
}

/// The support desk: what a lead's message is about, decided by the model before the answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SupportConfig {
    /// Classify every text a lead sends (intent and topic) with one call of the `classify_message` tool before it is answered; priced as request type `classification`, cached by the message's normalised text. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classify: Option<bool>,
    /// The model that classifies (default: `llm.fallbackModel`, else `llm.model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier_model: Option<String>,
    /// Intents that hand the lead over to a person, the intent given as the reason (default `[human]`; needs the `handoff` section).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_on: Option<Vec<Intent>>,
}

impl SupportConfig {
    pub fn classifies(&self) -> bool {
        self.classify.unwrap_or(false)
    }

    /// `classifierModel`, else the fallback model, else the main one.
    pub fn classifier_model<'a>(&'a self, llm: &'a LlmConfig) -> &'a str {
        self.classifier_model
            .as_deref()
            .or(llm.fallback_model.as_deref())
            .filter(|m| !m.trim().is_empty())
            .unwrap_or(&llm.model)
    }

    /// Whether `intent` hands the lead over (`handoffOn`, default `[human]`).
    pub fn hands_over_on(&self, intent: Intent) -> bool {
        self.handoff_on
            .as_ref()
            .map_or(intent == Intent::Human, |list| list.contains(&intent))
    }
}

/// What a lead's message wants, as the classifier names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// A question the bot can answer.
    Question,
    /// The lead wants to buy.
    Purchase,
    /// The lead is unhappy with something.
    Complaint,
    /// Something does not work for the lead.
    TechSupport,
    /// The lead asks for a person.
    Human,
    /// Spam: no answer.
    Spam,
    /// Anything else.
    Other,
}

impl Intent {
    pub const ALL: [Intent; 7] = [
        Intent::Question,
        Intent::Purchase,
        Intent::Complaint,
        Intent::TechSupport,
        Intent::Human,
        Intent::Spam,
        Intent::Other,
    ];

    /// The word the model uses and the `intent` label of `botfleet_messages_classified_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Question => "question",
            Intent::Purchase => "purchase",
            Intent::Complaint => "complaint",
            Intent::TechSupport => "tech_support",
            Intent::Human => "human",
            Intent::Spam => "spam",
            Intent::Other => "other",
        }
    }

    pub fn parse(word: &str) -> Option<Intent> {
        Intent::ALL.into_iter().find(|i| i.as_str() == word)
    }
}
