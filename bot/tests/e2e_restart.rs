//! A bot killed with an update in flight answers it soon after it is back, once. The tests
//! measure and print how soon; the targets are asserted by `bench/src/bin/restart.rs`.

mod support;

use std::time::{Duration, Instant};

use support::fake_telegram::text_update;
use support::{BotConfigOptions, BotProcess, Harness, TestDb, eventually};

const WAIT: Duration = Duration::from_secs(30);
const POD: &str = "e2e-bot-5d8f9-abcde";

/// Posts an update whose LLM call is slow, and waits until that call has started.
async fn one_update_in_flight(h: &Harness, bot: &BotProcess, update_id: i64, chat: i64) {
    h.llm.set_default_delay(Duration::from_secs(5));
    assert_eq!(
        bot.post_update(&text_update(update_id, chat, "in flight"))
            .await,
        200
    );
    eventually(WAIT, "the LLM call to start", || {
        !h.llm.requests().is_empty()
    })
    .await;
}

async fn a_restarted_bot_answers_what_it_left_in_flight(db: TestDb) {
    // A claim timeout far beyond the wait: only giving dead claims back at start can answer
    // in time. With PostgreSQL the restart is the same pod's next container (same POD_NAME).
    let h = Harness::new(db, BotConfigOptions::default())
        .await
        .env("BOTFLEET_INBOX_CLAIM_TIMEOUT", "120s")
        .env("POD_NAME", POD);
    let mut bot = h.start().await;
    one_update_in_flight(&h, &bot, 9601, 96).await;
    bot.kill(); // SIGKILL
    h.llm.set_default_delay(Duration::ZERO);

    let restarted = h.start().await;
    let ready = Instant::now();
    eventually(WAIT, "the reply after the restart", || {
        !h.telegram.sent_texts(96).is_empty()
    })
    .await;
    println!(
        "answered {:.2} s after the restarted bot was ready",
        ready.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.telegram.sent_texts(96), vec!["reply: in flight"]);
    drop(restarted);
}
for_each_db!(a_restarted_bot_answers_what_it_left_in_flight);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_replica_answers_for_a_crashed_one() {
    let Some(db) = support::db::postgres().await else {
        return;
    };
    // The production claim timeout and heartbeat (15 s / 5 s), two pods.
    let mut h = Harness::new(db, BotConfigOptions::default())
        .await
        .env("BOTFLEET_INBOX_CLAIM_TIMEOUT", "15s");
    h.extra_env
        .push(("POD_NAME".into(), "e2e-bot-5d8f9-aaaaa".into()));
    let mut a = h.start().await;
    h.extra_env.pop();
    h.extra_env
        .push(("POD_NAME".into(), "e2e-bot-5d8f9-bbbbb".into()));
    let mut b = h.start().await;
    one_update_in_flight(&h, &a, 9701, 97).await;
    let claimed_by: String =
        sqlx::query_scalar("SELECT claimed_by FROM inbox WHERE update_id = $1")
            .bind(9701_i64)
            .fetch_one(&h.db.db.pool)
            .await
            .unwrap();
    let (crashed, _survivor) = if claimed_by.starts_with("e2e-bot-5d8f9-aaaaa-") {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    h.llm.set_default_delay(Duration::ZERO);
    crashed.kill();
    let crash = Instant::now();
    eventually(WAIT, "the survivor's reply", || {
        !h.telegram.sent_texts(97).is_empty()
    })
    .await;
    println!(
        "the other replica answered {:.2} s after the crash",
        crash.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.telegram.sent_texts(97), vec!["reply: in flight"]);
}
