//! Owner reports: `/llm_stats` numbers against a hand computation, `/stats` lead counts, and
//! HTML that escapes what came from outside.

#[macro_use]
mod support;

use std::time::Duration;

use botfleet_api::{BotConfig, ModelPrice};
use botfleet_bot::metrics::Metrics;
use botfleet_bot::money::{CallContext, LeadStats, Money, RequestType, UsageTotals};
use botfleet_llm::{Attempt, Outcome, Usage};
use chrono::{DateTime, TimeZone, Utc};
use support::TestDb;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

fn price(model: &str, input: &str, output: &str, cache: [&str; 3]) -> ModelPrice {
    let [read, write_5m, write_1h] = cache.map(|c| Some(c.parse().unwrap()));
    ModelPrice {
        model: model.into(),
        input: input.parse().unwrap(),
        output: output.parse().unwrap(),
        cache_read: read,
        cache_write5m: write_5m,
        cache_write1h: write_1h,
        long_prompt: None,
    }
}

fn money() -> Money {
    Money::from_config(&BotConfig {
        pricing: vec![
            price(
                "claude-sonnet-4-5",
                "3.00",
                "15.00",
                ["0.30", "3.75", "6.00"],
            ),
            price("claude-haiku-4-5", "1.00", "5.00", ["0.10", "1.25", "2.00"]),
        ],
        ..Default::default()
    })
    .unwrap()
}

fn usage(input: u64, read: u64, write_5m: u64, write_1h: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        cache_read_tokens: read,
        cache_write_5m_tokens: write_5m,
        cache_write_1h_tokens: write_1h,
        output_tokens: output,
    }
}

async fn call(
    money: &Money,
    t: &TestDb,
    kind: RequestType,
    attempts: &[(&str, Outcome, Usage)],
    at: DateTime<Utc>,
) {
    let attempts: Vec<Attempt> = attempts
        .iter()
        .map(|(model, outcome, usage)| Attempt {
            model: (*model).into(),
            outcome: *outcome,
            usage: *usage,
            latency: Duration::from_millis(300),
            status: Some(200),
        })
        .collect();
    let ctx = CallContext {
        chat_id: Some(9),
        update_id: None,
        request_type: kind,
    };
    money
        .record_call(&t.db, &Metrics::default(), ctx, &attempts, at)
        .await
        .unwrap();
}

async fn llm_stats_equal_a_hand_computation(t: TestDb) {
    let money = money();
    let days_ago = |d: i64| now() - chrono::Duration::days(d);
    // Today.
    call(
        &money,
        &t,
        RequestType::Chat,
        &[
            ("claude-sonnet-4-5", Outcome::Overloaded, Usage::default()),
            // 21 × 3,000 + 1,536 × 3,750 + 652 × 6,000 + 393 × 15,000 = 15,630,000
            (
                "claude-sonnet-4-5",
                Outcome::Ok,
                usage(21, 0, 1536, 652, 393),
            ),
        ],
        now(),
    )
    .await;
    // 57 × 1,000 + 2,188 × 100 + 24 × 5,000 = 395,800
    call(
        &money,
        &t,
        RequestType::Followup,
        &[("claude-haiku-4-5", Outcome::Ok, usage(57, 2188, 0, 0, 24))],
        now(),
    )
    .await;
    call(
        &money,
        &t,
        RequestType::Summary,
        &[("<unpriced & new>", Outcome::Ok, usage(100, 0, 0, 0, 10))],
        now(),
    )
    .await;
    // 3 days ago: 1,000 × 3,000 + 9,000 × 300 + 200 × 15,000 = 8,700,000
    call(
        &money,
        &t,
        RequestType::Chat,
        &[(
            "claude-sonnet-4-5",
            Outcome::Ok,
            usage(1000, 9000, 0, 0, 200),
        )],
        days_ago(3),
    )
    .await;
    // 7 days ago is outside "the last 7 days" (today and the 6 before it).
    call(
        &money,
        &t,
        RequestType::Chat,
        &[(
            "claude-haiku-4-5",
            Outcome::Ok,
            usage(1_000_000, 0, 0, 0, 0),
        )],
        days_ago(7),
    )
    .await;

    let stats = money.llm_stats(&t.db, now()).await.unwrap();
    let today = UsageTotals {
        requests: 4,
        errors: 1,
        input_tokens: 21 + 57 + 100,
        cache_read_tokens: 2188,
        cache_write_5m_tokens: 1536,
        cache_write_1h_tokens: 652,
        output_tokens: 393 + 24 + 10,
        cost_nanos: 15_630_000 + 395_800,
        unpriced_calls: 1,
        // 2,188 haiku cache reads × (1,000 − 100) nano-USD.
        cache_saved_nanos: 1_969_200,
    };
    assert_eq!(stats.today.total, today);
    let week = UsageTotals {
        requests: 5,
        errors: 1,
        input_tokens: 1178,
        cache_read_tokens: 11_188,
        cache_write_5m_tokens: 1536,
        cache_write_1h_tokens: 652,
        output_tokens: 627,
        cost_nanos: 15_630_000 + 395_800 + 8_700_000,
        unpriced_calls: 1,
        // + 9,000 sonnet cache reads × (3,000 − 300) nano-USD.
        cache_saved_nanos: 1_969_200 + 24_300_000,
    };
    assert_eq!(stats.last_7_days.total, week);
    assert_eq!(stats.last_7_days.first_day.to_string(), "2026-11-16");
    let sonnet = &stats.last_7_days.by_model["claude-sonnet-4-5"];
    assert_eq!(
        (
            sonnet.requests,
            sonnet.errors,
            sonnet.cost_nanos,
            sonnet.cache_read_tokens
        ),
        (3, 1, 24_330_000, 9000)
    );
    assert_eq!(
        stats.last_7_days.by_model["claude-haiku-4-5"].cost_nanos,
        395_800
    );
    assert_eq!(
        stats.last_7_days.by_request_type["chat"].cost_nanos,
        24_330_000
    );
    assert_eq!(stats.last_7_days.by_request_type["followup"].requests, 1);
    assert_eq!(
        stats.last_7_days.by_request_type["summary"].unpriced_calls,
        1
    );
    // Cache hit rate = reads / every prompt token: 2,188 / 4,554 = 48.05 %; 11,188 / 14,554 = 76.87 %.
    assert_eq!(today.cache_hit_rate_tenths(), Some(480));
    assert_eq!(week.cache_hit_rate_tenths(), Some(769));

    let html = money.report_llm_stats(&t.db, now()).await.unwrap();
    for expected in [
        "<b>Today (2026-11-22 UTC)</b>\nRequests: 4 (1 failed)\n\
         Tokens: input 178 · cache read 2,188 · cache write 5m 1,536 · cache write 1h 652 · output 427\n\
         Cache hit rate: 48.0% · saved $0.0020\nCost: $0.0160\n⚠️ Unpriced calls: 1",
        "<b>Last 7 days (2026-11-16 – 2026-11-22)</b>\nRequests: 5 (1 failed)\n\
         Tokens: input 1,178 · cache read 11,188 · cache write 5m 1,536 · cache write 1h 652 · output 627\n\
         Cache hit rate: 76.9% · saved $0.0263\nCost: $0.0247",
        "• <code>claude-sonnet-4-5</code>: 3 req, in 3,209 / cached 9,000 / out 593, cache 73.7%, $0.0243\n",
        "• chat: 3 req,",
        "• <code>&lt;unpriced &amp; new&gt;</code>: 1 req",
    ] {
        assert!(html.contains(expected), "missing {expected:?} in:\n{html}");
    }
    assert!(!html.contains("<unpriced"), "model names are escaped");
}

