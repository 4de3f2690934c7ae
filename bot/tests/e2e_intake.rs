//! Webhook intake under concurrency, end to end (the real binary, fake Telegram and LLM, a real
//! database): concurrent requests share inbox transactions (the group commit), yet each gets
//! its 200 only once its own update is committed, a repeat is acknowledged and answered once,
//! and a database outage refuses what it cannot store and loses nothing it acknowledged.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use botfleet_bot::db::Db;
use futures::StreamExt;
use support::fake_telegram::text_update;
use support::pg_server::PgServer;
use support::{BotConfigOptions, BotProcess, Harness, TestDb, eventually};

const WAIT: Duration = Duration::from_secs(60);
/// Connections Telegram opens to one webhook at most (`max_connections` is 1–100, default 40).
const CONNECTIONS: usize = 64;

/// Posts one update; its status (0: no answer).
async fn post(client: &reqwest::Client, url: &str, update: &serde_json::Value) -> u16 {
    support::post_update(client, url, update).await.unwrap_or(0)
}

/// Posts all `updates` over [`CONNECTIONS`] connections at once; their statuses, in order.
async fn post_all(url: &str, updates: Vec<serde_json::Value>) -> Vec<u16> {
    let client = reqwest::Client::new();
    futures::stream::iter(updates)
        .map(|update| {
            let client = &client;
            async move { post(client, url, &update).await }
        })
        .buffered(CONNECTIONS)
        .collect()
        .await
}

fn update(update_id: i64) -> serde_json::Value {
    text_update(update_id, update_id, &format!("u{update_id}"))
}

fn reply(update_id: i64) -> String {
    format!("reply: u{update_id}")
}

/// A sample's value from a `/metrics` text (`name` with its labels, if any).
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `/metrics` once it counts `updates` new message updates, and not one more; the text.
async fn assert_counted(bot: &BotProcess, updates: u32) -> String {
    let name = r#"botfleet_telegram_updates_total{kind="message"}"#;
    let metrics = bot.metrics_with(&[&format!("{name} {updates}")]).await;
    assert_eq!(
        sample(&metrics, name),
        Some(f64::from(updates)),
        "{metrics}"
    );
    metrics
}

/// Waits until every row of the inbox is done: nothing is left to answer, so nothing can be
/// answered twice after this.
async fn wait_until_all_handled(db: &Db) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(0) = botfleet_bot::inbox::pending_count(db).await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "updates still pending after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every update in `ids` answered exactly once, and nothing else answered.
fn assert_answered_once(h: &Harness, ids: &HashSet<i64>) {
    let sent = h.telegram.sent();
    for &id in ids {
        let times = sent.iter().filter(|m| m.text == reply(id)).count();
        assert_eq!(times, 1, "update {id} answered {times} times");
    }
    assert_eq!(sent.len(), ids.len());
}

async fn concurrent_updates_are_each_acknowledged_and_answered_once(db: TestDb) {
    const UPDATES: i64 = 400;
    let h = Harness::new(db, BotConfigOptions::default()).await;
    let bot = h.start().await;
    let ids: HashSet<i64> = (30_000..30_000 + UPDATES).collect();
    let statuses = post_all(
        &bot.webhook_url(),
        ids.iter().copied().map(update).collect(),
    )
    .await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");

    eventually(WAIT, "every reply", || {
        h.telegram.sent().len() >= UPDATES as usize
    })
    .await;
    wait_until_all_handled(&h.db.db).await;
    assert_answered_once(&h, &ids);
    let metrics = assert_counted(&bot, 400).await;
    // The updates shared transactions: fewer writes than updates.
    let rows = sample(&metrics, "botfleet_inbox_batch_rows_sum");
    let batches = sample(&metrics, "botfleet_inbox_batch_rows_count").unwrap_or_default();
    assert_eq!(rows, Some(400.0), "{metrics}");
    assert!(
        batches < 400.0,
        "{batches} inbox writes for 400 concurrent updates"
    );
}
for_each_db!(concurrent_updates_are_each_acknowledged_and_answered_once);

