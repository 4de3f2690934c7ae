//! The one metered road to the LLM. Every call the bot makes goes through [`MeteredLlm`]: the
//! budget gate, the call (plain, streamed, with tools), one ledger row per attempt, the refusal
//! record and the metrics. The raw client is private to this module, so a new feature adds a
//! [`RequestType`], not another "gate → call → ledger" sequence.
//!
//! [`MeteredLlm::admit`] is the one place a call is let through: when a limit stops calls, it
//! reserves the worst-case cost of the first attempt against every limit (`reserve.rs`), and
//! each retry or fallback attempt grows the reservation first (not made if it does not fit).
//! [`Permit`]'s methods are the one place the cost is recorded: the ledger rows written and
//! the reservation deleted in one transaction.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use botfleet_llm::{
    CallBounds, Completion, CompletionOutcome, CompletionRequest, LlmClient, LlmError, RetryGate,
    StreamEvent, Tool,
};
use chrono::{DateTime, Utc};

use super::rates::ModelRates;
use super::reserve::{self, Hold};
use super::{CallContext, Money, MoneyError, Refusal, RequestType, worst_case};
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
    /// The call's worst-case cost does not fit a limit: no call was made.
    Refused { refusal: Refusal },
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

/// A call the budget let through; its cost is recorded when it is made. Its reservation, if
/// any, is deleted then, or by [`Permit::release`]; a permit dropped otherwise leaves it to
/// expire.
pub struct Permit<'a> {
    llm: &'a MeteredLlm,
    spec: CallSpec<'a>,
    reservation: Option<Reservation<'a>>,
}

/// How long a reservation outlives the start of the attempt it covers, beyond `llm.timeout`:
/// the time to price and write the call's ledger rows.
pub const RESERVATION_MARGIN: Duration = Duration::from_secs(10);

/// The reservation of one call: its id and the worst case of the attempts allowed so far.
/// It is the call's [`RetryGate`]: each further attempt grows it first.
struct Reservation<'a> {
    llm: &'a MeteredLlm,
    bounds: CallBounds,
    chat_id: Option<i64>,
    /// (id, amount in nano-USD)
    held: Mutex<(i64, i64)>,
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
            Err(refusal) => Ok(Metered::Refused { refusal }),
        }
    }

    /// The budget's answer to `spec`: a permit (holding the reservation of the first
    /// attempt's worst-case cost when a limit stops calls), or the limit it does not fit (the
    /// refusal is counted, `llm_requests_total{outcome="budget_refused"}`, with the model the
    /// ledger uses; no ledger row, nothing was sent).
    pub async fn admit<'a>(
        &'a self,
        spec: CallSpec<'a>,
    ) -> Result<Result<Permit<'a>, Refusal>, MoneyError> {
        if !self.money.limits().reserves() {
            return Ok(Ok(Permit {
                llm: self,
                spec,
                reservation: None,
            }));
        }
        let bounds = self.client.bounds(spec.request, spec.tools);
        let amount = self.attempt_nanos(self.model(), &bounds);
        let hold = Hold {
            chat_id: spec.chat_id,
            amount_nanos: amount,
            replacing: None,
            now: spec.at,
            expires_at: spec.at + expiry(&bounds),
        };
        match reserve::reserve(&self.db, self.money.limits(), hold).await? {
            Ok(id) => Ok(Ok(Permit {
                llm: self,
                spec,
                reservation: Some(Reservation {
                    llm: self,
                    bounds,
                    chat_id: spec.chat_id,
                    held: Mutex::new((id, amount)),
                }),
            })),
            Err(refusal) => {
                self.money
                    .record_refusal(&self.metrics, self.model(), spec.request_type);
                tracing::info!(
                    request_type = spec.request_type.as_str(),
                    scope = refusal.scope(),
                    period = refusal.period().as_str(),
                    worst_case_nanos = amount,
                    "budget: the call's worst-case cost does not fit; no LLM call"
                );
                Ok(Err(refusal))
            }
        }
    }

    /// The worst-case cost of one attempt on `model`: at its price, or at the provider's
    /// dearest known rates when it has none.
    fn attempt_nanos(&self, model: &str, bounds: &CallBounds) -> i64 {
        let prices = self.money.prices();
        let rates = prices.model(model).cloned().unwrap_or_else(|| ModelRates {
            base: prices.dearest_rates(self.money.provider()),
            long_prompt: None,
        });
        worst_case::attempt_nanos(&rates, bounds)
    }

    /// An answer served from the response cache: one zero-cost ledger row (outcome
    /// `response_cache`) for the model a call would have asked.
    pub async fn cache_hit(&self, call: CallContext, at: DateTime<Utc>) -> Result<(), MoneyError> {
        self.money
            .record_response_cache_hit(&self.db, &self.metrics, call, self.model(), at)
            .await
    }
}

