//! The operator's side of the Telegram Bot API: webhook registration.
//!
//! Plain JSON over reqwest to `{apiUrl}/bot{token}/{method}`. The token is part of every URL,
//! so no URL ever reaches an error message or a log line: errors name the method only.

use std::collections::BTreeSet;
use std::time::Duration;

use botfleet_api::contract::ALLOWED_UPDATES;
use serde::{Deserialize, Serialize};

/// Why a Bot API call failed. Never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    /// The request did not get an HTTP answer (connection refused, timeout, TLS, ...).
    #[error("Telegram {method}: request failed: {source}")]
    Transport {
        method: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// Telegram answered `ok: false`.
    #[error("Telegram {method}: {code} {description}")]
    Api {
        method: &'static str,
        code: u16,
        description: String,
    },
    /// The answer was not the JSON Telegram documents.
    #[error("Telegram {method}: unexpected answer (HTTP {status}): {detail}")]
    Decode {
        method: &'static str,
        status: u16,
        detail: String,
    },
}

impl TelegramError {
    /// The token is not (or no longer) a valid bot token: retrying will not help.
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            TelegramError::Api {
                code: 401 | 404,
                ..
            }
        )
    }
}

/// `getWebhookInfo`'s result (the fields the operator uses).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct WebhookInfo {
    /// The registered URL; empty when none is.
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub pending_update_count: i64,
    /// Unix time of the last delivery error.
    #[serde(default)]
    pub last_error_date: Option<i64>,
    #[serde(default)]
    pub last_error_message: Option<String>,
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// Absent means "all update kinds except chat_member, message_reaction...".
    #[serde(default)]
    pub allowed_updates: Option<Vec<String>>,
}

/// What the operator registers for a bot in webhook mode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WebhookRegistration {
    pub url: String,
    pub secret_token: String,
    pub max_connections: u32,
    pub allowed_updates: Vec<String>,
    pub drop_pending_updates: bool,
}

impl WebhookRegistration {
    pub fn new(url: String, secret_token: String, max_connections: u32) -> Self {
        Self {
            url,
            secret_token,
            max_connections,
            allowed_updates: ALLOWED_UPDATES.iter().map(|s| s.to_string()).collect(),
            drop_pending_updates: false,
        }
    }

    /// Whether Telegram's registration differs from this one in what `getWebhookInfo` shows
    /// (the secret token cannot be read back; callers track it separately).
    pub fn differs_from(&self, info: &WebhookInfo) -> bool {
        let wanted: BTreeSet<&str> = self.allowed_updates.iter().map(String::as_str).collect();
        let registered: Option<BTreeSet<&str>> = info
            .allowed_updates
            .as_ref()
            .map(|u| u.iter().map(String::as_str).collect());
        info.url != self.url
            || info.max_connections != Some(self.max_connections)
            || registered.as_ref() != Some(&wanted)
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    ok: bool,
    result: Option<T>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
}

/// A Bot API client for one API server; the token is passed per call.
#[derive(Clone, Debug)]
pub struct TelegramClient {
    http: reqwest::Client,
}

impl Default for TelegramClient {
    fn default() -> Self {
        Self::new(Duration::from_secs(15))
    }
}

impl TelegramClient {
    pub fn new(timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Self { http }
    }

    pub async fn get_webhook_info(
        &self,
        api_url: &str,
        token: &str,
    ) -> Result<WebhookInfo, TelegramError> {
        self.call(api_url, token, "getWebhookInfo", &serde_json::json!({}))
            .await
    }

    /// Registers the webhook (`drop_pending_updates: false`: updates queued while the bot
    /// switched over are delivered, not lost).
    pub async fn set_webhook(
        &self,
        api_url: &str,
        token: &str,
        registration: &WebhookRegistration,
    ) -> Result<(), TelegramError> {
        let _: bool = self
            .call(api_url, token, "setWebhook", registration)
            .await?;
        Ok(())
    }

    /// Removes the webhook; pending updates stay queued for `getUpdates`.
    pub async fn delete_webhook(&self, api_url: &str, token: &str) -> Result<(), TelegramError> {
        let _: bool = self
            .call(
                api_url,
                token,
                "deleteWebhook",
                &serde_json::json!({"drop_pending_updates": false}),
            )
            .await?;
        Ok(())
    }

    async fn call<B: Serialize + ?Sized, T: for<'de> Deserialize<'de>>(
        &self,
        api_url: &str,
        token: &str,
        method: &'static str,
        body: &B,
    ) -> Result<T, TelegramError> {
        let url = format!("{}/bot{token}/{method}", api_url.trim_end_matches('/'));
        let response =
            self.http
                .post(url)
                .json(body)
                .send()
                .await
                .map_err(|e| TelegramError::Transport {
                    method,
                    source: e.without_url(),
                })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| TelegramError::Transport {
                method,
                source: e.without_url(),
            })?;
        let envelope: Envelope<T> =
            serde_json::from_slice(&bytes).map_err(|e| TelegramError::Decode {
                method,
                status,
                detail: e.to_string(),
            })?;
        match (envelope.ok, envelope.result) {
            (true, Some(result)) => Ok(result),
            (true, None) => Err(TelegramError::Decode {
                method,
                status,
                detail: "ok without a result".into(),
            }),
            (false, _) => Err(TelegramError::Api {
                method,
                code: envelope.error_code.unwrap_or(status),
                description: envelope
                    .description
                    .unwrap_or_else(|| "no description".into()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration() -> WebhookRegistration {
        WebhookRegistration::new("https://bots.example.com/telegram/a".into(), "s".into(), 40)
    }

    fn matching_info() -> WebhookInfo {
        WebhookInfo {
            url: "https://bots.example.com/telegram/a".into(),
            max_connections: Some(40),
            allowed_updates: Some(
                ["callback_query", "message", "my_chat_member"]
                    .map(String::from)
                    .to_vec(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn a_matching_registration_in_any_order_does_not_differ() {
        assert!(!registration().differs_from(&matching_info()));
    }

    #[test]
    fn url_connections_or_update_kinds_make_it_differ() {
        let r = registration();
        let mut info = matching_info();
        info.url = String::new();
        assert!(r.differs_from(&info));
        let mut info = matching_info();
        info.max_connections = Some(100);
        assert!(r.differs_from(&info));
        let mut info = matching_info();
        info.allowed_updates = None;
        assert!(r.differs_from(&info));
    }

    #[tokio::test]
    async fn errors_never_contain_the_token() {
        // Nothing listens on port 9 of loopback: the request fails at connect.
        let client = TelegramClient::new(Duration::from_secs(2));
        let err = client
            .get_webhook_info("http://127.0.0.1:9", "123456:SECRET-TOKEN")
            .await
            .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(text.contains("getWebhookInfo"), "{text}");
        assert!(!text.contains("SECRET-TOKEN"), "{text}");
    }
}
