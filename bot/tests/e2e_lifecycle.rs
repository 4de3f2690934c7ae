//! The process around the conversations: polling, crashes, graceful shutdown, readiness and
//! start-up errors.

mod support;

use std::time::Duration;

use support::fake_telegram::text_update;
use support::proxy::DbProxy;
use support::{BotConfigOptions, DbKind, Harness, TestDb, eventually, fresh_db};

const WAIT: Duration = Duration::from_secs(30);

async fn polling_mode_answers(db: TestDb) {
    let h = Harness::new(
        db,
        BotConfigOptions {
            mode: "polling",
            ..Default::default()
        },
    )
    .await;
    h.telegram.push_update(text_update(8001, 60, "via polling"));
    h.telegram.push_update(text_update(8002, 60, "second"));
    let _bot = h.start().await;
    eventually(WAIT, "both replies", || {
        h.telegram.sent_texts(60).len() >= 2
    })
    .await;
    // In order, once each, although the fake keeps offering them until the offset moves.
    assert_eq!(
        h.telegram.sent_texts(60),
        vec!["reply: via polling", "reply: second"]
    );
    let offsets = h.telegram.poll_offsets();
    assert!(
        offsets.contains(&8003),
        "offset never confirmed the updates: {offsets:?}"
    );
    // Telegram is asked for exactly the kinds the bot handles, the list setWebhook sends too.
    let asked = h.telegram.calls("getUpdates")[0].body["allowed_updates"].clone();
    assert_eq!(
        asked,
        serde_json::json!(botfleet_api::contract::ALLOWED_UPDATES)
    );
    assert!(
        h.telegram.calls("deleteWebhook").is_empty(),
        "the bot must never delete a webhook"
    );
}
for_each_db!(polling_mode_answers);

async fn a_crash_after_the_200_loses_nothing(db: TestDb) {
    let h = Harness::new(db, BotConfigOptions::default()).await;
    // The first answer takes long enough for the kill to land mid-call.
    h.llm.set_default_delay(Duration::from_secs(3));
    let mut bot = h.start().await;
    assert_eq!(
        bot.post_update(&text_update(9001, 61, "don't lose me"))
            .await,
        200
    );
    eventually(WAIT, "the LLM call to start", || {
        !h.llm.requests().is_empty()
    })
    .await;
    bot.kill(); // SIGKILL: no chance to clean up
    assert!(h.telegram.sent_texts(61).is_empty());

    h.llm.set_default_delay(Duration::ZERO);
    let _restarted = h.start().await;
    eventually(WAIT, "the reply after the restart", || {
        !h.telegram.sent_texts(61).is_empty()
    })
    .await;
    assert_eq!(h.telegram.sent_texts(61), vec!["reply: don't lose me"]);
}
for_each_db!(a_crash_after_the_200_loses_nothing);

async fn sigterm_finishes_in_flight_work(db: TestDb) {
    let h = Harness::new(db, BotConfigOptions::default())
        .await
        .env("BOTFLEET_SHUTDOWN_GRACE", "10s");
    h.llm.set_default_delay(Duration::from_secs(2));
    let mut bot = h.start().await;
    bot.post_update(&text_update(9101, 62, "finish me")).await;
    eventually(WAIT, "the LLM call to start", || {
        !h.llm.requests().is_empty()
    })
    .await;
    let client = reqwest::Client::new();
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(bot.child.id().to_string())
        .status();
    // While draining: intake refuses (Telegram retries later) and readiness fails.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = client
        .post(bot.webhook_url())
        .header("X-Telegram-Bot-Api-Secret-Token", support::WEBHOOK_SECRET)
        .json(&text_update(9102, 62, "too late"))
        .send()
        .await
        .unwrap();
    assert_eq!(during.status(), 503);
    let ready = client
        .get(format!("{}/readyz", bot.metrics))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let status = bot
        .terminate(Duration::from_secs(15))
        .expect("exited within the grace period");
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        bot.log()
    );
    assert_eq!(
        h.telegram.sent_texts(62),
        vec!["reply: finish me"],
        "in-flight work finished before exit"
    );
}
for_each_db!(sigterm_finishes_in_flight_work);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database() {
    let Some(db) = fresh_db(DbKind::Postgres).await else {
        return;
    };
    // Route the bot's connection through a proxy the test can cut.
    let rest = db.url.split_once("@").map(|(_, r)| r).unwrap();
    let (host_port, path) = rest.split_once('/').unwrap();
    let proxy = DbProxy::start(host_port.to_owned()).await;
    let user = db
        .url
        .split("://")
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap();
    let proxied = format!("postgres://{user}@127.0.0.1:{}/{path}", proxy.port);
    let mut h = Harness::new(db, BotConfigOptions::default()).await;
    h.db.url = proxied;
    let bot = h.start().await;
    let client = reqwest::Client::new();
    let readyz = || async {
        client
            .get(format!("{}/readyz", bot.metrics))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(readyz().await, 200);
    proxy.down();
    let mut seen = 0;
    for _ in 0..100 {
        seen = readyz().await;
        if seen == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 503, "still ready with the database down");
    let health = client
        .get(format!("{}/healthz", bot.metrics))
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        200,
        "liveness must not follow the database (no restart storms)"
    );
    proxy.up();
    for _ in 0..100 {
        seen = readyz().await;
        if seen == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 200, "not ready again after the database came back");
}

