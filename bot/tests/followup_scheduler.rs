//! Follow-ups end to end: the real scheduler tick against a fake Telegram Bot API and a fake
//! Anthropic API, on SQLite and PostgreSQL. Leads are set up with old timestamps; each tick is
//! given its `now`, so nothing sleeps.

#[macro_use]
mod support;
use support::fake_llm;

use std::sync::Arc;
use std::time::Duration;

use botfleet_bot::config::{self, Needs, Settings};
use botfleet_bot::context::Context;
use botfleet_bot::followup::{FollowUpRunner, TickReport};
use botfleet_bot::leads::{Inbound, Kind, record_inbound};
use botfleet_bot::metrics::Metrics;
use botfleet_bot::money::{CallContext, Money, RequestType};
use botfleet_bot::scheduler::{self, LeadershipMode};
use botfleet_llm::{Attempt, Outcome, Usage};
use chrono::{DateTime, TimeZone, Utc};
use fake_llm::{FakeLlm, Scripted};
use sqlx::Row;
use support::TestDb;
use support::fake_telegram::{FakeTelegram, TOKEN};
use tokio_util::sync::CancellationToken;

const HOUR_MS: i64 = 3_600_000;
const LLM_KEY: &str = "test-llm-key";
const PLAIN_FOLLOW_UP: &str = "followUp: {enabled: true, after: [24h, 48h]}\n";

struct Bot {
    ctx: Context,
    money: Arc<Money>,
    runner: FollowUpRunner,
}

struct World {
    db: TestDb,
    telegram: FakeTelegram,
    llm: FakeLlm,
}

impl World {
    async fn new(db: TestDb) -> Self {
        Self {
            db,
            telegram: FakeTelegram::start().await,
            llm: FakeLlm::start().await,
        }
    }

    /// One bot process (its own pool, metrics and clients) on the shared database.
    async fn bot(&self, extra_yaml: &str, identity: &str) -> Bot {
        self.bot_with_env(extra_yaml, identity, &[]).await
    }

    async fn bot_with_env(
        &self,
        extra_yaml: &str,
        identity: &str,
        extra_env: &[(&str, &str)],
    ) -> Bot {
        let yaml = format!(
            "llm:\n  provider: anthropic\n  model: claude-test\n  baseUrl: {}\n  systemPrompt: You sell the pro plan.\n  maxRetries: 0\n  timeout: 5s\npricing:\n  - {{model: claude-test, input: \"3.00\", output: \"15.00\"}}\n{extra_yaml}",
            self.llm.url
        );
        let bot_config = config::load_config_str(&yaml).unwrap();
        let mut env: Vec<(String, String)> = vec![
            ("TELEGRAM_BOT_TOKEN".into(), TOKEN.into()),
            ("LLM_API_KEY".into(), LLM_KEY.into()),
            ("DATABASE_URL".into(), self.db.url.clone()),
            ("TELEGRAM_API_URL".into(), self.telegram.url.clone()),
        ];
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let settings = Settings::resolve(bot_config, &lookup, Needs::TelegramAndLlm).unwrap();
        let money = Arc::new(Money::from_config(&settings.bot).unwrap());
        let ctx = Context::new(
            settings,
            self.db.reconnect().await,
            Arc::new(Metrics::default()),
            self.telegram.client(),
            money.clone(),
        )
        .unwrap();
        let runner = FollowUpRunner::new(&ctx, identity).unwrap();
        Bot { ctx, money, runner }
    }

    /// Texts the fake Telegram accepted for `chat_id`, in order.
    fn sent_to(&self, chat_id: i64) -> Vec<String> {
        self.telegram
            .sent()
            .into_iter()
            .filter(|m| m.chat_id == chat_id)
            .map(|m| m.text)
            .collect()
    }

