//! Talking to the Telegram Bot API: sending replies (split, 429-aware), the typing action, and
//! long polling. Built on teloxide's `Bot`, pointed at `TELEGRAM_API_URL`.

//! Talking to the Telegram Bot API: sending messages through the one outbound limiter
//! ([`outbound`]), the typing action, and long polling. Built on teloxide's `Bot`, pointed at
//! `TELEGRAM_API_URL`. Failures are a [`TelegramError`] of a kind callers can match on.

mod draft;
mod error;
pub mod outbound;
mod split;

use std::time::Duration;

use teloxide::ApiError;
use teloxide::prelude::*;
use teloxide::types::{ChatAction, ParseMode};

pub use draft::{DraftShown, SendMessageDraft};
use error::describe_network_error;
pub use error::{Conflict, TelegramError, Unreachable};
pub use outbound::{Limits, Outbound, Priority};
pub use split::{TELEGRAM_MAX_MESSAGE_UTF16, split_message};

/// How a message's text is to be read by Telegram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// No parse mode: nothing in the text can break formatting.
    Plain,
    /// Telegram HTML; user-provided parts are escaped ([`escape_html`]) by whoever built it.
    Html,
}

/// Escapes text for Telegram's HTML parse mode.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// The outbound side of the Bot API. Cheap to clone: clones share one [`Outbound`] limiter,
/// so build one per process.
#[derive(Clone)]
pub struct TelegramClient {
    bot: Bot,
    outbound: Outbound,
    drafts: draft::SharedDraftSupport,
}

impl std::fmt::Debug for TelegramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramClient").finish_non_exhaustive()
    }
}

impl TelegramClient {
    /// A client keeping to Telegram's limits for a bot that runs as this one process.
    pub fn new(token: &str, api_url: &str) -> Result<Self, TelegramError> {
        Self::with_limits(token, api_url, Limits::default())
    }

    pub fn with_limits(token: &str, api_url: &str, limits: Limits) -> Result<Self, TelegramError> {
        let url = reqwest::Url::parse(api_url).map_err(|e| TelegramError::BadRequest {
            description: format!("TELEGRAM_API_URL is not a URL: {e}"),
        })?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Long polls ask for 25 s; leave room on top.
            .timeout(Duration::from_secs(40))
            .build()
            .map_err(|e| TelegramError::Network(describe_network_error(&e)))?;
        Ok(Self {
            bot: Bot::with_client(token, client).set_api_url(url),
            outbound: Outbound::new(limits),
            drafts: Default::default(),
        })
    }

    /// The teloxide bot, for calls that are not messages (they bypass the limiter).
    pub fn bot(&self) -> &Bot {
        &self.bot
    }

    /// The limiter every message passes; new kinds of messages (documents, drafts) send
    /// through [`Outbound::send`] too.
    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// Sends text split at Telegram's limit, parts in order, each through the limiter.
    /// Returns how many messages were sent.
    pub async fn send(
        &self,
        chat_id: i64,
        text: &str,
        format: Format,
        priority: Priority,
    ) -> Result<usize, TelegramError> {
        let parts = split_message(text, TELEGRAM_MAX_MESSAGE_UTF16);
        for part in &parts {
            self.outbound
                .send(chat_id, priority, || {
                    let request = self.bot.send_message(ChatId(chat_id), part.as_str());
                    match format {
                        Format::Plain => request,
                        Format::Html => request.parse_mode(ParseMode::Html),
                    }
                    .into_future()
                })
                .await?;
        }
        Ok(parts.len())
    }

    /// Whether drafts may work in this chat: a private chat (positive id: a user's own chat
    /// has the user's id; groups and channels are negative) where Telegram did not refuse them.
    pub fn drafts_available(&self, chat_id: i64) -> bool {
        chat_id > 0 && self.drafts.available(chat_id)
    }

    /// Shows (or replaces) the draft `draft_id` in a private chat. Best effort: a draft is a
    /// preview, so a 429 or a network error skips it rather than waiting.
    pub async fn send_draft(&self, chat_id: i64, draft_id: i64, text: &str) -> DraftShown {
        if !self.drafts_available(chat_id) {
            return DraftShown::Unavailable;
        }
        let payload = SendMessageDraft {
            chat_id,
            draft_id,
            text: text.to_owned(),
        };
        // Like "typing…": not worth waiting out flood control for.
        if self.outbound.is_paused() || self.outbound.acquire_draft(chat_id).await.is_err() {
            return DraftShown::Skipped;
        }
        match draft::request(&self.bot, payload).await {
            Ok(_) => DraftShown::Shown,
            Err(teloxide::RequestError::RetryAfter(wait)) => {
                self.outbound.pause_all(wait.duration());
                DraftShown::Skipped
            }
            Err(e) => self.drafts.failed(chat_id, e),
        }
    }

    /// "typing…" in the chat; best effort (a failure is not worth more than a debug line).
    pub async fn send_typing(&self, chat_id: i64) {
        if self.outbound.is_paused() {
            return;
        }
        if let Err(e) = self
            .bot
            .send_chat_action(ChatId(chat_id), ChatAction::Typing)
            .await
        {
            tracing::debug!(chat_id, error = %TelegramError::from(e), "typing action failed");
        }
    }

    /// One long poll: updates after `offset`, as raw JSON (stored as-is in the inbox).
    pub async fn get_updates_raw(
        &self,
        offset: i64,
        timeout_secs: u32,
    ) -> Result<Vec<serde_json::Value>, TelegramError> {
        let mut url = self.bot.api_url();
        let token = self.bot.token();
        url.set_path(&format!(
            "{}/bot{token}/getUpdates",
            url.path().trim_end_matches('/')
        ));
        let body = serde_json::json!({
            "offset": offset,
            "timeout": timeout_secs,
            "allowed_updates": ["message", "edited_message", "callback_query", "my_chat_member"],
        });
        let response = self
            .bot
            .client()
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| TelegramError::Network(describe_network_error(&e)))?;
        let status = response.status();
        let reply: serde_json::Value = response
            .json()
            .await
            .map_err(|e| TelegramError::Network(describe_network_error(&e)))?;
        if reply["ok"].as_bool() != Some(true) {
            if let Some(wait) = reply["parameters"]["retry_after"].as_u64() {
                return Err(TelegramError::RetryAfter(Duration::from_secs(wait)));
            }
            let description = reply["description"].as_str().unwrap_or_default();
            return Err(
                match serde_json::from_value::<ApiError>(description.into()) {
                    Ok(api) => teloxide::RequestError::Api(api).into(),
                    Err(_) => TelegramError::Server {
                        description: format!("getUpdates: HTTP {status}"),
                    },
                },
            );
        }
        Ok(reply["result"].as_array().cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<b>a & \"b\"</b>"),
            "&lt;b&gt;a &amp; &quot;b&quot;&lt;/b&gt;"
        );
    }
}
