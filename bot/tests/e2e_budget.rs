//! Budgets that cannot be overspent: 64 leads writing at once against a daily limit that fits
//! a few calls (one SQLite process with 8 workers; two `serve` replicas on one PostgreSQL),
//! a lead's own limit, and a reservation left by a killed process released in time.

mod support;

use std::time::{Duration, Instant};

use botfleet_bot::conversation::commands::APOLOGY;
use botfleet_bot::money::{BUDGET_STOPPED_REPLY, LEAD_LIMIT_REPLY};
use support::fake_llm::Scripted;
use support::fake_telegram::text_update;
use support::{BotConfigOptions, BotProcess, Harness, TestDb, eventually};

const WAIT: Duration = Duration::from_secs(60);
const OWNER: i64 = 900;
const LEADS: i64 = 64;

/// About 4,000 tokens: each call's reservation (~$0.028 at $3/$15 per Mtok with 256 output
/// tokens, input over-estimated from the body's bytes) is about 2.3× its real cost (~$0.012).
fn long_system_prompt() -> String {
    "You answer questions about our plans politely and briefly. ".repeat(270)
}

/// A bot with a long system prompt whose fake model reports the input it was sent (four
/// characters a token) and takes 2 s a call.
async fn harness(db: TestDb, budget: &str) -> Harness {
    let h = Harness::new(
        db,
        BotConfigOptions {
            system_prompt: Some(long_system_prompt()),
            llm_yaml: "  maxOutputTokens: 256\n".into(),
            extra_yaml: format!("owners: [{OWNER}]\nbudget: {budget}\n"),
            ..Default::default()
        },
    )
    .await
    .env("BOTFLEET_WORKERS", "8");
    h.llm.model_prompt_cache(u64::MAX);
    h.llm.set_default_delay(Duration::from_secs(2));
    h
}

async fn ledger_spend(h: &Harness) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(CAST(SUM(cost_nanos) AS BIGINT), 0) FROM llm_ledger")
        .fetch_one(&h.db.db.pool)
        .await
        .unwrap()
}

async fn live_reservations(h: &Harness) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM budget_reservations")
        .fetch_one(&h.db.db.pool)
        .await
        .unwrap()
}

/// Each lead's one reply: the model's or the stop reply; how many got the model's.
fn answered_leads(h: &Harness, leads: impl Iterator<Item = i64>) -> usize {
    leads
        .filter(|&chat| {
            let texts = h.telegram.sent_texts(chat);
            assert_eq!(texts.len(), 1, "lead {chat}: {texts:?}");
            assert!(
                texts[0].starts_with("reply: ") || texts[0] == BUDGET_STOPPED_REPLY,
                "lead {chat}: {texts:?}"
            );
            texts[0].starts_with("reply: ")
        })
        .count()
}

/// 64 leads at once, spread over `bots`: the spend stays within the limit, everyone gets an
/// answer, at least three calls fit, and the owner is told once that leads got the stop reply.
async fn sixty_four_leads_at_once(h: &Harness, bots: &[&BotProcess]) {
    const LIMIT_NANOS: i64 = 120_000_000; // $0.12
    let posts = (1..=LEADS).map(|chat| {
        let bot = bots[chat as usize % bots.len()];
        async move {
            bot.post_update(&text_update(50_000 + chat, chat, "how much is pro?"))
                .await
        }
    });
    let statuses = futures::future::join_all(posts).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    eventually(WAIT, "every lead's answer", || {
        (1..=LEADS).all(|chat| !h.telegram.sent_texts(chat).is_empty())
    })
    .await;
    eventually(WAIT, "the owner's notice", || {
        !h.telegram.sent_texts(OWNER).is_empty()
    })
    .await;
    let answered = answered_leads(h, 1..=LEADS);
    let spend = ledger_spend(h).await;
    println!("{answered} leads answered, spend {spend} nano-USD of {LIMIT_NANOS}");
    assert!(spend <= LIMIT_NANOS, "spent {spend} > {LIMIT_NANOS}");
    assert!(answered >= 3, "only {answered} calls fit in the limit");
    assert!(spend > 0);
    assert_eq!(live_reservations(h).await, 0, "every reservation settled");
    // The refusal notice once, beside the threshold alerts (each once).
    let owner = h.telegram.sent_texts(OWNER);
    let refused: Vec<_> = owner
        .iter()
        .filter(|t| t.contains("budget reached") && t.contains("got the stop reply"))
        .collect();
    assert_eq!(refused.len(), 1, "{owner:?}");
    let mut distinct = owner.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), owner.len(), "a message twice: {owner:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sqlite_process_never_overspends() {
    let h = harness(
        support::db::sqlite().await,
        "{daily: \"0.12\", hardStop: true}",
    )
    .await;
    let bot = h.start().await;
    sixty_four_leads_at_once(&h, &[&bot]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_replicas_never_overspend() {
    let Some(db) = support::db::postgres().await else {
        return;
    };
    let h = harness(db, "{daily: \"0.12\", hardStop: true}").await;
    let a = h.start().await;
    let b = h.start().await;
    sixty_four_leads_at_once(&h, &[&a, &b]).await;
}

/// One lead's own daily limit fits two of its calls (~$0.028 reserved, ~$0.012 spent each):
/// its third message gets the per-lead reply, another lead is still answered, and the owner is
/// told once about that lead.
async fn a_lead_past_its_own_limit_gets_its_own_reply(db: TestDb) {
    let h = harness(db, "{perLead: {daily: \"0.045\"}}").await;
    h.llm.set_default_delay(Duration::ZERO);
    let bot = h.start().await;
    for (i, text) in ["one", "two", "three", "four"].into_iter().enumerate() {
        bot.post_update(&text_update(60_000 + i as i64, 7, text))
            .await;
        eventually(WAIT, "the lead's reply", || {
            h.telegram.sent_texts(7).len() > i
        })
        .await;
    }
    assert_eq!(
        h.telegram.sent_texts(7),
        vec![
            "reply: one",
            "reply: two",
            LEAD_LIMIT_REPLY,
            LEAD_LIMIT_REPLY
        ]
    );
    bot.post_update(&text_update(60_010, 8, "hello")).await;
    eventually(WAIT, "the other lead's reply", || {
        !h.telegram.sent_texts(8).is_empty()
    })
    .await;
    assert_eq!(h.telegram.sent_texts(8), vec!["reply: hello"]);
    let lead_spend: i64 = sqlx::query_scalar(
        "SELECT COALESCE(CAST(SUM(cost_nanos) AS BIGINT), 0) FROM llm_ledger WHERE chat_id = 7",
    )
    .fetch_one(&h.db.db.pool)
    .await
    .unwrap();
    assert!(lead_spend <= 45_000_000, "lead spent {lead_spend}");
    eventually(WAIT, "the owner's notice", || {
        !h.telegram.sent_texts(OWNER).is_empty()
    })
    .await;
    let notices = h.telegram.sent_texts(OWNER);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].contains("Lead 7 reached its own daily limit"),
        "{notices:?}"
    );
}
for_each_db!(a_lead_past_its_own_limit_gets_its_own_reply);