    /// A lead who talked to the bot, then went quiet `silent_hours` before `now`.
    async fn lead(
        &self,
        chat_id: i64,
        now: DateTime<Utc>,
        silent_hours: i64,
        status: &str,
        sent: i64,
        last_followup_hours_ago: Option<i64>,
    ) {
        let pool = &self.db.db.pool;
        let last_inbound = now.timestamp_millis() - silent_hours * HOUR_MS;
        sqlx::query(
            "INSERT INTO leads (chat_id, user_id, first_seen_at, last_inbound_at, status, followups_sent, last_followup_at)
             VALUES ($1, $1, $2, $2, $3, $4, $5)",
        )
        .bind(chat_id)
        .bind(last_inbound)
        .bind(status)
        .bind(sent)
        .bind(last_followup_hours_ago.map(|h| now.timestamp_millis() - h * HOUR_MS))
        .execute(pool)
        .await
        .unwrap();
        for (role, text) in [
            ("user", format!("lead {chat_id}: how much is the pro plan?")),
            ("assistant", "It is 20 EUR a month.".to_owned()),
        ] {
            sqlx::query("INSERT INTO messages (chat_id, role, kind, text, created_at) VALUES ($1, $2, 'chat', $3, $4)")
                .bind(chat_id)
                .bind(role)
                .bind(text)
                .bind(last_inbound)
                .execute(pool)
                .await
                .unwrap();
        }
    }

    async fn followups_sent(&self, chat_id: i64) -> i64 {
        let row = sqlx::query("SELECT CAST(followups_sent AS BIGINT) AS sent, followup_claim FROM leads WHERE chat_id = $1")
            .bind(chat_id)
            .fetch_one(&self.db.db.pool)
            .await
            .unwrap();
        let claim: Option<String> = row.get("followup_claim");
        assert_eq!(claim, None, "no claim is left behind");
        row.get("sent")
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.db.db.pool)
            .await
            .unwrap()
    }
}

impl Bot {
    async fn tick(&self, now: DateTime<Utc>) -> TickReport {
        self.runner
            .tick(&self.ctx, &self.money, now, &CancellationToken::new())
            .await
            .unwrap()
    }
}

/// Tuesday noon UTC (13:00 in Berlin).
fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
}

fn hours(h: i64) -> chrono::Duration {
    chrono::Duration::hours(h)
}

for_each_db!(
    due_leads_get_each_step_once_and_none_after_the_last,
    quiet_hours_hold_follow_ups_until_morning,
    a_reply_starts_the_sequence_over,
    a_failed_send_is_retried_and_delivered_once,
    an_llm_failure_leaves_the_follow_up_for_the_next_tick,
    no_follow_up_when_the_budget_is_stopped,
    two_schedulers_send_every_follow_up_exactly_once,
    the_scheduler_loop_sends_while_it_leads,
    no_follow_up_while_the_lead_is_with_a_person,
);

async fn no_follow_up_while_the_lead_is_with_a_person(db: TestDb) {
    use botfleet_bot::handoff::store::{self, NewHandoff, Opened};
    let w = World::new(db).await;
    let bot = w.bot(PLAIN_FOLLOW_UP, "sched-a").await;
    let now = noon();
    w.lead(1, now, 25, "active", 0, None).await;
    w.lead(2, now, 25, "active", 0, None).await;
    let new = NewHandoff {
        chat_id: 1,
        reason: "command",
        detail: None,
        summary: None,
        taken: None,
    };
    let opened = store::open(&w.db.db, &new, now.timestamp_millis(), |_| vec![])
        .await
        .unwrap();
    let Opened::New(handoff) = opened else {
        panic!("{opened:?}")
    };
    let report = bot.tick(now).await;
    assert_eq!(report.sent, 1, "only the lead not handed over: {report:?}");
    assert!(w.sent_to(1).is_empty());
    assert_eq!(w.sent_to(2).len(), 1);

    // Handed back: the follow-up goes out.
    assert!(
        store::close(&w.db.db, handoff.id, "resolved", now.timestamp_millis())
            .await
            .unwrap()
    );
    assert_eq!(bot.tick(now + hours(1)).await.sent, 1);
    assert_eq!(w.sent_to(1).len(), 1);
}

