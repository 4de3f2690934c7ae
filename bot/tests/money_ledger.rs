//! The ledger: one row per LLM API call, the daily rollup in the same transaction, metrics.

#[macro_use]
mod support;

use std::time::Duration;

use botfleet_api::{BotConfig, ModelPrice};
use botfleet_bot::metrics::Metrics;
use botfleet_bot::money::{CallContext, Money, RequestType, RollupRow, UsageTotals};
use botfleet_llm::{Attempt, Outcome, Usage};
use chrono::{DateTime, TimeZone, Utc};
use support::TestDb;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

fn money() -> Money {
    let config = BotConfig {
        pricing: vec![
            ModelPrice {
                model: "claude-sonnet-4-5".into(),
                input: "3.00".parse().unwrap(),
                output: "15.00".parse().unwrap(),
                cache_read: Some("0.30".parse().unwrap()),
                cache_write5m: Some("3.75".parse().unwrap()),
                cache_write1h: Some("6.00".parse().unwrap()),
                long_prompt: None,
            },
            ModelPrice {
                model: "flat".into(),
                input: "0.30".parse().unwrap(),
                output: "0.30".parse().unwrap(),
                cache_read: None,
                cache_write5m: None,
                cache_write1h: None,
                long_prompt: None,
            },
        ],
        ..Default::default()
    };
    Money::from_config(&config).unwrap()
}

fn attempt(
    model: &str,
    outcome: Outcome,
    usage: Usage,
    latency_ms: u64,
    status: Option<u16>,
) -> Attempt {
    Attempt {
        model: model.into(),
        outcome,
        usage,
        latency: Duration::from_millis(latency_ms),
        status,
    }
}

fn chat(chat_id: i64, update_id: i64) -> CallContext {
    CallContext {
        chat_id: Some(chat_id),
        update_id: Some(update_id),
        request_type: RequestType::Chat,
    }
}

#[derive(Debug, PartialEq)]
struct LedgerRow {
    at: i64,
    chat_id: Option<i64>,
    update_id: Option<i64>,
    model: String,
    request_type: String,
    outcome: String,
    http_status: Option<i32>,
    tokens: Tokens,
    cost_nanos: i64,
    latency_ms: i64,
}

/// input, cache read, cache write 5m, cache write 1h, output
type Tokens = (i64, i64, i64, i64, i64);

impl LedgerRow {
    fn new(
        model: &str,
        outcome: &str,
        status: i32,
        tokens: Tokens,
        cost_nanos: i64,
        latency_ms: i64,
    ) -> Self {
        Self {
            at: now().timestamp_millis(),
            chat_id: Some(42),
            update_id: Some(7001),
            model: model.into(),
            request_type: "chat".into(),
            outcome: outcome.into(),
            http_status: Some(status),
            tokens,
            cost_nanos,
            latency_ms,
        }
    }
}
type Rates = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
);

async fn ledger(t: &TestDb) -> Vec<LedgerRow> {
    type Raw = (
        i64,
        Option<i64>,
        Option<i64>,
        String,
        String,
        String,
        Option<i32>,
        i64,
        i64,
        i64,
        i64,
        i64,
    );
    let raw: Vec<Raw> = sqlx::query_as(
        "SELECT at, chat_id, update_id, model, request_type, outcome, http_status, input_tokens, \
         cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, output_tokens \
         FROM llm_ledger ORDER BY id",
    )
    .fetch_all(&t.db.pool)
    .await
    .unwrap();
    let money: Vec<(i64, i64)> =
        sqlx::query_as("SELECT cost_nanos, latency_ms FROM llm_ledger ORDER BY id")
            .fetch_all(&t.db.pool)
            .await
            .unwrap();
    raw.into_iter()
        .zip(money)
        .map(|(r, (cost_nanos, latency_ms))| LedgerRow {
            at: r.0,
            chat_id: r.1,
            update_id: r.2,
            model: r.3,
            request_type: r.4,
            outcome: r.5,
            http_status: r.6,
            tokens: (r.7, r.8, r.9, r.10, r.11),
            cost_nanos,
            latency_ms,
        })
        .collect()
}

