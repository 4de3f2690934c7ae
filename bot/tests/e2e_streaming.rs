//! Streamed replies, end to end: the lead watches one draft grow while the fake LLM writes
//! (real-shaped Anthropic server-sent events at a fixed word rate), then gets the stored reply
//! as a message; the money is the same as unstreamed; broken streams, refused drafts and a
//! SIGKILL mid-stream end with one final answer.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::fake_llm::{Scripted, words};
use support::fake_telegram::text_update;
use support::{BotConfigOptions, Harness, TestDb, eventually};

const WAIT: Duration = Duration::from_secs(30);
const ANSWER: &str = "Our Pro plan costs forty-nine dollars a month and includes priority support, \
     unlimited projects and a dedicated account manager for teams of ten or more.";

fn options(llm_yaml: &str) -> BotConfigOptions {
    BotConfigOptions {
        llm_yaml: llm_yaml.to_owned(),
        ..Default::default()
    }
}

/// A text message in a group chat (negative id): never streamed.
fn group_update(update_id: i64, chat_id: i64, text: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id, "date": 1_700_000_000,
            "chat": {"id": chat_id, "type": "group", "title": "Leads"},
            "from": {"id": 4242, "is_bot": false, "first_name": "Lead"},
            "text": text,
        }
    })
}

async fn db(h: &Harness) -> botfleet_bot::db::Db {
    botfleet_bot::db::Db::connect(&h.db.url).await.unwrap()
}

/// (outcome, input, output, cost) of each ledger row of a chat, in order.
async fn ledger(h: &Harness, chat_id: i64) -> Vec<(String, i64, i64, i64)> {
    sqlx::query_as(
        "SELECT outcome, input_tokens, output_tokens, cost_nanos FROM llm_ledger \
         WHERE chat_id = $1 ORDER BY id",
    )
    .bind(chat_id)
    .fetch_all(&db(h).await.pool)
    .await
    .unwrap()
}

async fn stored_replies(h: &Harness, chat_id: i64) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT text FROM messages WHERE chat_id = $1 AND role = 'assistant' ORDER BY id",
    )
    .bind(chat_id)
    .fetch_all(&db(h).await.pool)
    .await
    .unwrap()
}

/// Drafts of one reply: one draft id, each text longer than the one before and the start of
/// the final text.
fn assert_drafts_grow(drafts: &[(i64, String)], final_text: &str) {
    assert!(!drafts.is_empty(), "no draft was shown");
    assert!(
        drafts.iter().all(|(id, _)| *id == drafts[0].0 && *id != 0),
        "{drafts:?}"
    );
    for pair in drafts.windows(2) {
        assert!(
            pair[1].1.chars().count() > pair[0].1.chars().count(),
            "a draft shrank: {pair:?}"
        );
    }
    for (_, text) in drafts {
        assert!(
            final_text.starts_with(text.as_str()),
            "{text:?} is not the start of the reply"
        );
    }
}

