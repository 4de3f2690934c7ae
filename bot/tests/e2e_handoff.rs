//! Human handoff end to end: every trigger opens one handoff and tells the owners (with the
//! LLM's summary); while handed over the lead's messages reach the owner and not the LLM, the
//! owner's replies reach the lead and the history; resolve and auto-resume hand back; state
//! survives a restart and is shared by two bot processes on one PostgreSQL.

mod support;

use std::time::Duration;

use support::fake_llm::Scripted;
use support::fake_telegram::{
    Failure, button_press, owner_button, owner_update, reply_update, text_update,
};
use support::{BotConfigOptions, Harness, TestDb, eventually};

const WAIT: Duration = Duration::from_secs(20);
const OWNER: i64 = 900;
const HANDED_OVER: &str =
    "I'm passing you to a person from our team — they will answer you right here in this chat.";
const RESUMED: &str = "Thanks for waiting! I'm the bot again — ask me anything, any time.";

fn options(handoff: &str) -> BotConfigOptions {
    BotConfigOptions {
        extra_yaml: format!("owners: [{OWNER}]\nhandoff:\n{handoff}"),
        ..Default::default()
    }
}

async fn harness(db: TestDb, handoff: &str) -> Harness {
    Harness::new(db, options(handoff)).await
}

/// The owner's messages that are handoff notifications.
fn notifications(h: &Harness) -> Vec<(i64, String)> {
    h.telegram
        .sent_with_ids(OWNER)
        .into_iter()
        .filter(|(_, text)| text.contains("A lead needs a person"))
        .collect()
}

async fn wait_for_texts(h: &Harness, chat: i64, count: usize, what: &str) -> Vec<String> {
    eventually(WAIT, what, || h.telegram.sent_texts(chat).len() >= count).await;
    h.telegram.sent_texts(chat)
}

async fn connect(h: &Harness) -> botfleet_bot::db::Db {
    botfleet_bot::db::Db::connect(&h.db.url).await.unwrap()
}

async fn history(h: &Harness, chat: i64) -> Vec<(String, String, String)> {
    sqlx::query_as("SELECT role, kind, text FROM messages WHERE chat_id = $1 ORDER BY id")
        .bind(chat)
        .fetch_all(&connect(h).await.pool)
        .await
        .unwrap()
}

async fn ledger_types(h: &Harness) -> Vec<String> {
    sqlx::query_scalar("SELECT request_type FROM llm_ledger ORDER BY id")
        .fetch_all(&connect(h).await.pool)
        .await
        .unwrap()
}