/// Telegram repeating one update on many connections at once (as it does after a timeout),
/// among other updates: every delivery is acknowledged, the update is counted, stored and
/// answered once.
async fn a_repeat_delivered_concurrently_is_answered_once(db: TestDb) {
    let h = Harness::new(db, BotConfigOptions::default()).await;
    let bot = h.start().await;
    let repeated = 40_000;
    let others: HashSet<i64> = (40_001..40_032).collect();
    let mut deliveries: Vec<_> = (0..32).map(|_| update(repeated)).collect();
    deliveries.extend(others.iter().copied().map(update));
    let statuses = post_all(&bot.webhook_url(), deliveries).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");

    eventually(WAIT, "every reply", || h.telegram.sent().len() >= 32).await;
    wait_until_all_handled(&h.db.db).await;
    let mut ids = others;
    ids.insert(repeated);
    assert_answered_once(&h, &ids);
    assert_eq!(h.llm.requests().len(), 32);
    assert_counted(&bot, 32).await;
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbox")
        .fetch_one(&h.db.db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 32);
}
for_each_db!(a_repeat_delivered_concurrently_is_answered_once);

/// Polling: one `getUpdates` answer, with one update in it three times, is stored in one
/// transaction before the offset moves past it; each update is counted and answered once.
async fn a_polled_answer_is_one_transaction(db: TestDb) {
    let options = BotConfigOptions {
        mode: "polling",
        ..Default::default()
    };
    let h = Harness::new(db, options).await;
    let ids: HashSet<i64> = (50_000..50_050).collect();
    let mut sorted: Vec<i64> = ids.iter().copied().collect();
    sorted.sort_unstable();
    for &id in &sorted {
        h.telegram.push_update(update(id));
        if id == 50_010 {
            h.telegram.push_update(update(id));
            h.telegram.push_update(update(id));
        }
    }
    let bot = h.start().await;
    eventually(WAIT, "every reply", || h.telegram.sent().len() >= ids.len()).await;
    wait_until_all_handled(&h.db.db).await;
    assert_answered_once(&h, &ids);
    let metrics = assert_counted(&bot, 50).await;
    assert_eq!(
        sample(&metrics, "botfleet_inbox_batch_rows_count"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "botfleet_inbox_batch_rows_sum"),
        Some(52.0),
        "{metrics}"
    );
    let offsets = h.telegram.poll_offsets();
    assert!(
        offsets.contains(&50_050),
        "offset never confirmed the updates: {offsets:?}"
    );
}
for_each_db!(a_polled_answer_is_one_transaction);

/// Telegram's side of a webhook under load: connections posting new updates back to back until
/// stopped, noting which update got a 200 and which was refused.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<HashSet<i64>>>,
    refused: Arc<Mutex<HashSet<i64>>>,
    senders: tokio::task::JoinSet<()>,
}