async fn due_leads_get_each_step_once_and_none_after_the_last(db: TestDb) {
    let w = World::new(db).await;
    let now = noon();
    w.lead(1, now, 25, "active", 0, None).await; // due: follow-up 1
    w.lead(2, now, 10, "active", 0, None).await; // not silent long enough
    w.lead(3, now, 49, "active", 1, Some(24)).await; // due: follow-up 2
    w.lead(4, now, 500, "active", 2, Some(400)).await; // had both: done
    w.lead(5, now, 100, "opted_out", 0, None).await; // sent /stop
    w.lead(6, now, 100, "converted", 0, None).await;
    let bot = w.bot(PLAIN_FOLLOW_UP, "sched-a").await;

    let report = bot.tick(now).await;
    assert_eq!((report.due, report.sent), (2, 2), "{report:?}");
    assert_eq!(w.sent_to(1).len(), 1);
    assert_eq!(w.sent_to(3).len(), 1);
    for quiet in [2, 4, 5, 6] {
        assert!(w.sent_to(quiet).is_empty(), "lead {quiet} got a follow-up");
    }
    // The LLM wrote them from the conversation; its text is what was sent.
    let requests = w.llm.requests();
    assert_eq!(requests.len(), 2);
    let asked = requests[0].to_string();
    assert!(asked.contains("how much is the pro plan?"), "{asked}");
    assert!(asked.contains("Follow-up"), "{asked}");
    let system = requests[0]["system"].to_string();
    assert!(
        system.contains("You sell the pro plan."),
        "the bot's system prompt: {system}"
    );
    assert!(w.sent_to(1)[0].starts_with("reply: "), "{:?}", w.sent_to(1));
    // Recorded: the conversation, the counters, the ledger (priced as `followup`), metrics.
    assert_eq!(
        (w.followups_sent(1).await, w.followups_sent(3).await),
        (1, 2)
    );
    assert_eq!(w.count("SELECT COUNT(*) FROM messages WHERE role = 'assistant' AND kind = 'followup' AND sent_at IS NOT NULL").await, 2);
    assert_eq!(
        w.count(
            "SELECT COUNT(*) FROM llm_ledger WHERE request_type = 'followup' AND cost_nanos > 0"
        )
        .await,
        2
    );
    let metrics = bot.ctx.metrics.encode();
    assert!(
        metrics.contains("botfleet_followups_sent_total 2"),
        "{metrics}"
    );
    assert!(metrics.contains("botfleet_followups_due 2"), "{metrics}");
    assert!(
        metrics.contains("botfleet_followups_overdue 2"),
        "{metrics}"
    );

    // Same time again: nothing new is due.
    let report = bot.tick(now).await;
    assert_eq!((report.due, report.sent), (0, 0), "{report:?}");
    // A day later lead 1 is due its second and last follow-up, lead 2 its first; lead 3 has
    // had both.
    let report = bot.tick(now + hours(24)).await;
    assert_eq!(report.sent, 2, "{report:?}");
    assert_eq!(
        (w.sent_to(1).len(), w.sent_to(2).len(), w.sent_to(3).len()),
        (2, 1, 1)
    );
    assert_eq!(w.followups_sent(1).await, 2);
    // Weeks later only lead 2 has a step left; after that the sequences are over.
    assert_eq!(bot.tick(now + hours(24 * 30)).await.sent, 1);
    let report = bot.tick(now + hours(24 * 60)).await;
    assert_eq!((report.due, report.sent), (0, 0), "{report:?}");
    assert_eq!(w.telegram.sent().len(), 5);
    assert!(w.sent_to(4).is_empty() && w.sent_to(5).is_empty() && w.sent_to(6).is_empty());
}

async fn quiet_hours_hold_follow_ups_until_morning(db: TestDb) {
    let w = World::new(db).await;
    let bot = w
        .bot(
            "followUp: {enabled: true, after: [24h], quietHours: {start: \"22:00\", end: \"08:00\", timeZone: Europe/Berlin}}\n",
            "sched-a",
        )
        .await;
    // 23:30 in Berlin (UTC+1 in January).
    let night = Utc.with_ymd_and_hms(2026, 1, 15, 22, 30, 0).unwrap();
    w.lead(1, night, 30, "active", 0, None).await;
    let report = bot.tick(night).await;
    assert!(report.quiet, "{report:?}");
    assert_eq!((report.due, report.sent), (1, 0));
    assert!(w.telegram.sent().is_empty());
    assert!(
        w.llm.requests().is_empty(),
        "nothing written during quiet hours"
    );
    // 07:59 Berlin: still quiet. 08:00 Berlin: goes out.
    assert_eq!(
        bot.tick(Utc.with_ymd_and_hms(2026, 1, 16, 6, 59, 0).unwrap())
            .await
            .sent,
        0
    );
    let morning = bot
        .tick(Utc.with_ymd_and_hms(2026, 1, 16, 7, 0, 0).unwrap())
        .await;
    assert_eq!(morning.sent, 1, "{morning:?}");
    assert_eq!(w.sent_to(1).len(), 1);
}

