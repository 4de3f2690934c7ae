//! Broadcasts end to end: the real binary (with PostgreSQL, `serve` and the `scheduler`
//! process that sends broadcasts, as deployed), the fake Telegram recording every call and
//! when it arrived, on both databases.

mod support;

use support::fake_telegram::most_in_any_window;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fake_telegram::{Failure, button_press, text_update};
use support::{BotConfigOptions, BotProcess, Harness, TestDb, eventually};

const OWNER: i64 = 1;
const OPT_OUT: &str = "Send /stop to get no more announcements.";
const POD: &str = "e2e-scheduler-7c9d-xyz12";

/// The bot: on SQLite `serve` sends broadcasts itself; on PostgreSQL the `scheduler` does,
/// and the two processes share Telegram's rate (`BOTFLEET_TELEGRAM_SENDERS=2`, as the
/// operator renders it).
struct Bot {
    h: Harness,
    serve: BotProcess,
    scheduler: Option<BotProcess>,
    next_update: i64,
}

impl Bot {
    async fn start(db: TestDb) -> Self {
        let postgres = db.url.starts_with("postgres");
        let mut h = Harness::new(
            db,
            BotConfigOptions {
                llm_yaml: "  streaming: false\n".into(),
                extra_yaml: format!(
                    "owners: [{OWNER}]\nbroadcast:\n  optOutLine: \"{OPT_OUT}\"\n  maxAttempts: 3\n"
                ),
                ..Default::default()
            },
        )
        .await
        .env("BOTFLEET_WORKERS", "8");
        if postgres {
            h = h.env("BOTFLEET_TELEGRAM_SENDERS", "2").env("POD_NAME", POD);
        }
        let serve = h.start().await;
        let scheduler = postgres.then(|| h.spawn("scheduler"));
        Self {
            h,
            serve,
            scheduler,
            next_update: 1,
        }
    }

    /// The process that sends broadcasts.
    fn sender(&mut self) -> &mut BotProcess {
        self.scheduler.as_mut().unwrap_or(&mut self.serve)
    }

    /// SIGKILL of the sending process, then the same process again.
    async fn crash_and_restart_sender(&mut self) {
        self.sender().kill();
        match &mut self.scheduler {
            Some(scheduler) => *scheduler = self.h.spawn("scheduler"),
            None => self.serve = self.h.start().await,
        }
    }

    async fn post(&mut self, update: impl FnOnce(i64) -> Value) {
        let id = self.next_update;
        self.next_update += 1;
        assert_eq!(self.serve.post_update(&update(id)).await, 200);
    }

    async fn owner_says(&mut self, text: &str) {
        let text = text.to_owned();
        self.post(|id| text_update(id, OWNER, &text)).await;
    }

    fn owner_texts(&self) -> Vec<String> {
        self.h.telegram.sent_texts(OWNER)
    }

    /// Waits for the owner's next message containing `needle` (after `seen` messages).
    async fn owner_reply(&self, seen: usize, needle: &str) -> String {
        let wait = format!("an owner message with {needle:?}");
        eventually(Duration::from_secs(20), &wait, || {
            self.owner_texts()[seen.min(self.owner_texts().len())..]
                .iter()
                .any(|t| t.contains(needle))
        })
        .await;
        self.owner_texts()[seen..]
            .iter()
            .find(|t| t.contains(needle))
            .unwrap()
            .clone()
    }