/// The test bot's short prompt: ~$0.0045 reserved per attempt, so a daily $0.006 fits one
/// attempt at a time.
async fn room_for_one_attempt(db: TestDb) -> Harness {
    Harness::new(
        db,
        BotConfigOptions {
            llm_yaml: "  maxOutputTokens: 256\n".into(),
            extra_yaml: "budget: {daily: \"0.006\", hardStop: true}\n".into(),
            ..Default::default()
        },
    )
    .await
}

/// A process killed during a call leaves its reservation; it still counts right after (a
/// lead asking then gets the stop reply), and stops counting once the call's maximum duration
/// (`llm.timeout` 5 s + the 10 s margin) has passed.
async fn a_killed_process_releases_its_reservation_in_time(db: TestDb) {
    let h = room_for_one_attempt(db).await;
    h.llm.set_default_delay(Duration::from_secs(60));
    let mut bot = h.start().await;
    bot.post_update(&text_update(70_001, 1, "slow one")).await;
    let deadline = Instant::now() + WAIT;
    while live_reservations(&h).await == 0 {
        assert!(Instant::now() < deadline, "no reservation taken");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bot.kill();
    let killed = Instant::now();
    h.llm.set_default_delay(Duration::ZERO);
    let bot = h.start().await;

    bot.post_update(&text_update(70_002, 2, "right after"))
        .await;
    eventually(WAIT, "the reply after the restart", || {
        !h.telegram.sent_texts(2).is_empty()
    })
    .await;
    assert!(killed.elapsed() < Duration::from_secs(15));
    assert_eq!(h.telegram.sent_texts(2), vec![BUDGET_STOPPED_REPLY]);

    // Then one lead after another until the model answers one.
    let mut chat = 100;
    let released = loop {
        assert!(killed.elapsed() < Duration::from_secs(25), "still held");
        bot.post_update(&text_update(70_000 + chat, chat, "now?"))
            .await;
        eventually(WAIT, "a probe's reply", || {
            !h.telegram.sent_texts(chat).is_empty()
        })
        .await;
        if h.telegram.sent_texts(chat) == vec!["reply: now?"] {
            break killed.elapsed();
        }
        chat += 1;
        // Poll about four times a second, not as fast as the webhook answers.
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!("released {:.1} s after the kill", released.as_secs_f64());
    assert!(released >= Duration::from_secs(10), "released too early");
    assert_eq!(h.telegram.sent_texts(1).len(), 1, "lead 1 answered once");
}
for_each_db!(a_killed_process_releases_its_reservation_in_time);

/// Retries reserve per attempt: with room for one attempt's worst case only, a failed first
/// attempt is not retried (the lead gets the apology), and its reservation is settled, so the
/// next lead's call fits again.
async fn a_retry_that_does_not_fit_is_not_made(db: TestDb) {
    let h = room_for_one_attempt(db).await;
    h.llm.script([Scripted::status(500)]);
    let bot = h.start().await;
    bot.post_update(&text_update(80_001, 1, "first")).await;
    eventually(WAIT, "the first lead's reply", || {
        !h.telegram.sent_texts(1).is_empty()
    })
    .await;
    assert_eq!(h.telegram.sent_texts(1), vec![APOLOGY]);
    assert_eq!(h.llm.requests().len(), 1, "maxRetries 2, but no retry fit");
    bot.post_update(&text_update(80_002, 2, "second")).await;
    eventually(WAIT, "the second lead's reply", || {
        !h.telegram.sent_texts(2).is_empty()
    })
    .await;
    assert_eq!(h.telegram.sent_texts(2), vec!["reply: second"]);
    assert_eq!(live_reservations(&h).await, 0);
}
for_each_db!(a_retry_that_does_not_fit_is_not_made);
