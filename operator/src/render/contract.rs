//! The operator ↔ bot contract: environment variables, ports, paths and file locations the
//! operator renders and the bot reads (`botfleet_bot::config::env` holds the bot's side; the
//! workspace contract test checks they agree).

/// Path of the config file inside the pods (`BOTFLEET_CONFIG`).
pub const CONFIG_PATH: &str = "/etc/botfleet/config.yaml";
/// Mount point of the bot's ConfigMap.
pub const CONFIG_DIR: &str = "/etc/botfleet";
/// Mount point of embedded SQLite's volume.
pub const DATA_DIR: &str = "/data";
/// `DATABASE_URL` with embedded SQLite.
pub const SQLITE_URL: &str = "sqlite:///data/botfleet.db";
/// Key of the generated webhook Secret.
pub const WEBHOOK_SECRET_KEY: &str = "secretToken";

/// Port of the webhook (`BOTFLEET_HTTP_ADDR`), named `http`.
pub const HTTP_PORT: i32 = 8080;
/// Port of `/metrics`, `/healthz`, `/readyz` (`BOTFLEET_METRICS_ADDR`), named `metrics`.
pub const METRICS_PORT: i32 = 9090;
/// Port names of the containers and Services.
pub const HTTP_PORT_NAME: &str = "http";
pub const METRICS_PORT_NAME: &str = "metrics";
/// Probe paths on the metrics port.
pub const LIVENESS_PATH: &str = "/healthz";
pub const READINESS_PATH: &str = "/readyz";
pub const METRICS_PATH: &str = "/metrics";

/// The non-root user and group the bot runs as (distroless `nonroot`).
pub const RUN_AS_USER: i64 = 65532;

/// Subcommands of `botfleet-bot` (the image's entrypoint), passed as container args.
pub const SERVE: &str = "serve";
pub const SCHEDULER: &str = "scheduler";
pub const MIGRATE: &str = "migrate";

/// Environment variables the operator sets on the bot containers.
pub mod env {
    pub const BOTFLEET_CONFIG: &str = "BOTFLEET_CONFIG";
    pub const BOTFLEET_LOG_FORMAT: &str = "BOTFLEET_LOG_FORMAT";
    pub const BOTFLEET_HTTP_ADDR: &str = "BOTFLEET_HTTP_ADDR";
    pub const BOTFLEET_METRICS_ADDR: &str = "BOTFLEET_METRICS_ADDR";
    pub const BOTFLEET_LEASE_NAME: &str = "BOTFLEET_LEASE_NAME";
    pub const TELEGRAM_BOT_TOKEN: &str = "TELEGRAM_BOT_TOKEN";
    pub const TELEGRAM_API_URL: &str = "TELEGRAM_API_URL";
    pub const LLM_API_KEY: &str = "LLM_API_KEY";
    pub const DATABASE_URL: &str = "DATABASE_URL";
    pub const WEBHOOK_SECRET_TOKEN: &str = "WEBHOOK_SECRET_TOKEN";
    pub const POD_NAME: &str = "POD_NAME";
    pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
}
