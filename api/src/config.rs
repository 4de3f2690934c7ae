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
/// same names and nesting. The operator renders it into the bot's ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BotConfig {
    /// `polling` (default) or `webhook`.
    #[serde(default)]
    pub mode: Mode,
    /// Webhook settings; used in webhook mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
    /// The language model that writes the replies.
    pub llm: LlmConfig,
    /// Prices per model, USD per million tokens. A model without a price is counted and alerted on, never treated as free.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pricing: Vec<ModelPrice>,
    /// Spend limits and their alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetConfig>,
    /// Telegram user ids allowed to use the owner commands (/llm_stats, /stats, /budget); they also receive budget alerts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<i64>,
    /// Follow-up messages to leads who went quiet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<FollowUpConfig>,
    /// Per-user message rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
    /// What `/start` offers a new lead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome: Option<WelcomeConfig>,
    /// Owners' announcements to every opted-in lead (`/broadcast`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<BroadcastConfig>,
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

/// Prices of one model, USD per million tokens, as decimal strings (e.g. `"3.00"`).
/// Each must be a whole number of nano-USD per token (at most three decimals).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelPrice {
    /// Model name as the API reports it.
    #[schemars(length(min = 1))]
    pub model: String,
    /// Uncached input tokens.
    pub input: UsdPerMtok,
    /// Output tokens.
    pub output: UsdPerMtok,
    /// Cache writes with a 5-minute lifetime. Default: the input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write5m: Option<UsdPerMtok>,
    /// Cache writes with a 1-hour lifetime. Default: the input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write1h: Option<UsdPerMtok>,
    /// Cache reads. Default: the input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<UsdPerMtok>,
    /// Higher prices that apply to a whole request once its prompt exceeds a size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_prompt: Option<LongPromptPrice>,
}

/// Long-prompt price tier: applies to every token of a request whose prompt (input + cache
/// read + cache write tokens) exceeds `aboveInputTokens`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LongPromptPrice {
    /// Prompt size in tokens above which this tier applies, e.g. 200000.
    #[schemars(range(min = 1))]
    pub above_input_tokens: u64,
    /// Uncached input tokens.
    pub input: UsdPerMtok,
    /// Output tokens.
    pub output: UsdPerMtok,
    /// Cache writes with a 5-minute lifetime. Default: this tier's input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write5m: Option<UsdPerMtok>,
    /// Cache writes with a 1-hour lifetime. Default: this tier's input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write1h: Option<UsdPerMtok>,
    /// Cache reads. Default: this tier's input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<UsdPerMtok>,
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
