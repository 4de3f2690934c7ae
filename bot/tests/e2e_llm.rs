//! What the user sees when the LLM misbehaves: waits that honour retry-after, the fallback
//! model, and an apology when nothing works — with every attempt in the ledger and metrics.

mod support;

use std::time::Duration;

use support::fake_llm::Scripted;
use support::fake_telegram::text_update;
use support::{BotConfigOptions, Harness, TestDb, eventually};

const WAIT: Duration = Duration::from_secs(30);

async fn ledger_rows(h: &Harness) -> Vec<(String, String)> {
    let db = botfleet_bot::db::Db::connect(&h.db.url).await.unwrap();
    sqlx::query_as("SELECT model, outcome FROM llm_ledger ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

async fn rate_limited_then_answers(db: TestDb) {
    let h = Harness::new(db, BotConfigOptions::default()).await;
    h.llm
        .script([Scripted::status(429).header("retry-after", "1")]);
    let bot = h.start().await;
    let started = std::time::Instant::now();
    bot.post_update(&text_update(7001, 50, "are you there?"))
        .await;
    eventually(WAIT, "the reply", || !h.telegram.sent_texts(50).is_empty()).await;
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "retry-after not honoured"
    );
    assert_eq!(h.telegram.sent_texts(50), vec!["reply: are you there?"]);
    assert_eq!(h.llm.models_called(), vec!["claude-test", "claude-test"]);
    let rows = ledger_rows(&h).await;
    assert_eq!(
        rows,
        vec![
            ("claude-test".into(), "rate_limited".into()),
            ("claude-test".into(), "ok".into())
        ]
    );
}
for_each_db!(rate_limited_then_answers);

async fn primary_down_fallback_answers(db: TestDb) {
    let h = Harness::new(
        db,
        BotConfigOptions {
            fallback_model: Some("claude-fallback"),
            ..Default::default()
        },
    )
    .await;
    // maxRetries 2: three failures of the primary, then the fallback's default answer.
    h.llm.script([
        Scripted::status(500),
        Scripted::status(529),
        Scripted::status(503),
    ]);
    let bot = h.start().await;
    bot.post_update(&text_update(7101, 51, "hello")).await;
    eventually(WAIT, "the reply", || !h.telegram.sent_texts(51).is_empty()).await;
    assert_eq!(h.telegram.sent_texts(51), vec!["reply: hello"]);
    assert_eq!(
        h.llm.models_called(),
        vec![
            "claude-test",
            "claude-test",
            "claude-test",
            "claude-fallback"
        ]
    );
    let metrics = bot
        .metrics_with(&[
            r#"botfleet_llm_requests_total{model="claude-fallback",request_type="chat",outcome="ok"} 1"#,
            r#"botfleet_llm_requests_total{model="claude-test",request_type="chat",outcome="overloaded"} 1"#,
        ])
        .await;
    assert!(metrics.contains(r#"botfleet_llm_requests_total{model="claude-fallback",request_type="chat",outcome="ok"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"botfleet_llm_requests_total{model="claude-test",request_type="chat",outcome="overloaded"} 1"#), "{metrics}");
}
for_each_db!(primary_down_fallback_answers);

async fn everything_fails_user_gets_an_apology(db: TestDb) {
    let h = Harness::new(
        db,
        BotConfigOptions {
            fallback_model: Some("claude-fallback"),
            ..Default::default()
        },
    )
    .await;
    h.llm.script(std::iter::repeat_n(Scripted::status(500), 6));
    let bot = h.start().await;
    bot.post_update(&text_update(7201, 52, "hello")).await;
    eventually(WAIT, "the apology", || {
        !h.telegram.sent_texts(52).is_empty()
    })
    .await;
    assert!(h.telegram.sent_texts(52)[0].starts_with("Sorry, I can't answer right now"));
    assert_eq!(h.llm.requests().len(), 6);
    let rows = ledger_rows(&h).await;
    assert_eq!(rows.len(), 6, "every attempt is in the ledger: {rows:?}");
    assert!(rows.iter().all(|(_, outcome)| outcome == "server_error"));
    let log = bot.log();
    assert!(log.contains("every LLM attempt failed"), "{log}");
}
for_each_db!(everything_fails_user_gets_an_apology);
