//! Follow-ups to leads who went quiet: which are due ([`plan`], pure), how they are claimed so
//! each goes out once ([`store`]), and one scheduler tick that writes and sends them
//! ([`FollowUpRunner::tick`]).
//!
//! One follow-up: claim the lead in the database → budget gate → the LLM writes the message
//! from the recent conversation (request type `followup`, priced into the ledger) → Telegram
//! → the message is recorded and the lead's counter advanced, conditional on the claim. A
//! transient failure releases the claim (the next tick tries again); a crash leaves it to
//! expire after [`CLAIM_TTL`], after which the lead is tried again.

pub mod plan;
pub mod store;

use std::time::Duration;

use botfleet_api::{ConfigError, LlmConfig};
use botfleet_llm::{ChatMessage, CompletionRequest, Role};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::db::SqlError;
use crate::money::{BudgetGate, CallSpec, Metered, Money, MoneyError, RequestType};
use crate::telegram::{Format, Priority};

pub use plan::{FollowUpPlan, LeadState, QuietWindow};
pub use store::DueLead;

/// How long a claim keeps other schedulers off a lead: longer than an LLM call with its
/// retries plus a send with Telegram's `retry_after` waits.
pub const CLAIM_TTL: Duration = Duration::from_secs(10 * 60);
/// Leads taken per step and tick; the rest wait for the next tick (oldest silence first).
pub const DEFAULT_BATCH: i64 = 200;
/// Follow-ups written at once (LLM calls run concurrently; the outbound limiter paces the
/// sends, behind any chat reply).
const CONCURRENCY: usize = 4;
/// A lead due for longer than this counts as overdue (`botfleet_followups_overdue`).
const OVERDUE_AFTER_MS: i64 = 3_600_000;

/// Instruction given to the LLM when `followUp.prompt` is not set.
pub const DEFAULT_PROMPT: &str = "The customer has not replied for a while. Write one short, \
friendly follow-up message to them that picks up what you talked about, offers help with the \
next step, and does not repeat your earlier messages or pressure them. Reply with the message \
text only.";

#[derive(Debug, thiserror::Error)]
pub enum FollowUpError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Leads due a follow-up at the start of the tick (all steps).
    pub due: i64,
    /// Of those, due for more than an hour.
    pub overdue: i64,
    /// Follow-ups Telegram accepted.
    pub sent: u32,
    /// Leads another scheduler had claimed first (or that changed under us).
    pub lost_claims: u32,
    /// Sends or LLM calls that failed and will be retried.
    pub retry_later: u32,
    /// Leads whose chat is gone: their sequence ended.
    pub unreachable: u32,
    /// Quiet hours: nothing was sent.
    pub quiet: bool,
    /// The budget is stopped: nothing was written.
    pub budget_stopped: bool,
}

/// What became of one claimed lead.
enum LeadOutcome {
    Sent,
    LostClaim,
    RetryLater,
    Unreachable,
    BudgetStopped,
}

/// Runs follow-up ticks for one bot process.
pub struct FollowUpRunner {
    plan: Option<FollowUpPlan>,
    prompt: String,
    identity: String,
    batch: i64,
}