async fn drafts_grow_and_the_final_message_is_the_stored_reply(db: TestDb) {
    let h = Harness::new(db, options("")).await;
    h.llm.set_token_every(Duration::from_millis(40));
    h.llm
        .script([Scripted::text(ANSWER), Scripted::text(ANSWER)]);
    let bot = h.start().await;
    bot.post_update(&text_update(9001, 60, "What does Pro cost?"))
        .await;
    eventually(WAIT, "the streamed reply", || {
        !h.telegram.sent_texts(60).is_empty()
    })
    .await;
    // The same answer in a group chat, where drafts do not exist: the unstreamed call.
    bot.post_update(&group_update(9002, -70, "What does Pro cost?"))
        .await;
    eventually(WAIT, "the group reply", || {
        !h.telegram.sent_texts(-70).is_empty()
    })
    .await;

    assert_eq!(h.telegram.sent_texts(60), vec![ANSWER]);
    assert_eq!(stored_replies(&h, 60).await, vec![ANSWER]);
    let drafts = h.telegram.drafts(60);
    assert_drafts_grow(&drafts, ANSWER);
    // 400 ms between drafts of a ~1 s answer: several drafts, far fewer than words.
    assert!(drafts.len() >= 2, "{drafts:?}");
    assert!(drafts.len() < words(ANSWER).len(), "{drafts:?}");
    assert_eq!(drafts[0].0, 9001);
    assert!(h.telegram.drafts(-70).is_empty());
    assert_eq!(h.telegram.sent_texts(-70), vec![ANSWER]);

    let requests = h.llm.requests();
    assert_eq!(requests[0]["stream"], true);
    assert_eq!(requests[1].get("stream"), None);
    // Same tokens, same price, streamed or not.
    let streamed = ledger(&h, 60).await;
    assert_eq!(
        streamed,
        vec![("ok".to_owned(), 100, 20, 100 * 3_000 + 20 * 15_000)]
    );
    assert_eq!(ledger(&h, -70).await, streamed);
    let metrics = bot
        .metrics_with(&[r#"botfleet_llm_tokens_total{model="claude-test",request_type="chat",token_type="output"} 40"#])
        .await;
    assert!(
        metrics.contains(r#"botfleet_llm_tokens_total{model="claude-test",request_type="chat",token_type="output"} 40"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("botfleet_reply_first_text_seconds_count 2"),
        "{metrics}"
    );
}
for_each_db!(drafts_grow_and_the_final_message_is_the_stored_reply);

async fn a_cut_stream_is_retried_from_the_start(db: TestDb) {
    let h = Harness::new(db, options("")).await;
    h.llm.set_token_every(Duration::from_millis(20));
    h.llm
        .script([Scripted::text(ANSWER).cut_after(5), Scripted::text(ANSWER)]);
    let bot = h.start().await;
    bot.post_update(&text_update(9101, 61, "Price?")).await;
    eventually(WAIT, "the reply", || !h.telegram.sent_texts(61).is_empty()).await;

    assert_eq!(h.telegram.sent_texts(61), vec![ANSWER]);
    assert_drafts_grow(&h.telegram.drafts(61), ANSWER);
    let rows = ledger(&h, 61).await;
    let outcomes: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(outcomes, ["stream_cut", "ok"]);
    // The cut attempt is billed on its own row, never as free.
    assert_eq!(rows[0].1, 100);
    assert!(rows[0].3 > 0);
    assert_eq!(
        rows[1],
        ("ok".to_owned(), 100, 20, 100 * 3_000 + 20 * 15_000)
    );
    drop(bot);
}
for_each_db!(a_cut_stream_is_retried_from_the_start);

async fn a_cut_stream_is_completed_when_configured(db: TestDb) {
    let h = Harness::new(db, options("  onStreamCut: complete\n")).await;
    h.llm.set_token_every(Duration::from_millis(20));
    h.llm.script([Scripted::text(ANSWER).cut_after(5)]);
    let bot = h.start().await;
    bot.post_update(&text_update(9201, 62, "Price?")).await;
    eventually(WAIT, "the reply", || !h.telegram.sent_texts(62).is_empty()).await;

    let partial: String = words(ANSWER)[..5].concat();
    assert_eq!(h.telegram.sent_texts(62), vec![partial.clone()]);
    assert_eq!(stored_replies(&h, 62).await, vec![partial.clone()]);
    assert_drafts_grow(&h.telegram.drafts(62), &partial);
    let rows = ledger(&h, 62).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "stream_cut");
    assert_eq!(h.llm.requests().len(), 1);
    drop(bot);
}
for_each_db!(a_cut_stream_is_completed_when_configured);

async fn a_refused_draft_falls_back_to_typing(db: TestDb) {
    let h = Harness::new(db, options("")).await;
    h.telegram.set_draft_failure(Some((
        400,
        "Bad Request: drafts are not allowed in this chat",
    )));
    h.llm.set_token_every(Duration::from_millis(10));
    let bot = h.start().await;
    bot.post_update(&text_update(9301, 63, "one")).await;
    eventually(WAIT, "the first reply", || {
        !h.telegram.sent_texts(63).is_empty()
    })
    .await;
    bot.post_update(&text_update(9302, 63, "two")).await;
    eventually(WAIT, "the second reply", || {
        h.telegram.sent_texts(63).len() == 2
    })
    .await;

    assert_eq!(h.telegram.sent_texts(63), vec!["reply: one", "reply: two"]);
    // One refused draft; remembered for the chat: the second reply only shows typing.
    let tried: Vec<_> = h
        .telegram
        .calls("sendMessageDraft")
        .into_iter()
        .filter(|c| c.body["chat_id"] == 63)
        .collect();
    assert_eq!(tried.len(), 1, "{tried:?}");
    let typing = h
        .telegram
        .calls("sendChatAction")
        .into_iter()
        .filter(|c| c.body["chat_id"] == 63)
        .count();
    assert!(typing >= 2, "typing shown {typing} times");
    let warnings = bot
        .log()
        .lines()
        .filter(|l| l.contains("Telegram refused a draft in this chat"))
        .count();
    assert_eq!(warnings, 1, "{}", bot.log());
}
for_each_db!(a_refused_draft_falls_back_to_typing);

async fn a_bot_api_without_drafts_falls_back_for_the_whole_bot(db: TestDb) {
    let h = Harness::new(db, options("")).await;
    h.telegram.set_draft_failure(Some((404, "Not Found")));
    let bot = h.start().await;
    bot.post_update(&text_update(9401, 64, "a")).await;
    eventually(WAIT, "the first reply", || {
        !h.telegram.sent_texts(64).is_empty()
    })
    .await;
    bot.post_update(&text_update(9402, 65, "b")).await;
    eventually(WAIT, "the second reply", || {
        !h.telegram.sent_texts(65).is_empty()
    })
    .await;
    // Only the first reply tried a draft; the other chat was not even tried.
    assert_eq!(
        h.telegram.calls("sendMessageDraft").len(),
        1,
        "{:?}\n{}",
        h.telegram.calls("sendMessageDraft"),
        bot.log()
    );
    assert_eq!(h.telegram.sent_texts(65), vec!["reply: b"]);
    assert!(
        bot.log()
            .contains("the Bot API server does not know sendMessageDraft")
    );
}
for_each_db!(a_bot_api_without_drafts_falls_back_for_the_whole_bot);

async fn streaming_off_sends_no_drafts(db: TestDb) {
    let h = Harness::new(db, options("  streaming: false\n")).await;
    let bot = h.start().await;
    bot.post_update(&text_update(9501, 66, "hi")).await;
    eventually(WAIT, "the reply", || !h.telegram.sent_texts(66).is_empty()).await;
    assert!(h.telegram.calls("sendMessageDraft").is_empty());
    assert_eq!(h.llm.requests()[0].get("stream"), None);
    let metrics = bot
        .metrics_with(&["botfleet_reply_first_text_seconds_count 1"])
        .await;
    assert!(
        metrics.contains("botfleet_reply_first_text_seconds_count 1"),
        "{metrics}"
    );
}
for_each_db!(streaming_off_sends_no_drafts);

async fn sigkill_during_a_stream_then_restart_answers_once(db: TestDb) {
    let h = Harness::new(db, options("")).await;
    h.llm.set_token_every(Duration::from_millis(150));
    h.llm
        .script([Scripted::text(ANSWER), Scripted::text(ANSWER)]);
    let mut bot = h.start().await;
    bot.post_update(&text_update(9601, 67, "Price?")).await;
    eventually(WAIT, "a draft", || !h.telegram.drafts(67).is_empty()).await;
    bot.kill();
    assert!(h.telegram.sent_texts(67).is_empty());

    let bot = h.start().await;
    eventually(WAIT, "the reply after the restart", || {
        !h.telegram.sent_texts(67).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.telegram.sent_texts(67), vec![ANSWER]);
    assert_eq!(stored_replies(&h, 67).await, vec![ANSWER]);
    drop(bot);
}
for_each_db!(sigkill_during_a_stream_then_restart_answers_once);

async fn a_stored_reply_is_resent_without_streaming_again(db: TestDb) {
    let h = Harness::new(db, options("")).await;
    h.llm.script([Scripted::text(ANSWER)]);
    // The reply is stored, then sending it fails: the update is processed again.
    h.telegram
        .fail_next_sends(vec![support::fake_telegram::Failure::ServerError]);
    let bot = h.start().await;
    bot.post_update(&text_update(9701, 68, "Price?")).await;
    eventually(WAIT, "the reply", || !h.telegram.sent_texts(68).is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.telegram.sent_texts(68), vec![ANSWER]);
    assert_eq!(h.llm.requests().len(), 1, "the LLM was asked again");
    let drafts = h.telegram.drafts(68);
    assert_drafts_grow(&drafts, ANSWER);
    drop(bot);
}
for_each_db!(a_stored_reply_is_resent_without_streaming_again);
