//! Sample TelegramBots shared by the operator's integration tests.
#![allow(dead_code)]

use botfleet_operator::crd::TelegramBot;

/// A bot parsed from YAML, with the uid and generation the API server would add.
pub fn bot(yaml: &str) -> TelegramBot {
    let mut bot: TelegramBot = serde_yaml_ng::from_str(yaml).expect("sample TelegramBot parses");
    bot.metadata.uid = Some("6f1c2d3e-0000-4000-8000-000000000001".into());
    bot.metadata.generation = Some(1);
    bot
}

/// Polling, embedded SQLite, no monitoring: the smallest bot.
pub const POLLING_SQLITE: &str = r#"
apiVersion: botfleet.dev/v1alpha1
kind: TelegramBot
metadata: {name: hello-bot, namespace: team-a}
spec:
  telegram:
    tokenSecretRef: {name: hello-bot-telegram, key: token}
  llm:
    model: claude-haiku-4-5
    apiKeySecretRef: {name: hello-bot-llm, key: apiKey}
    systemPrompt: "You are a friendly assistant."
  pricing:
    - {model: claude-haiku-4-5, input: "1.00", output: "5.00"}
  budget: {daily: "1.00"}
"#;

/// Webhook, PostgreSQL, scaled out, monitoring on: DESIGN's example.
pub const WEBHOOK_POSTGRES: &str = r#"
apiVersion: botfleet.dev/v1alpha1
kind: TelegramBot
metadata: {name: sales-bot, namespace: bots}
spec:
  image: registry.example.com/botfleet-bot:0.1.0
  replicas: 2
  telegram:
    tokenSecretRef: {name: sales-bot-telegram, key: token}
    apiUrl: https://tg-api.internal.example.com
  mode: webhook
  webhook:
    domain: bots.example.com
    ingressClassName: nginx
    tls: {clusterIssuer: letsencrypt-prod}
    maxConnections: 40
  llm:
    provider: anthropic
    model: claude-sonnet-4-5
    fallbackModel: claude-haiku-4-5
    apiKeySecretRef: {name: sales-bot-llm, key: apiKey}
    systemPrompt: "You are the sales assistant of Example Corp."
    maxOutputTokens: 1024
  pricing:
    - {model: claude-sonnet-4-5, input: "3.00", output: "15.00", cacheWrite5m: "3.75", cacheWrite1h: "6.00", cacheRead: "0.30"}
  budget: {daily: "5.00", monthly: "100.00", alertThresholds: [50, 80, 100], hardStop: true}
  owners: [123456789]
  followUp:
    enabled: true
    after: ["24h", "48h"]
    quietHours: {start: "22:00", end: "08:00", timeZone: Europe/Berlin}
  database:
    urlSecretRef: {name: sales-bot-db, key: url}
  scheduler: {replicas: 2}
  monitoring:
    serviceMonitor: {enabled: true, interval: 30s}
    prometheusRule: {enabled: true}
  resources:
    requests: {cpu: 100m, memory: 128Mi}
    limits: {memory: 512Mi}
"#;

pub fn polling_sqlite() -> TelegramBot {
    bot(POLLING_SQLITE)
}

pub fn webhook_postgres() -> TelegramBot {
    bot(WEBHOOK_POSTGRES)
}

/// The repository root (the workspace), for examples/ and crds/.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ is in the workspace")
        .to_path_buf()
}

/// The polling bot with its PrometheusRule switched on.
pub fn polling_sqlite_with_rules() -> TelegramBot {
    let mut bot = polling_sqlite();
    bot.spec.monitoring = Some(botfleet_operator::crd::MonitoringSpec {
        prometheus_rule: Some(botfleet_operator::crd::PrometheusRuleSpec { enabled: true }),
        ..Default::default()
    });
    bot
}