impl FollowUpRunner {
    /// Reads the `followUp` section; `identity` names this scheduler in claims (the pod name).
    pub fn new(ctx: &Context, identity: impl Into<String>) -> Result<Self, ConfigError> {
        let config = ctx.settings.bot.follow_up.as_ref();
        let plan = FollowUpPlan::from_config(config)?;
        let prompt = config
            .and_then(|c| c.prompt.clone())
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_PROMPT.to_owned());
        Ok(Self {
            plan,
            prompt,
            identity: identity.into(),
            batch: DEFAULT_BATCH,
        })
    }

    /// Leads taken per step and tick (default [`DEFAULT_BATCH`]).
    pub fn with_batch(mut self, batch: i64) -> Self {
        self.batch = batch.max(1);
        self
    }

    pub fn plan(&self) -> Option<&FollowUpPlan> {
        self.plan.as_ref()
    }

    /// One pass at `now`: sets the due/overdue gauges, then (outside quiet hours, with the
    /// budget open) claims, writes and sends the follow-ups that are due. Once `stop` fires no
    /// new lead is started; follow-ups in flight finish (a send is never cut off before it
    /// is recorded).
    pub async fn tick(
        &self,
        ctx: &Context,
        money: &Money,
        now: DateTime<Utc>,
        stop: &CancellationToken,
    ) -> Result<TickReport, FollowUpError> {
        let mut report = TickReport::default();
        let Some(plan) = &self.plan else {
            ctx.metrics.followups_due.set(0);
            ctx.metrics.followups_overdue.set(0);
            return Ok(report);
        };
        for step in 0..plan.steps() {
            let cutoff = plan.cutoff_ms(step, now);
            let step = step_u32(step);
            report.due += store::count_due(&ctx.db, step, cutoff).await?;
            report.overdue += store::count_due(&ctx.db, step, cutoff - OVERDUE_AFTER_MS).await?;
        }
        ctx.metrics.followups_due.set(report.due);
        ctx.metrics.followups_overdue.set(report.overdue);
        if report.due == 0 {
            return Ok(report);
        }
        if plan.is_quiet(now) {
            tracing::debug!(due = report.due, "quiet hours: follow-ups wait");
            report.quiet = true;
            return Ok(report);
        }
        if let BudgetGate::Stopped { period } = money.gate(&ctx.db, now).await? {
            tracing::warn!(?period, due = report.due, "budget reached: no follow-ups");
            report.budget_stopped = true;
            return Ok(report);
        }

        let now_ms = now.timestamp_millis();
        let mut due = Vec::new();
        for step in 0..plan.steps() {
            let leads = store::select_due(
                &ctx.db,
                step_u32(step),
                plan.cutoff_ms(step, now),
                plan.gap_cutoff_ms(step, now),
                now_ms,
                self.batch,
            )
            .await?;
            due.extend(leads);
        }
        let outcomes = futures::stream::iter(due)
            .take_until(stop.cancelled())
            .map(|lead| self.follow_up(ctx, plan, lead, now))
            .buffer_unordered(CONCURRENCY);
        tokio::pin!(outcomes);
        while let Some(outcome) = outcomes.next().await {
            match outcome {
                LeadOutcome::Sent => report.sent += 1,
                LeadOutcome::LostClaim => report.lost_claims += 1,
                LeadOutcome::RetryLater => report.retry_later += 1,
                LeadOutcome::Unreachable => report.unreachable += 1,
                LeadOutcome::BudgetStopped => report.budget_stopped = true,
            }
        }
        if report.sent > 0 || report.retry_later > 0 {
            tracing::info!(
                sent = report.sent,
                retry_later = report.retry_later,
                lost_claims = report.lost_claims,
                unreachable = report.unreachable,
                "follow-ups tick"
            );
        }
        Ok(report)
    }

    /// Claims, writes and sends one follow-up. Errors are logged here; the claim is released
    /// on every path that did not send, so the lead is tried again.
    async fn follow_up(
        &self,
        ctx: &Context,
        plan: &FollowUpPlan,
        lead: DueLead,
        now: DateTime<Utc>,
    ) -> LeadOutcome {
        let now_ms = now.timestamp_millis();
        let token = format!("{}:{:016x}", self.identity, rand::random::<u64>());
        let ttl_ms = i64::try_from(CLAIM_TTL.as_millis()).unwrap_or(i64::MAX);
        match store::claim(&ctx.db, &lead, &token, now_ms, now_ms + ttl_ms).await {
            Ok(true) => {}
            Ok(false) => return LeadOutcome::LostClaim,
            Err(e) => {
                tracing::warn!(chat_id = lead.chat_id, error = %e, "claiming a follow-up failed");
                return LeadOutcome::RetryLater;
            }
        }
        let outcome = self.write_and_send(ctx, plan, &lead, &token, now).await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(chat_id = lead.chat_id, step = lead.step + 1, error = %e, "follow-up failed; retrying next tick");
                LeadOutcome::RetryLater
            }
        };
        if matches!(
            outcome,
            LeadOutcome::RetryLater | LeadOutcome::BudgetStopped
        ) && let Err(e) = store::release(&ctx.db, lead.chat_id, &token).await
        {
            tracing::warn!(chat_id = lead.chat_id, error = %e, "releasing a follow-up claim failed; it expires by itself");
        }
        outcome
    }

    async fn write_and_send(
        &self,
        ctx: &Context,
        plan: &FollowUpPlan,
        lead: &DueLead,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<LeadOutcome, FollowUpError> {
        // The metered call checks the budget per lead too: this tick's own calls may reach it.
        let text = match self.write(ctx, lead, now).await? {
            Written::Text(text) => text,
            Written::Refused => return Ok(LeadOutcome::BudgetStopped),
            Written::Nothing => return Ok(LeadOutcome::RetryLater),
        };

        match ctx
            .delivery
            .send(lead.chat_id, &text, Format::Plain, Priority::Bulk)
            .await
        {
            Ok(_) => {
                ctx.metrics.followups_sent.inc();
                let advanced = ctx
                    .db
                    .record_send("recording a sent follow-up", || {
                        store::complete(&ctx.db, lead, token, &text, now.timestamp_millis())
                    })
                    .await;
                if !advanced {
                    tracing::info!(
                        chat_id = lead.chat_id,
                        "the lead wrote while the follow-up was being sent; their new sequence stands"
                    );
                }
                tracing::info!(
                    chat_id = lead.chat_id,
                    step = lead.step + 1,
                    "follow-up sent"
                );
                Ok(LeadOutcome::Sent)
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(chat_id = lead.chat_id, error = %e, "sending a follow-up failed; retrying next tick");
                Ok(LeadOutcome::RetryLater)
            }
            Err(e) => {
                // Unreachable: `delivery` opted the lead out; this ends the claim and sequence.
                tracing::info!(chat_id = lead.chat_id, error = %e, "follow-up refused for good: no more follow-ups in this sequence");
                store::give_up(&ctx.db, lead.chat_id, token, step_u32(plan.steps())).await?;
                Ok(LeadOutcome::Unreachable)
            }
        }
    }

    /// The LLM writes the follow-up from the recent conversation.
    async fn write(
        &self,
        ctx: &Context,
        lead: &DueLead,
        now: DateTime<Utc>,
    ) -> Result<Written, FollowUpError> {
        let llm_config = &ctx.settings.bot.llm;
        let history_budget = llm_config
            .history_tokens
            .unwrap_or(LlmConfig::DEFAULT_HISTORY_TOKENS);
        // The same history a chat reply sees, within the same token budget.
        let history = crate::leads::history::recent(&ctx.db, lead.chat_id, history_budget).await?;
        let silent = Duration::from_millis(
            u64::try_from(now.timestamp_millis() - lead.last_inbound_ms).unwrap_or(0),
        );
        let request = CompletionRequest {
            system: llm_config.system_prompt.clone(),
            context: Vec::new(),
            messages: with_instruction(history, &self.prompt, lead.step + 1, silent),
            max_output_tokens: llm_config
                .max_output_tokens
                .unwrap_or(LlmConfig::DEFAULT_MAX_OUTPUT_TOKENS),
        };
        let spec = CallSpec {
            request_type: RequestType::Followup,
            chat_id: Some(lead.chat_id),
            update_id: None,
            request: &request,
            tools: &[],
            at: now,
        };
        Ok(match ctx.llm.call(spec).await? {
            Metered::Answered(completion) if !completion.text.trim().is_empty() => {
                Written::Text(completion.text.trim().to_owned())
            }
            Metered::Answered(_) => {
                tracing::warn!(chat_id = lead.chat_id, "the LLM wrote an empty follow-up");
                Written::Nothing
            }
            Metered::Refused { .. } => Written::Refused,
            Metered::Failed { error, .. } => {
                tracing::warn!(chat_id = lead.chat_id, %error, "the LLM could not write a follow-up");
                Written::Nothing
            }
        })
    }
}