async fn a_reply_starts_the_sequence_over(db: TestDb) {
    let w = World::new(db).await;
    let bot = w.bot(PLAIN_FOLLOW_UP, "sched-a").await;
    let now = noon();
    w.lead(1, now, 25, "active", 0, None).await;
    assert_eq!(bot.tick(now).await.sent, 1);
    assert_eq!(w.followups_sent(1).await, 1);

    // The lead answers an hour later (the conversation pipeline records it).
    let reply_at = now + hours(1);
    let inbound = Inbound {
        update_id: 900,
        chat_id: 1,
        user_id: Some(1),
        username: None,
        first_name: Some("Lead".into()),
        text: "Sorry, was busy. Still interested!".into(),
        private_chat: true,
    };
    record_inbound(&w.db.db, &inbound, Kind::Chat, reply_at.timestamp_millis())
        .await
        .unwrap();
    assert_eq!(w.followups_sent(1).await, 0);

    // 47 h after the first silence began the old sequence would have sent follow-up 2; now
    // the lead has been silent only 23 h.
    assert_eq!(bot.tick(reply_at + hours(23)).await.sent, 0);
    let report = bot.tick(reply_at + hours(24)).await;
    assert_eq!(
        report.sent, 1,
        "follow-up 1 of the new sequence: {report:?}"
    );
    assert_eq!(w.sent_to(1).len(), 2);
    assert_eq!(w.followups_sent(1).await, 1);
    let last_request = w.llm.requests().last().unwrap().to_string();
    assert!(
        last_request.contains("Still interested!"),
        "the new conversation is used: {last_request}"
    );
}

async fn a_failed_send_is_retried_and_delivered_once(db: TestDb) {
    let w = World::new(db).await;
    let bot = w.bot(PLAIN_FOLLOW_UP, "sched-a").await;
    let now = noon();
    w.lead(1, now, 25, "active", 0, None).await;

    w.telegram.set_failing(true);
    let report = bot.tick(now).await;
    assert_eq!((report.sent, report.retry_later), (0, 1), "{report:?}");
    assert_eq!(w.telegram.rejected(), 1);
    assert_eq!(w.followups_sent(1).await, 0, "not counted, claim released");
    assert_eq!(
        w.count("SELECT COUNT(*) FROM messages WHERE kind = 'followup'")
            .await,
        0
    );

    w.telegram.set_failing(false);
    let report = bot.tick(now + chrono::Duration::seconds(30)).await;
    assert_eq!(report.sent, 1, "{report:?}");
    let report = bot.tick(now + chrono::Duration::seconds(60)).await;
    assert_eq!(report.sent, 0, "{report:?}");
    assert_eq!(w.sent_to(1).len(), 1, "delivered exactly once");
    assert_eq!(w.followups_sent(1).await, 1);
}

async fn an_llm_failure_leaves_the_follow_up_for_the_next_tick(db: TestDb) {
    let w = World::new(db).await;
    let bot = w.bot(PLAIN_FOLLOW_UP, "sched-a").await;
    let now = noon();
    w.lead(1, now, 25, "active", 0, None).await;
    w.llm.script([Scripted::status(500)]);
    let report = bot.tick(now).await;
    assert_eq!((report.sent, report.retry_later), (0, 1), "{report:?}");
    assert!(w.telegram.sent().is_empty(), "nothing sent without a text");
    assert_eq!(w.followups_sent(1).await, 0);
    let failed = w
        .count("SELECT COUNT(*) FROM llm_ledger WHERE request_type = 'followup' AND outcome = 'server_error'")
        .await;
    assert_eq!(failed, 1, "the failed call is in the ledger");
    assert_eq!(bot.tick(now + chrono::Duration::seconds(30)).await.sent, 1);
    assert_eq!(w.sent_to(1).len(), 1);
}

