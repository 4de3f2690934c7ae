//! The one outbound road: every message the bot sends (replies, drafts' final text, follow-ups,
//! budget alerts, handoff notices and relays, broadcasts and their progress) goes through
//! [`Delivery`]: the one outbound limiter, counted in `botfleet_messages_sent_total`, and a chat
//! that refuses messages (the user blocked the bot, deleted the account) is opted out, exactly
//! as `/stop` does, so nothing is sent to it again until the user writes `/start` or unblocks
//! the bot; each refusal is counted in `botfleet_telegram_unreachable_total{reason}`.
//!
//! Below the features and the money layer: it knows the Telegram client, the lead store and
//! the metrics, nothing above them.

use std::future::{Future, IntoFuture};
use std::sync::Arc;

use teloxide::RequestError;
use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardMarkup, ParseMode};

use crate::db::Db;
use crate::metrics::{Metrics, ReasonLabels};
use crate::telegram::{
    Format, Priority, TELEGRAM_MAX_MESSAGE_UTF16, TelegramClient, TelegramError, inline_button,
    split_message,
};

/// Sends messages for the whole process. Cheap to clone.
#[derive(Clone)]
pub struct Delivery {
    telegram: TelegramClient,
    db: Db,
    metrics: Arc<Metrics>,
}

impl Delivery {
    pub fn new(telegram: TelegramClient, db: Db, metrics: Arc<Metrics>) -> Self {
        Self {
            telegram,
            db,
            metrics,
        }
    }

    /// Sends `text` to `chat_id`; returns how many Telegram messages it took.
    pub async fn send(
        &self,
        chat_id: i64,
        text: &str,
        format: Format,
        priority: Priority,
    ) -> Result<usize, TelegramError> {
        let ids = self
            .send_with_buttons(chat_id, text, format, priority, &[])
            .await?;
        Ok(ids.len())
    }

    /// [`Delivery::send`] with inline buttons `(label, callback data)` under the last part
    /// (one per row): text split at Telegram's limit, parts in order. Returns the message id
    /// of each part (a reply to one of them names it, e.g. an owner answering a relayed lead
    /// message).
    pub async fn send_with_buttons(
        &self,
        chat_id: i64,
        text: &str,
        format: Format,
        priority: Priority,
        buttons: &[(String, String)],
    ) -> Result<Vec<i64>, TelegramError> {
        let keyboard = (!buttons.is_empty()).then(|| {
            InlineKeyboardMarkup::new(
                buttons
                    .iter()
                    .map(|(label, data)| [inline_button(label, data)]),
            )
        });
        let parts = split_message(text, TELEGRAM_MAX_MESSAGE_UTF16);
        let last = parts.len().saturating_sub(1);
        let bot = self.telegram.bot();
        let mut ids = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let keyboard = keyboard.as_ref().filter(|_| i == last);
            let sent = self
                .request(chat_id, priority, Put::Message, || {
                    let mut request = bot.send_message(ChatId(chat_id), part.as_str());
                    if format == Format::Html {
                        request = request.parse_mode(ParseMode::Html);
                    }
                    if let Some(keyboard) = keyboard {
                        request = request.reply_markup(keyboard.clone());
                    }
                    request.into_future()
                })
                .await?;
            ids.push(i64::from(sent.id.0));
        }
        Ok(ids)
    }

    /// Any request that puts something in a chat (a photo, a document, an edit), made with
    /// the teloxide bot it is given: through the limiter, counted when it is a new message,
    /// the chat opted out when Telegram says it is unreachable. The one place that calls
    /// Telegram's send methods.
    pub async fn request<T, Fut: Future<Output = Result<T, RequestError>>>(
        &self,
        chat_id: i64,
        priority: Priority,
        put: Put,
        mut request: impl FnMut() -> Fut,
    ) -> Result<T, TelegramError> {
        match self
            .telegram
            .outbound()
            .send(chat_id, priority, &mut request)
            .await
        {
            Ok(sent) => {
                if put == Put::Message {
                    self.metrics.messages_sent.inc();
                }
                Ok(sent)
            }
            Err(e) => {
                if let Some(why) = e.unreachable() {
                    self.opt_out(chat_id, why.as_str()).await;
                }
                Err(e)
            }
        }
    }

    /// The teloxide bot the closures given to [`Delivery::request`] build their request with.
    pub fn bot(&self) -> &teloxide::Bot {
        self.telegram.bot()
    }

    async fn opt_out(&self, chat_id: i64, reason: &'static str) {
        self.metrics
            .telegram_unreachable
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
        let now = chrono::Utc::now().timestamp_millis();
        match crate::leads::set_opted_out(&self.db, chat_id, true, now).await {
            Ok(()) => tracing::info!(chat_id, reason, "chat unreachable: the lead is opted out"),
            // The send already failed for good; a later send refuses again and retries this.
            Err(e) => {
                tracing::warn!(chat_id, reason, error = %e, "chat unreachable, but opting the lead out failed")
            }
        }
    }
}

/// What a request puts in the chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    /// A new message: counted in `botfleet_messages_sent_total`.
    Message,
    /// A change to a message already there (a progress message's new text).
    Edit,
}
