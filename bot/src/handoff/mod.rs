//! Human handoff: a lead who needs a person gets one, through the bot.
//!
//! A handoff opens on a trigger (`/human`, the "Talk to a person" button, the LLM's
//! `handoff_to_human` tool call, an LLM that failed for good, too many messages the bot could
//! not answer, an owner's `/takeover`). While it is open the LLM is not called for that lead:
//! what the lead writes is relayed to the owners ([`relay`]), and an owner's Telegram reply to
//! a relayed message goes to the lead as the bot and into the conversation history. `/resolve`,
//! the Resolve / Back to bot buttons, or `autoResumeAfter` of silence hand the lead back.
//!
//! Everything lives in the database ([`store`]): the handoff, the ids of the messages shown to
//! owners (so any replica can route a reply), and an outbox of owner messages that [`run`]
//! retries until Telegram takes them.

mod actions;
mod commands;
mod notify;
mod relay;
pub mod reminders;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use botfleet_api::{BotConfig, HandoffConfig, HandoffTrigger};
use botfleet_llm::{Completion, Tool};
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::db::SqlError;
use crate::metrics::ReasonLabels;
use crate::telegram::TelegramError;
pub use actions::OwnerAction;
pub use notify::ago;
use store::{NewHandoff, Opened};

/// The tool the LLM calls to hand the lead over.
pub const TOOL_NAME: &str = "handoff_to_human";
/// The welcome's button that asks for a person (routed like the `/human` command).
pub const BUTTON_DATA: &str = "/human button";
pub const BUTTON_LABEL: &str = "Talk to a person";
/// What a lead who asks again while handed over is told.
pub const ALREADY_WAITING: &str =
    "A person from our team already has your message and will answer you right here.";
/// `/human` when handoff is off.
pub const NOT_AVAILABLE: &str =
    "Sorry, there is no one to pass you to right now — but I'm happy to help myself.";

#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error("sending to the lead: {0}")]
    Telegram(#[from] TelegramError),
}

impl HandoffError {
    pub fn is_transient(&self) -> bool {
        match self {
            HandoffError::Sql(_) => true,
            HandoffError::Telegram(e) => e.is_transient(),
        }
    }
}

/// The bot's handoff settings, read once from the config.
#[derive(Debug, Clone)]
pub struct Handoffs {
    config: Option<HandoffConfig>,
    /// Chats told about a handoff: owners' private chats and the operators' group.
    recipients: Vec<i64>,
    group: Option<i64>,
}

/// A trigger that fired for a lead.
#[derive(Debug, Clone, Copy)]
pub struct OpenRequest<'a> {
    pub chat_id: i64,
    /// The update that fired it (the summary call's ledger row names it).
    pub update_id: Option<i64>,
    pub trigger: HandoffTrigger,
    /// The LLM's reason (tool call).
    pub detail: Option<&'a str>,
    /// Taken at once by an owner (`/takeover`): their id, name and chat.
    pub taken: Option<(i64, &'a str, i64)>,
}

/// What opening a handoff tells the lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedReply {
    pub text: String,
    /// False when the lead already had an open handoff (nothing new was sent to owners).
    pub new: bool,
}

impl Handoffs {
    pub fn from_config(bot: &BotConfig) -> Self {
        let config = bot.handoff.clone().filter(HandoffConfig::enabled);
        let notify = config
            .as_ref()
            .and_then(|c| c.notify.clone())
            .unwrap_or_default();
        let mut recipients = if notify.owners.is_empty() && notify.chat_id.is_none() {
            bot.owners.clone()
        } else {
            notify.owners.clone()
        };
        recipients.extend(notify.chat_id);
        let mut seen = std::collections::HashSet::new();
        recipients.retain(|chat| seen.insert(*chat));
        Self {
            config,
            recipients,
            group: notify.chat_id,
        }
    }

