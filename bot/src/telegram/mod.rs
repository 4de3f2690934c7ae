//! Talking to the Telegram Bot API: sending replies (split, 429-aware), the typing action, and
//! long polling. Built on teloxide's `Bot`, pointed at `TELEGRAM_API_URL`.

mod split;

use std::time::Duration;

use teloxide::prelude::*;
use teloxide::types::{ChatAction, ParseMode};
use teloxide::{ApiError, RequestError};

pub use split::{TELEGRAM_MAX_MESSAGE_UTF16, split_message};

/// How many times one message is retried after Telegram says 429 before giving up.
const MAX_RETRY_AFTER_WAITS: u32 = 5;
/// The longest `retry_after` we sleep through; longer waits fail the send (it is retried later).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    #[error("Telegram asked us to wait {0:?}, longer than we hold a message")]
    RetryAfterTooLong(Duration),
    #[error("Telegram kept answering 429 after {0} waits")]
    StillRateLimited(u32),
    /// The user blocked the bot or deleted their account: stop writing to them.
    #[error("the chat is gone or the user blocked the bot: {0}")]
    Unreachable(String),
    #[error("Telegram API error: {0}")]
    Api(String),
    #[error("network error talking to Telegram: {0}")]
    Network(String),
}

impl TelegramError {
    fn from_request(e: RequestError) -> Self {
        match e {
            RequestError::Api(
                api @ (ApiError::BotBlocked
                | ApiError::ChatNotFound
                | ApiError::UserDeactivated
                | ApiError::BotKicked),
            ) => Self::Unreachable(api.to_string()),
            RequestError::Api(api) => Self::Api(api.to_string()),
            // The token is part of the URL: reqwest errors may carry it, so keep only the kind.
            RequestError::Network(e) => Self::Network(describe_network_error(&e)),
            other => Self::Api(redact(&other.to_string())),
        }
    }

    /// True when trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Unreachable(_))
    }
}

fn describe_network_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_decode() || e.is_body() {
        "bad response body"
    } else {
        "request failed"
    };
    match e.status() {
        Some(status) => format!("{kind} (HTTP {status})"),
        None => kind.to_owned(),
    }
}

/// Removes anything that looks like `/bot<token>/` from a message.
fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("/bot") {
        out.push_str(&rest[..i + 4]);
        let after = &rest[i + 4..];
        let end = after.find('/').unwrap_or(after.len());
        out.push_str("***");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
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

/// The outbound side of the Bot API. Cheap to clone.
#[derive(Clone)]
pub struct TelegramClient {
    bot: Bot,
}

impl std::fmt::Debug for TelegramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramClient").finish_non_exhaustive()
    }
}

impl TelegramClient {
    pub fn new(token: &str, api_url: &str) -> Result<Self, TelegramError> {
        let url = reqwest::Url::parse(api_url)
            .map_err(|e| TelegramError::Api(format!("TELEGRAM_API_URL is not a URL: {e}")))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Long polls ask for 25 s; leave room on top.
            .timeout(Duration::from_secs(40))
            .build()
            .map_err(|e| TelegramError::Network(e.to_string()))?;
        Ok(Self {
            bot: Bot::with_client(token, client).set_api_url(url),
        })
    }

    pub fn bot(&self) -> &Bot {
        &self.bot
    }

    /// Sends plain text (no parse mode: nothing in it can break formatting), split at
    /// Telegram's limit, parts in order. Returns how many messages were sent.
    pub async fn send_text(&self, chat_id: i64, text: &str) -> Result<usize, TelegramError> {
        self.send_parts(chat_id, text, None).await
    }

    /// Sends HTML (the caller escapes user-provided parts with [`escape_html`]).
    pub async fn send_html(&self, chat_id: i64, html: &str) -> Result<usize, TelegramError> {
        self.send_parts(chat_id, html, Some(ParseMode::Html)).await
    }

    async fn send_parts(
        &self,
        chat_id: i64,
        text: &str,
        mode: Option<ParseMode>,
    ) -> Result<usize, TelegramError> {
        let parts = split_message(text, TELEGRAM_MAX_MESSAGE_UTF16);
        for part in &parts {
            self.send_one(chat_id, part, mode).await?;
        }
        Ok(parts.len())
    }

    async fn send_one(
        &self,
        chat_id: i64,
        text: &str,
        mode: Option<ParseMode>,
    ) -> Result<(), TelegramError> {
        let mut waits = 0;
        loop {
            let mut request = self.bot.send_message(ChatId(chat_id), text);
            if let Some(mode) = mode {
                request = request.parse_mode(mode);
            }
            match request.await {
                Ok(_) => return Ok(()),
                Err(RequestError::RetryAfter(seconds)) => {
                    let wait = seconds.duration();
                    if wait > MAX_RETRY_AFTER {
                        return Err(TelegramError::RetryAfterTooLong(wait));
                    }
                    waits += 1;
                    if waits > MAX_RETRY_AFTER_WAITS {
                        return Err(TelegramError::StillRateLimited(MAX_RETRY_AFTER_WAITS));
                    }
                    tracing::warn!(
                        chat_id,
                        wait_secs = wait.as_secs(),
                        "Telegram rate limit: waiting as asked"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(TelegramError::from_request(e)),
            }
        }
    }

    /// "typing…" in the chat; best effort (a failure is not worth more than a debug line).
    pub async fn send_typing(&self, chat_id: i64) {
        if let Err(e) = self
            .bot
            .send_chat_action(ChatId(chat_id), ChatAction::Typing)
            .await
        {
            tracing::debug!(chat_id, error = %TelegramError::from_request(e), "typing action failed");
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
            let description = reply["description"].as_str().unwrap_or("no description");
            if let Some(wait) = reply["parameters"]["retry_after"].as_u64() {
                tokio::time::sleep(Duration::from_secs(wait).min(MAX_RETRY_AFTER)).await;
            }
            return Err(TelegramError::Api(format!(
                "getUpdates: HTTP {status}: {description}"
            )));
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

    #[test]
    fn tokens_are_redacted_from_messages() {
        assert_eq!(
            redact("error sending request for url (http://x/bot123:ABC/sendMessage)"),
            "error sending request for url (http://x/bot***/sendMessage)"
        );
    }
}
