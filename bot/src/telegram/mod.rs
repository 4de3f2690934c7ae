//! Talking to the Telegram Bot API: the one outbound limiter ([`outbound`]) that
//! `crate::delivery` sends every message through, the typing action, drafts, and long
//! polling. Built on teloxide's `Bot`, pointed at `TELEGRAM_API_URL`. Failures are a
//! [`TelegramError`] of a kind callers can match on.

mod draft;
mod error;
mod get_updates;
pub mod outbound;
mod split;
pub mod updates;

use std::time::Duration;

use botfleet_api::contract::ALLOWED_UPDATES;
use teloxide::prelude::*;
use teloxide::requests::JsonRequest;
use teloxide::types::{
    BotCommand, BotCommandScope, CallbackQueryId, ChatAction, InlineKeyboardButton, MenuButton,
    WebAppInfo,
};

pub use draft::{DraftShown, SendMessageDraft};
pub(crate) use error::describe_network_error;
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

/// The callback data of a button that opens a Mini App instead: `web_app:` and its HTTPS URL
/// (callback data proper is at most 64 bytes of our own, never a URL).
const WEB_APP_PREFIX: &str = "web_app:";

/// A `(label, data)` button that opens the Mini App at `url` (an inline `web_app` button).
pub fn web_app_button(label: &str, url: &str) -> (String, String) {
    (label.to_owned(), format!("{WEB_APP_PREFIX}{url}"))
}

/// An inline button: a callback button, or a `web_app` one (see [`web_app_button`]).
pub fn inline_button(label: &str, data: &str) -> InlineKeyboardButton {
    match data
        .strip_prefix(WEB_APP_PREFIX)
        .and_then(|url| reqwest::Url::parse(url).ok())
    {
        Some(url) => InlineKeyboardButton::web_app(label, WebAppInfo { url }),
        None => InlineKeyboardButton::callback(label, data),
    }
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

    /// The limiter every message passes. Messages are sent through `crate::delivery`, the
    /// one caller of [`Outbound::send`].
    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// Whether drafts may work in this (private) chat: Telegram did not refuse them for the bot
    /// or the chat. Only private chats have drafts; the caller knows the chat's type.
    pub fn drafts_available(&self, chat_id: i64) -> bool {
        self.drafts.available(chat_id)
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

    /// Stops the spinner on a pressed inline button (not a message: no limiter); best effort
    /// (Telegram refuses an answer to an old query, e.g. one handled again after a crash).
    pub async fn answer_callback_query(&self, query_id: &str) {
        let id = CallbackQueryId(query_id.to_owned());
        if let Err(e) = self.bot.answer_callback_query(id).await {
            tracing::debug!(error = %TelegramError::from(e), "answerCallbackQuery failed");
        }
    }

    /// Sets Telegram's command menu for one scope (`setMyCommands`).
    pub async fn set_commands(
        &self,
        commands: Vec<BotCommand>,
        scope: BotCommandScope,
    ) -> Result<(), TelegramError> {
        self.bot
            .set_my_commands(commands)
            .scope(scope)
            .await
            .map(|_| ())
            .map_err(TelegramError::from)
    }

    /// Sets the menu button of one private chat to open the Mini App at `url`
    /// (`setChatMenuButton` with a `web_app` button).
    pub async fn set_web_app_menu_button(
        &self,
        chat_id: i64,
        text: &str,
        url: &str,
    ) -> Result<(), TelegramError> {
        let url = reqwest::Url::parse(url).map_err(|e| TelegramError::BadRequest {
            description: format!("the Mini App URL is not a URL: {e}"),
        })?;
        self.bot
            .set_chat_menu_button()
            .chat_id(ChatId(chat_id))
            .menu_button(MenuButton::WebApp {
                text: text.to_owned(),
                web_app: WebAppInfo { url },
            })
            .await
            .map(|_| ())
            .map_err(TelegramError::from)
    }

    /// Whether `user_id` is in the group `chat_id` now (`getChatMember`).
    pub async fn is_chat_member(&self, chat_id: i64, user_id: i64) -> Result<bool, TelegramError> {
        let user = teloxide::types::UserId(u64::try_from(user_id).unwrap_or_default());
        self.bot
            .get_chat_member(ChatId(chat_id), user)
            .await
            .map(|member| member.is_present())
            .map_err(TelegramError::from)
    }

    /// One long poll: updates from `offset` on, each as the JSON Telegram sent (stored as it
    /// is in the inbox), of the kinds in [`ALLOWED_UPDATES`].
    pub async fn get_updates(
        &self,
        offset: i64,
        timeout_secs: u32,
    ) -> Result<Vec<serde_json::Value>, TelegramError> {
        let payload = get_updates::GetRawUpdates {
            offset,
            timeout: timeout_secs,
            allowed_updates: &ALLOWED_UPDATES,
        };
        JsonRequest::new(self.bot.clone(), payload)
            .send()
            .await
            .map_err(TelegramError::from)
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