    /// No handoff at all (the terminal `chat`, which has no owners' Telegram to hand over to).
    pub fn disabled() -> Self {
        Self {
            config: None,
            recipients: vec![],
            group: None,
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.is_some()
    }

    pub fn triggers_on(&self, trigger: HandoffTrigger) -> bool {
        self.config.as_ref().is_some_and(|c| c.triggers_on(trigger))
    }

    pub fn unanswered_limit(&self) -> Option<u32> {
        self.triggers_on(HandoffTrigger::Unanswered)
            .then(|| self.config.as_ref().map(HandoffConfig::unanswered_limit))
            .flatten()
    }

    /// The operators' group: its members answer leads, its other chatter is not for the LLM.
    pub fn is_operator_chat(&self, chat_id: i64) -> bool {
        self.group == Some(chat_id)
    }

    /// A chat that is told about handoffs (and may use their buttons).
    pub fn is_recipient(&self, chat_id: i64) -> bool {
        self.recipients.contains(&chat_id)
    }

    /// The tools offered to the LLM on a chat call.
    pub fn tools(&self) -> Vec<Tool> {
        if !self.triggers_on(HandoffTrigger::Llm) {
            return vec![];
        }
        vec![Tool {
            name: TOOL_NAME.into(),
            description: "Hand this conversation over to a person from the team. Call it when \
                the lead asks for a human, is upset, wants to negotiate or buy something you \
                cannot settle, or asks what you should not answer. The lead is told a person \
                will answer here."
                .into(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {
                    "reason": {"type": "string", "description": "Why a person is needed, in a few words."}
                },
                "required": ["reason"],
            }),
        }]
    }

