//! End-to-end test support: the real `botfleet-bot` binary against fake Telegram and LLM APIs
//! on loopback, on a real database (a fresh SQLite file, or a fresh PostgreSQL database under
//! `TEST_DATABASE_URL`).

#![allow(dead_code)]

pub mod db;
pub mod fake_llm;
pub mod fake_telegram;
pub mod pg_server;
pub mod prompt_cache;
pub mod proxy;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use db::TestDb;
use fake_llm::FakeLlm;
use fake_telegram::FakeTelegram;

pub const WEBHOOK_SECRET: &str = "e2e-webhook-secret_0123456789";
pub const LLM_KEY: &str = "test-llm-key";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

/// A fresh, unmigrated database of `kind` (the bot under test migrates it); `None` to skip.
pub async fn fresh_db(kind: DbKind) -> Option<TestDb> {
    match kind {
        DbKind::Sqlite => Some(db::sqlite_fresh(false).await),
        DbKind::Postgres => db::postgres_fresh(false).await,
    }
}

/// A test needs something this machine lacks: under `CI=true` that fails the test (CI installs
/// everything the tests need); elsewhere it says on stderr what is skipped, and the caller
/// returns.
pub fn skip_outside_ci(missing: &str, skipped: &str) {
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "CI=true but {missing}: {skipped} cannot be skipped"
    );
    eprintln!("{missing}: skipping {skipped}");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The fakes and the settings one bot process runs with.
pub struct Harness {
    pub telegram: FakeTelegram,
    pub llm: FakeLlm,
    pub db: TestDb,
    /// Config file and process logs.
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub extra_env: Vec<(String, String)>,
}

pub struct BotConfigOptions {
    pub mode: &'static str,
    pub fallback_model: Option<&'static str>,
    pub extra_yaml: String,
    /// More fields of the `llm` section, each line indented by two spaces.
    pub llm_yaml: String,
    /// Replaces the `pricing` entry of `claude-test` (one flow mapping), e.g. with cache prices.
    pub pricing: Option<String>,
    /// Replaces the system prompt ("You are a test bot.").
    pub system_prompt: Option<String>,
}

impl Default for BotConfigOptions {
    fn default() -> Self {
        Self {
            mode: "webhook",
            fallback_model: None,
            extra_yaml: String::new(),
            llm_yaml: String::new(),
            pricing: None,
            system_prompt: None,
        }
    }
}

impl Harness {
    pub async fn new(db: TestDb, options: BotConfigOptions) -> Self {
        let telegram = FakeTelegram::start().await;
        let llm = FakeLlm::start().await;
        let fallback = options
            .fallback_model
            .map(|m| format!("  fallbackModel: {m}\n"))
            .unwrap_or_default();
        let config = format!(
            "mode: {mode}\nwebhook:\n  path: /telegram/e2e-bot\nllm:\n  provider: anthropic\n  model: claude-test\n{fallback}  baseUrl: {url}\n  systemPrompt: {system}\n  timeout: 5s\n  maxRetries: 2\n{llm_extra}pricing:\n  - {pricing}\n{extra}",
            mode = options.mode,
            url = llm.url,
            llm_extra = options.llm_yaml,
            system = options
                .system_prompt
                .as_deref()
                .unwrap_or("You are a test bot."),
            pricing = options
                .pricing
                .as_deref()
                .unwrap_or("{model: claude-test, input: \"3.00\", output: \"15.00\"}"),
            extra = options.extra_yaml,
        );
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config).unwrap();
        Self {
            telegram,
            llm,
            db,
            dir,
            config_path,
            extra_env: vec![],
        }
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.extra_env.push((name.into(), value.into()));
        self
    }

    /// Starts `botfleet-bot serve` and waits until it is ready.
    pub async fn start(&self) -> BotProcess {
        let bot = self.spawn("serve");
        bot.wait_ready(Duration::from_secs(30)).await;
        bot
    }

    pub fn spawn(&self, subcommand: &str) -> BotProcess {
        self.spawn_with_stdio(subcommand, Stdio::null())
    }

    pub fn spawn_with_stdio(&self, subcommand: &str, stdin: Stdio) -> BotProcess {
        let http_port = free_port();
        let metrics_port = free_port();
        let log_path = self.dir.path().join(format!("bot-{http_port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_botfleet-bot"));
        command
            .arg(subcommand)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BOTFLEET_CONFIG", &self.config_path)
            .env("TELEGRAM_BOT_TOKEN", &self.telegram.token)
            .env("TELEGRAM_API_URL", &self.telegram.url)
            .env("LLM_API_KEY", LLM_KEY)
            .env("DATABASE_URL", &self.db.url)
            .env("WEBHOOK_SECRET_TOKEN", WEBHOOK_SECRET)
            .env("BOTFLEET_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .env("BOTFLEET_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .env("BOTFLEET_LOG_FORMAT", "json")
            .env("BOTFLEET_INBOX_CLAIM_TIMEOUT", "3s")
            .env("BOTFLEET_SCHEDULER_INTERVAL", "1s")
            .env("RUST_LOG", "info,botfleet_bot=debug")
            .stdin(stdin)
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in &self.extra_env {
            command.env(k, v);
        }
        let child = command.spawn().expect("start botfleet-bot");
        BotProcess {
            child,
            http: format!("http://127.0.0.1:{http_port}"),
            metrics: format!("http://127.0.0.1:{metrics_port}"),
            log_path,
        }
    }
}

pub struct BotProcess {
    pub child: Child,
    pub http: String,
    pub metrics: String,
    pub log_path: PathBuf,
}

impl BotProcess {
    pub fn webhook_url(&self) -> String {
        format!("{}/telegram/e2e-bot", self.http)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub async fn wait_ready(&self, timeout: Duration) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.metrics)).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bot not ready in {timeout:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Posts an update to the webhook with the right secret; returns the HTTP status.
    pub async fn post_update(&self, update: &serde_json::Value) -> u16 {
        reqwest::Client::new()
            .post(self.webhook_url())
            .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
            .json(update)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// `/metrics` once every line in `lines` is in it (or after 10 s, for the caller's assert to
    /// show). Counters move just after the side effect a test waits for (a send the fake saw
    /// returns before its counter is bumped), so a read right after it can be one step behind.
    pub async fn metrics_with(&self, lines: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.metrics_text().await;
            if lines.iter().all(|line| text.contains(line)) || Instant::now() >= deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn metrics_text(&self) -> String {
        reqwest::get(format!("{}/metrics", self.metrics))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit status (up to `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- botfleet-bot log ({}) ----\n{}",
                self.log_path.display(),
                self.log()
            );
        }
    }
}

/// Posts one update to a webhook with the secret header; its status (`None`: no answer).
pub async fn post_update(
    client: &reqwest::Client,
    url: &str,
    update: &serde_json::Value,
) -> Option<u16> {
    client
        .post(url)
        .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
        .json(update)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok()
}

/// Delivers one update the way Telegram does: again and again (to each of `urls` in turn)
/// until one answers 200. Returns how many deliveries were refused.
pub async fn deliver_until_ok(
    client: &reqwest::Client,
    urls: &[String],
    update: &serde_json::Value,
) -> u32 {
    let mut refused = 0;
    loop {
        let url = &urls[refused as usize % urls.len()];
        if post_update(client, url, update).await == Some(200) {
            return refused;
        }
        refused += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `check` until it holds or `timeout` passes; then fails with `what`.
pub async fn eventually<F: FnMut() -> bool>(timeout: Duration, what: &str, mut check: F) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