/// The rollup rows of the day of [`now`], every call of these tests.
async fn rollup(t: &TestDb) -> Vec<RollupRow> {
    let day = now().date_naive();
    money().rollup(&t.db, day, day).await.unwrap()
}

/// The value of one sample line of the exposition, e.g. `botfleet_x_total{a="b"}`.
fn sample(metrics: &Metrics, series: &str) -> Option<f64> {
    metrics.encode().lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().unwrap())
    })
}

async fn every_attempt_is_a_row_and_the_rollup_adds_up(t: TestDb) {
    let money = money();
    let metrics = Metrics::default();
    let written = Usage {
        input_tokens: 21,
        cache_read_tokens: 0,
        cache_write_5m_tokens: 1536,
        cache_write_1h_tokens: 652,
        output_tokens: 393,
    };
    let attempts = [
        attempt(
            "claude-sonnet-4-5",
            Outcome::Overloaded,
            Usage::default(),
            120,
            Some(529),
        ),
        attempt("claude-sonnet-4-5", Outcome::Ok, written, 2_345, Some(200)),
        attempt(
            "mystery-model",
            Outcome::Ok,
            Usage {
                input_tokens: 10,
                output_tokens: 5,
                ..Default::default()
            },
            800,
            Some(200),
        ),
    ];
    let cost = money
        .record_call(&t.db, &metrics, chat(42, 7001), &attempts, now())
        .await
        .unwrap();
    assert_eq!(cost, 15_630_000);

    let sonnet = "claude-sonnet-4-5".to_owned();
    let chat_s = "chat".to_owned();
    assert_eq!(
        ledger(&t).await,
        vec![
            LedgerRow::new(&sonnet, "overloaded", 529, (0, 0, 0, 0, 0), 0, 120),
            LedgerRow::new(
                &sonnet,
                "ok",
                200,
                (21, 0, 1536, 652, 393),
                15_630_000,
                2_345
            ),
            LedgerRow::new("mystery-model", "ok", 200, (10, 0, 0, 0, 5), 0, 800),
        ]
    );
    // Each row keeps the rates it was charged at; the unpriced one has none.
    let rates: Vec<(i64, Rates)> = sqlx::query_as::<_, (i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>, i64)>(
        "SELECT priced, input_rate, cache_read_rate, cache_write_5m_rate, cache_write_1h_rate, output_rate, long_prompt \
         FROM llm_ledger ORDER BY id",
    )
    .fetch_all(&t.db.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(p, a, b, c, d, e, l)| (p, (a, b, c, d, e, l)))
    .collect();
    let sonnet_rates = (
        Some(3_000),
        Some(300),
        Some(3_750),
        Some(6_000),
        Some(15_000),
        0,
    );
    assert_eq!(
        rates,
        vec![
            (1, sonnet_rates),
            (1, sonnet_rates),
            (0, (None, None, None, None, None, 0))
        ]
    );

    assert_eq!(
        rollup(&t).await,
        vec![
            RollupRow {
                day: "2026-11-22".into(),
                model: sonnet.clone(),
                request_type: chat_s.clone(),
                totals: UsageTotals {
                    requests: 2,
                    errors: 1,
                    input_tokens: 21,
                    cache_read_tokens: 0,
                    cache_write_5m_tokens: 1536,
                    cache_write_1h_tokens: 652,
                    output_tokens: 393,
                    cost_nanos: 15_630_000,
                    unpriced_calls: 0,
                    cache_saved_nanos: 0,
                },
            },
            RollupRow {
                day: "2026-11-22".into(),
                model: "mystery-model".into(),
                request_type: chat_s.clone(),
                totals: UsageTotals {
                    requests: 1,
                    errors: 0,
                    input_tokens: 10,
                    cache_read_tokens: 0,
                    cache_write_5m_tokens: 0,
                    cache_write_1h_tokens: 0,
                    output_tokens: 5,
                    cost_nanos: 0,
                    unpriced_calls: 1,
                    cache_saved_nanos: 0,
                },
            },
        ]
    );

    let m = &metrics;
    assert_eq!(
        sample(
            m,
            r#"botfleet_llm_requests_total{model="claude-sonnet-4-5",request_type="chat",outcome="overloaded"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            m,
            r#"botfleet_llm_requests_total{model="claude-sonnet-4-5",request_type="chat",outcome="ok"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            m,
            r#"botfleet_llm_tokens_total{model="claude-sonnet-4-5",request_type="chat",token_type="cache_write_5m"}"#
        ),
        Some(1536.0)
    );
    assert_eq!(
        sample(
            m,
            r#"botfleet_llm_tokens_total{model="claude-sonnet-4-5",request_type="chat",token_type="cache_write_1h"}"#
        ),
        Some(652.0)
    );
    assert_eq!(
        sample(
            m,
            r#"botfleet_llm_tokens_total{model="claude-sonnet-4-5",request_type="chat",token_type="output"}"#
        ),
        Some(393.0)
    );
    let usd = sample(
        m,
        r#"botfleet_llm_cost_usd_total{model="claude-sonnet-4-5",request_type="chat"}"#,
    )
    .unwrap();
    assert!((usd - 0.01563).abs() < 1e-12, "{usd}");
    assert_eq!(
        sample(
            m,
            r#"botfleet_llm_unpriced_calls_total{model="mystery-model"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            m,
            r#"botfleet_llm_request_duration_seconds_count{model="claude-sonnet-4-5"}"#
        ),
        Some(2.0)
    );

    // A second call on the same day adds to the same rollup rows.
    let followup = CallContext {
        chat_id: Some(42),
        update_id: None,
        request_type: RequestType::Followup,
    };
    money
        .record_call(&t.db, &metrics, chat(42, 7002), &attempts[1..2], now())
        .await
        .unwrap();
    money
        .record_call(&t.db, &metrics, followup, &attempts[1..2], now())
        .await
        .unwrap();
    let rows = rollup(&t).await;
    fn counts(row: &RollupRow) -> (&str, i64, i64) {
        (
            row.request_type.as_str(),
            row.totals.requests,
            row.totals.cost_nanos,
        )
    }
    assert_eq!(rows[0].model, sonnet);
    assert_eq!(counts(&rows[0]), ("chat", 3, 31_260_000));
    assert_eq!(counts(&rows[1]), ("followup", 1, 15_630_000));
    assert_eq!(ledger(&t).await.len(), 5);
}

