//! The answer to a chat message: rate limit, the prompt (knowledge, the lead's document,
//! history within a token budget), the response cache, the metered LLM call (streamed into
//! drafts or under "typing…"), and a handoff when the bot cannot answer.

use std::time::Duration;

use botfleet_api::{HandoffTrigger, LlmConfig, RateLimitConfig};
use botfleet_llm::CompletionRequest;

use super::intents::IntentRoute;
use super::{Pipeline, PipelineError, TYPING_EVERY, Transport, commands, streamed};
use crate::handoff::{HandoffError, OpenRequest};
use crate::leads::{self, Inbound, Kind, history};
use crate::money::{
    BUDGET_STOPPED_REPLY, CallSpec, LEAD_LIMIT_REPLY, Metered, MoneyError, RequestType,
};

impl Pipeline {
    /// Tells the owners about budget thresholds a call crossed (each once per period).
    pub(super) async fn check_budget_alerts(&self) {
        if let Err(e) = self
            .money
            .check_alerts(&self.ctx.db, &self.ctx.delivery, chrono::Utc::now())
            .await
        {
            tracing::warn!(error = %e, "budget alert check failed; the scheduler checks again");
        }
    }

    /// The answer to a chat message, and whether it is conversation (kept as history) or a
    /// notice (rate limit, budget stop, apology); none for a message classified as spam.
    pub(super) async fn chat_reply<T: Transport>(
        &self,
        transport: &T,
        inbound: &Inbound,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<(String, Kind)>, PipelineError> {
        if self.rate_limited(inbound, now).await? {
            return Ok(Some((commands::RATE_LIMITED.to_owned(), Kind::Notice)));
        }
        match self.route_by_intent(inbound, now).await? {
            IntentRoute::Answer => self.llm_reply(transport, inbound, now).await.map(Some),
            IntentRoute::Reply(reply) => Ok(Some(reply)),
            IntentRoute::NoAnswer => Ok(None),
        }
    }

    /// The LLM's answer (or what the lead is told instead: budget stop, handoff, apology).
    async fn llm_reply<T: Transport>(
        &self,
        transport: &T,
        inbound: &Inbound,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(String, Kind), PipelineError> {
        let prompt = self.prompt(inbound).await?;
        let tools = self.handoff.tools();
        let spec = CallSpec {
            request_type: prompt.request_type,
            chat_id: Some(inbound.chat_id),
            update_id: Some(inbound.update_id),
            request: &prompt.request,
            tools: &tools,
            at: now,
        };
        let permit = match self.ctx.llm.admit(spec).await? {
            Ok(permit) => permit,
            Err(refusal) => {
                return self.unanswered(inbound, refusal.reply().to_owned()).await;
            }
        };
        if let Some(key) = &prompt.cache_key
            && let Some(answer) = self
                .cached_answer(inbound, key, prompt.request_type, now)
                .await?
        {
            permit.release().await?;
            return Ok((answer, Kind::Chat));
        }
        let llm_config = &self.ctx.settings.bot.llm;
        let outcome = if llm_config.streams()
            && inbound.private_chat
            && transport.drafts_available(inbound.chat_id)
        {
            let target = streamed::DraftTarget {
                chat_id: inbound.chat_id,
                draft_id: inbound.update_id.max(1),
                interval: llm_config.draft_interval(),
            };
            streamed::call_with_drafts(permit, transport, target).await?
        } else {
            let call = permit.complete();
            tokio::pin!(call);
            loop {
                transport.typing(inbound.chat_id).await;
                tokio::select! {
                    outcome = &mut call => break outcome?,
                    _ = tokio::time::sleep(TYPING_EVERY) => {}
                }
            }
        };
        self.answered(inbound, outcome, prompt.cache_key.as_deref())
            .await
    }

    /// More messages in the window than `rateLimit` allows (counted, logged).
    async fn rate_limited(
        &self,
        inbound: &Inbound,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, PipelineError> {
        let (limit, window) = rate_limit(self.ctx.settings.bot.rate_limit.as_ref());
        let since = now.timestamp_millis() - window.as_millis() as i64;
        let sent = leads::user_messages_since(&self.ctx.db, inbound.chat_id, since).await?;
        if sent <= i64::from(limit) {
            return Ok(false);
        }
        self.ctx.metrics.rate_limited.inc();
        tracing::info!("rate limited");
        Ok(true)
    }

    /// The request for the LLM: the owner's knowledge and the lead's active document as
    /// context, the history within `llm.historyTokens`.
    async fn prompt(&self, inbound: &Inbound) -> Result<Prompt, PipelineError> {
        let db = &self.ctx.db;
        let llm_config = &self.ctx.settings.bot.llm;
        let history_budget = llm_config
            .history_tokens
            .unwrap_or(LlmConfig::DEFAULT_HISTORY_TOKENS);
        let document = crate::knowledge::documents::active(db, inbound.chat_id)
            .await
            .map_err(MoneyError::from)?;
        let request_type = if document.is_some() {
            RequestType::Document
        } else {
            RequestType::Chat
        };
        let messages = history::recent(db, inbound.chat_id, history_budget).await?;
        let cache_key = self.response_cache_key(&messages, document.as_ref());
        let mut context = Vec::new();
        if !self.knowledge.is_empty() {
            context.push(self.knowledge.text.clone());
        }
        if let Some(document) = &document {
            context.push(document.prompt_block());
        }
        let request = CompletionRequest {
            system: llm_config.system_prompt.clone(),
            context,
            messages,
            max_output_tokens: llm_config
                .max_output_tokens
                .unwrap_or(LlmConfig::DEFAULT_MAX_OUTPUT_TOKENS),
        };
        Ok(Prompt {
            request,
            request_type,
            cache_key,
        })
    }

    /// What the lead is told after the call: the answer, a handoff (the model asked for one,
    /// or it failed and `handoff.triggers` has `llm_failure`), or an apology.
    async fn answered(
        &self,
        inbound: &Inbound,
        outcome: Metered,
        cache_key: Option<&str>,
    ) -> Result<(String, Kind), PipelineError> {
        match outcome {
            Metered::Answered(completion) if self.handoff.tool_called(&completion).is_some() => {
                let reason = self.handoff.tool_called(&completion).unwrap_or_default();
                tracing::info!(model = %completion.model, "the LLM hands the lead over to a person");
                self.hand_over(inbound, HandoffTrigger::Llm, Some(&reason))
                    .await
            }
            Metered::Answered(completion) if !completion.text.trim().is_empty() => {
                if completion.cut {
                    tracing::info!(model = %completion.model, "answered with a stream that broke off (llm.onStreamCut: complete)");
                }
                if completion.used_fallback {
                    tracing::info!(model = %completion.model, "answered by the fallback model");
                }
                if let Some(key) = cache_key
                    && !completion.cut
                {
                    self.remember_answer(key, &completion.text).await;
                }
                Ok((completion.text, Kind::Chat))
            }
            Metered::Answered(completion) => {
                tracing::warn!(model = %completion.model, "the LLM answered with no text; apologising");
                self.unanswered(inbound, commands::APOLOGY.to_owned()).await
            }
            Metered::Refused { refusal } => {
                self.unanswered(inbound, refusal.reply().to_owned()).await
            }
            Metered::Failed { error, attempts }
                if self.handoff.triggers_on(HandoffTrigger::LlmFailure) =>
            {
                tracing::error!(%error, attempts, "every LLM attempt failed; handing the lead over to a person");
                self.hand_over(inbound, HandoffTrigger::LlmFailure, None)
                    .await
            }
            Metered::Failed { error, attempts } => {
                tracing::error!(%error, attempts, "every LLM attempt failed; apologising");
                self.unanswered(inbound, commands::APOLOGY.to_owned()).await
            }
        }
    }

    /// Opens a handoff for the lead; the reply is what the lead is told.
    pub(super) async fn hand_over(
        &self,
        inbound: &Inbound,
        trigger: HandoffTrigger,
        detail: Option<&str>,
    ) -> Result<(String, Kind), PipelineError> {
        let opened = self
            .handoff
            .open(
                &self.ctx,
                OpenRequest {
                    chat_id: inbound.chat_id,
                    update_id: Some(inbound.update_id),
                    trigger,
                    detail,
                    taken: None,
                },
            )
            .await?;
        Ok((opened.text, Kind::Notice))
    }

    /// The bot could not answer (`notice` is the apology or the budget stop): after
    /// `handoff.unansweredLimit` of those in a row, the lead is handed over instead.
    async fn unanswered(
        &self,
        inbound: &Inbound,
        notice: String,
    ) -> Result<(String, Kind), PipelineError> {
        if let Some(limit) = self.handoff.unanswered_limit() {
            let before = crate::handoff::store::unanswered_in_a_row(
                &self.ctx.db,
                inbound.chat_id,
                &[commands::APOLOGY, BUDGET_STOPPED_REPLY, LEAD_LIMIT_REPLY],
            )
            .await
            .map_err(HandoffError::from)?;
            if before + 1 >= i64::from(limit) {
                tracing::info!(
                    limit,
                    "too many messages in a row the bot could not answer; handing over"
                );
                return self
                    .hand_over(inbound, HandoffTrigger::Unanswered, None)
                    .await;
            }
        }
        Ok((notice, Kind::Notice))
    }
}

fn rate_limit(config: Option<&RateLimitConfig>) -> (u32, Duration) {
    match config {
        Some(c) => (c.messages(), c.per()),
        None => (
            RateLimitConfig::DEFAULT_MESSAGES,
            RateLimitConfig::DEFAULT_PER,
        ),
    }
}

/// A chat answer's request, its request type and its response-cache key (when cached).
struct Prompt {
    request: CompletionRequest,
    request_type: RequestType,
    cache_key: Option<String>,
}