impl Load {
    fn start(url: String, first_id: i64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(HashSet::new()));
        let refused = Arc::new(Mutex::new(HashSet::new()));
        let mut senders = tokio::task::JoinSet::new();
        for sender in 0..16 {
            let (url, stop, acked, refused) =
                (url.clone(), stop.clone(), acked.clone(), refused.clone());
            senders.spawn(async move {
                let client = reqwest::Client::new();
                // Ids interleave across senders and never repeat.
                let mut id = first_id + sender;
                while !stop.load(Ordering::Relaxed) {
                    let outcome = if post(&client, &url, &update(id)).await == 200 {
                        &acked
                    } else {
                        &refused
                    };
                    outcome.lock().unwrap().insert(id);
                    id += 16;
                }
            });
        }
        Self {
            stop,
            acked,
            refused,
            senders,
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn refused(&self) -> usize {
        self.refused.lock().unwrap().len()
    }

    /// Stops sending; the updates acknowledged and those refused.
    async fn stop(mut self) -> (HashSet<i64>, HashSet<i64>) {
        self.stop.store(true, Ordering::Relaxed);
        while self.senders.join_next().await.is_some() {}
        let acked = self.acked.lock().unwrap().clone();
        let refused = self.refused.lock().unwrap().clone();
        (acked, refused)
    }
}

/// How the test takes the database away from the bot while updates are in flight.
enum Outage {
    /// PostgreSQL: the test's own server, stopped (a fast shutdown cuts every session).
    Stopped(PgServer),
    /// SQLite: another connection holds the write lock past the bot's busy timeout.
    Locked {
        db: Db,
        lock: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
    },
}

impl Outage {
    async fn begin(&mut self) {
        match self {
            Outage::Stopped(server) => tokio::task::block_in_place(|| server.stop()),
            Outage::Locked { db, lock } => {
                let mut conn = db.pool.acquire().await.unwrap();
                sqlx::raw_sql("BEGIN EXCLUSIVE")
                    .execute(&mut *conn)
                    .await
                    .unwrap();
                *lock = Some(conn);
            }
        }
    }

    async fn end(&mut self) {
        match self {
            Outage::Stopped(server) => tokio::task::block_in_place(|| server.start_again()),
            Outage::Locked { lock, .. } => {
                let mut conn = lock.take().expect("locked");
                sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.unwrap();
            }
        }
    }
}

/// Updates stream in; the database goes away under them and comes back. Requests whose batch
/// could not be committed get 500s; every update that got a 200 is in the inbox; Telegram
/// delivers the refused ones again, and every update is answered exactly once.
async fn an_outage_refuses_what_it_cannot_commit(h: Harness, bot: BotProcess, mut outage: Outage) {
    let load = Load::start(bot.webhook_url(), 60_000);
    eventually(WAIT, "100 updates acknowledged", || load.acked() >= 100).await;
    outage.begin().await;
    eventually(
        WAIT,
        "deliveries refused while the database is away",
        || load.refused() >= 16,
    )
    .await;
    let acked_during = load.acked();
    outage.end().await;
    eventually(WAIT, "acknowledgements again", || {
        load.acked() >= acked_during + 100
    })
    .await;
    let (acked, refused) = load.stop().await;

    let db = h.db.reconnect().await;
    let stored: HashSet<i64> = sqlx::query_scalar::<_, i64>("SELECT update_id FROM inbox")
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but not in the inbox: {lost:?}"
    );
    assert!(!refused.is_empty());

    // Telegram delivers every refused update again until it gets its 200.
    let client = reqwest::Client::new();
    let again: Vec<i64> = refused.difference(&acked).copied().collect();
    for &id in &again {
        let deadline = Instant::now() + WAIT;
        while post(&client, &bot.webhook_url(), &update(id)).await != 200 {
            assert!(Instant::now() < deadline, "update {id} still refused");
        }
    }
    let all: HashSet<i64> = acked.union(&refused).copied().collect();
    eventually(Duration::from_secs(180), "every reply", || {
        h.telegram.sent().len() >= all.len()
    })
    .await;
    wait_until_all_handled(&db).await;
    assert_answered_once(&h, &all);
    println!(
        "{} updates acknowledged at once, {} refused and delivered again",
        acked.len(),
        again.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_refuses_what_it_cannot_commit() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let h = server.harness().await;
    let bot = h.start().await;
    an_outage_refuses_what_it_cannot_commit(h, bot, Outage::Stopped(server)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_refuses_what_it_cannot_commit() {
    let h = Harness::new(support::db::sqlite().await, BotConfigOptions::default())
        .await
        .env("BOTFLEET_INBOX_CLAIM_TIMEOUT", "15s");
    let bot = h.start().await;
    let db = h.db.reconnect().await;
    an_outage_refuses_what_it_cannot_commit(h, bot, Outage::Locked { db, lock: None }).await;
}
