//! The operator ↔ bot contract: the environment variables, ports, paths, file locations and
//! names that the operator renders into a pod and the bot reads. One definition each, used by
//! both sides (and by the workspace contract test in `tests/tests/contract.rs`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Environment variables of the bot's containers. The operator sets those above the line; the
/// tuning variables below it are the bot's own (defaults in `botfleet_bot::config`).
pub mod env {
    /// Path of the config file (the operator points it at [`super::CONFIG_PATH`]).
    pub const BOTFLEET_CONFIG: &str = "BOTFLEET_CONFIG";
    /// `json` (default in pods) or `text`.
    pub const BOTFLEET_LOG_FORMAT: &str = "BOTFLEET_LOG_FORMAT";
    /// Listen address of the webhook (default [`super::HTTP_ADDR`]).
    pub const BOTFLEET_HTTP_ADDR: &str = "BOTFLEET_HTTP_ADDR";
    /// Listen address of `/metrics`, `/healthz`, `/readyz` (default [`super::METRICS_ADDR`]).
    pub const BOTFLEET_METRICS_ADDR: &str = "BOTFLEET_METRICS_ADDR";
    /// Lease the scheduler replicas elect their leader on.
    pub const BOTFLEET_LEASE_NAME: &str = "BOTFLEET_LEASE_NAME";
    /// The bot token from @BotFather (a Secret).
    pub const TELEGRAM_BOT_TOKEN: &str = "TELEGRAM_BOT_TOKEN";
    /// Bot API base URL (default [`super::DEFAULT_TELEGRAM_API_URL`]).
    pub const TELEGRAM_API_URL: &str = "TELEGRAM_API_URL";
    /// The LLM provider's API key (a Secret).
    pub const LLM_API_KEY: &str = "LLM_API_KEY";
    /// PostgreSQL URL (a Secret) or embedded SQLite's [`super::SQLITE_URL`].
    pub const DATABASE_URL: &str = "DATABASE_URL";
    /// Webhook mode: the value Telegram sends in `X-Telegram-Bot-Api-Secret-Token` (a Secret).
    pub const WEBHOOK_SECRET_TOKEN: &str = "WEBHOOK_SECRET_TOKEN";
    /// The pod's name (downward API): the scheduler's identity in the Lease.
    pub const POD_NAME: &str = "POD_NAME";
    /// The pod's namespace (downward API): where the Lease is.
    pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
    /// How many processes of the bot send messages at once (handler replicas, plus the active
    /// scheduler with PostgreSQL); each keeps to 1/n of Telegram's overall rate.
    pub const BOTFLEET_TELEGRAM_SENDERS: &str = "BOTFLEET_TELEGRAM_SENDERS";

    /// Every variable the operator may set on a bot container.
    pub const SET_BY_OPERATOR: &[&str] = &[
        BOTFLEET_CONFIG,
        BOTFLEET_LOG_FORMAT,
        BOTFLEET_HTTP_ADDR,
        BOTFLEET_METRICS_ADDR,
        BOTFLEET_LEASE_NAME,
        TELEGRAM_BOT_TOKEN,
        TELEGRAM_API_URL,
        LLM_API_KEY,
        DATABASE_URL,
        WEBHOOK_SECRET_TOKEN,
        POD_NAME,
        POD_NAMESPACE,
        BOTFLEET_TELEGRAM_SENDERS,
    ];

    // ---- the bot's tuning variables (not set by the operator) ----

    /// How long a worker's claim on an inbox row lasts before another worker may take it.
    pub const BOTFLEET_INBOX_CLAIM_TIMEOUT: &str = "BOTFLEET_INBOX_CLAIM_TIMEOUT";
    /// Concurrent update workers (default 8).
    pub const BOTFLEET_WORKERS: &str = "BOTFLEET_WORKERS";
    /// Deadline for in-flight work after SIGTERM (default 20s).
    pub const BOTFLEET_SHUTDOWN_GRACE: &str = "BOTFLEET_SHUTDOWN_GRACE";
    /// How often the scheduler looks for due follow-ups and budget alerts (default 30s).
    pub const BOTFLEET_SCHEDULER_INTERVAL: &str = "BOTFLEET_SCHEDULER_INTERVAL";
    /// The bot's overall Telegram rate, messages per second (default 30; more only for a bot
    /// whose limit Telegram raised).
    pub const BOTFLEET_TELEGRAM_MESSAGES_PER_SEC: &str = "BOTFLEET_TELEGRAM_MESSAGES_PER_SEC";
    /// Where `knowledge[].configMapKeyRef` files are read (default
    /// [`crate::ConfigMapKeyRef::MOUNT_ROOT`], where the operator mounts them).
    pub const BOTFLEET_KNOWLEDGE_DIR: &str = "BOTFLEET_KNOWLEDGE_DIR";
}

