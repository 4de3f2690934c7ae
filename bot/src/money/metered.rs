//! The one metered road to the LLM. Every call the bot makes goes through [`MeteredLlm`]: the
//! budget gate, the call (plain, streamed, with tools), one ledger row per attempt, the refusal
//! record and the metrics. The raw client is private to this module, so a new feature adds a
//! [`RequestType`], not another "gate → call → ledger" sequence.
//!
//! [`MeteredLlm::admit`] is the one place a call is let through (today a gate on the spend so
//! far; later a reservation of the worst-case cost), and [`Permit`]'s methods the one place
//! its cost is recorded (later: the reservation settled to the exact cost).

use std::future::Future;
use std::sync::Arc;

use botfleet_llm::{
    Completion, CompletionOutcome, CompletionRequest, LlmClient, LlmError, StreamEvent, Tool,
};
use chrono::{DateTime, Utc};

use super::{BudgetGate, CallContext, Money, MoneyError, Period, RequestType};
use crate::db::Db;
use crate::metrics::Metrics;

/// Who and what one LLM call is for, and what is asked.
#[derive(Clone, Copy)]
pub struct CallSpec<'a> {
    pub request_type: RequestType,
    /// The lead the call is about (its spend is the lead's), when there is one.
    pub chat_id: Option<i64>,
    /// The update that caused it, when one did.
    pub update_id: Option<i64>,
    pub request: &'a CompletionRequest,
    /// Tools the model may call (none: plain text).
    pub tools: &'a [Tool],
    /// When the call is made: the budget period it is checked against; its ledger rows are
    /// dated this plus the call's duration.
    pub at: DateTime<Utc>,
}

impl CallSpec<'_> {
    fn call_context(&self) -> CallContext {
        CallContext {
            chat_id: self.chat_id,
            update_id: self.update_id,
            request_type: self.request_type,
        }
    }
}

/// How a metered call ended.
#[derive(Debug)]
pub enum Metered {
    /// The model answered (possibly with a tool call, possibly with empty text).
    Answered(Completion),
    /// The budget is spent (`hardStop`): no call was made.
    Refused { period: Period },
    /// Every attempt failed; each is in the ledger.
    Failed { error: LlmError, attempts: usize },
}

/// The LLM client behind the budget and the ledger. Cheap to clone.
#[derive(Clone)]
pub struct MeteredLlm {
    client: LlmClient,
    money: Arc<Money>,
    db: Db,
    metrics: Arc<Metrics>,
}

/// A call the budget let through; its cost is recorded when it is made.
pub struct Permit<'a> {
    llm: &'a MeteredLlm,
    spec: CallSpec<'a>,
}

impl MeteredLlm {
    pub fn new(client: LlmClient, money: Arc<Money>, db: Db, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            money,
            db,
            metrics,
        }
    }

    /// The model asked first, as the ledger names it.
    pub fn model(&self) -> &str {
        self.client.model()
    }

    /// Asks the budget, then makes the call (plain, or with the spec's tools).
    pub async fn call(&self, spec: CallSpec<'_>) -> Result<Metered, MoneyError> {
        match self.admit(spec).await? {
            Ok(permit) => permit.complete().await,
            Err(period) => Ok(Metered::Refused { period }),
        }
    }

    /// The budget's answer to `spec`: a permit, or the period whose limit is spent (the
    /// refusal is counted, `llm_requests_total{outcome="budget_refused"}`, with the model the
    /// ledger uses; no ledger row, nothing was sent).
    pub async fn admit<'a>(
        &'a self,
        spec: CallSpec<'a>,
    ) -> Result<Result<Permit<'a>, Period>, MoneyError> {
        match self.money.gate(&self.db, spec.at).await? {
            BudgetGate::Open => Ok(Ok(Permit { llm: self, spec })),
            BudgetGate::Stopped { period } => {
                self.money
                    .record_refusal(&self.metrics, self.model(), spec.request_type);
                tracing::info!(
                    request_type = spec.request_type.as_str(),
                    ?period,
                    "budget reached: no LLM call"
                );
                Ok(Err(period))
            }
        }
    }

    /// An answer served from the response cache: one zero-cost ledger row (outcome
    /// `response_cache`) for the model a call would have asked.
    pub async fn cache_hit(&self, call: CallContext, at: DateTime<Utc>) -> Result<(), MoneyError> {
        self.money
            .record_response_cache_hit(&self.db, &self.metrics, call, self.model(), at)
            .await
    }
}

impl Permit<'_> {
    /// The call, answered whole.
    pub async fn complete(self) -> Result<Metered, MoneyError> {
        let call = self
            .llm
            .client
            .complete_with_tools(self.spec.request, self.spec.tools);
        self.record(call).await
    }

    /// The call, streamed: `on_event` sees the text as the model writes it.
    pub async fn stream<F>(self, on_event: F) -> Result<Metered, MoneyError>
    where
        F: for<'e> FnMut(StreamEvent<'e>) + Send,
    {
        let call = self
            .llm
            .client
            .stream_with_tools(self.spec.request, self.spec.tools, on_event);
        self.record(call).await
    }

    /// Every attempt priced into the ledger and the metrics, then the outcome.
    async fn record(
        self,
        call: impl Future<Output = CompletionOutcome>,
    ) -> Result<Metered, MoneyError> {
        let started = std::time::Instant::now();
        let outcome = call.await;
        let at = self.spec.at + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
        let llm = self.llm;
        llm.money
            .record_call(
                &llm.db,
                &llm.metrics,
                self.spec.call_context(),
                &outcome.attempts,
                at,
            )
            .await?;
        Ok(match outcome.result {
            Ok(completion) => Metered::Answered(completion),
            Err(error) => Metered::Failed {
                error,
                attempts: outcome.attempts.len(),
            },
        })
    }
}
