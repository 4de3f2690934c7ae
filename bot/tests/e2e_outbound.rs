//! The outbound limiter as Telegram sees it: the real binary, the fake Telegram recording when
//! each `sendMessage` arrived.

mod support;

use support::fake_telegram::most_in_any_window;

use std::time::{Duration, Instant};

use support::fake_telegram::{Failure, text_update};
use support::{BotConfigOptions, Harness, TestDb, eventually};

const WAIT: Duration = Duration::from_secs(60);

/// Posts one update per chat, all at once, as Telegram would deliver a busy moment.
async fn post_burst(bot: &support::BotProcess, chats: impl Iterator<Item = i64>) {
    let posts = chats.map(|chat| {
        let update = text_update(100_000 + chat, chat, &format!("hello from {chat}"));
        async move { bot.post_update(&update).await }
    });
    for status in futures::future::join_all(posts).await {
        assert_eq!(status, 200);
    }
}

async fn a_burst_of_replies_keeps_to_telegrams_overall_rate(db: TestDb) {
    // Enough workers that the pipeline could go much faster than Telegram allows.
    let h = Harness::new(db, BotConfigOptions::default())
        .await
        .env("BOTFLEET_WORKERS", "32")
        .env("BOTFLEET_INBOX_CLAIM_TIMEOUT", "15s");
    let bot = h.start().await;
    post_burst(&bot, 1..=200).await;
    eventually(WAIT, "200 replies", || h.telegram.sent().len() >= 200).await;
    let times = h.telegram.send_times();
    let first = times.iter().min().unwrap();
    let last = times.iter().max().unwrap();
    let most = most_in_any_window(&times, Duration::from_secs(1));
    let span = last.duration_since(*first).as_secs_f64();
    let rate = (times.len() - 1) as f64 / span;
    println!(
        "200 replies to 200 chats in {span:.2} s ({rate:.1}/s); at most {most} in any 1-s window"
    );
    // The limiter hands out slots 1/30 s apart; what arrives here also carries the scheduling
    // and network jitter between a slot and its request reaching the fake (tens of ms on a
    // loaded machine), hence a little tolerance in the window and none in the average.
    assert!(most <= 33, "{most} sendMessage calls within one second");
    assert!(rate <= 30.5, "{rate:.1} messages/s on average");
    for chat in 1..=200 {
        assert_eq!(h.telegram.sent_texts(chat).len(), 1, "chat {chat}");
    }
}
for_each_db!(a_burst_of_replies_keeps_to_telegrams_overall_rate);

async fn a_429_pauses_every_sender(db: TestDb) {
    let h = Harness::new(db, BotConfigOptions::default())
        .await
        .env("BOTFLEET_WORKERS", "16");
    let bot = h.start().await;
    h.telegram.fail_next_sends([Failure::RetryAfter(3)]);
    post_burst(&bot, 1..=20).await;
    eventually(WAIT, "20 replies", || h.telegram.sent().len() >= 20).await;
    let calls = h.telegram.calls("sendMessage");
    let flood = calls[0].at; // the first send got the 429
    let pause_from = flood + Duration::from_millis(150); // sends already on the wire
    let pause_to = flood + Duration::from_secs(3);
    let in_pause: Vec<Duration> = calls[1..]
        .iter()
        .filter(|c| c.at > pause_from && c.at < pause_to)
        .map(|c| c.at.duration_since(flood))
        .collect();
    assert!(
        in_pause.is_empty(),
        "sends during the 3 s pause, at {in_pause:?} after the 429"
    );
    let resumed = calls
        .iter()
        .skip(1)
        .find(|c| c.at >= pause_to)
        .map(|c| c.at.duration_since(flood));
    println!("first send after the 429: {resumed:?}");
    for chat in 1..=20 {
        assert_eq!(h.telegram.sent_texts(chat).len(), 1, "chat {chat}");
    }
}
for_each_db!(a_429_pauses_every_sender);

async fn one_message_a_second_per_chat(db: TestDb) {
    let h = Harness::new(db, BotConfigOptions::default()).await;
    let bot = h.start().await;
    for n in 0..3 {
        assert_eq!(
            bot.post_update(&text_update(7000 + n, 77, &format!("question {n}")))
                .await,
            200
        );
    }
    eventually(WAIT, "three replies", || {
        h.telegram.sent_texts(77).len() >= 3
    })
    .await;
    let times: Vec<Instant> = h
        .telegram
        .calls("sendMessage")
        .iter()
        .filter(|c| c.body["chat_id"].as_i64() == Some(77))
        .map(|c| c.at)
        .collect();
    for pair in times.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        // The limiter spaces them a second apart; arrival jitter may shave a few ms.
        assert!(gap >= Duration::from_millis(950), "two sends {gap:?} apart");
    }
}
for_each_db!(one_message_a_second_per_chat);

async fn a_lead_who_blocked_the_bot_is_opted_out(db: TestDb) {
    let options = BotConfigOptions {
        extra_yaml: "followUp: {enabled: true, after: [\"2s\"]}\n".into(),
        ..Default::default()
    };
    let h = Harness::new(db, options).await;
    let bot = h.start().await;
    h.telegram.fail_next_sends([Failure::Blocked]);
    assert_eq!(bot.post_update(&text_update(7101, 81, "hi")).await, 200);
    eventually(WAIT, "the refused reply", || {
        !h.telegram.calls("sendMessage").is_empty()
    })
    .await;
    // Past the follow-up's due time (and a few scheduler ticks): nothing more goes out.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        h.telegram.calls("sendMessage").len(),
        1,
        "the refused reply is not retried and no follow-up is sent"
    );
    assert_eq!(
        h.llm.requests().len(),
        1,
        "no follow-up is written (or paid)"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM leads WHERE chat_id = $1")
        .bind(81_i64)
        .fetch_one(&h.db.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "opted_out");
    let metrics = bot
        .metrics_with(&[r#"botfleet_telegram_unreachable_total{reason="blocked"} 1"#])
        .await;
    assert!(
        metrics.contains(r#"botfleet_telegram_unreachable_total{reason="blocked"} 1"#),
        "{metrics}"
    );
}
for_each_db!(a_lead_who_blocked_the_bot_is_opted_out);
