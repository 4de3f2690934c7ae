//! What went wrong talking to Telegram, as a type: callers `match` on the kind (a 409 is
//! [`TelegramError::Conflict`], a blocked bot is [`Unreachable::Blocked`]) instead of searching
//! error text.
//!
//! teloxide parses Telegram's `description` into its `ApiError` but drops `error_code`. The
//! descriptions it does not know (`ApiError::Unknown`) are classified here, once, by the
//! category Telegram puts in front of every description ("Bad Request: …", "Forbidden: …",
//! "Conflict: …"), which is the HTTP status in words.

use std::time::Duration;

use teloxide::{ApiError, RequestError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum TelegramError {
    /// 429: Telegram asked us to wait this long (after the limiter's own waits ran out).
    #[error("Telegram rate limit: retry after {0:?}")]
    RetryAfter(Duration),
    /// 403 (or 400 "chat not found"): this chat will not take messages; do not retry.
    #[error("the chat is unreachable: {0}")]
    Unreachable(Unreachable),
    /// 409: another `getUpdates` consumer, or a webhook is set while we poll.
    #[error("Telegram conflict (409): {0}")]
    Conflict(Conflict),
    /// 401: the bot token was refused.
    #[error("Telegram refused the bot token (401 Unauthorized)")]
    Unauthorized,
    /// 400: the request itself is wrong; sending it again will not help.
    #[error("Telegram rejected the request (400 Bad Request): {description}")]
    BadRequest { description: String },
    /// The group became a supergroup with this id.
    #[error("the group moved to the supergroup {0}")]
    MigratedToChat(i64),
    /// A server-side failure (5xx) or an answer we could not read.
    #[error("Telegram server error: {description}")]
    Server { description: String },
    /// No answer: connection, timeout or TLS. Never carries the URL (it contains the token).
    #[error("network error talking to Telegram: {0}")]
    Network(String),
    /// The outbound limiter is gone (the process is shutting down).
    #[error("the outbound limiter has stopped")]
    LimiterStopped,
}

/// Why a chat does not take messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unreachable {
    #[error("the user blocked the bot")]
    Blocked,
    #[error("the user's account is deactivated")]
    Deactivated,
    #[error("the chat was not found")]
    ChatNotFound,
    #[error("the bot was removed from the chat")]
    Kicked,
    #[error("the bot may not start a conversation with this user")]
    CannotInitiate,
    #[error("Telegram forbids messages to this chat")]
    Forbidden,
}

impl Unreachable {
    /// The metric label (`botfleet_telegram_unreachable_total{reason}`).
    pub fn as_str(self) -> &'static str {
        match self {
            Unreachable::Blocked => "blocked",
            Unreachable::Deactivated => "deactivated",
            Unreachable::ChatNotFound => "chat_not_found",
            Unreachable::Kicked => "kicked",
            Unreachable::CannotInitiate => "cannot_initiate",
            Unreachable::Forbidden => "forbidden",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("another process polls this token")]
    OtherPoller,
    #[error("a webhook is set, so getUpdates is refused (the operator removes it in polling mode)")]
    WebhookActive,
    #[error("{0}")]
    Other(String),
}

impl TelegramError {
    /// True when trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            TelegramError::RetryAfter(_)
            | TelegramError::Conflict(_)
            | TelegramError::Server { .. }
            | TelegramError::Network(_)
            | TelegramError::LimiterStopped => true,
            TelegramError::Unreachable(_)
            | TelegramError::Unauthorized
            | TelegramError::BadRequest { .. }
            | TelegramError::MigratedToChat(_) => false,
        }
    }

    /// The reason, when the chat will not take messages (stop writing to it).
    pub fn unreachable(&self) -> Option<Unreachable> {
        match self {
            TelegramError::Unreachable(why) => Some(*why),
            _ => None,
        }
    }
}