async fn an_empty_ledger_reports_no_calls(t: TestDb) {
    let html = money().report_llm_stats(&t.db, now()).await.unwrap();
    assert_eq!(html.matches("No LLM calls.").count(), 2, "{html}");
}

/// chat, first_seen, last_inbound, status, opted_out_at, followups_sent, last_followup_at
type LeadRow = (i64, i64, i64, &'static str, Option<i64>, i64, Option<i64>);

async fn lead_stats_count_new_active_followed_up_and_opted_out(t: TestDb) {
    let ms = |d: DateTime<Utc>| d.timestamp_millis();
    let today = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
    let week_start = Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap();
    let ago = |d: i64| now() - chrono::Duration::days(d);
    let h = |n: i64| today + chrono::Duration::hours(n);
    let leads: [LeadRow; 7] = [
        (1, ms(h(8)), ms(h(9)), "active", None, 0, None),
        (
            2,
            ms(ago(3)),
            ms(ago(2)),
            "active",
            None,
            1,
            Some(ms(h(10))),
        ),
        (
            3,
            ms(ago(20)),
            ms(ago(10)),
            "active",
            None,
            2,
            Some(ms(ago(8))),
        ),
        (
            4,
            ms(ago(30)),
            ms(ago(5)),
            "opted_out",
            Some(ms(ago(5))),
            0,
            None,
        ),
        (
            5,
            ms(ago(40)),
            ms(ago(40)),
            "opted_out",
            Some(ms(ago(39))),
            0,
            None,
        ),
        (6, ms(week_start), ms(week_start), "active", None, 0, None),
        (
            7,
            ms(week_start) - 1,
            ms(week_start) - 1,
            "active",
            None,
            0,
            None,
        ),
    ];
    for (chat, first_seen, last_inbound, status, opted_out_at, followups, last_followup) in leads {
        sqlx::query(
            "INSERT INTO leads (chat_id, first_seen_at, last_inbound_at, status, opted_out_at, \
             followups_sent, last_followup_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(chat)
        .bind(first_seen)
        .bind(last_inbound)
        .bind(status)
        .bind(opted_out_at)
        .bind(followups as i32)
        .bind(last_followup)
        .execute(&t.db.pool)
        .await
        .unwrap();
    }
    let stats = money().lead_stats(&t.db, now()).await.unwrap();
    assert_eq!(
        stats,
        LeadStats {
            total: 7,
            new_today: 1,
            new_7d: 3,
            active_today: 1,
            active_7d: 4,
            followed_up_today: 1,
            followed_up_7d: 1,
            followed_up_ever: 2,
            opted_out_total: 2,
            opted_out_7d: 1,
        }
    );
    let html = money().report_stats(&t.db, now()).await.unwrap();
    assert!(html.contains("New: 1 today · 3 in 7 days"), "{html}");
    assert!(
        html.contains("Followed up: 1 today · 1 in 7 days · 2 ever"),
        "{html}"
    );
    assert!(
        html.contains("Opted out: 1 in 7 days · 2 in total"),
        "{html}"
    );
}

for_each_db!(
    llm_stats_equal_a_hand_computation,
    an_empty_ledger_reports_no_calls,
    lead_stats_count_new_active_followed_up_and_opted_out,
);