async fn human_command_relays_both_ways_and_resolve_hands_back(db: TestDb) {
    let h = harness(db, "  autoResumeAfter: 1h\n").await;
    let bot = h.start().await;
    bot.post_update(&text_update(30_001, 70, "Do you have 40 chairs?"))
        .await;
    wait_for_texts(&h, 70, 1, "the bot's answer").await;

    // /human: the lead is told, the owner gets one message with the summary and buttons.
    h.llm
        .script([Scripted::text("Wants 40 chairs and is ready to buy.")]);
    bot.post_update(&text_update(30_002, 70, "/human")).await;
    let texts = wait_for_texts(&h, 70, 2, "the handoff note").await;
    assert_eq!(texts[1], HANDED_OVER);
    eventually(WAIT, "the owner's notification", || {
        notifications(&h).len() == 1
    })
    .await;
    let (notification_id, note) = notifications(&h).remove(0);
    assert!(note.contains("Lead (@lead)"), "{note}");
    assert!(
        note.contains("the lead asked for a person (/human)"),
        "{note}"
    );
    assert!(
        note.contains("Wants 40 chairs and is ready to buy."),
        "{note}"
    );
    assert!(note.contains("<b>Messages so far:</b> 2"), "{note}");
    assert!(note.contains("<b>First seen:</b> 20"), "{note}");
    let buttons = h.telegram.sent_buttons(OWNER)[0].clone();
    let labels: Vec<&str> = buttons.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["Take", "Resolve", "Back to bot"]);
    assert_eq!(h.llm.requests().len(), 2, "the answer and the summary");
    assert!(
        h.llm.requests()[1]
            .to_string()
            .contains("Do you have 40 chairs?")
    );
    assert_eq!(ledger_types(&h).await, ["chat", "summary"]);

    // The lead's next message reaches the owner, not the LLM.
    bot.post_update(&text_update(30_003, 70, "Can you deliver by Friday?"))
        .await;
    eventually(WAIT, "the relayed message", || {
        h.telegram.sent_texts(OWNER).len() >= 2
    })
    .await;
    let (relayed_id, relayed) = h.telegram.sent_with_ids(OWNER)[1].clone();
    assert!(relayed.contains("Lead (@lead)"), "{relayed}");
    assert!(relayed.contains("Can you deliver by Friday?"), "{relayed}");
    assert_eq!(h.llm.requests().len(), 2, "the LLM is not called");
    assert_eq!(h.telegram.sent_texts(70).len(), 2, "no bot answer");

    // The owner's reply to it reaches the lead, as the bot, and the history.
    bot.post_update(&reply_update(
        30_004,
        OWNER,
        OWNER,
        "Yes, Friday works.",
        relayed_id,
    ))
    .await;
    let texts = wait_for_texts(&h, 70, 3, "the owner's reply").await;
    assert_eq!(texts[2], "Yes, Friday works.");
    // A reply to the notification reaches the lead too.
    bot.post_update(&reply_update(
        30_005,
        OWNER,
        OWNER,
        "I'll call you.",
        notification_id,
    ))
    .await;
    let texts = wait_for_texts(&h, 70, 4, "the second reply").await;
    assert_eq!(texts[3], "I'll call you.");

    // A second trigger adds to the open handoff: no second notification.
    bot.post_update(&text_update(30_006, 70, "/human")).await;
    let texts = wait_for_texts(&h, 70, 5, "the note on the second /human").await;
    assert!(
        texts[4].contains("already has your message"),
        "{}",
        texts[4]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(notifications(&h).len(), 1);

    // /leads: taken by the owner who answered.
    bot.post_update(&owner_update(30_007, OWNER, OWNER, "/leads"))
        .await;
    eventually(WAIT, "/leads", || {
        h.telegram
            .sent_texts(OWNER)
            .iter()
            .any(|t| t.contains("Leads with a person"))
    })
    .await;
    let leads = h.telegram.sent_texts(OWNER).last().unwrap().clone();
    assert!(
        leads.contains("Lead (@lead) — taken by Owner (@owner)"),
        "{leads}"
    );

    // Resolve: the lead is told, and the bot answers again, seeing the owner's words.
    let resolve = buttons
        .iter()
        .find(|(l, _)| l == "Resolve")
        .unwrap()
        .1
        .clone();
    bot.post_update(&owner_button(30_008, OWNER, OWNER, &resolve))
        .await;
    let texts = wait_for_texts(&h, 70, 6, "the resume note").await;
    assert_eq!(texts[5], RESUMED);
    bot.post_update(&text_update(30_009, 70, "Great, thanks"))
        .await;
    let texts = wait_for_texts(&h, 70, 7, "the bot's answer again").await;
    assert_eq!(texts[6], "reply: Great, thanks");
    let asked = h.llm.requests().last().unwrap().clone();
    let said: Vec<(String, String)> = asked["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().into(), m["content"].to_string()))
        .collect();
    assert!(
        said.iter()
            .any(|(role, text)| role == "assistant" && text.contains("Yes, Friday works.")),
        "{said:?}"
    );
    let stored = history(&h, 70).await;
    assert!(stored.contains(&(
        "assistant".into(),
        "chat".into(),
        "Yes, Friday works.".into()
    )));
    bot.post_update(&owner_update(30_010, OWNER, OWNER, "/stats"))
        .await;
    eventually(WAIT, "/stats", || {
        h.telegram
            .sent_texts(OWNER)
            .iter()
            .any(|t| t.contains("Handoffs to a person"))
    })
    .await;
    let stats = h.telegram.sent_texts(OWNER).last().unwrap().clone();
    assert!(stats.contains("Open now: 0\nOpened in 24 h: 1"), "{stats}");
    let metrics = bot
        .metrics_with(&["botfleet_handoffs_total{reason=\"command\"} 1"])
        .await;
    assert!(
        metrics.contains("botfleet_handoffs_total{reason=\"command\"} 1"),
        "{metrics}"
    );
}
for_each_db!(human_command_relays_both_ways_and_resolve_hands_back);

async fn the_button_and_the_anthropic_tool_call_hand_over(db: TestDb) {
    let h = harness(db, "  enabled: true\n").await;
    let bot = h.start().await;

    // The welcome offers a person; pressing it hands over.
    bot.post_update(&text_update(31_001, 71, "/start")).await;
    wait_for_texts(&h, 71, 1, "the welcome").await;
    assert_eq!(
        h.telegram.sent_buttons(71)[0],
        [("Talk to a person".to_string(), "/human button".to_string())]
    );
    let welcome = h.telegram.calls("sendMessage.ok")[0].body.clone();
    bot.post_update(&button_press(31_002, 71, "/human button", Some(&welcome)))
        .await;
    let texts = wait_for_texts(&h, 71, 2, "the handoff note").await;
    assert_eq!(texts[1], HANDED_OVER);
    eventually(WAIT, "the notification", || notifications(&h).len() == 1).await;
    assert!(
        notifications(&h)[0]
            .1
            .contains("pressed “Talk to a person”")
    );

    // Plain words: the LLM (streamed) calls the tool; the lead sees the note, never a draft
    // of the call.
    h.llm.script([
        Scripted::tool_use("handoff_to_human", "wants 30% off 500 units"),
        Scripted::text("Asks for a big discount on a bulk order."),
    ]);
    bot.post_update(&text_update(31_003, 72, "Can I get 30% off if I buy 500?"))
        .await;
    let texts = wait_for_texts(&h, 72, 1, "the handoff note").await;
    assert_eq!(texts, [HANDED_OVER]);
    assert!(
        h.telegram.drafts(72).is_empty(),
        "{:?}",
        h.telegram.drafts(72)
    );
    let asked = &h.llm.requests()[0];
    assert_eq!(asked["stream"], true);
    assert_eq!(asked["tools"][0]["name"], "handoff_to_human");
    eventually(WAIT, "the second notification", || {
        notifications(&h).len() == 2
    })
    .await;
    let note = notifications(&h)[1].1.clone();
    assert!(note.contains("wants 30% off 500 units"), "{note}");
    assert!(
        note.contains("Asks for a big discount on a bulk order."),
        "{note}"
    );
    assert_eq!(ledger_types(&h).await, ["chat", "summary"]);
    let metrics = bot
        .metrics_with(&[
            "botfleet_handoffs_total{reason=\"button\"} 1",
            "botfleet_handoffs_total{reason=\"llm\"} 1",
        ])
        .await;
    assert!(
        metrics.contains("botfleet_handoffs_total{reason=\"llm\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("botfleet_handoffs_total{reason=\"button\"} 1"),
        "{metrics}"
    );
}
for_each_db!(the_button_and_the_anthropic_tool_call_hand_over);

/// Points the harness's config at the fake's OpenAI endpoint.
fn use_openai(h: &Harness, streaming: bool) {
    let config = std::fs::read_to_string(&h.config_path).unwrap();
    let config = config
        .replace("provider: anthropic", "provider: openai")
        .replace(
            &format!("baseUrl: {}", h.llm.url),
            &format!("baseUrl: {}/v1\n  streaming: {streaming}", h.llm.url),
        );
    std::fs::write(&h.config_path, config).unwrap();
}

async fn openai_tool_call_hands_over(db: TestDb, streaming: bool) {
    let h = harness(db, "  enabled: true\n").await;
    use_openai(&h, streaming);
    let bot = h.start().await;
    h.llm.script([
        Scripted::openai_tool_call("handoff_to_human", "angry about a late order"),
        Scripted::openai_text("Third late order; upset."),
    ]);
    bot.post_update(&text_update(
        32_001,
        73,
        "This is the third time my order is late!",
    ))
    .await;
    let texts = wait_for_texts(&h, 73, 1, "the handoff note").await;
    assert_eq!(texts, [HANDED_OVER]);
    let asked = &h.llm.requests()[0];
    assert_eq!(asked["tools"][0]["function"]["name"], "handoff_to_human");
    assert_eq!(asked["stream"] == true, streaming);
    eventually(WAIT, "the notification", || notifications(&h).len() == 1).await;
    let note = notifications(&h)[0].1.clone();
    assert!(note.contains("angry about a late order"), "{note}");
    assert!(note.contains("Third late order; upset."), "{note}");

    // Handed over: the next message goes to the owner only.
    bot.post_update(&text_update(32_002, 73, "Hello??")).await;
    eventually(WAIT, "the relayed message", || {
        h.telegram.sent_texts(OWNER).len() >= 2
    })
    .await;
    assert_eq!(h.llm.requests().len(), 2);
}

async fn the_openai_tool_call_hands_over(db: TestDb) {
    openai_tool_call_hands_over(db, false).await;
}
for_each_db!(the_openai_tool_call_hands_over);

async fn the_streamed_openai_tool_call_hands_over(db: TestDb) {
    openai_tool_call_hands_over(db, true).await;
}
for_each_db!(the_streamed_openai_tool_call_hands_over);

async fn an_llm_that_fails_for_good_hands_over(db: TestDb) {
    let h = harness(db, "  triggers: [llmFailure]\n").await;
    let bot = h.start().await;
    // maxRetries 2: three failed attempts; then the summary call works.
    h.llm.script([
        Scripted::status(500),
        Scripted::status(500),
        Scripted::status(500),
    ]);
    bot.post_update(&text_update(33_001, 74, "Hello, anyone there?"))
        .await;
    let texts = wait_for_texts(&h, 74, 1, "the handoff note").await;
    assert_eq!(texts, [HANDED_OVER]);
    eventually(WAIT, "the notification", || notifications(&h).len() == 1).await;
    let note = notifications(&h)[0].1.clone();
    assert!(
        note.contains("could not reach its language model"),
        "{note}"
    );
    assert!(
        note.contains("<b>Summary:</b> reply: The conversation so far"),
        "{note}"
    );
    assert_eq!(
        ledger_types(&h).await,
        ["chat", "chat", "chat", "summary"],
        "every attempt and the summary are in the ledger"
    );
    // /human is not a trigger here.
    bot.post_update(&text_update(33_002, 75, "/human")).await;
    let texts = wait_for_texts(&h, 75, 1, "the answer to /human").await;
    assert!(texts[0].contains("no one to pass you to"), "{}", texts[0]);
}
for_each_db!(an_llm_that_fails_for_good_hands_over);

async fn a_failed_notification_is_retried_and_a_restart_keeps_the_handoff(db: TestDb) {
    let h = harness(db, "  enabled: true\n").await;
    let mut bot = h.start().await;
    // The notification's first send fails (teloxide then pauses 10 s): it is retried until
    // delivered, and the lead's note does not wait for it.
    h.telegram.fail_next_sends_to(OWNER, [Failure::ServerError]);
    bot.post_update(&text_update(34_001, 76, "/human")).await;
    let texts = wait_for_texts(&h, 76, 1, "the handoff note").await;
    assert_eq!(texts, [HANDED_OVER]);
    eventually(
        Duration::from_secs(30),
        "the notification, on a retry",
        || notifications(&h).len() == 1,
    )
    .await;
    assert!(
        notifications(&h)[0].1.contains("No summary"),
        "no history to summarise"
    );
    let metrics = bot
        .metrics_with(&["botfleet_handoff_notify_failures_total 1"])
        .await;
    assert!(
        metrics.contains("botfleet_handoff_notify_failures_total 1"),
        "{metrics}"
    );

    // Restart: the handoff is still open, the relayed messages still routable.
    bot.kill();
    let bot = h.start().await;
    bot.post_update(&text_update(34_002, 76, "Still there?"))
        .await;
    eventually(WAIT, "the relayed message", || {
        h.telegram
            .sent_texts(OWNER)
            .iter()
            .any(|t| t.contains("Still there?"))
    })
    .await;
    let (relayed_id, _) = h
        .telegram
        .sent_with_ids(OWNER)
        .into_iter()
        .find(|(_, t)| t.contains("Still there?"))
        .unwrap();
    bot.post_update(&reply_update(
        34_003,
        OWNER,
        OWNER,
        "Yes, one minute.",
        relayed_id,
    ))
    .await;
    let texts = wait_for_texts(&h, 76, 2, "the owner's reply").await;
    assert_eq!(texts[1], "Yes, one minute.");
    assert!(h.llm.requests().is_empty(), "no LLM call while handed over");
    let open = bot.metrics_with(&["botfleet_handoffs_open 1"]).await;
    assert!(open.contains("botfleet_handoffs_open 1"), "{open}");
}
for_each_db!(a_failed_notification_is_retried_and_a_restart_keeps_the_handoff);

async fn silence_hands_the_lead_back(db: TestDb) {
    let h = harness(db, "  autoResumeAfter: 3s\n").await;
    let bot = h.start().await;
    bot.post_update(&text_update(34_101, 80, "/human")).await;
    wait_for_texts(&h, 80, 1, "the handoff note").await;
    eventually(WAIT, "the notification", || notifications(&h).len() == 1).await;
    let waiting = bot.metrics_with(&["botfleet_handoffs_open 1"]).await;
    assert!(waiting.contains("botfleet_handoffs_open 1"), "{waiting}");
    // No follow-ups while handed over, and after 3 s of silence the bot is back.
    let texts = wait_for_texts(&h, 80, 2, "the resume note").await;
    assert_eq!(texts[1], RESUMED);
    bot.post_update(&text_update(34_102, 80, "ok")).await;
    let texts = wait_for_texts(&h, 80, 3, "the bot's answer").await;
    assert_eq!(texts[2], "reply: ok");
    let closed: Vec<String> =
        sqlx::query_scalar("SELECT close_reason FROM handoffs WHERE chat_id = 80")
            .fetch_all(&connect(&h).await.pool)
            .await
            .unwrap();
    assert_eq!(closed, ["auto"]);
    let open = bot.metrics_with(&["botfleet_handoffs_open 0"]).await;
    assert!(open.contains("botfleet_handoffs_open 0"), "{open}");
}
for_each_db!(silence_hands_the_lead_back);

async fn takeover_and_resolve_by_command(db: TestDb) {
    let h = harness(db, "  enabled: true\n").await;
    let bot = h.start().await;
    bot.post_update(&text_update(35_001, 77, "Hi")).await;
    wait_for_texts(&h, 77, 1, "the bot's answer").await;
    h.llm.script([Scripted::text("Said hi.")]);
    bot.post_update(&owner_update(35_002, OWNER, OWNER, "/takeover @lead"))
        .await;
    eventually(WAIT, "the takeover confirmation and notification", || {
        let texts = h.telegram.sent_texts(OWNER);
        texts
            .iter()
            .any(|t| t.starts_with("You have Lead (@lead) now"))
            && !notifications(&h).is_empty()
    })
    .await;
    assert!(notifications(&h)[0].1.contains("Taken by Owner (@owner)"));
    bot.post_update(&text_update(35_003, 77, "Hello?")).await;
    eventually(WAIT, "relayed to the taker", || {
        h.telegram
            .sent_texts(OWNER)
            .iter()
            .any(|t| t.contains("Hello?"))
    })
    .await;
    // /resolve as a reply to the relayed message.
    let (relayed_id, _) = h
        .telegram
        .sent_with_ids(OWNER)
        .into_iter()
        .find(|(_, t)| t.contains("Hello?"))
        .unwrap();
    bot.post_update(&reply_update(35_004, OWNER, OWNER, "/resolve", relayed_id))
        .await;
    let texts = wait_for_texts(&h, 77, 2, "the resume note").await;
    assert_eq!(texts[1], RESUMED);
    // A lead who is not a handoff owner cannot use the owner commands.
    bot.post_update(&text_update(35_005, 78, "/takeover @lead"))
        .await;
    let texts = wait_for_texts(&h, 78, 1, "the refusal").await;
    assert!(
        texts[0].contains("only for the bot's owners"),
        "{}",
        texts[0]
    );
}
for_each_db!(takeover_and_resolve_by_command);

/// Two bot processes on one PostgreSQL: the owner's reply and button land on the other one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_handoff() {
    let Some(db) = support::db::postgres().await else {
        return;
    };
    let h = harness(db, "  enabled: true\n").await;
    let a = h.start().await;
    let b = h.start().await;
    a.post_update(&text_update(36_001, 79, "/human")).await;
    wait_for_texts(&h, 79, 1, "the handoff note").await;
    eventually(WAIT, "the notification", || notifications(&h).len() == 1).await;
    let (notification_id, _) = notifications(&h)[0].clone();
    b.post_update(&reply_update(
        36_002,
        OWNER,
        OWNER,
        "Hi, I'm Olga.",
        notification_id,
    ))
    .await;
    let texts = wait_for_texts(&h, 79, 2, "the owner's reply via the other replica").await;
    assert_eq!(texts[1], "Hi, I'm Olga.");
    // The lead writes to replica B: relayed, no LLM.
    b.post_update(&text_update(36_003, 79, "Hi Olga")).await;
    eventually(WAIT, "the relayed message", || {
        h.telegram
            .sent_texts(OWNER)
            .iter()
            .any(|t| t.contains("Hi Olga"))
    })
    .await;
    assert!(h.llm.requests().is_empty());
    // Back to bot, pressed on replica A.
    let data = h.telegram.sent_buttons(OWNER)[0][2].1.clone();
    assert!(data.starts_with("handoff:back:"), "{data}");
    a.post_update(&owner_button(36_004, OWNER, OWNER, &data))
        .await;
    let texts = wait_for_texts(&h, 79, 3, "the resume note").await;
    assert_eq!(texts[2], RESUMED);
    b.post_update(&text_update(36_005, 79, "question")).await;
    let texts = wait_for_texts(&h, 79, 4, "the bot's answer").await;
    assert_eq!(texts[3], "reply: question");
}

async fn unanswered_messages_hand_over_even_without_a_summary(db: TestDb) {
    let h = harness(db, "  triggers: [unanswered]\n  unansweredLimit: 2\n").await;
    let bot = h.start().await;
    // Every call fails: two apologies' worth, then the summary (3 attempts each).
    h.llm.script((0..9).map(|_| Scripted::status(500)));
    bot.post_update(&text_update(37_001, 81, "Hello?")).await;
    let texts = wait_for_texts(&h, 81, 1, "the apology").await;
    assert!(
        texts[0].starts_with("Sorry, I can't answer right now"),
        "{}",
        texts[0]
    );
    assert!(notifications(&h).is_empty());
    bot.post_update(&text_update(37_002, 81, "Hello??")).await;
    let texts = wait_for_texts(&h, 81, 2, "the handoff note").await;
    assert_eq!(texts[1], HANDED_OVER);
    eventually(WAIT, "the notification", || notifications(&h).len() == 1).await;
    let note = notifications(&h)[0].1.clone();
    assert!(
        note.contains("could not answer several messages in a row"),
        "{note}"
    );
    assert!(note.contains("No summary"), "{note}");
    let types = ledger_types(&h).await;
    assert_eq!(
        types.iter().filter(|t| *t == "summary").count(),
        3,
        "{types:?}"
    );
    let metrics = bot
        .metrics_with(&["botfleet_handoffs_total{reason=\"unanswered\"} 1"])
        .await;
    assert!(
        metrics.contains("botfleet_handoffs_total{reason=\"unanswered\"} 1"),
        "{metrics}"
    );
}
for_each_db!(unanswered_messages_hand_over_even_without_a_summary);

async fn a_group_of_operators_answers_the_lead(db: TestDb) {
    const GROUP: i64 = -100_500;
    let h = harness(db, &format!("  notify: {{chatId: {GROUP}}}\n")).await;
    let bot = h.start().await;
    bot.post_update(&text_update(38_001, 82, "/human")).await;
    wait_for_texts(&h, 82, 1, "the handoff note").await;
    eventually(WAIT, "the notification in the group", || {
        !h.telegram.sent_texts(GROUP).is_empty()
    })
    .await;
    assert!(
        h.telegram.sent_texts(OWNER).is_empty(),
        "notify.chatId replaces the owners"
    );
    let (notification_id, note) = h.telegram.sent_with_ids(GROUP)[0].clone();
    assert!(note.contains("A lead needs a person"), "{note}");

    // Chatter in the group is not for the LLM; an operator's reply (not an owner) is for the lead.
    bot.post_update(&owner_update(38_002, GROUP, 555, "who takes this one?"))
        .await;
    bot.post_update(&reply_update(
        38_003,
        GROUP,
        555,
        "Hello, Max here.",
        notification_id,
    ))
    .await;
    let texts = wait_for_texts(&h, 82, 2, "the operator's reply").await;
    assert_eq!(texts[1], "Hello, Max here.");
    assert!(h.llm.requests().is_empty());
    // Operators use the handoff commands in their group.
    bot.post_update(&owner_update(38_004, GROUP, 555, "/leads"))
        .await;
    eventually(WAIT, "/leads in the group", || {
        h.telegram
            .sent_texts(GROUP)
            .iter()
            .any(|t| t.contains("taken by Owner (@owner)"))
    })
    .await;
    assert_eq!(
        h.telegram.sent_texts(GROUP).len(),
        2,
        "no answer to chatter"
    );
}
for_each_db!(a_group_of_operators_answers_the_lead);

async fn the_plain_anthropic_tool_call_hands_over(db: TestDb) {
    let h = Harness::new(
        db,
        BotConfigOptions {
            llm_yaml: "  streaming: false\n".into(),
            ..options("  triggers: [llm]\n")
        },
    )
    .await;
    let bot = h.start().await;
    h.llm.script([
        Scripted::tool_use("handoff_to_human", "asks for a human"),
        Scripted::text("Wants to talk to someone."),
    ]);
    bot.post_update(&text_update(39_001, 83, "Can I talk to a real person?"))
        .await;
    let texts = wait_for_texts(&h, 83, 1, "the handoff note").await;
    assert_eq!(texts, [HANDED_OVER]);
    let asked = &h.llm.requests()[0];
    assert_eq!(asked.get("stream"), None);
    assert_eq!(asked["tools"][0]["input_schema"]["required"][0], "reason");
    eventually(WAIT, "the notification", || notifications(&h).len() == 1).await;
    let note = notifications(&h)[0].1.clone();
    assert!(note.contains("asks for a human"), "{note}");
    assert!(note.contains("Wants to talk to someone."), "{note}");
    // Only the llm trigger: /human is not offered.
    bot.post_update(&text_update(39_002, 84, "/human")).await;
    let texts = wait_for_texts(&h, 84, 1, "the answer to /human").await;
    assert!(texts[0].contains("no one to pass you to"), "{}", texts[0]);
}
for_each_db!(the_plain_anthropic_tool_call_hands_over);