/// One million 1-token calls through the database take minutes, so the million is checked in
/// pure arithmetic (money_pricing.rs) and here 20,000 of them go through `record_call`: the
/// rollup and the ledger must both hold exactly 20,000 × 300 nano-USD.
async fn many_one_token_calls_roll_up_exactly(t: TestDb) {
    let money = money();
    let metrics = Metrics::default();
    let one_token = attempt(
        "flat",
        Outcome::Ok,
        Usage {
            input_tokens: 1,
            ..Default::default()
        },
        1,
        Some(200),
    );
    let batch = vec![one_token; 1_000];
    for _ in 0..20 {
        money
            .record_call(&t.db, &metrics, chat(1, 1), &batch, now())
            .await
            .unwrap();
    }
    let rows = rollup(&t).await;
    assert_eq!(rows.len(), 1);
    let totals = &rows[0].totals;
    assert_eq!(
        (totals.requests, totals.input_tokens, totals.cost_nanos),
        (20_000, 20_000, 6_000_000)
    );
    let ledger_sum: (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), CAST(SUM(cost_nanos) AS BIGINT) FROM llm_ledger")
            .fetch_one(&t.db.pool)
            .await
            .unwrap();
    assert_eq!(ledger_sum, (20_000, 6_000_000));
    assert_eq!(
        money
            .usage_summary(&t.db, now())
            .await
            .unwrap()
            .spend_today_usd,
        "0.0060"
    );
}

for_each_db!(
    every_attempt_is_a_row_and_the_rollup_adds_up,
    many_one_token_calls_roll_up_exactly
);
