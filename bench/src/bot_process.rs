//! The real `botfleet-bot serve`, started the way the end-to-end tests and the operator start
//! it: a config file in the spec's vocabulary, secrets and endpoints from the environment,
//! loopback ports; stdout/stderr go to a log file in the scratch directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use botfleet_api::contract::{self, env};

use crate::fakes::{llm, telegram};

pub const WEBHOOK_SECRET: &str = "bench-webhook-secret_0123456789abcdef";
pub const WEBHOOK_PATH: &str = "/telegram/bench-bot";

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting {bin}: {source} (build it: cargo build --release -p botfleet-bot)")]
    Spawn {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the bot was not ready within {0:?}; see its log {1}")]
    NotReady(Duration, PathBuf),
}

/// Where the bot binary is: `--bot-bin`/`BOTFLEET_BOT_BIN`, else next to this benchmark's own
/// executable (both are built into the same `target/release`).
/// The binary `--bot-bin` names, or (empty) [`default_bot_bin`].
pub fn bot_bin(given: &str) -> PathBuf {
    if given.is_empty() {
        default_bot_bin()
    } else {
        PathBuf::from(given)
    }
}

pub fn default_bot_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("botfleet-bot")))
        .unwrap_or_else(|| PathBuf::from("botfleet-bot"))
}

pub struct BotOptions<'a> {
    pub bin: &'a Path,
    pub dir: &'a Path,
    pub database_url: &'a str,
    pub telegram_url: &'a str,
    pub llm_url: &'a str,
    /// `BOTFLEET_WORKERS`; `None` leaves the bot's default.
    pub workers: Option<usize>,
    /// More environment (e.g. `POD_NAME`, tuning variables).
    pub env: Vec<(&'a str, String)>,
}

pub struct BotProcess {
    child: Child,
    pub pid: u32,
    pub webhook_url: String,
    pub metrics_url: String,
    pub log_path: PathBuf,
}

/// A port on 127.0.0.1 free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The config file: the spec's vocabulary, the per-user rate limit raised out of the way.
fn config_yaml(llm_url: &str) -> String {
    format!(
        "mode: webhook\n\
         webhook:\n  path: {WEBHOOK_PATH}\n\
         llm:\n  provider: anthropic\n  model: {model}\n  baseUrl: {llm_url}\n  systemPrompt: You are a helpful sales assistant.\n  timeout: 10s\n  maxRetries: 2\n\
         pricing:\n  - {{model: {model}, input: \"3.00\", output: \"15.00\"}}\n\
         rateLimit: {{messages: 1000000, per: 1m}}\n",
        model = llm::MODEL,
    )
}

impl BotProcess {
    pub async fn start(options: BotOptions<'_>) -> Result<Self, BotError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| BotError::Io { path, source }
        };
        let config_path = options.dir.join(contract::CONFIG_FILE);
        std::fs::write(&config_path, config_yaml(options.llm_url)).map_err(io(&config_path))?;
        let http_port = free_port();
        let metrics_port = free_port();
        let log_path = options.dir.join(format!("bot-{http_port}.log"));
        let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
        let log_err = log.try_clone().map_err(io(&log_path))?;
        let mut command = Command::new(options.bin);
        command
            .arg(contract::command::SERVE)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(env::BOTFLEET_CONFIG, &config_path)
            .env(env::TELEGRAM_BOT_TOKEN, telegram::TOKEN)
            .env(env::TELEGRAM_API_URL, options.telegram_url)
            .env(env::LLM_API_KEY, llm::API_KEY)
            .env(env::DATABASE_URL, options.database_url)
            .env(env::WEBHOOK_SECRET_TOKEN, WEBHOOK_SECRET)
            .env(env::BOTFLEET_HTTP_ADDR, format!("127.0.0.1:{http_port}"))
            .env(
                env::BOTFLEET_METRICS_ADDR,
                format!("127.0.0.1:{metrics_port}"),
            )
            .env(env::BOTFLEET_LOG_FORMAT, "json")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if let Ok(filter) = std::env::var("RUST_LOG") {
            command.env("RUST_LOG", filter);
        }
        if let Some(workers) = options.workers {
            command.env(env::BOTFLEET_WORKERS, workers.to_string());
        }
        for (name, value) in &options.env {
            command.env(name, value);
        }
        let child = command.spawn().map_err(|source| BotError::Spawn {
            bin: options.bin.to_owned(),
            source,
        })?;
        let bot = Self {
            pid: child.id(),
            child,
            webhook_url: format!("http://127.0.0.1:{http_port}{WEBHOOK_PATH}"),
            metrics_url: format!("http://127.0.0.1:{metrics_port}"),
            log_path,
        };
        bot.wait_ready(Duration::from_secs(30)).await?;
        Ok(bot)
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<(), BotError> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(r) = client
                .get(format!("{}/readyz", self.metrics_url))
                .send()
                .await
                && r.status() == 200
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(BotError::NotReady(timeout, self.log_path.clone()))
    }

    /// The value of an unlabelled metric (first sample) from `/metrics`, if present.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(format!("{}/metrics", self.metrics_url))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// SIGKILL and reap.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
