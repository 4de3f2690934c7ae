//! The support desk end to end: each lead message is classified by one `classify_message`
//! tool call (priced as `classification`, cached by normalised text), counted and shown in
//! `/stats`; an intent in `support.handoffOn` hands the lead over, spam gets no answer, and a
//! classification that fails leaves the message answered as usual.

mod support;

use std::time::Duration;

use serde_json::json;
use support::fake_llm::Scripted;
use support::fake_telegram::{Failure, owner_update, text_update};
use support::{BotConfigOptions, Harness, TestDb, eventually};

const WAIT: Duration = Duration::from_secs(20);
const OWNER: i64 = 900;
const HANDED_OVER: &str =
    "I'm passing you to a person from our team — they will answer you right here in this chat.";

fn options(support: &str) -> BotConfigOptions {
    BotConfigOptions {
        extra_yaml: format!("owners: [{OWNER}]\nhandoff: {{}}\nsupport:\n{support}"),
        llm_yaml: "  streaming: false\n".into(),
        ..Default::default()
    }
}

fn classified(intent: &str, topic: &str) -> Scripted {
    Scripted::tool_use_with(
        "classify_message",
        json!({"intent": intent, "topic": topic}),
    )
}

async fn wait_for_texts(h: &Harness, chat: i64, count: usize, what: &str) -> Vec<String> {
    eventually(WAIT, what, || h.telegram.sent_texts(chat).len() >= count).await;
    h.telegram.sent_texts(chat)
}