    /// The reason the LLM gave, when its answer called the handoff tool.
    pub fn tool_called(&self, completion: &Completion) -> Option<String> {
        if !self.triggers_on(HandoffTrigger::Llm) {
            return None;
        }
        completion
            .tool_calls
            .iter()
            .find(|call| call.name == TOOL_NAME)
            .map(|call| {
                call.arguments["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
    }

    /// The button under the welcome, when the button trigger is on.
    pub fn welcome_button(&self) -> Option<(String, String)> {
        self.triggers_on(HandoffTrigger::Button)
            .then(|| (BUTTON_LABEL.to_owned(), BUTTON_DATA.to_owned()))
    }

    /// The lead's open handoff, if any (the pipeline then relays instead of calling the LLM).
    pub async fn open_for(
        &self,
        ctx: &Context,
        chat_id: i64,
    ) -> Result<Option<store::Handoff>, HandoffError> {
        if !self.enabled() {
            return Ok(None);
        }
        Ok(store::open_for_lead(&ctx.db, chat_id).await?)
    }

    /// Hands the lead over (or adds to the open handoff): the summary is written, the
    /// handoff and its notifications stored together, the owners told at once. Returns what
    /// the lead is told.
    pub async fn open(
        &self,
        ctx: &Context,
        request: OpenRequest<'_>,
    ) -> Result<OpenedReply, HandoffError> {
        let OpenRequest {
            chat_id,
            update_id,
            trigger,
            detail,
            taken,
        } = request;
        let config = self.config.clone().unwrap_or_default();
        let reason = trigger.as_str();
        let now = chrono::Utc::now().timestamp_millis();
        // The summary costs a call: not for a lead already handed over.
        let summary = match store::open_for_lead(&ctx.db, chat_id).await? {
            Some(_) => None,
            None => notify::summarize(ctx, chat_id, update_id).await,
        };
        let lead = store::lead_info(&ctx.db, chat_id).await?;
        let new = NewHandoff {
            chat_id,
            reason,
            detail,
            summary: summary.as_deref(),
            taken,
        };
        let recipients = self.recipients.clone();
        let opened = store::open(&ctx.db, &new, now, |id| {
            let text = notify::notification(id, &lead, &new);
            notify::outbox(
                &recipients,
                &text,
                &notify::owner_buttons(id),
                &format!("notify:{id}"),
            )
        })
        .await?;
        match opened {
            Opened::New(handoff) => {
                ctx.metrics
                    .handoffs
                    .get_or_create(&ReasonLabels {
                        reason: reason.to_owned(),
                    })
                    .inc();
                tracing::info!(
                    handoff = handoff.id,
                    reason,
                    summary = handoff.summary.is_some(),
                    "lead handed over to a person; owners notified"
                );
                // In the background: the lead's note must not wait for the owners' sends
                // (teloxide pauses 10 s after a Telegram 5xx; the outbox retries anyway).
                let (ctx, id) = (ctx.clone(), handoff.id);
                tokio::spawn(async move { notify::deliver_due(&ctx, Some(id)).await });
                Ok(OpenedReply {
                    text: config.message().to_owned(),
                    new: true,
                })
            }
            Opened::Existing(handoff) => {
                tracing::info!(
                    handoff = handoff.id,
                    reason,
                    triggers = handoff.triggers,
                    "handoff trigger while one is open: added to it, owners not notified again"
                );
                Ok(OpenedReply {
                    text: ALREADY_WAITING.to_owned(),
                    new: false,
                })
            }
        }
    }

    /// `/stats`'s handoff lines (Telegram HTML).
    pub async fn stats(&self, ctx: &Context, now_ms: i64) -> Result<String, HandoffError> {
        let (open, oldest_waiting) = store::open_counts(&ctx.db).await?;
        let day = store::opened_since(&ctx.db, now_ms - 86_400_000).await?;
        let week = store::opened_since(&ctx.db, now_ms - 7 * 86_400_000).await?;
        let mut text = format!(
            "<b>Handoffs to a person</b>\nOpen now: {open}\nOpened in 24 h: {day}\nOpened in 7 days: {week}"
        );
        if let Some(oldest) = oldest_waiting {
            text.push_str(&format!(
                "\nLongest wait for a person: {}",
                notify::ago(oldest, now_ms)
            ));
        }
        Ok(text)
    }
}

/// The handoff loop of every bot process: queues the reminders that are due, delivers owner
/// messages that are due (retries of failed sends), hands leads back after `autoResumeAfter` of silence, and refreshes the
/// gauges. Safe on several replicas: each row is claimed or closed by one process.
pub async fn run(ctx: Context, handoffs: Arc<Handoffs>, stop: CancellationToken) {
    if !handoffs.enabled() {
        return;
    }
    let interval = ctx
        .settings
        .scheduler_interval
        .max(Duration::from_millis(200));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        tick(&ctx, &handoffs).await;
    }
}

async fn tick(ctx: &Context, handoffs: &Handoffs) {
    if let Some(config) = &handoffs.config {
        let steps = config.remind_after();
        let attempts = config.reminder_max_attempts();
        reminders::queue_due(ctx, &handoffs.recipients, &steps, attempts).await;
    }
    notify::deliver_due(ctx, None).await;
    let now = chrono::Utc::now().timestamp_millis();
    if let Some(after) = handoffs
        .config
        .as_ref()
        .and_then(HandoffConfig::auto_resume_after)
    {
        match store::close_idle(&ctx.db, now - after.as_millis() as i64, now).await {
            Ok(leads) => {
                for lead in leads {
                    tracing::info!(
                        after_secs = after.as_secs(),
                        "handoff silent for autoResumeAfter: the lead is back with the bot"
                    );
                    if let Err(e) = relay::tell_lead_resumed(ctx, handoffs, lead).await {
                        tracing::warn!(error = %e, "telling the lead the bot is back failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "auto-resume of idle handoffs failed"),
        }
    }
    match store::open_counts(&ctx.db).await {
        Ok((open, oldest)) => {
            ctx.metrics.handoffs_open.set(open);
            let waiting = oldest.map_or(0, |at| (now - at).max(0) / 1000);
            ctx.metrics.handoff_oldest_waiting_seconds.set(waiting);
        }
        Err(e) => tracing::debug!(error = %e, "counting open handoffs failed"),
    }
}
