//! The webhook path end to end: the real binary, fake Telegram and LLM APIs, a real database.

mod support;

use std::time::Duration;

use serde_json::json;
use support::fake_telegram::{Failure, text_update};
use support::{BotConfigOptions, Harness, TestDb, WEBHOOK_SECRET, eventually};

const WAIT: Duration = Duration::from_secs(20);

async fn answers_with_the_llms_text(db: TestDb) {
    let h = Harness::new(db, BotConfigOptions::default()).await;
    let bot = h.start().await;
    assert_eq!(
        bot.post_update(&text_update(1001, 42, "What do you sell?"))
            .await,
        200
    );
    eventually(WAIT, "the reply", || !h.telegram.sent_texts(42).is_empty()).await;
    assert_eq!(h.telegram.sent_texts(42), vec!["reply: What do you sell?"]);
    // The LLM saw the system prompt and the user's words; the user saw "typing…".
    let request = &h.llm.requests()[0];
    assert_eq!(request["model"], "claude-test");
    assert!(
        request["system"]
            .to_string()
            .contains("You are a test bot.")
    );
    assert!(!h.telegram.calls("sendChatAction").is_empty());
    let metrics = bot
        .metrics_with(&[
            r#"botfleet_telegram_updates_total{kind="message"} 1"#,
            "botfleet_messages_sent_total 1",
            r#"botfleet_llm_requests_total{model="claude-test",request_type="chat",outcome="ok"} 1"#,
        ])
        .await;
    assert!(
        metrics.contains(r#"botfleet_telegram_updates_total{kind="message"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("botfleet_messages_sent_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"botfleet_llm_requests_total{model="claude-test",request_type="chat",outcome="ok"} 1"#
        ),
        "{metrics}"
    );
    // The secret and the user's text never reach the logs at info level.
    let log = bot.log();
    assert!(
        !log.contains(WEBHOOK_SECRET)
            && !log.contains(&h.telegram.token)
            && !log.contains("What do you sell?"),
        "{log}"
    );
    assert!(
        log.contains(r#""update_id":1001"#),
        "update id missing from the update's log lines: {log}"
    );
}
for_each_db!(answers_with_the_llms_text);

async fn rejects_bad_requests_and_counts_them(db: TestDb) {
    let h = Harness::new(db, BotConfigOptions::default()).await;
    let bot = h.start().await;
    let client = reqwest::Client::new();
    let update = text_update(2001, 43, "hi");
    let status = |r: reqwest::Response| r.status().as_u16();

    let missing = client
        .post(bot.webhook_url())
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(status(missing), 401);
    let wrong = client
        .post(bot.webhook_url())
        .header("X-Telegram-Bot-Api-Secret-Token", "nope")
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(status(wrong), 401);
    let malformed = client
        .post(bot.webhook_url())
        .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(status(malformed), 400);
    let not_an_update = client
        .post(bot.webhook_url())
        .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
        .json(&json!({"hello": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(not_an_update), 400);
    let huge = format!(
        r#"{{"update_id": 2002, "pad": "{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let oversize = client
        .post(bot.webhook_url())
        .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(status(oversize), 413);

    let metrics = bot.metrics_text().await;
    for (reason, n) in [("bad_secret", 2), ("malformed", 2), ("too_large", 1)] {
        let line = format!(r#"botfleet_webhook_rejected_total{{reason="{reason}"}} {n}"#);
        assert!(metrics.contains(&line), "missing {line} in\n{metrics}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        h.llm.requests().is_empty(),
        "a rejected request reached the LLM"
    );
    assert!(h.telegram.sent_texts(43).is_empty());
}
for_each_db!(rejects_bad_requests_and_counts_them);

async fn a_repeated_update_is_answered_once(db: TestDb) {
    let h = Harness::new(db, BotConfigOptions::default()).await;
    let bot = h.start().await;
    let update = text_update(3001, 44, "once please");
    for _ in 0..3 {
        assert_eq!(bot.post_update(&update).await, 200);
    }
    eventually(WAIT, "the reply", || !h.telegram.sent_texts(44).is_empty()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.telegram.sent_texts(44).len(), 1);
    assert_eq!(h.llm.requests().len(), 1);
}
for_each_db!(a_repeated_update_is_answered_once);

async fn a_long_answer_is_split_in_order(db: TestDb) {
    let h = Harness::new(db, BotConfigOptions::default()).await;
    let sentences: Vec<String> = (0..320)
        .map(|i| format!("Sentence number {i:03} is here."))
        .collect();
    let answer = sentences.join(" ");
    assert!(answer.len() >= 9000, "{}", answer.len());
    h.llm.script([support::fake_llm::Scripted::text(&answer)]);
    let bot = h.start().await;
    bot.post_update(&text_update(4001, 45, "tell me everything"))
        .await;
    eventually(WAIT, "three parts", || h.telegram.sent_texts(45).len() >= 3).await;
    let parts = h.telegram.sent_texts(45);
    assert_eq!(parts.len(), 3, "{parts:?}");
    for part in &parts {
        assert!(part.encode_utf16().count() <= 4096);
        assert!(
            part.ends_with("is here."),
            "cut mid-sentence: ...{}",
            &part[part.len() - 30..]
        );
    }
    assert_eq!(parts.join(" "), answer);
}
for_each_db!(a_long_answer_is_split_in_order);

async fn telegram_429_is_waited_out(db: TestDb) {
    let h = Harness::new(db, BotConfigOptions::default()).await;
    h.telegram.fail_next_sends([Failure::RetryAfter(1)]);
    let bot = h.start().await;
    let started = std::time::Instant::now();
    bot.post_update(&text_update(5001, 46, "hello")).await;
    eventually(WAIT, "the reply after the 429", || {
        !h.telegram.sent_texts(46).is_empty()
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "retry_after not honoured"
    );
    assert_eq!(
        h.telegram.calls("sendMessage").len(),
        2,
        "one refused attempt, one delivered"
    );
    assert_eq!(h.telegram.sent_texts(46), vec!["reply: hello"]);
}
for_each_db!(telegram_429_is_waited_out);

async fn stop_opts_out_and_commands_answer(db: TestDb) {
    let h = Harness::new(
        db,
        BotConfigOptions {
            extra_yaml: "owners: [900]\n".into(),
            ..Default::default()
        },
    )
    .await;
    let bot = h.start().await;
    bot.post_update(&text_update(6001, 47, "/start")).await;
    bot.post_update(&text_update(6002, 47, "/stop")).await;
    bot.post_update(&text_update(6003, 47, "/llm_stats")).await;
    bot.post_update(&text_update(6004, 900, "/budget")).await;
    eventually(WAIT, "three replies to 47", || {
        h.telegram.sent_texts(47).len() >= 3
    })
    .await;
    eventually(WAIT, "the owner's reply", || {
        !h.telegram.sent_texts(900).is_empty()
    })
    .await;
    let texts = h.telegram.sent_texts(47);
    assert!(texts[0].contains("/stop"), "welcome: {}", texts[0]);
    assert!(
        texts[1].contains("won't send you any more follow-ups"),
        "{}",
        texts[1]
    );
    assert!(
        texts[2].contains("only for the bot's owners"),
        "{}",
        texts[2]
    );
    assert!(
        h.llm.requests().is_empty(),
        "commands must not call the LLM"
    );
    let db = botfleet_bot::db::Db::connect(&h.db.url).await.unwrap();
    let status: String = sqlx::query_scalar("SELECT status FROM leads WHERE chat_id = 47")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(status, "opted_out");
}
for_each_db!(stop_opts_out_and_commands_answer);

async fn updates_of_one_chat_are_handled_in_order(db: TestDb) {
    let h = Harness::new(db, BotConfigOptions::default()).await;
    // Slow answers: with eight workers, only the per-chat ordering keeps these in sequence.
    h.llm.set_default_delay(Duration::from_millis(300));
    let bot = h.start().await;
    for i in 1..=4 {
        assert_eq!(
            bot.post_update(&text_update(10_000 + i, 48, &format!("message {i}")))
                .await,
            200
        );
    }
    // Another chat is not held up by this one.
    bot.post_update(&text_update(10_100, 49, "other chat"))
        .await;
    eventually(WAIT, "four replies", || {
        h.telegram.sent_texts(48).len() >= 4
    })
    .await;
    assert_eq!(
        h.telegram.sent_texts(48),
        vec![
            "reply: message 1",
            "reply: message 2",
            "reply: message 3",
            "reply: message 4"
        ]
    );
    // Each call saw the previous answers: the conversation grew one turn at a time.
    let last = h
        .llm
        .requests()
        .into_iter()
        .rfind(|r| r.to_string().contains("message 4"))
        .unwrap();
    assert_eq!(last["messages"].as_array().unwrap().len(), 7, "{last}");
    assert!(!h.telegram.sent_texts(49).is_empty());
}
for_each_db!(updates_of_one_chat_are_handled_in_order);

async fn a_user_over_the_rate_limit_gets_a_friendly_reply(db: TestDb) {
    let options = BotConfigOptions {
        extra_yaml: "rateLimit: {messages: 2, per: 1m}\n".into(),
        ..Default::default()
    };
    let h = Harness::new(db, options).await;
    let bot = h.start().await;
    for i in 1..=3 {
        bot.post_update(&text_update(11_000 + i, 53, &format!("question {i}")))
            .await;
    }
    bot.post_update(&text_update(11_100, 54, "someone else"))
        .await;
    eventually(WAIT, "three replies", || {
        h.telegram.sent_texts(53).len() >= 3
    })
    .await;
    let texts = h.telegram.sent_texts(53);
    assert_eq!(&texts[..2], ["reply: question 1", "reply: question 2"]);
    assert!(texts[2].contains("please wait a minute"), "{}", texts[2]);
    eventually(WAIT, "the other user's reply", || {
        !h.telegram.sent_texts(54).is_empty()
    })
    .await;
    assert_eq!(
        h.llm.requests().len(),
        3,
        "the limited message must not reach the LLM"
    );
    assert!(
        bot.metrics_text()
            .await
            .contains("botfleet_rate_limited_total 1")
    );
}
for_each_db!(a_user_over_the_rate_limit_gets_a_friendly_reply);
