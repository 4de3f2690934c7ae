//! The live `/metrics` of a running bot passes `promtool check metrics` (Prometheus's own
//! linter), and carries the names the operator's alert rules and the dashboard rely on.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::fake_telegram::text_update;
use support::{BotConfigOptions, DbKind, Harness, eventually, fresh_db};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_pass_promtool() {
    if Command::new("promtool").arg("--version").output().is_err() {
        support::skip_outside_ci(
            "promtool is not installed (.ci/install-tools.sh installs it)",
            "the promtool check of /metrics",
        );
        return;
    }
    let db = fresh_db(DbKind::Sqlite).await.unwrap();
    let h = Harness::new(
        db,
        BotConfigOptions {
            extra_yaml: "budget: {daily: \"5.00\", monthly: \"100.00\"}\n".into(),
            ..Default::default()
        },
    )
    .await;
    let bot = h.start().await;
    // Some traffic, so that labelled families have samples.
    bot.post_update(&text_update(1, 70, "hello")).await;
    eventually(Duration::from_secs(20), "the reply", || {
        !h.telegram.sent_texts(70).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = bot.metrics_text().await;

    for name in [
        "botfleet_telegram_updates_total",
        "botfleet_messages_sent_total",
        "botfleet_llm_requests_total",
        "botfleet_llm_request_duration_seconds_bucket",
        "botfleet_llm_tokens_total",
        "botfleet_llm_cost_usd_total",
        "botfleet_inbox_pending",
        "botfleet_scheduler_leader",
        "botfleet_followups_sent_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    assert!(
        !text.contains("chat_id") && !text.contains("\"70\""),
        "a Telegram id leaked into labels:\n{text}"
    );

    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
