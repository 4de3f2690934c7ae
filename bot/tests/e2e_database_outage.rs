//! A PostgreSQL outage longer than an inbox claim, while replies are in flight: a live bot never
//! answers an update twice, on one process or on two replicas, and says once that the database
//! went away and once that it is back.
//!
//! Claims last 3 s and the server is down for about 6 s; Telegram answers each `sendMessage`
//! only after 400 ms, so the outage catches replies sent but not yet recorded as sent.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::fake_telegram::text_update;
use support::pg_server::PgServer;
use support::{BotConfigOptions, BotProcess, Harness, TestDb, deliver_until_ok, eventually};

const UPDATES: i64 = 300;
const ROUNDS: usize = 3;
const OUTAGE: Duration = Duration::from_secs(6);

async fn harness(server: &PgServer) -> Harness {
    let db = TestDb::existing(&server.url("postgres")).await;
    let h = Harness::new(db, BotConfigOptions::default())
        .await
        .env("BOTFLEET_INBOX_CLAIM_TIMEOUT", "3s");
    h.llm.set_default_delay(Duration::from_millis(200));
    h.telegram.set_answer_delay(Duration::from_millis(400));
    h
}

/// Unfinished inbox rows, or `None` while the database does not answer.
async fn unfinished(h: &Harness) -> Option<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM inbox WHERE done_at IS NULL")
        .fetch_one(&h.db.db.pool)
        .await
        .ok()
}

/// Lines of `log` (JSON, one event a line) whose message contains `text`.
fn lines_with(log: &str, text: &str) -> usize {
    log.lines().filter(|l| l.contains(text)).count()
}

/// One round: `replicas` serve processes, 300 updates (one per chat), the database stopped
/// for [`OUTAGE`] while they arrive.
async fn outage_round(replicas: usize, round: usize) {
    let Some(server) = PgServer::start() else {
        return;
    };
    let h = harness(&server).await;
    let mut bots: Vec<BotProcess> = Vec::new();
    for _ in 0..replicas {
        bots.push(h.start().await);
    }
    let urls: Arc<Vec<String>> = Arc::new(bots.iter().map(BotProcess::webhook_url).collect());

    let sender = {
        let urls = urls.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut deliveries = tokio::task::JoinSet::new();
            for n in 0..UPDATES {
                let update = text_update(70_000 + n, 1 + n, &format!("u{n}"));
                let (client, urls) = (client.clone(), urls.clone());
                deliveries.spawn(async move { deliver_until_ok(&client, &urls, &update).await });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            deliveries.join_all().await;
        })
    };

    // Replies are in flight (sent, not yet recorded) when the server stops.
    eventually(Duration::from_secs(30), "the first replies", || {
        h.telegram.sent().len() >= 20
    })
    .await;
    server.stop();
    tokio::time::sleep(OUTAGE).await;
    server.start_again();
    sender.await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while unfinished(&h).await != Some(0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "round {round}: the inbox was not worked off"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = h.telegram.sent();
    for n in 0..UPDATES {
        let times = sent.iter().filter(|m| m.chat_id == 1 + n).count();
        assert_eq!(
            times,
            1,
            "round {round}, {replicas} replica(s): chat {} answered {times} times",
            1 + n
        );
    }
    for bot in &bots {
        let log = bot.log();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
            .collect();
        println!(
            "round {round}, {replicas} replica(s): {} warning/error lines:\n{}",
            warnings.len(),
            warnings.join("\n")
        );
        assert_eq!(
            lines_with(&log, "database unreachable"),
            1,
            "one line says the database went away:\n{log}"
        );
        assert_eq!(
            lines_with(&log, "database is back"),
            1,
            "one line says the database is back:\n{log}"
        );
    }
    drop(bots);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_a_claim_answers_each_update_once() {
    for round in 0..ROUNDS {
        outage_round(1, round).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_a_claim_answers_each_update_once_across_replicas() {
    for round in 0..ROUNDS {
        outage_round(2, round).await;
    }
}