/// How long after an attempt starts its reservation stops counting.
fn expiry(bounds: &CallBounds) -> chrono::Duration {
    chrono::Duration::from_std(bounds.attempt_timeout + RESERVATION_MARGIN)
        .unwrap_or(chrono::Duration::MAX)
}

impl Reservation<'_> {
    /// Grows the reservation by one attempt on `model`; false when that does not fit.
    async fn grow(&self, model: &str) -> bool {
        let llm = self.llm;
        let (id, amount) = *self.held.lock().unwrap_or_else(|e| e.into_inner());
        let total = amount.saturating_add(llm.attempt_nanos(model, &self.bounds));
        let now = Utc::now();
        let hold = Hold {
            chat_id: self.chat_id,
            amount_nanos: total,
            replacing: Some(id),
            now,
            expires_at: now + expiry(&self.bounds),
        };
        match reserve::reserve(&llm.db, llm.money.limits(), hold).await {
            Ok(Ok(new_id)) => {
                *self.held.lock().unwrap_or_else(|e| e.into_inner()) = (new_id, total);
                true
            }
            Ok(Err(refusal)) => {
                tracing::info!(
                    %model,
                    scope = refusal.scope(),
                    period = refusal.period().as_str(),
                    "budget: no room for another attempt; the call ends with its last failure"
                );
                false
            }
            Err(error) => {
                tracing::warn!(%model, %error, "budget: cannot reserve another attempt; the call ends with its last failure");
                false
            }
        }
    }

    fn id(&self) -> i64 {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

impl RetryGate for Reservation<'_> {
    fn allow<'a>(&'a self, model: &'a str) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(self.grow(model))
    }
}

impl Permit<'_> {
    /// The call, answered whole.
    pub async fn complete(self) -> Result<Metered, MoneyError> {
        let started = std::time::Instant::now();
        let (request, tools) = (self.spec.request, self.spec.tools);
        let client = &self.llm.client;
        let outcome = match &self.reservation {
            None => client.complete_with_tools(request, tools).await,
            Some(gate) => client.complete_gated(request, tools, gate).await,
        };
        self.record(outcome, started).await
    }

    /// Gives the reservation back: the call is not made after all (answered from the cache).
    pub async fn release(self) -> Result<(), MoneyError> {
        if let Some(reservation) = &self.reservation {
            self.llm
                .money
                .settle_call(
                    &self.llm.db,
                    &self.llm.metrics,
                    self.spec.call_context(),
                    &[],
                    self.spec.at,
                    Some(reservation.id()),
                )
                .await?;
        }
        Ok(())
    }

    /// The call, streamed: `on_event` sees the text as the model writes it.
    pub async fn stream<F>(self, on_event: F) -> Result<Metered, MoneyError>
    where
        F: for<'e> FnMut(StreamEvent<'e>) + Send,
    {
        let started = std::time::Instant::now();
        let (request, tools) = (self.spec.request, self.spec.tools);
        let client = &self.llm.client;
        let outcome = match &self.reservation {
            None => client.stream_with_tools(request, tools, on_event).await,
            Some(gate) => client.stream_gated(request, tools, gate, on_event).await,
        };
        self.record(outcome, started).await
    }

    /// Every attempt priced into the ledger and the metrics, the reservation deleted with
    /// them, then the outcome.
    async fn record(
        self,
        outcome: CompletionOutcome,
        started: std::time::Instant,
    ) -> Result<Metered, MoneyError> {
        let at = self.spec.at + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
        let llm = self.llm;
        llm.money
            .settle_call(
                &llm.db,
                &llm.metrics,
                self.spec.call_context(),
                &outcome.attempts,
                at,
                self.reservation.as_ref().map(Reservation::id),
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