    /// `/broadcast <args>`, the message (bold text and a link button), the preview; returns the
    /// broadcast's id and the Confirm button's message, not yet pressed.
    async fn compose(&mut self, args: &str) -> (i64, Value) {
        let seen = self.owner_texts().len();
        self.owner_says(&format!("/broadcast {args}")).await;
        let opened = self.owner_reply(seen, "Send me the message").await;
        assert!(opened.contains("Broadcast #"), "{opened}");
        let text = "Big news: 20% off today!\n[Shop now](https://shop.example.com/sale)";
        self.post(|id| {
            json!({"update_id": id, "message": {
                "message_id": id, "date": 1_700_000_000,
                "chat": {"id": OWNER, "type": "private", "first_name": "Owner"},
                "from": {"id": OWNER, "is_bot": false, "first_name": "Owner"},
                "text": text,
                "entities": [{"type": "bold", "offset": 0, "length": 8}],
            }})
        })
        .await;
        self.owner_reply(seen, "Send it?").await;
        let prompt = self
            .h
            .telegram
            .calls("sendMessage.ok")
            .into_iter()
            .rev()
            .find(|c| {
                c.body["chat_id"] == OWNER && c.body["text"].as_str().unwrap().contains("Send it?")
            })
            .unwrap();
        let data = prompt.body["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
            .as_str()
            .unwrap()
            .to_owned();
        let id: i64 = data.rsplit(':').next().unwrap().parse().unwrap();
        (id, prompt.body)
    }

    async fn press(&mut self, data: &str, message: &Value) {
        let (data, message) = (data.to_owned(), message.clone());
        self.post(|id| button_press(id, OWNER, &data, Some(&message)))
            .await;
    }

    /// Broadcast messages leads received (every accepted sendMessage to a lead chat).
    fn lead_messages(&self, leads: &std::ops::RangeInclusive<i64>) -> Vec<(i64, String, Instant)> {
        self.h
            .telegram
            .calls("sendMessage.ok")
            .into_iter()
            .filter_map(|c| {
                let chat = c.body["chat_id"].as_i64()?;
                leads.contains(&chat).then(|| {
                    (
                        chat,
                        c.body["text"].as_str().unwrap_or_default().to_owned(),
                        c.at,
                    )
                })
            })
            .collect()
    }

    fn edits(&self) -> Vec<(String, Instant)> {
        self.h
            .telegram
            .calls("editMessageText.ok")
            .into_iter()
            .map(|c| (c.body["text"].as_str().unwrap_or_default().to_owned(), c.at))
            .collect()
    }
}

/// `count` leads with chat ids from `first`, all opted in, written as the bot would.
async fn seed_leads(db: &TestDb, first: i64, count: i64) -> std::ops::RangeInclusive<i64> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut tx = db.db.pool.begin().await.unwrap();
    for chat in first..first + count {
        sqlx::query(
            "INSERT INTO leads (chat_id, user_id, first_name, first_seen_at, last_inbound_at) VALUES ($1, $1, 'Lead', $2, $2)",
        )
        .bind(chat)
        .bind(now - (chat - first) * 1000)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    first..=first + count - 1
}

async fn a_broadcast_reaches_every_lead_once_across_a_crash(db: TestDb) {
    let leads = seed_leads(&db, 10_001, 1000).await;
    let mut bot = Bot::start(db).await;
    let (id, prompt) = bot.compose("").await;

    // The preview is the message as leads get it; the prompt counts the audience.
    let preview = bot
        .h
        .telegram
        .calls("sendMessage.ok")
        .into_iter()
        .filter(|c| c.body["chat_id"] == OWNER)
        .find(|c| {
            c.body["text"]
                .as_str()
                .unwrap()
                .starts_with("<b>Big news</b>")
        })
        .expect("a preview");
    assert_eq!(
        preview.body["text"],
        format!("<b>Big news</b>: 20% off today!\n\n{OPT_OUT}")
    );
    assert_eq!(preview.body["parse_mode"], "HTML");
    assert_eq!(
        preview.body["reply_markup"]["inline_keyboard"][0][0],
        json!({"text": "Shop now", "url": "https://shop.example.com/sale"})
    );
    assert!(
        prompt["text"]
            .as_str()
            .unwrap()
            .contains("<b>1000</b> leads"),
        "{}",
        prompt["text"]
    );
    // Nothing goes out before Confirm.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(bot.lead_messages(&leads).is_empty());

    bot.press(&format!("bcast:go:{id}"), &prompt).await;
    let start = Instant::now();
    eventually(
        Duration::from_secs(30),
        "the first broadcast messages",
        || bot.lead_messages(&leads).len() >= 60,
    )
    .await;

    // Leads who write meanwhile are answered at once, not after the queued broadcast.
    let mut waits = vec![];
    for chat in 50_001..=50_003 {
        let posted = Instant::now();
        bot.post(|id| text_update(id, chat, "is the shop open?"))
            .await;
        eventually(
            Duration::from_secs(30),
            "a reply during the broadcast",
            || !bot.h.telegram.sent_texts(chat).is_empty(),
        )
        .await;
        let answered = bot
            .h
            .telegram
            .calls("sendMessage.ok")
            .into_iter()
            .find(|c| c.body["chat_id"] == chat)
            .unwrap()
            .at;
        waits.push(answered.duration_since(posted));
    }
    let during = bot.lead_messages(&leads).len();
    println!("replies during the broadcast (after {during} of 1000) took {waits:?}");
    assert!(during < 900, "the broadcast was nearly over: {during}");
    for wait in &waits {
        // The queue ahead of them is hundreds of messages (tens of seconds); one slot is 33 ms.
        assert!(*wait < Duration::from_secs(2), "a reply waited {wait:?}");
    }

    // Halfway, Telegram's flood control: a 429 pauses the sender, which is then SIGKILLed
    // while paused (no send in flight: the one exception, a send accepted but not yet
    // recorded, would be sent again).
    eventually(Duration::from_secs(180), "half the broadcast", || {
        bot.lead_messages(&leads).len() >= 500
    })
    .await;
    bot.h.telegram.fail_next_sends([Failure::RetryAfter(30)]);
    let flood = {
        let h = &bot.h;
        eventually(Duration::from_secs(10), "the 429", || {
            h.telegram.calls("sendMessage").len() > h.telegram.calls("sendMessage.ok").len()
        })
        .await;
        // Nothing is sent after it: the last call is the refused one.
        h.telegram.calls("sendMessage").last().unwrap().at
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_flood = bot
        .h
        .telegram
        .send_times()
        .into_iter()
        .filter(|t| *t > flood + Duration::from_millis(200))
        .count();
    assert_eq!(after_flood, 0, "sends went on during the retry_after pause");
    let before_crash = bot.lead_messages(&leads);
    println!("{} of 1000 sent before the SIGKILL", before_crash.len());
    bot.crash_and_restart_sender().await;

    let h = &bot.h;
    eventually(Duration::from_secs(300), "every lead's message", || {
        h.telegram
            .calls("sendMessage.ok")
            .iter()
            .filter(|c| {
                c.body["chat_id"]
                    .as_i64()
                    .is_some_and(|chat| leads.contains(&chat))
            })
            .count()
            >= 1000
    })
    .await;
    let took = start.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = bot.lead_messages(&leads);
    let mut per_lead = std::collections::HashMap::new();
    for (chat, text, _) in &received {
        *per_lead.entry(*chat).or_insert(0) += 1;
        assert_eq!(
            text,
            &format!("<b>Big news</b>: 20% off today!\n\n{OPT_OUT}")
        );
    }
    let twice: Vec<_> = per_lead.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "leads who got it twice: {twice:?}");
    assert_eq!(per_lead.len(), 1000);
    println!(
        "1000 recipients in {took:.1?} (with a 3 s flood-control pause, a SIGKILL and a restart)"
    );

    // Never above Telegram's rate (with the same jitter tolerance as e2e_outbound), replies
    // and progress included.
    let times = bot.h.telegram.send_times();
    let most = most_in_any_window(&times, Duration::from_secs(1));
    let before: Vec<Instant> = before_crash.iter().map(|(_, _, at)| *at).collect();
    let span = before
        .last()
        .unwrap()
        .duration_since(before[0])
        .as_secs_f64();
    let rate = (before.len() - 1) as f64 / span;
    println!("at most {most} sendMessage calls in any second; {rate:.1}/s before the crash");
    assert!(most <= 33, "{most} sendMessage calls within one second");
    assert!(rate <= 30.5, "{rate:.1} messages/s");

    // One progress message, edited in place every few seconds, ending with the report.
    eventually(Duration::from_secs(20), "the final report", || {
        bot.edits()
            .last()
            .is_some_and(|(t, _)| t.contains("done in"))
    })
    .await;
    let edits = bot.edits();
    let (report, _) = edits.last().unwrap();
    assert!(report.contains("Sent: <b>1000</b>"), "{report}");
    assert!(
        report.contains("Failed: 0") && report.contains("Blocked (opted out): 0"),
        "{report}"
    );
    let progress: Vec<_> = edits
        .iter()
        .filter(|(t, _)| t.contains("— sending"))
        .collect();
    assert!(progress.len() >= 5, "{} progress edits", progress.len());
    assert!(
        progress.iter().any(|(t, _)| t.contains("left")),
        "no time left shown"
    );
    for pair in progress.windows(2) {
        let gap = pair[1].1.duration_since(pair[0].1);
        assert!(gap >= Duration::from_millis(2500), "edits {gap:?} apart");
    }
    let messages: std::collections::HashSet<_> = bot
        .h
        .telegram
        .calls("editMessageText.ok")
        .iter()
        .map(|c| c.body["message_id"].clone())
        .collect();
    assert_eq!(messages.len(), 1, "one progress message");

    // /broadcasts lists it with its counts.
    let seen = bot.owner_texts().len();
    bot.owner_says("/broadcasts").await;
    let list = bot.owner_reply(seen, "Recent broadcasts").await;
    assert!(list.contains(&format!("#{id} finished")), "{list}");
    assert!(
        list.contains("sent 1000, failed 0, blocked 0, remaining 0"),
        "{list}"
    );

    if bot.scheduler.is_none() {
        let metrics = bot
            .serve
            .metrics_with(&["botfleet_broadcasts_running 0"])
            .await;
        assert!(
            metrics.contains("botfleet_broadcast_messages_total{outcome=\"sent\"}"),
            "{metrics}"
        );
        assert!(
            metrics.contains("botfleet_broadcasts_running 0"),
            "{metrics}"
        );
    }
}
for_each_db!(a_broadcast_reaches_every_lead_once_across_a_crash);

async fn blocked_leads_are_opted_out_and_failures_retried(db: TestDb) {
    let leads = seed_leads(&db, 20_001, 30).await;
    let mut bot = Bot::start(db).await;
    // One lead opted out before: not in the audience.
    bot.post(|id| text_update(id, 20_010, "/stop")).await;
    eventually(Duration::from_secs(20), "the /stop answer", || {
        !bot.h.telegram.sent_texts(20_010).is_empty()
    })
    .await;
    let (id, prompt) = bot.compose("").await;
    assert!(
        prompt["text"].as_str().unwrap().contains("<b>29</b> leads"),
        "{}",
        prompt["text"]
    );
    bot.h.telegram.block_chats([20_003, 20_007]);
    // The first broadcast message meets a server error: retried with backoff, then sent.
    bot.h
        .telegram
        .fail_next_sends_to(20_001, [Failure::ServerError]);
    bot.press(&format!("bcast:go:{id}"), &prompt).await;
    eventually(Duration::from_secs(60), "the final report", || {
        bot.edits()
            .last()
            .is_some_and(|(t, _)| t.contains("done in"))
    })
    .await;
    let (report, _) = bot.edits().last().unwrap().clone();
    assert!(report.contains("Sent: <b>27</b>"), "{report}");
    assert!(report.contains("Blocked (opted out): 2"), "{report}");
    assert!(report.contains("Failed: 0"), "{report}");
    let received = bot.lead_messages(&leads);
    assert_eq!(
        received.len() - 1,
        27,
        "27 broadcast messages and the /stop answer"
    );
    assert_eq!(
        bot.h.telegram.sent_texts(20_001).len(),
        1,
        "retried until sent, once"
    );
    assert_eq!(
        bot.h.telegram.sent_texts(20_010).len(),
        1,
        "only the /stop answer"
    );

    let db = &bot.h.db.db;
    for chat in [20_003_i64, 20_007] {
        let status: String = sqlx::query_scalar("SELECT status FROM leads WHERE chat_id = $1")
            .bind(chat)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(status, "opted_out", "lead {chat}");
    }
    let (attempts, status): (i64, String) = sqlx::query_as(
        "SELECT CAST(attempts AS BIGINT), status FROM broadcast_recipients WHERE broadcast_id = $1 AND chat_id = 20001",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((attempts, status.as_str()), (2, "sent"));
    let reason: Option<String> = sqlx::query_scalar(
        "SELECT last_error FROM broadcast_recipients WHERE broadcast_id = $1 AND chat_id = 20003",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(reason.as_deref(), Some("the user blocked the bot"));
}
for_each_db!(blocked_leads_are_opted_out_and_failures_retried);

async fn cancel_stops_a_running_broadcast(db: TestDb) {
    let leads = seed_leads(&db, 30_001, 400).await;
    let mut bot = Bot::start(db).await;
    let (id, prompt) = bot.compose("").await;
    bot.press(&format!("bcast:go:{id}"), &prompt).await;
    eventually(Duration::from_secs(30), "the broadcast under way", || {
        bot.lead_messages(&leads).len() >= 40
    })
    .await;
    // The Cancel button under the progress message.
    let progress = bot
        .h
        .telegram
        .calls("sendMessage.ok")
        .into_iter()
        .find(|c| {
            c.body["chat_id"] == OWNER && c.body["text"].as_str().unwrap().contains("— sending")
        });
    let progress = progress.expect("a progress message").body;
    assert_eq!(
        progress["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        format!("bcast:no:{id}")
    );
    let seen = bot.owner_texts().len();
    bot.press(&format!("bcast:no:{id}"), &progress).await;
    bot.owner_reply(seen, "is cancelled").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped_at = bot.lead_messages(&leads).len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = bot.lead_messages(&leads).len();
    println!("cancelled after {stopped_at} of 400");
    assert_eq!(later, stopped_at, "messages went out after the cancel");
    assert!(later < 300, "{later}");
    eventually(Duration::from_secs(10), "the cancelled report", || {
        bot.edits()
            .last()
            .is_some_and(|(t, _)| t.contains("cancelled"))
    })
    .await;
    let (report, _) = bot.edits().last().unwrap().clone();
    assert!(
        report.contains(&format!("Not sent: {}", 400 - later)),
        "{report}"
    );
    // Nothing left to cancel.
    let seen = bot.owner_texts().len();
    bot.owner_says(&format!("/broadcast_cancel {id}")).await;
    bot.owner_reply(seen, "nothing to cancel").await;
}
for_each_db!(cancel_stops_a_running_broadcast);

async fn a_scheduled_broadcast_starts_at_its_time(db: TestDb) {
    let leads = seed_leads(&db, 40_001, 5).await;
    let mut bot = Bot::start(db).await;
    // The bot's time zone is UTC here; seconds are allowed for a test's sake.
    // Whole seconds, as written in the command.
    let now = chrono::Utc::now();
    let at = chrono::DateTime::from_timestamp(now.timestamp() + 12, 0).unwrap();
    let due = Instant::now() + (at - now).to_std().unwrap();
    let (id, prompt) = bot
        .compose(&format!("30d at {}", at.format("%Y-%m-%d %H:%M:%S")))
        .await;
    assert!(
        prompt["text"]
            .as_str()
            .unwrap()
            .contains("wrote in the last 30 days"),
        "{}",
        prompt["text"]
    );
    let seen = bot.owner_texts().len();
    bot.press(&format!("bcast:go:{id}"), &prompt).await;
    bot.owner_reply(seen, "is scheduled for").await;
    eventually(Duration::from_secs(40), "the scheduled broadcast", || {
        bot.lead_messages(&leads).len() >= 5
    })
    .await;
    let first = bot
        .lead_messages(&leads)
        .iter()
        .map(|(_, _, at)| *at)
        .min()
        .unwrap();
    // The scheduled instant is whole milliseconds; the fake's clock and the test's agree
    // within a few of them.
    assert!(
        first + Duration::from_millis(50) >= due,
        "sent {:?} before its time",
        due.duration_since(first)
    );
    println!("started {:?} after its time", first.duration_since(due));
}
for_each_db!(a_scheduled_broadcast_starts_at_its_time);

/// PostgreSQL stopped for longer than an inbox claim while a broadcast is being sent (each
/// send answered after 200 ms, so sends are in flight when it stops): no lead gets it twice,
/// every lead gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_during_a_broadcast_repeats_nothing() {
    let Some(server) = support::pg_server::PgServer::start() else {
        return;
    };
    let db = TestDb::existing(&server.url("postgres")).await;
    db.db
        .migrate()
        .await
        .expect("migrating the test's own server");
    let leads = seed_leads(&db, 10_001, 300).await;
    let mut bot = Bot::start(db).await;
    let (id, prompt) = bot.compose("").await;
    bot.h.telegram.set_answer_delay(Duration::from_millis(200));
    bot.press(&format!("bcast:go:{id}"), &prompt).await;
    eventually(
        Duration::from_secs(30),
        "the first broadcast messages",
        || bot.lead_messages(&leads).len() >= 30,
    )
    .await;
    server.stop();
    tokio::time::sleep(Duration::from_secs(6)).await;
    server.start_again();

    let unfinished = async || {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM broadcast_recipients WHERE status IN ('pending', 'sending')",
        )
        .fetch_one(&bot.h.db.db.pool)
        .await
        .ok()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while unfinished().await != Some(0) {
        assert!(Instant::now() < deadline, "the broadcast did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sent = bot.lead_messages(&leads);
    for chat in leads.clone() {
        let times = sent.iter().filter(|(c, ..)| *c == chat).count();
        assert_eq!(times, 1, "lead {chat} got the broadcast {times} times");
    }
    drop(bot);
    drop(server);
}
