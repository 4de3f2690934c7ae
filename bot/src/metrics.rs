//! The bot's Prometheus metrics (prefix `botfleet_`), one registry per process.
//!
//! Names are a contract with the operator's alert rules and the dashboards: see DESIGN.md
//! "Metrics". Labels never carry Telegram user or chat ids.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub model: String,
    pub request_type: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub model: String,
    pub request_type: String,
    pub token_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CostLabels {
    pub model: String,
    pub request_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IntentLabels {
    pub intent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeriodLabels {
    pub period: String,
}

type FloatCounter = Counter<f64, AtomicU64>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn llm_duration_histogram() -> Histogram {
    // 50 ms … ~100 s: LLM calls are slow and long-tailed.
    Histogram::new(exponential_buckets(0.05, 2.0, 12))
}

/// Every metric the bot exports. Cheap to share behind an `Arc`.
pub struct Metrics {
    registry: Registry,
    pub telegram_updates: Family<KindLabels, Counter>,
    pub webhook_rejected: Family<ReasonLabels, Counter>,
    pub messages_sent: Counter,
    pub llm_requests: Family<RequestLabels, Counter>,
    pub llm_request_duration: Family<ModelLabels, Histogram, fn() -> Histogram>,
    /// From an update's arrival to the first text the lead sees (a draft, or the reply).
    pub reply_first_text: Histogram,
    pub llm_tokens: Family<TokenLabels, Counter>,
    pub llm_cost_usd: Family<CostLabels, FloatCounter>,
    pub llm_unpriced_calls: Family<ModelLabels, Counter>,
    pub llm_spend_usd: Family<PeriodLabels, FloatGauge>,
    pub llm_budget_usd: Family<PeriodLabels, FloatGauge>,
    pub followups_sent: Counter,
    pub followups_due: Gauge,
    pub followups_overdue: Gauge,
    pub scheduler_leader: Gauge,
    pub inbox_pending: Gauge,
    /// Updates per inbox transaction (a group commit of webhook requests, a `getUpdates` answer).
    pub inbox_batch_rows: Histogram,
    pub rate_limited: Counter,
    pub telegram_unreachable: Family<ReasonLabels, Counter>,
    /// Estimated tokens of the owner's knowledge in the prompt (`loaded`) and left out (`cut`).
    pub knowledge_tokens: Family<StateLabels, Gauge>,
    /// Documents leads sent, by outcome.
    pub documents: Family<OutcomeLabels, Counter>,
    /// Answers served from the response cache, without an LLM call.
    pub response_cache_hits: Counter,
    pub handoffs: Family<ReasonLabels, Counter>,
    pub handoffs_open: Gauge,
    pub handoff_oldest_waiting_seconds: Gauge,
    pub handoff_notify_failures: Counter,
    pub broadcast_messages: Family<OutcomeLabels, Counter>,
    pub broadcasts_running: Gauge,
    /// Dashboard API requests, by outcome (`ok`, `unauthorized`, `forbidden`, `rate_limited`, `error`).
    pub dashboard_requests: Family<OutcomeLabels, Counter>,
    pub messages_classified: Family<IntentLabels, Counter>,
    pub handoff_reminders: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = botfleet_telemetry::metrics_registry();
        let m = Self {
            telegram_updates: Family::default(),
            webhook_rejected: Family::default(),
            messages_sent: Counter::default(),
            llm_requests: Family::default(),
            llm_request_duration: Family::new_with_constructor(llm_duration_histogram),
            reply_first_text: llm_duration_histogram(),
            llm_tokens: Family::default(),
            llm_cost_usd: Family::default(),
            llm_unpriced_calls: Family::default(),
            llm_spend_usd: Family::default(),
            llm_budget_usd: Family::default(),
            followups_sent: Counter::default(),
            followups_due: Gauge::default(),
            followups_overdue: Gauge::default(),
            scheduler_leader: Gauge::default(),
            inbox_pending: Gauge::default(),
            // 1 … 256 (the largest batch).
            inbox_batch_rows: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            rate_limited: Counter::default(),
            telegram_unreachable: Family::default(),
            knowledge_tokens: Family::default(),
            documents: Family::default(),
            response_cache_hits: Counter::default(),
            handoffs: Family::default(),
            handoffs_open: Gauge::default(),
            handoff_oldest_waiting_seconds: Gauge::default(),
            handoff_notify_failures: Counter::default(),
            broadcast_messages: Family::default(),
            broadcasts_running: Gauge::default(),
            dashboard_requests: Family::default(),
            messages_classified: Family::default(),
            handoff_reminders: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "telegram_updates",
            "Telegram updates accepted, by kind",
            m.telegram_updates.clone(),
        );
        r.register(
            "webhook_rejected",
            "Webhook requests rejected, by reason",
            m.webhook_rejected.clone(),
        );
        r.register(
            "messages_sent",
            "Messages sent to Telegram",
            m.messages_sent.clone(),
        );
        r.register(
            "llm_requests",
            "LLM API calls, by model, request type and outcome",
            m.llm_requests.clone(),
        );
        r.register(
            "llm_request_duration_seconds",
            "LLM API call latency",
            m.llm_request_duration.clone(),
        );
        r.register(
            "reply_first_text_seconds",
            "Time from an update's arrival to the first text the user sees (the first draft of a streamed reply, else the reply)",
            m.reply_first_text.clone(),
        );
        r.register(
            "llm_tokens",
            "LLM tokens, by model, request type and token class",
            m.llm_tokens.clone(),
        );
        r.register(
            "llm_cost_usd",
            "LLM spend in USD (exact values live in the ledger)",
            m.llm_cost_usd.clone(),
        );
        r.register(
            "llm_unpriced_calls",
            "LLM calls to a model with no configured price",
            m.llm_unpriced_calls.clone(),
        );
        r.register(
            "llm_spend_usd",
            "LLM spend in the current period (day, month), from the ledger",
            m.llm_spend_usd.clone(),
        );
        r.register(
            "llm_budget_usd",
            "Configured LLM budget per period (day, month)",
            m.llm_budget_usd.clone(),
        );
        r.register(
            "followups_sent",
            "Follow-up messages sent",
            m.followups_sent.clone(),
        );
        r.register(
            "followups_due",
            "Leads due a follow-up now",
            m.followups_due.clone(),
        );
        r.register(
            "followups_overdue",
            "Leads due a follow-up for more than an hour",
            m.followups_overdue.clone(),
        );
        r.register(
            "scheduler_leader",
            "1 when this process is the active scheduler",
            m.scheduler_leader.clone(),
        );
        r.register(
            "inbox_pending",
            "Updates accepted but not yet handled",
            m.inbox_pending.clone(),
        );
        r.register(
            "inbox_batch_rows",
            "Updates stored per inbox transaction (a group commit of webhook requests, or one getUpdates answer)",
            m.inbox_batch_rows.clone(),
        );
        r.register(
            "dashboard_requests",
            "Owners' dashboard API requests, by outcome (ok, unauthorized, forbidden, rate_limited, error)",
            m.dashboard_requests.clone(),
        );
        r.register(
            "rate_limited",
            "User messages refused by the per-user rate limit",
            m.rate_limited.clone(),
        );
        r.register(
            "telegram_unreachable",
            "Messages Telegram refused because the chat is unreachable (blocked, deactivated, not found); the lead is opted out",
            m.telegram_unreachable.clone(),
        );
        r.register(
            "knowledge_tokens",
            "Estimated tokens of the owner's knowledge in the system prompt (state=loaded) and left out for llm.knowledgeTokens (state=cut)",
            m.knowledge_tokens.clone(),
        );
        r.register(
            "documents",
            "Documents leads sent, by outcome (accepted, too_large, unsupported, unreadable, download_failed)",
            m.documents.clone(),
        );
        r.register(
            "response_cache_hits",
            "Questions answered from the response cache without an LLM call",
            m.response_cache_hits.clone(),
        );
        r.register(
            "handoffs",
            "Leads handed over to a person, by reason",
            m.handoffs.clone(),
        );
        r.register(
            "handoffs_open",
            "Handoffs open now (waiting for a person or taken)",
            m.handoffs_open.clone(),
        );
        r.register(
            "handoff_oldest_waiting_seconds",
            "How long the longest-waiting handed-over lead has waited for a person to take it (0: none waiting)",
            m.handoff_oldest_waiting_seconds.clone(),
        );
        r.register(
            "handoff_notify_failures",
            "Failed attempts to send a handoff message to an owner (each is retried until delivered)",
            m.handoff_notify_failures.clone(),
        );
        r.register(
            "broadcast_messages",
            "Broadcast messages by outcome: sent, blocked (the lead is opted out), failed (given up after retries), retried",
            m.broadcast_messages.clone(),
        );
        r.register(
            "broadcasts_running",
            "Broadcasts this process is sending now",
            m.broadcasts_running.clone(),
        );
        r.register(
            "messages_classified",
            "Lead messages classified by the support desk, by intent (cache hits included)",
            m.messages_classified.clone(),
        );
        r.register(
            "handoff_reminders",
            "Reminder attempts about an untaken handoff, by outcome: sent, failed (retried), given_up (after handoff.reminderMaxAttempts)",
            m.handoff_reminders.clone(),
        );
        Self { registry, ..m }
    }
}

impl Metrics {
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Prometheus text format (what `/metrics` serves unless OpenMetrics is asked for).
    pub fn encode(&self) -> String {
        botfleet_telemetry::encode_prometheus(&self.registry)
    }
}

pub fn model_labels(model: &str) -> ModelLabels {
    ModelLabels {
        model: model.to_owned(),
    }
}