impl From<RequestError> for TelegramError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Api(api) => from_api(api),
            RequestError::RetryAfter(seconds) => TelegramError::RetryAfter(seconds.duration()),
            RequestError::MigrateToChatId(chat) => TelegramError::MigratedToChat(chat.0),
            RequestError::Network(e) => TelegramError::Network(describe_network_error(&e)),
            RequestError::InvalidJson { source, .. } => TelegramError::Server {
                description: format!("unreadable response: {source}"),
            },
            RequestError::Io(e) => TelegramError::Network(format!("I/O error: {}", e.kind())),
        }
    }
}

fn from_api(api: ApiError) -> TelegramError {
    use TelegramError as E;
    let unreachable = E::Unreachable;
    match api {
        ApiError::BotBlocked => unreachable(Unreachable::Blocked),
        ApiError::UserDeactivated => unreachable(Unreachable::Deactivated),
        ApiError::ChatNotFound | ApiError::UserNotFound | ApiError::GroupDeactivated => {
            unreachable(Unreachable::ChatNotFound)
        }
        ApiError::BotKicked
        | ApiError::BotKickedFromSupergroup
        | ApiError::BotKickedFromChannel => unreachable(Unreachable::Kicked),
        ApiError::CantInitiateConversation | ApiError::CantTalkWithBots => {
            unreachable(Unreachable::CannotInitiate)
        }
        ApiError::InvalidToken => E::Unauthorized,
        ApiError::TerminatedByOtherGetUpdates => E::Conflict(Conflict::OtherPoller),
        ApiError::CantGetUpdates => E::Conflict(Conflict::WebhookActive),
        ApiError::Unknown(description) => from_description(description),
        // Every other variant teloxide knows is a "Bad Request: …" of one method.
        other => E::BadRequest {
            description: other.to_string(),
        },
    }
}

/// A description teloxide does not know, by its category prefix.
fn from_description(description: String) -> TelegramError {
    let (category, _) = description.split_once(':').unwrap_or((&description, ""));
    match category.trim() {
        "Bad Request" => TelegramError::BadRequest { description },
        "Forbidden" => TelegramError::Unreachable(Unreachable::Forbidden),
        "Unauthorized" => TelegramError::Unauthorized,
        "Conflict" => TelegramError::Conflict(Conflict::Other(description)),
        _ => TelegramError::Server { description },
    }
}

pub(crate) fn describe_network_error(e: &reqwest::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(description: &str) -> TelegramError {
        let api: ApiError = serde_json::from_value(serde_json::json!(description)).unwrap();
        TelegramError::from(RequestError::Api(api))
    }

    #[test]
    fn telegram_descriptions_become_kinds() {
        for (description, why) in [
            (
                "Forbidden: bot was blocked by the user",
                Unreachable::Blocked,
            ),
            ("Forbidden: user is deactivated", Unreachable::Deactivated),
            ("Bad Request: chat not found", Unreachable::ChatNotFound),
            (
                "Forbidden: bot is not a member of the channel chat",
                Unreachable::Forbidden,
            ),
        ] {
            assert_eq!(
                parsed(description).unreachable(),
                Some(why),
                "{description}"
            );
        }
        assert!(matches!(
            parsed(
                "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
            ),
            TelegramError::Conflict(Conflict::OtherPoller)
        ));
        assert!(matches!(
            parsed(
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
            ),
            TelegramError::Conflict(_)
        ));
        assert!(matches!(
            parsed("Unauthorized"),
            TelegramError::Unauthorized
        ));
        assert!(matches!(
            parsed("Bad Request: can't parse entities: unexpected end tag"),
            TelegramError::BadRequest { .. }
        ));
        assert!(matches!(
            parsed("Bad Request: message is too long"),
            TelegramError::BadRequest { .. }
        ));
        let server = parsed("Internal Server Error");
        assert!(matches!(server, TelegramError::Server { .. }));
        assert!(server.is_transient());
    }

    #[test]
    fn blocked_and_bad_requests_are_not_retried() {
        assert!(!parsed("Forbidden: bot was blocked by the user").is_transient());
        assert!(!parsed("Bad Request: message text is empty").is_transient());
        assert!(TelegramError::RetryAfter(Duration::from_secs(3)).is_transient());
        assert!(TelegramError::Network("timeout".into()).is_transient());
    }
}