async fn no_follow_up_when_the_budget_is_stopped(db: TestDb) {
    let w = World::new(db).await;
    let bot = w
        .bot(
            // $0.02: room for one follow-up's worst case (1,024 output tokens at $15/M).
            &format!("budget: {{daily: \"0.02\", hardStop: true}}\n{PLAIN_FOLLOW_UP}"),
            "sched-a",
        )
        .await;
    let now = noon();
    w.lead(1, now, 25, "active", 0, None).await;
    // Today's chats already spent 1M input tokens × $3/M = $3 > $0.02.
    let spent = Attempt {
        model: "claude-test".into(),
        outcome: Outcome::Ok,
        usage: Usage {
            input_tokens: 1_000_000,
            ..Usage::default()
        },
        latency: Duration::from_millis(10),
        status: Some(200),
    };
    let call = CallContext {
        chat_id: Some(99),
        update_id: Some(1),
        request_type: RequestType::Chat,
    };
    bot.money
        .record_call(&bot.ctx.db, &bot.ctx.metrics, call, &[spent], now)
        .await
        .unwrap();

    let report = bot.tick(now).await;
    assert!(report.budget_stopped, "{report:?}");
    assert_eq!((report.due, report.sent), (1, 0));
    assert!(w.llm.requests().is_empty(), "no LLM call past the budget");
    assert!(w.telegram.sent().is_empty());
    assert_eq!(
        w.followups_sent(1).await,
        0,
        "still due once the budget allows"
    );
    // The next day the budget is open again.
    assert_eq!(bot.tick(now + hours(24)).await.sent, 1);
}

async fn two_schedulers_send_every_follow_up_exactly_once(db: TestDb) {
    let w = World::new(db).await;
    let now = noon();
    let leads: Vec<i64> = (1..=40).collect();
    for &chat_id in &leads {
        w.lead(chat_id, now, 25 + chat_id % 3, "active", 0, None)
            .await;
    }
    // The fake LLM is slow enough that both schedulers work on the same batch at once.
    w.llm.set_default_delay(Duration::from_millis(20));
    let a = w.bot(PLAIN_FOLLOW_UP, "sched-a").await;
    let b = w.bot(PLAIN_FOLLOW_UP, "sched-b").await;

    let mut sent = 0;
    let mut lost = 0;
    for round in 0..3 {
        let at = now + chrono::Duration::seconds(30 * round);
        let (ra, rb) = tokio::join!(a.tick(at), b.tick(at));
        sent += ra.sent + rb.sent;
        lost += ra.lost_claims + rb.lost_claims;
    }
    assert_eq!(sent, 40);
    assert!(lost > 0, "the schedulers never competed for a lead");
    for &chat_id in &leads {
        assert_eq!(w.sent_to(chat_id).len(), 1, "lead {chat_id}");
        assert_eq!(w.followups_sent(chat_id).await, 1);
    }
    assert_eq!(w.telegram.sent().len(), 40);
    assert_eq!(
        w.llm.requests().len(),
        40,
        "each follow-up written (and paid for) once"
    );
}

async fn the_scheduler_loop_sends_while_it_leads(db: TestDb) {
    let w = World::new(db).await;
    let now = Utc::now();
    w.lead(1, now, 25, "active", 0, None).await;
    let bot = w
        .bot_with_env(
            PLAIN_FOLLOW_UP,
            "sched-a",
            &[("BOTFLEET_SCHEDULER_INTERVAL", "100ms")],
        )
        .await;
    let shutdown = CancellationToken::new();
    let metrics = bot.ctx.metrics.clone();
    let task = tokio::spawn(scheduler::run(
        bot.ctx.clone(),
        bot.money.clone(),
        LeadershipMode::Always,
        shutdown.clone(),
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while w.sent_to(1).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no follow-up from the scheduler loop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(metrics.encode().contains("botfleet_scheduler_leader 1"));
    // A few more ticks send nothing more.
    tokio::time::sleep(Duration::from_millis(350)).await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(w.sent_to(1).len(), 1);
    assert!(metrics.encode().contains("botfleet_scheduler_leader 0"));
    assert!(
        metrics
            .encode()
            .contains("botfleet_llm_spend_usd{period=\"day\"}"),
        "gauges refreshed"
    );
}