/// Subcommands of `botfleet-bot` (the image's entrypoint), passed as container args.
pub mod command {
    pub const SERVE: &str = "serve";
    pub const SCHEDULER: &str = "scheduler";
    pub const MIGRATE: &str = "migrate";
}

/// Port of the webhook listener (`BOTFLEET_HTTP_ADDR`); the Service's and Ingress's backend.
pub const HTTP_PORT: u16 = 8080;
/// Port of `/metrics`, `/healthz`, `/readyz`, `/api/v1/usage` (`BOTFLEET_METRICS_ADDR`).
pub const METRICS_PORT: u16 = 9090;
/// The bot's default webhook listen address: all interfaces, [`HTTP_PORT`].
pub const HTTP_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), HTTP_PORT);
/// The bot's default operations listen address: all interfaces, [`METRICS_PORT`].
pub const METRICS_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), METRICS_PORT);

/// Liveness probe path on the metrics port.
pub const LIVENESS_PATH: &str = "/healthz";
/// Readiness probe path on the metrics port (false while the database is unreachable).
pub const READINESS_PATH: &str = "/readyz";
/// Prometheus metrics path on the metrics port.
pub const METRICS_PATH: &str = "/metrics";
/// JSON usage summary on the metrics port (read by the operator for `status.spendToday`).
pub const USAGE_PATH: &str = "/api/v1/usage";

/// Directory the bot's ConfigMap is mounted at.
pub const CONFIG_DIR: &str = "/etc/botfleet";
/// Key of the config file in the ConfigMap, and its file name under [`CONFIG_DIR`].
pub const CONFIG_FILE: &str = "config.yaml";
/// Path of the config file inside the pods (`BOTFLEET_CONFIG`): [`CONFIG_DIR`]/[`CONFIG_FILE`].
pub const CONFIG_PATH: &str = "/etc/botfleet/config.yaml";
/// Mount point of embedded SQLite's volume.
pub const DATA_DIR: &str = "/data";
/// `DATABASE_URL` with embedded SQLite: a file on the [`DATA_DIR`] volume.
pub const SQLITE_URL: &str = "sqlite:///data/botfleet.db";

/// The Bot API used when nothing else is configured.
pub const DEFAULT_TELEGRAM_API_URL: &str = "https://api.telegram.org";
/// Prefix of the webhook path: the bot listens on it when `webhook.path` is not set, and the
/// operator's default is `<prefix>/<bot name>` ([`default_webhook_path`]).
pub const WEBHOOK_PATH_PREFIX: &str = "/telegram";
/// Key of the webhook secret token in the Secret the operator generates (`<bot>-webhook`).
pub const WEBHOOK_SECRET_KEY: &str = "secretToken";
/// The HTTP header Telegram sends the webhook secret token in (lower case, as `http` wants it).
pub const WEBHOOK_SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Server-side apply field manager of the operator (also its `app.kubernetes.io/managed-by`).
pub const FIELD_MANAGER: &str = "botfleet-operator";

/// The webhook path of a bot without `webhook.path`: `/telegram/<bot name>`.
pub fn default_webhook_path(bot_name: &str) -> String {
    format!("{WEBHOOK_PATH_PREFIX}/{bot_name}")
}

/// Telegram's rule for a webhook secret token: 1-256 characters of `A-Z`, `a-z`, `0-9`, `_`, `-`.
pub fn is_valid_webhook_secret(token: &str) -> bool {
    (1..=256).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The update kinds the bot handles, and so the only ones it asks Telegram for: polling's
/// `getUpdates` and the operator's `setWebhook` both send exactly this list. A kind the bot's
/// routing table (`bot/src/telegram/updates.rs`) starts handling is added here too.
pub const ALLOWED_UPDATES: [&str; 3] = ["message", "callback_query", "my_chat_member"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_values_agree_with_their_parts() {
        assert_eq!(CONFIG_PATH, format!("{CONFIG_DIR}/{CONFIG_FILE}"));
        assert!(SQLITE_URL.starts_with(&format!("sqlite://{DATA_DIR}/")));
        assert_eq!(HTTP_ADDR.to_string(), "0.0.0.0:8080");
        assert_eq!(METRICS_ADDR.to_string(), "0.0.0.0:9090");
        assert_eq!(default_webhook_path("sales-bot"), "/telegram/sales-bot");
    }

    #[test]
    fn webhook_secrets_follow_telegrams_rule() {
        assert!(is_valid_webhook_secret("s3cr3t_token-ABC"));
        assert!(is_valid_webhook_secret(&"a".repeat(256)));
        for bad in ["", "has spaces", "ü", &"a".repeat(257)] {
            assert!(!is_valid_webhook_secret(bad), "{bad:?}");
        }
    }
}
