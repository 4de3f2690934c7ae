//! The conversation pipeline: one update in, the right reply out.
//!
//! Text → lead recorded → rate limit → budget gate → LLM (history within a token budget) →
//! every attempt priced into the ledger → reply stored, then sent. Replies are stored before
//! they are sent, so an update processed again after a crash re-sends the stored reply instead
//! of asking (and paying) the LLM twice.

pub mod commands;
pub mod history;
pub mod store;
mod streamed;
mod suggestions;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use botfleet_api::{HandoffTrigger, LlmConfig, RateLimitConfig};
use botfleet_llm::CompletionRequest;

use crate::broadcast::{self, BroadcastError};
use crate::context::Context;
use crate::handoff::{HandoffError, Handoffs, OpenRequest};
use crate::knowledge::Knowledge;
use crate::money::{BUDGET_STOPPED_REPLY, BudgetGate, CallContext, Money, MoneyError, RequestType};
use crate::telegram::TelegramError;
use crate::telegram::updates::{self, ButtonPress, Route, Unreadable};
use commands::{Command, LeadCommand, OwnerCommand};
use store::{Inbound, Kind};
pub use transport::{ConsoleTransport, Format, TelegramTransport, Transport};

/// Telegram shows "typing…" for about five seconds; refresh it a little sooner.
const TYPING_EVERY: Duration = Duration::from_millis(4500);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Db(#[from] crate::db::SqlError),
    #[error("sending the reply: {0}")]
    Telegram(#[from] TelegramError),
    #[error("ledger: {0}")]
    Money(#[from] MoneyError),
    #[error("handoff: {0}")]
    Handoff(#[from] HandoffError),
    /// Kept in the inbox with this error; trying again would read the same bytes.
    #[error("unreadable update: {0}")]
    Unreadable(#[from] Unreadable),
    #[error(transparent)]
    Broadcast(#[from] BroadcastError),
}

impl PipelineError {
    /// Transient failures put the update back for another try; the rest park it.
    pub fn is_transient(&self) -> bool {
        match self {
            PipelineError::Db(_) | PipelineError::Money(_) => true,
            PipelineError::Telegram(e) => e.is_transient(),
            PipelineError::Handoff(e) => e.is_transient(),
            PipelineError::Unreadable(_) => false,
            PipelineError::Broadcast(e) => e.is_transient(),
        }
    }

    /// The reply could not be delivered because the chat refuses messages (the lead is
    /// opted out by then): the update is done, not failed.
    pub fn chat_unreachable(&self) -> bool {
        matches!(self, PipelineError::Telegram(e) | PipelineError::Handoff(HandoffError::Telegram(e)) if e.unreachable().is_some())
    }
}

/// A command's answer, with buttons `(label, data)` under it (the welcome's suggestions).
struct CommandReply {
    text: String,
    format: Format,
    buttons: Vec<(String, String)>,
}

pub struct Pipeline {
    pub ctx: Context,
    pub money: Arc<Money>,
    /// A user id treated as an owner whatever the config says (the console's user).
    pub extra_owner: Option<i64>,
    /// Handing leads over to a person (`handoff:`).
    pub handoff: Arc<Handoffs>,
    /// Held while the LLM writes the welcome's suggestions, so one process writes them once.
    suggestions_written: tokio::sync::Mutex<()>,
    /// The owner's knowledge, loaded at start.
    pub(crate) knowledge: Arc<Knowledge>,
}

impl Pipeline {
    pub fn new(ctx: Context, money: Arc<Money>) -> Self {
        Self {
            handoff: Arc::new(Handoffs::from_config(&ctx.settings.bot)),
            ctx,
            money,
            extra_owner: None,
            suggestions_written: tokio::sync::Mutex::new(()),
            knowledge: Arc::default(),
        }
    }

    /// The owner's knowledge to put into every chat prompt.
    pub fn with_knowledge(mut self, knowledge: Knowledge) -> Self {
        self.knowledge = Arc::new(knowledge);
        self
    }

    /// Handles one stored update (the JSON Telegram sent), by its route in the routing table
    /// (`telegram::updates`).
    pub async fn handle_update<T: Transport>(
        &self,
        transport: &T,
        update_id: i64,
        payload: &str,
    ) -> Result<(), PipelineError> {
        let route = updates::route_payload(update_id, payload)?;
        // An owner composing a broadcast: their next message (text, photo, document) is it.
        if let Some(draft) = self.broadcast_draft(&route, update_id).await? {
            return self.broadcast_content(&draft, update_id, payload).await;
        }
        match route {
            Route::Text(inbound) => self.handle_text(transport, inbound).await,
            Route::Reply {
                inbound,
                to_message_id,
            } => {
                // An owner answering a lead through the bot, else an ordinary message.
                if self
                    .handoff
                    .owner_reply(&self.ctx, &inbound, to_message_id)
                    .await?
                {
                    return Ok(());
                }
                self.handle_text(transport, inbound).await
            }
            Route::NotText { chat_id } => {
                transport
                    .send(chat_id, commands::TEXT_ONLY, Format::Plain)
                    .await?;
                Ok(())
            }
            Route::Document(upload) => self.document_received(transport, upload).await,
            Route::Button(press) => self.button_pressed(transport, update_id, press).await,
            Route::Membership { chat_id, blocked } => {
                self.membership_changed(chat_id, blocked).await
            }
            Route::Ignore(why) => {
                tracing::debug!(why, "update acknowledged, nothing to do");
                Ok(())
            }
        }
    }

    /// A button was pressed: the spinner is stopped first, then its data is handled like text
    /// the lead typed (a `/command`, or the suggested question the button shows).
    async fn button_pressed<T: Transport>(
        &self,
        transport: &T,
        update_id: i64,
        press: ButtonPress,
    ) -> Result<(), PipelineError> {
        transport.answer_button(&press.query_id).await;
        let owner = self.is_owner(press.user.user_id);
        if let Some(pressed) = broadcast::compose::Button::parse(&press.data) {
            let text = if owner {
                let settings = broadcast::Settings::from_config(&self.ctx.settings.bot)
                    .map_err(BroadcastError::from)?;
                broadcast::compose::button(&self.ctx, &settings, pressed, chrono::Utc::now())
                    .await?
            } else {
                crate::telegram::escape_html(commands::OWNERS_ONLY)
            };
            transport.send(press.chat.id, &text, Format::Html).await?;
            return Ok(());
        }
        if self
            .handoff
            .button(&self.ctx, update_id, &press, owner)
            .await?
        {
            return Ok(());
        }
        let text = if press.data.starts_with('/') {
            Some(press.data.clone())
        } else {
            self.suggestion_asked(&press).await?
        };
        let Some(text) = text else {
            tracing::info!("a button whose question is no longer known; acknowledged");
            return Ok(());
        };
        let inbound = press.user.inbound(update_id, &press.chat, text);
        self.handle_text(transport, inbound).await
    }

    /// The owner's draft broadcast this message is the content of, if any.
    async fn broadcast_draft(
        &self,
        route: &Route,
        update_id: i64,
    ) -> Result<Option<broadcast::store::Broadcast>, PipelineError> {
        let chat_id = match route {
            Route::Text(inbound)
                if commands::parse(&inbound.text).is_none() && self.is_owner(inbound.user_id) =>
            {
                inbound.chat_id
            }
            Route::NotText { chat_id } if self.is_owner(Some(*chat_id)) => *chat_id,
            _ => return Ok(None),
        };
        Ok(broadcast::compose::draft_for(&self.ctx, chat_id, update_id).await?)
    }

    async fn broadcast_content(
        &self,
        draft: &broadcast::store::Broadcast,
        update_id: i64,
        payload: &str,
    ) -> Result<(), PipelineError> {
        let Some(message) = updates::message_of(payload) else {
            return Ok(());
        };
        let settings = broadcast::Settings::from_config(&self.ctx.settings.bot)
            .map_err(BroadcastError::from)?;
        broadcast::compose::content_received(&self.ctx, &settings, draft, update_id, &message)
            .await?;
        Ok(())
    }

    /// A user blocked the bot (or unblocked it): stop or restart follow-ups.
    async fn membership_changed(&self, chat_id: i64, blocked: bool) -> Result<(), PipelineError> {
        let now = chrono::Utc::now().timestamp_millis();
        store::set_opted_out(&self.ctx.db, chat_id, blocked, now).await?;
        tracing::info!(chat_id, blocked, "chat membership changed");
        Ok(())
    }

    /// An owner, or anyone in the operators' group (`handoff.notify.chatId`).
    fn is_operator(&self, inbound: &Inbound) -> bool {
        self.is_owner(inbound.user_id) || self.handoff.is_operator_chat(inbound.chat_id)
    }

    fn is_owner(&self, user_id: Option<i64>) -> bool {
        user_id.is_some_and(|id| self.extra_owner == Some(id) || self.money.is_owner(id))
    }

    pub async fn handle_text<T: Transport>(
        &self,
        transport: &T,
        inbound: Inbound,
    ) -> Result<(), PipelineError> {
        let db = &self.ctx.db;
        let now = chrono::Utc::now();
        let now_ms = now.timestamp_millis();
        let command = commands::parse(&inbound.text);
        if command.is_none() && self.handoff.is_operator_chat(inbound.chat_id) {
            // The operators' own talk: only their replies to relayed messages are for leads.
            tracing::debug!("operators' group chatter; not for the LLM");
            return Ok(());
        }
        let kind = if command.is_some() {
            Kind::Command
        } else {
            Kind::Chat
        };
        store::record_inbound(db, &inbound, kind, now_ms).await?;

        // Processed before (a crash after the reply was stored): finish the job, don't redo it.
        if let Some(reply) = store::reply_for_update(db, inbound.update_id).await? {
            if !reply.sent {
                let format = if reply.kind == Kind::Command.as_str() {
                    Format::Html
                } else {
                    Format::Plain
                };
                transport.send(inbound.chat_id, &reply.text, format).await?;
                self.record_sent(reply.id, inbound.chat_id).await;
            }
            return Ok(());
        }

        // Handed over to a person: the message goes to them, not to the LLM.
        if command.is_none()
            && let Some(handoff) = self.handoff.open_for(&self.ctx, inbound.chat_id).await?
        {
            self.handoff
                .relay_from_lead(&self.ctx, &handoff, &inbound)
                .await?;
            return Ok(());
        }

        let (text, kind, format, buttons) = match command {
            Some(command) => {
                let reply = self.command_reply(command, &inbound, now).await?;
                (reply.text, Kind::Command, reply.format, reply.buttons)
            }
            None => {
                let (text, kind) = self.chat_reply(transport, &inbound, now).await?;
                (text, kind, Format::Plain, vec![])
            }
        };
        let id = store::store_reply(
            db,
            inbound.chat_id,
            Some(inbound.update_id),
            kind,
            &text,
            now_ms,
        )
        .await?;
        if buttons.is_empty() {
            transport.send(inbound.chat_id, &text, format).await?;
        } else {
            transport
                .send_with_buttons(inbound.chat_id, &text, format, &buttons)
                .await?;
        }
        self.record_sent(id, inbound.chat_id).await;
        if command.is_none() {
            // After the reply, not before it: the lead does not wait for the owners' alerts.
            self.check_budget_alerts().await;
        }
        Ok(())
    }

    /// Tells the owners about budget thresholds a call crossed (each once per period).
    async fn check_budget_alerts(&self) {
        if let Err(e) = self
            .money
            .check_alerts(&self.ctx.db, &self.ctx.telegram, chrono::Utc::now())
            .await
        {
            tracing::warn!(error = %e, "budget alert check failed; the scheduler checks again");
        }
    }

    /// Records that Telegram took the reply. A send cannot be undone, and a reply left unsent
    /// in the database would be sent again when the update runs again, so this is retried
    /// until it lands (through a database restart; the claim's heartbeat keeps the update
    /// ours meanwhile, for up to `BOTFLEET_INBOX_CLAIM_TIMEOUT` of outage).
    pub(crate) async fn record_sent(&self, message_id: i64, chat_id: i64) {
        let mut pause = Duration::from_millis(100);
        let mut failed = false;
        loop {
            let now = chrono::Utc::now().timestamp_millis();
            match store::mark_sent(&self.ctx.db, message_id, chat_id, now).await {
                Ok(()) => {
                    if failed {
                        tracing::info!("the sent reply is recorded after all");
                    }
                    return;
                }
                Err(e) if !failed => {
                    tracing::warn!(error = %e, "could not record a sent reply; retrying until the database answers");
                    failed = true;
                }
                Err(_) => {}
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    async fn command_reply(
        &self,
        command: Command,
        inbound: &Inbound,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<CommandReply, PipelineError> {
        let db = &self.ctx.db;
        let owner = self.is_operator(inbound);
        let escape = crate::telegram::escape_html;
        let argument = commands::argument(&inbound.text);
        let (text, format) = match command {
            Command::Lead(LeadCommand::Start) => {
                store::set_opted_out(db, inbound.chat_id, false, now.timestamp_millis()).await?;
                let questions = self
                    .welcome_suggestions(inbound.chat_id, inbound.update_id)
                    .await?;
                let mut buttons = suggestions::buttons(&questions);
                buttons.extend(self.handoff.welcome_button());
                let text = if questions.is_empty() {
                    commands::WELCOME
                } else {
                    commands::WELCOME_WITH_SUGGESTIONS
                };
                return Ok(CommandReply {
                    text: escape(text),
                    format: Format::Html,
                    buttons,
                });
            }
            Command::Lead(LeadCommand::Stop) => {
                store::set_opted_out(db, inbound.chat_id, true, now.timestamp_millis()).await?;
                tracing::info!("lead opted out of follow-ups");
                (escape(commands::STOPPED), Format::Html)
            }
            Command::Lead(LeadCommand::Forget) => {
                let forgotten = crate::knowledge::documents::forget(db, inbound.chat_id)
                    .await
                    .map_err(MoneyError::from)?;
                let text = match forgotten {
                    Some(name) => format!("Done: I forgot {name}."),
                    None => "There is no document to forget.".to_owned(),
                };
                (escape(&text), Format::Html)
            }
            Command::Lead(LeadCommand::Help) | Command::Unknown => {
                (escape(&commands::help(owner)), Format::Html)
            }
            Command::Lead(LeadCommand::Human) => {
                // The welcome's button sends `/human button`.
                let trigger = if argument == Some("button") {
                    HandoffTrigger::Button
                } else {
                    HandoffTrigger::Command
                };
                if !self.handoff.triggers_on(trigger) {
                    (escape(crate::handoff::NOT_AVAILABLE), Format::Html)
                } else {
                    let (text, _) = self.hand_over(inbound, trigger, None).await?;
                    (escape(&text), Format::Html)
                }
            }
            Command::Owner(_) if !owner => (escape(commands::OWNERS_ONLY), Format::Html),
            Command::Owner(OwnerCommand::LlmStats) => {
                (self.money.report_llm_stats(db, now).await?, Format::Html)
            }
            Command::Owner(OwnerCommand::Stats) => {
                let mut text = self.money.report_stats(db, now).await?;
                if self.handoff.enabled() {
                    text.push_str("\n\n");
                    text.push_str(
                        &self
                            .handoff
                            .stats(&self.ctx, now.timestamp_millis())
                            .await?,
                    );
                }
                (text, Format::Html)
            }
            Command::Owner(OwnerCommand::Leads) => {
                (self.handoff.leads(&self.ctx).await?, Format::Html)
            }
            Command::Owner(OwnerCommand::Takeover) => (
                self.handoff
                    .takeover(&self.ctx, &self.money, inbound, argument)
                    .await?,
                Format::Html,
            ),
            Command::Owner(OwnerCommand::Resolve) => (
                self.handoff
                    .resolve_command(&self.ctx, inbound, argument)
                    .await?,
                Format::Html,
            ),
            Command::Owner(OwnerCommand::Budget) => {
                (self.money.report_budget(db, now).await?, Format::Html)
            }
            Command::Owner(OwnerCommand::Dashboard) => {
                let settings = &self.ctx.settings;
                let (text, buttons) =
                    crate::dashboard::command_reply(&settings.bot, settings.webhook_path());
                return Ok(CommandReply {
                    text,
                    format: Format::Html,
                    buttons,
                });
            }
            Command::Owner(
                command @ (OwnerCommand::Broadcast
                | OwnerCommand::Broadcasts
                | OwnerCommand::BroadcastCancel),
            ) => (
                self.broadcast_command(command, inbound, now).await?,
                Format::Html,
            ),
        };
        Ok(CommandReply {
            text,
            format,
            buttons: vec![],
        })
    }

    async fn broadcast_command(
        &self,
        command: OwnerCommand,
        inbound: &Inbound,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, BroadcastError> {
        let settings = broadcast::Settings::from_config(&self.ctx.settings.bot)?;
        let args = inbound
            .text
            .trim()
            .split_once(char::is_whitespace)
            .map_or("", |(_, args)| args);
        let ctx = &self.ctx;
        match command {
            OwnerCommand::Broadcast => {
                broadcast::compose::start(ctx, &settings, inbound.chat_id, args, now).await
            }
            OwnerCommand::Broadcasts => broadcast::compose::list(ctx, &settings).await,
            _ => broadcast::compose::cancel_command(ctx, inbound.chat_id, args, now).await,
        }
    }

    /// The answer to a chat message, and whether it is conversation (kept as history) or a
    /// notice (rate limit, budget stop, apology).
    async fn chat_reply<T: Transport>(
        &self,
        transport: &T,
        inbound: &Inbound,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(String, Kind), PipelineError> {
        let db = &self.ctx.db;
        let metrics = &self.ctx.metrics;
        let config = &self.ctx.settings.bot;

        let (limit, window) = rate_limit(config.rate_limit.as_ref());
        let since = now.timestamp_millis() - window.as_millis() as i64;
        if store::user_messages_since(db, inbound.chat_id, since).await? > i64::from(limit) {
            metrics.rate_limited.inc();
            tracing::info!("rate limited");
            return Ok((commands::RATE_LIMITED.to_owned(), Kind::Notice));
        }

        let llm_config = &config.llm;
        if let BudgetGate::Stopped { period } = self.money.gate(db, now).await? {
            self.money
                .record_refusal(metrics, &llm_config.model, RequestType::Chat);
            tracing::warn!(?period, "budget reached: no LLM call");
            return self
                .unanswered(inbound, BUDGET_STOPPED_REPLY.to_owned())
                .await;
        }

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
        let cache = self.response_cache_key(&messages, document.as_ref());
        if let Some(key) = &cache
            && let Some(answer) = self.cached_answer(inbound, key, request_type, now).await?
        {
            return Ok((answer, Kind::Chat));
        }
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
        let tools = self.handoff.tools();
        let outcome = if llm_config.streams()
            && inbound.private_chat
            && transport.drafts_available(inbound.chat_id)
        {
            let target = streamed::DraftTarget {
                chat_id: inbound.chat_id,
                draft_id: inbound.update_id.max(1),
                interval: llm_config.draft_interval(),
            };
            streamed::call_with_drafts(&self.ctx.llm, transport, target, &request, &tools).await
        } else {
            let call = self.ctx.llm.complete_with_tools(&request, &tools);
            tokio::pin!(call);
            loop {
                transport.typing(inbound.chat_id).await;
                tokio::select! {
                    outcome = &mut call => break outcome,
                    _ = tokio::time::sleep(TYPING_EVERY) => {}
                }
            }
        };
        let call = CallContext {
            chat_id: Some(inbound.chat_id),
            update_id: Some(inbound.update_id),
            request_type,
        };
        self.money
            .record_call(db, metrics, call, &outcome.attempts, chrono::Utc::now())
            .await?;
        match outcome.result {
            Ok(completion) if self.handoff.tool_called(&completion).is_some() => {
                let reason = self.handoff.tool_called(&completion).unwrap_or_default();
                tracing::info!(model = %completion.model, "the LLM hands the lead over to a person");
                self.hand_over(inbound, HandoffTrigger::Llm, Some(&reason))
                    .await
            }
            Ok(completion) if !completion.text.trim().is_empty() => {
                if completion.cut {
                    tracing::info!(model = %completion.model, "answered with a stream that broke off (llm.onStreamCut: complete)");
                }
                if completion.used_fallback {
                    tracing::info!(model = %completion.model, "answered by the fallback model");
                }
                if let Some(key) = &cache
                    && !completion.cut
                {
                    self.remember_answer(key, &completion.text).await;
                }
                Ok((completion.text, Kind::Chat))
            }
            Ok(completion) => {
                tracing::warn!(model = %completion.model, "the LLM answered with no text; apologising");
                self.unanswered(inbound, commands::APOLOGY.to_owned()).await
            }
            Err(e) if self.handoff.triggers_on(HandoffTrigger::LlmFailure) => {
                tracing::error!(error = %e, attempts = outcome.attempts.len(), "every LLM attempt failed; handing the lead over to a person");
                self.hand_over(inbound, HandoffTrigger::LlmFailure, None)
                    .await
            }
            Err(e) => {
                tracing::error!(error = %e, attempts = outcome.attempts.len(), "every LLM attempt failed; apologising");
                self.unanswered(inbound, commands::APOLOGY.to_owned()).await
            }
        }
    }

    /// Opens a handoff for the lead; the reply is what the lead is told.
    async fn hand_over(
        &self,
        inbound: &Inbound,
        trigger: HandoffTrigger,
        detail: Option<&str>,
    ) -> Result<(String, Kind), PipelineError> {
        let opened = self
            .handoff
            .open(
                &self.ctx,
                &self.money,
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
                &[commands::APOLOGY, BUDGET_STOPPED_REPLY],
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