#[tokio::test]
async fn a_bad_setting_stops_the_process_with_one_clear_line() {
    let db = fresh_db(DbKind::Sqlite).await.unwrap();
    let h = Harness::new(db, BotConfigOptions::default()).await;
    std::fs::write(
        &h.config_path,
        "llm: {model: m}\npricing: [{model: m, input: \"3.0001\", output: \"1\"}]\n",
    )
    .unwrap();
    let mut bot = h.spawn("serve");
    let status = bot.child.wait().unwrap();
    assert!(!status.success());
    let log = bot.log();
    assert!(log.contains("pricing[0].input"), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    std::fs::write(&h.config_path, "llm: {model: m}\n").unwrap();
    let h = h.env("TELEGRAM_BOT_TOKEN", "");
    let mut bot = h.spawn("serve");
    assert!(!bot.child.wait().unwrap().success());
    assert!(
        bot.log().contains("TELEGRAM_BOT_TOKEN is not set"),
        "{}",
        bot.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_talks_to_the_same_pipeline_from_a_terminal() {
    use std::io::Write;
    let db = fresh_db(DbKind::Sqlite).await.unwrap();
    let h = Harness::new(
        db,
        BotConfigOptions {
            mode: "polling",
            ..Default::default()
        },
    )
    .await;
    let mut bot = h.spawn_with_stdio("chat", std::process::Stdio::piped());
    let mut stdin = bot.child.stdin.take().unwrap();
    writeln!(stdin, "hello from the terminal").unwrap();
    writeln!(stdin, "/llm_stats").unwrap();
    drop(stdin); // Ctrl-D
    let status = tokio::task::spawn_blocking(move || {
        let status = bot.child.wait().unwrap();
        (status, bot.log())
    })
    .await
    .unwrap();
    let (status, out) = status;
    assert!(status.success(), "{out}");
    assert!(out.contains("bot> reply: hello from the terminal"), "{out}");
    // The console user is an owner: the report comes from the same ledger the reply was priced in.
    assert!(
        out.contains("claude-test"),
        "the LLM stats report should list the model: {out}"
    );
    assert_eq!(h.llm.requests().len(), 1);
    assert!(
        h.telegram.calls("sendMessage").is_empty(),
        "chat must not talk to Telegram"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_sqlite_runs_the_follow_up_scheduler() {
    let db = fresh_db(DbKind::Sqlite).await.unwrap();
    let options = BotConfigOptions {
        extra_yaml: "followUp: {enabled: true, after: [\"2s\"]}\n".into(),
        ..Default::default()
    };
    let h = Harness::new(db, options).await;
    let bot = h.start().await;
    bot.post_update(&text_update(9501, 63, "I might buy later"))
        .await;
    eventually(WAIT, "the reply and then one follow-up", || {
        h.telegram.sent_texts(63).len() >= 2
    })
    .await;
    // One step configured: one follow-up, however long the lead stays quiet.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let texts = h.telegram.sent_texts(63);
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(texts[0], "reply: I might buy later");
    let followup_calls = h.llm.requests().len();
    assert_eq!(followup_calls, 2, "one chat call and one follow-up call");
    let metrics = bot.metrics_with(&["botfleet_followups_sent_total 1"]).await;
    assert!(
        metrics.contains("botfleet_followups_sent_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("botfleet_scheduler_leader 1"), "{metrics}");
    assert!(metrics.contains(r#"request_type="followup""#), "{metrics}");
}

async fn replicas_migrating_at_once_all_succeed(db: TestDb) {
    let h = Harness::new(db, BotConfigOptions::default()).await;
    let mut runs: Vec<_> = (0..4).map(|_| h.spawn("migrate")).collect();
    for run in &mut runs {
        let status = run.child.wait().unwrap();
        assert!(status.success(), "migrate failed:\n{}", run.log());
    }
    let db = botfleet_bot::db::Db::connect(&h.db.url).await.unwrap();
    assert!(db.is_ready().await, "migrations not all applied");
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/sqlite"))
        .unwrap()
        .count();
    assert_eq!(applied as usize, files, "each migration recorded once");
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_migrating_at_once_all_succeed_on_sqlite() {
    replicas_migrating_at_once_all_succeed(fresh_db(DbKind::Sqlite).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_migrating_at_once_all_succeed_on_postgres() {
    if let Some(db) = fresh_db(DbKind::Postgres).await {
        replicas_migrating_at_once_all_succeed(db).await;
    }
}
