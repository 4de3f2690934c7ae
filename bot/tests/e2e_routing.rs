//! The typed update path end to end: commands menu, inline buttons and callback queries, the
//! welcome's suggested questions, and updates the bot acknowledges without answering.

mod support;

use std::time::Duration;

use botfleet_bot::conversation::commands;
use serde_json::json;
use support::fake_llm::{Scripted, message};
use support::fake_telegram::{button_press, text_update};
use support::{BotConfigOptions, Harness, TestDb, eventually};

const WAIT: Duration = Duration::from_secs(20);

async fn the_commands_menu_is_set_for_everyone_and_each_owner(db: TestDb) {
    let h = Harness::new(
        db,
        BotConfigOptions {
            extra_yaml: "owners: [900, 901]\n".into(),
            ..Default::default()
        },
    )
    .await;
    let _bot = h.start().await;
    eventually(WAIT, "three setMyCommands calls", || {
        h.telegram.calls("setMyCommands").len() >= 3
    })
    .await;
    let calls = h.telegram.calls("setMyCommands");
    let names = |body: &serde_json::Value| -> Vec<String> {
        body["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["command"].as_str().unwrap().to_owned())
            .collect()
    };
    let default = calls
        .iter()
        .find(|c| c.body["scope"]["type"] == "default")
        .expect("a default-scope menu");
    // The lists themselves are pinned by the unit test of `commands`.
    let menu_names = |menu: Vec<teloxide::types::BotCommand>| -> Vec<String> {
        menu.into_iter().map(|c| c.command).collect()
    };
    assert_eq!(names(&default.body), menu_names(commands::lead_menu()));
    assert!(
        default.body["commands"][1]["description"]
            .as_str()
            .unwrap()
            .contains("follow-up")
    );
    for owner in [900, 901] {
        let scoped = calls
            .iter()
            .find(|c| c.body["scope"]["type"] == "chat" && c.body["scope"]["chat_id"] == owner)
            .unwrap_or_else(|| panic!("no menu for owner {owner}: {calls:?}"));
        assert_eq!(names(&scoped.body), menu_names(commands::owner_menu()));
    }
}
for_each_db!(the_commands_menu_is_set_for_everyone_and_each_owner);

async fn welcome_buttons_are_answered_and_ask_their_question(db: TestDb) {
    let h = Harness::new(
        db,
        BotConfigOptions {
            extra_yaml:
                "welcome:\n  suggestions: [\"What do you sell?\", \"How fast do you ship?\"]\n"
                    .into(),
            ..Default::default()
        },
    )
    .await;
    let bot = h.start().await;
    bot.post_update(&text_update(20_001, 70, "/start")).await;
    eventually(WAIT, "the welcome", || {
        !h.telegram.sent_texts(70).is_empty()
    })
    .await;
    assert_eq!(
        h.telegram.sent_buttons(70)[0],
        [
            ("What do you sell?".to_string(), "suggest:0".to_string()),
            ("How fast do you ship?".to_string(), "suggest:1".to_string())
        ]
    );
    assert!(
        h.llm.requests().is_empty(),
        "config suggestions need no LLM"
    );
    let welcome = h.telegram.calls("sendMessage.ok")[0].body.clone();

    // The second button, pressed under the welcome: answered, then asked as if typed.
    bot.post_update(&button_press(20_002, 70, "suggest:1", Some(&welcome)))
        .await;
    eventually(WAIT, "the answer to the suggestion", || {
        h.telegram.sent_texts(70).len() >= 2
    })
    .await;
    assert_eq!(h.telegram.answered_callbacks(), ["cbq-20002"]);
    assert_eq!(h.telegram.sent_texts(70)[1], "reply: How fast do you ship?");

    // A press Telegram sends without the message: the button's number picks the question.
    bot.post_update(&button_press(20_003, 70, "suggest:0", None))
        .await;
    // A button whose data is a command runs that command.
    bot.post_update(&button_press(20_004, 70, "/help", None))
        .await;
    eventually(WAIT, "two more replies", || {
        h.telegram.sent_texts(70).len() >= 4
    })
    .await;
    let texts = h.telegram.sent_texts(70);
    assert_eq!(texts[2], "reply: What do you sell?");
    assert!(texts[3].contains("/stop"), "help: {}", texts[3]);
    assert_eq!(
        h.telegram.answered_callbacks(),
        ["cbq-20002", "cbq-20003", "cbq-20004"]
    );
    // The pressed question is the lead's turn in the conversation history.
    let db = botfleet_bot::db::Db::connect(&h.db.url).await.unwrap();
    let asked: Vec<String> = sqlx::query_scalar(
        "SELECT text FROM messages WHERE chat_id = 70 AND role = 'user' AND kind = 'chat' ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(asked, ["How fast do you ship?", "What do you sell?"]);
}
for_each_db!(welcome_buttons_are_answered_and_ask_their_question);

async fn the_llm_writes_the_suggestions_once_priced_and_kept(db: TestDb) {
    let h = Harness::new(
        db,
        BotConfigOptions {
            extra_yaml: "welcome:\n  writeSuggestions: true\n".into(),
            ..Default::default()
        },
    )
    .await;
    h.llm.script([Scripted {
        body: Some(message(
            "1. What do you sell?\n2. Do you ship abroad?\n3. Can I pay by card?",
            "claude-test",
        )),
        ..Scripted::text("")
    }]);
    let mut bot = h.start().await;
    bot.post_update(&text_update(21_001, 71, "/start")).await;
    eventually(WAIT, "the welcome", || {
        !h.telegram.sent_texts(71).is_empty()
    })
    .await;
    let labels = |chat: i64| -> Vec<String> {
        h.telegram.sent_buttons(chat)[0]
            .iter()
            .map(|(label, _)| label.clone())
            .collect()
    };
    let written = [
        "What do you sell?",
        "Do you ship abroad?",
        "Can I pay by card?",
    ];
    assert_eq!(labels(71), written);
    let request = &h.llm.requests()[0];
    assert!(
        request.to_string().contains("You are a test bot."),
        "written from the system prompt: {request}"
    );

    // A restart reads them from the database: no second LLM call.
    bot.kill();
    let bot = h.start().await;
    bot.post_update(&text_update(21_002, 72, "/start")).await;
    eventually(WAIT, "the second welcome", || {
        !h.telegram.sent_texts(72).is_empty()
    })
    .await;
    assert_eq!(labels(72), written);
    assert_eq!(h.llm.requests().len(), 1, "suggestions are written once");

    let db = botfleet_bot::db::Db::connect(&h.db.url).await.unwrap();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT request_type, cost_nanos FROM llm_ledger ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    // 100 input tokens at $3/M and 20 output tokens at $15/M.
    assert_eq!(rows, [("suggestions".to_string(), 600_000)]);
}
for_each_db!(the_llm_writes_the_suggestions_once_priced_and_kept);

async fn edits_unknown_kinds_and_unreadable_updates_do_not_hold_up_the_chat(db: TestDb) {
    let h = Harness::new(db, BotConfigOptions::default()).await;
    let bot = h.start().await;
    let chat = json!({"id": 73, "type": "private", "first_name": "Lead"});
    let mut edited = text_update(22_001, 73, "hello (edited)");
    edited["edited_message"] = edited["message"].take();
    edited.as_object_mut().unwrap().remove("message");
    let member_changed = json!({"update_id": 22_002, "chat_member": {
        "chat": chat, "from": {"id": 73, "is_bot": false, "first_name": "Lead"}, "date": 1_700_000_000,
        "old_chat_member": {"user": {"id": 5, "is_bot": false, "first_name": "X"}, "status": "left"},
        "new_chat_member": {"user": {"id": 5, "is_bot": false, "first_name": "X"}, "status": "member"},
    }});
    let future_kind = json!({"update_id": 22_003, "future_kind": {"chat": chat}});
    let unreadable =
        json!({"update_id": 22_004, "message": {"chat": chat, "text": "no id, no date"}});
    for update in [&edited, &member_changed, &future_kind, &unreadable] {
        assert_eq!(bot.post_update(update).await, 200);
    }
    bot.post_update(&text_update(22_005, 73, "still there?"))
        .await;
    eventually(WAIT, "the reply to the next message", || {
        !h.telegram.sent_texts(73).is_empty()
    })
    .await;
    assert_eq!(h.telegram.sent_texts(73), ["reply: still there?"]);
    assert_eq!(h.llm.requests().len(), 1);

    // Each was done on its first attempt; the unreadable one is kept with its reason.
    let db = botfleet_bot::db::Db::connect(&h.db.url).await.unwrap();
    let rows: Vec<(i64, i64, Option<String>, String)> = sqlx::query_as(
        "SELECT update_id, attempts, last_error, payload FROM inbox WHERE update_id < 22005 ORDER BY update_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 4);
    for (update_id, attempts, error, _) in &rows[..3] {
        assert_eq!(
            (*attempts, error.as_deref()),
            (1, None),
            "update {update_id}"
        );
    }
    let (_, attempts, error, payload) = &rows[3];
    assert_eq!(*attempts, 1);
    assert!(
        error.as_deref().unwrap_or_default().contains("cannot read"),
        "{error:?}"
    );
    assert!(
        payload.contains("no id, no date"),
        "payload kept: {payload}"
    );
}
for_each_db!(edits_unknown_kinds_and_unreadable_updates_do_not_hold_up_the_chat);
