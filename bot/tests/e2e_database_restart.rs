//! PostgreSQL restarts while updates arrive: the webhook refuses what it cannot store
//! (Telegram retries), readiness follows the database, workers back off and resume, and every
//! update acknowledged is answered exactly once.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use support::fake_telegram::text_update;
use support::pg_server::PgServer;
use support::{deliver_until_ok, eventually};

const UPDATES: i64 = 500;
const CHATS: i64 = 250;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_load_loses_nothing() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let h = server.harness().await;
    let bot = h.start().await;
    let url = bot.webhook_url();
    let refused = Arc::new(AtomicU32::new(0));

    // 500 updates over about ten seconds, two per chat.
    let sender = {
        let (url, refused) = (url.clone(), refused.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut deliveries = tokio::task::JoinSet::new();
            for n in 0..UPDATES {
                let update = text_update(50_000 + n, 1 + n % CHATS, &format!("u{n}"));
                let (client, url, refused) = (client.clone(), url.clone(), refused.clone());
                deliveries.spawn(async move {
                    let times = deliver_until_ok(&client, &[url], &update).await;
                    refused.fetch_add(times, Ordering::Relaxed);
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            deliveries.join_all().await;
        })
    };

    tokio::time::sleep(Duration::from_secs(3)).await;
    server.stop();
    let client = reqwest::Client::new();
    let mut unready = false;
    for _ in 0..40 {
        let status = client
            .get(format!("{}/readyz", bot.metrics))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .ok();
        if status == Some(503) {
            unready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Down for longer than the pool's 5 s acquire timeout: a delivery that waited that long for
    // a connection is refused (500) rather than held until the server is back.
    tokio::time::sleep(Duration::from_secs(7)).await;
    server.start_again();
    assert!(unready, "/readyz stayed 200 with the database down");

    sender.await.unwrap();
    let refused = refused.load(Ordering::Relaxed);
    println!("the webhook refused {refused} deliveries while the database was down");
    assert!(
        refused > 0,
        "no delivery was refused: the outage did not hit intake"
    );
    bot.wait_ready(Duration::from_secs(30)).await;
    eventually(Duration::from_secs(120), "500 replies", || {
        h.telegram.sent().len() >= UPDATES as usize
    })
    .await;
    // Anything late (a second answer) would come within a few claim heartbeats.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent = h.telegram.sent();
    for n in 0..UPDATES {
        let text = format!("reply: u{n}");
        let times = sent.iter().filter(|m| m.text == text).count();
        assert_eq!(times, 1, "update {n} answered {times} times");
    }
    assert_eq!(sent.len(), UPDATES as usize);
    drop(bot);
    drop(server);
}