/// What the LLM wrote for one follow-up.
enum Written {
    Text(String),
    /// The budget is spent: no call was made.
    Refused,
    /// Nothing usable (empty, or every attempt failed): the lead is tried again next tick.
    Nothing,
}

/// The conversation with the follow-up instruction as the final user turn (merged into the
/// lead's own last message if the conversation ends with one).
fn with_instruction(
    mut history: Vec<ChatMessage>,
    prompt: &str,
    number: u32,
    silent: Duration,
) -> Vec<ChatMessage> {
    let hours = silent.as_secs() / 3600;
    let instruction =
        format!("[Follow-up {number}: no reply from the customer for {hours} hours. {prompt}]");
    match history.last_mut() {
        Some(last) if last.role == Role::User => {
            last.text.push_str("\n\n");
            last.text.push_str(&instruction);
        }
        _ => history.push(ChatMessage::user(instruction)),
    }
    history
}

fn step_u32(step: usize) -> u32 {
    u32::try_from(step).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instruction_is_the_last_user_turn() {
        let history = vec![
            ChatMessage::user("How much is the pro plan?"),
            ChatMessage::assistant("It is 20 EUR a month."),
        ];
        let out = with_instruction(history, "Be brief.", 1, Duration::from_secs(25 * 3600));
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].role, Role::User);
        assert!(out[2].text.contains("Follow-up 1"));
        assert!(out[2].text.contains("25 hours"));
        assert!(out[2].text.contains("Be brief."));

        let out = with_instruction(
            vec![ChatMessage::user("hi")],
            "Be brief.",
            2,
            Duration::ZERO,
        );
        assert_eq!(out.len(), 1, "merged into the lead's own last turn");
        assert!(out[0].text.starts_with("hi\n\n[Follow-up 2"));

        let out = with_instruction(vec![], "Be brief.", 1, Duration::ZERO);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].role, Role::User);
    }
}