async fn ledger(h: &Harness) -> Vec<(String, String)> {
    let db = botfleet_bot::db::Db::connect(&h.db.url).await.unwrap();
    sqlx::query_as("SELECT request_type, model FROM llm_ledger ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

async fn a_repeat_is_classified_from_the_cache(db: TestDb) {
    let h = Harness::new(
        db,
        BotConfigOptions {
            fallback_model: Some("claude-mini"),
            ..options("  classify: true\n")
        },
    )
    .await;
    let bot = h.start().await;
    h.llm.script([
        classified("question", "Pricing"),
        Scripted::text("Pro costs $10."),
    ]);
    bot.post_update(&text_update(50_001, 70, "What does Pro cost?"))
        .await;
    assert_eq!(
        wait_for_texts(&h, 70, 1, "the answer").await,
        ["Pro costs $10."]
    );
    let asked = &h.llm.requests()[0];
    let tools = asked["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1, "exactly one tool: {asked}");
    assert_eq!(tools[0]["name"], "classify_message");
    assert!(asked.to_string().contains("What does Pro cost?"));
    // The classifier runs on the fallback model by default; the answer on the main one.
    assert_eq!(h.llm.models_called(), ["claude-mini", "claude-test"]);

    // Another lead, the same words in other case and spacing: no second classification.
    bot.post_update(&text_update(50_002, 71, "  what does PRO   cost? "))
        .await;
    wait_for_texts(&h, 71, 1, "the second answer").await;
    assert_eq!(
        h.llm.models_called(),
        ["claude-mini", "claude-test", "claude-test"]
    );
    let types: Vec<String> = ledger(&h).await.into_iter().map(|(t, _)| t).collect();
    assert_eq!(types, ["classification", "chat", "chat"]);
    assert_eq!(ledger(&h).await[0].1, "claude-mini");
    let metrics = bot
        .metrics_with(&[
            "botfleet_messages_classified_total{intent=\"question\"} 2",
            "request_type=\"classification\"",
        ])
        .await;
    assert!(
        metrics.contains("botfleet_messages_classified_total{intent=\"question\"} 2"),
        "{metrics}"
    );

    // /stats shows what was classified.
    bot.post_update(&owner_update(50_003, OWNER, OWNER, "/stats"))
        .await;
    let stats = wait_for_texts(&h, OWNER, 1, "/stats").await.remove(0);
    assert!(stats.contains("Messages classified in 24 h: 2"), "{stats}");
    assert!(stats.contains("question: 2"), "{stats}");
}
for_each_db!(a_repeat_is_classified_from_the_cache);

async fn intents_route_the_message(db: TestDb) {
    let h = Harness::new(
        db,
        options("  classify: true\n  handoffOn: [human, purchase]\n"),
    )
    .await;
    let bot = h.start().await;

    // An intent in handoffOn hands the lead over, the intent as the reason.
    h.llm.script([
        classified("purchase", "chairs"),
        Scripted::text("Wants to buy 40 chairs."),
    ]);
    bot.post_update(&text_update(51_001, 80, "I want to buy 40 chairs"))
        .await;
    assert_eq!(
        wait_for_texts(&h, 80, 1, "the handoff note").await,
        [HANDED_OVER]
    );
    eventually(WAIT, "the owners' notification", || {
        h.telegram
            .sent_texts(OWNER)
            .iter()
            .any(|t| t.contains("A lead needs a person"))
    })
    .await;
    let note = h.telegram.sent_texts(OWNER).remove(0);
    assert!(
        note.contains("the support desk classified the message as: “purchase”"),
        "{note}"
    );
    let metrics = bot
        .metrics_with(&["botfleet_handoffs_total{reason=\"intent\"} 1"])
        .await;
    assert!(
        metrics.contains("botfleet_handoffs_total{reason=\"intent\"} 1"),
        "{metrics}"
    );

    // Spam gets no answer (and no answering call).
    h.llm.script([classified("spam", "ads")]);
    bot.post_update(&text_update(51_002, 81, "CHEAP FOLLOWERS click here"))
        .await;
    eventually(WAIT, "the spam classified", || h.llm.requests().len() == 3).await;
    let metrics = bot
        .metrics_with(&["botfleet_messages_classified_total{intent=\"spam\"} 1"])
        .await;
    assert!(
        metrics.contains("botfleet_messages_classified_total{intent=\"spam\"} 1"),
        "{metrics}"
    );

    // A classification that fails: the message is answered as it would be without it.
    h.llm.script([Scripted::status(400)]);
    bot.post_update(&text_update(51_003, 81, "Hello?")).await;
    assert_eq!(
        wait_for_texts(&h, 81, 1, "the answer").await,
        ["reply: Hello?"],
        "one answer: none to the spam"
    );
    let types: Vec<String> = ledger(&h).await.into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        types,
        [
            "classification",
            "summary",
            "classification",
            "classification",
            "chat"
        ]
    );
}
for_each_db!(intents_route_the_message);

fn reminders(h: &Harness, chat: i64) -> Vec<String> {
    h.telegram
        .sent_texts(chat)
        .into_iter()
        .filter(|t| t.contains("for a person") && t.contains("has waited"))
        .collect()
}

fn handoff_options(handoff: &str) -> BotConfigOptions {
    BotConfigOptions {
        extra_yaml: format!("owners: [{OWNER}]\nhandoff:\n{handoff}"),
        ..Default::default()
    }
}

async fn each_reminder_step_is_sent_once_across_a_restart(db: TestDb) {
    let h = Harness::new(db, handoff_options("  remindAfter: [1s, 3s]\n")).await;
    let mut bot = h.start().await;
    bot.post_update(&text_update(52_001, 90, "/human")).await;
    wait_for_texts(&h, 90, 1, "the handoff note").await;
    eventually(WAIT, "two reminders", || reminders(&h, OWNER).len() == 2).await;
    let reminder = reminders(&h, OWNER).remove(0);
    assert!(
        reminder.contains("Lead (@lead) has waited 0 min"),
        "{reminder}"
    );
    assert!(
        reminder.contains("Nobody has taken this lead yet"),
        "{reminder}"
    );
    let buttons = h.telegram.sent_buttons(OWNER).pop().unwrap();
    assert_eq!(buttons[0].0, "Take");
    let metrics = bot
        .metrics_with(&["botfleet_handoff_reminders_total{outcome=\"sent\"} 2"])
        .await;
    assert!(
        metrics.contains("botfleet_handoff_reminders_total{outcome=\"sent\"} 2"),
        "{metrics}"
    );

    // A restarted process runs its handoff loop (the gauge is set at the end of a tick) and
    // sends no step again.
    bot.kill();
    let bot = h.start().await;
    let metrics = bot.metrics_with(&["botfleet_handoffs_open 1"]).await;
    assert!(metrics.contains("botfleet_handoffs_open 1"), "{metrics}");
    assert_eq!(reminders(&h, OWNER).len(), 2, "each step once");
}
for_each_db!(each_reminder_step_is_sent_once_across_a_restart);

async fn a_refused_reminder_is_retried_then_given_up(db: TestDb) {
    const SECOND: i64 = 901;
    let h = Harness::new(
        db,
        handoff_options(&format!(
            "  remindAfter: [2s]\n  reminderMaxAttempts: 2\n  notify:\n    owners: [{OWNER}, {SECOND}]\n"
        )),
    )
    .await;
    let bot = h.start().await;
    bot.post_update(&text_update(53_001, 91, "/human")).await;
    eventually(WAIT, "both notifications", || {
        h.telegram.sent_texts(OWNER).len() == 1 && h.telegram.sent_texts(SECOND).len() == 1
    })
    .await;
    // The reminder to the first owner is refused once, to the second every time.
    h.telegram.fail_next_sends_to(OWNER, [Failure::ServerError]);
    h.telegram
        .fail_next_sends_to(SECOND, [Failure::ServerError, Failure::ServerError]);
    let expected = [
        "botfleet_handoff_reminders_total{outcome=\"sent\"} 1",
        "botfleet_handoff_reminders_total{outcome=\"failed\"} 3",
        "botfleet_handoff_reminders_total{outcome=\"given_up\"} 1",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let metrics = loop {
        let metrics = bot.metrics_text().await;
        if expected.iter().all(|line| metrics.contains(line))
            || std::time::Instant::now() >= deadline
        {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for line in expected {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
    assert_eq!(reminders(&h, OWNER).len(), 1, "sent on the retry");
    assert!(reminders(&h, SECOND).is_empty(), "given up, never sent");
    let db = botfleet_bot::db::Db::connect(&h.db.url).await.unwrap();
    let rows: Vec<(i64, Option<i64>, Option<i64>, i64)> = sqlx::query_as(
        "SELECT owner_chat_id, sent_at, given_up_at, attempts FROM handoff_outbox
         WHERE max_attempts IS NOT NULL ORDER BY owner_chat_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].1.is_some() && rows[0].2.is_none(), "{rows:?}");
    assert_eq!((rows[1].1, rows[1].2.is_some(), rows[1].3), (None, true, 2));
}
for_each_db!(a_refused_reminder_is_retried_then_given_up);
