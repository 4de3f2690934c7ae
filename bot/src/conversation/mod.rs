//! The conversation pipeline: one update in, the right reply out.
//!
//! [`routes`] is the routing table (each route, top to bottom, to the feature that handles
//! it); [`execute`] runs commands; [`answer`] writes the LLM's answer to a chat message (rate
//! limit, history within a token budget, the metered call, handoff on failure); [`intents`]
//! routes a message by the support desk's classification; [`knowledge`]
//! takes a lead's document and keeps the response cache. Replies are stored before they are
//! sent, so an update processed again after a crash re-sends the stored reply instead of
//! asking (and paying) the LLM twice.

mod answer;
pub mod commands;
mod execute;
mod intents;
mod knowledge;
mod routes;
mod streamed;
mod suggestions;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use crate::broadcast::BroadcastError;
use crate::context::Context;
use crate::handoff::{HandoffError, Handoffs};
use crate::knowledge::Knowledge;
use crate::leads::{self, Inbound, Kind};
use crate::money::{Money, MoneyError};
use crate::support::Support;
use crate::telegram::TelegramError;
use crate::telegram::updates::Unreadable;
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

/// A reply to an update: its text, what kind of message it is (conversation is history, a
/// command's answer or a notice is not), and buttons `(label, data)` under it.
struct Reply {
    text: String,
    kind: Kind,
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
    /// The support desk (`support:`): classifying lead messages.
    pub support: Arc<Support>,
}

impl Pipeline {
    pub fn new(ctx: Context, money: Arc<Money>) -> Self {
        Self {
            handoff: Arc::new(Handoffs::from_config(&ctx.settings.bot)),
            support: Arc::new(Support::from_config(&ctx.settings.bot)),
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

    /// An owner, or anyone in the operators' group (`handoff.notify.chatId`).
    fn is_operator(&self, inbound: &Inbound) -> bool {
        self.is_owner(inbound.user_id) || self.handoff.is_operator_chat(inbound.chat_id)
    }

    fn is_owner(&self, user_id: Option<i64>) -> bool {
        user_id.is_some_and(|id| self.extra_owner == Some(id) || self.money.is_owner(id))
    }

    /// Processed before (a crash after the reply was stored): sends the stored reply if it
    /// was not sent, instead of doing the work again. True when there was one.
    async fn finish_stored_reply<T: Transport>(
        &self,
        transport: &T,
        inbound: &Inbound,
    ) -> Result<bool, PipelineError> {
        let Some(reply) = leads::reply_for_update(&self.ctx.db, inbound.update_id).await? else {
            return Ok(false);
        };
        if !reply.sent {
            let format = if reply.kind == Kind::Command.as_str() {
                Format::Html
            } else {
                Format::Plain
            };
            transport.send(inbound.chat_id, &reply.text, format).await?;
            self.record_sent(reply.id, inbound.chat_id).await;
        }
        Ok(true)
    }

    /// Stores the reply to `inbound`'s update, sends it, and records that it was sent.
    async fn store_and_send<T: Transport>(
        &self,
        transport: &T,
        inbound: &Inbound,
        reply: Reply,
        now_ms: i64,
    ) -> Result<(), PipelineError> {
        let chat_id = inbound.chat_id;
        let id = leads::store_reply(
            &self.ctx.db,
            chat_id,
            Some(inbound.update_id),
            reply.kind,
            &reply.text,
            now_ms,
        )
        .await?;
        transport
            .send_with_buttons(chat_id, &reply.text, reply.format, &reply.buttons)
            .await?;
        self.record_sent(id, chat_id).await;
        Ok(())
    }

    /// Records that Telegram took the reply. A send cannot be undone, and a reply left unsent
    /// in the database would be sent again when the update runs again, so this lands through
    /// any database outage, before any worker claims again (see [`crate::db::Db::record_send`]).
    pub(crate) async fn record_sent(&self, message_id: i64, chat_id: i64) {
        leads::record_sent(&self.ctx.db, message_id, chat_id).await
    }
}
