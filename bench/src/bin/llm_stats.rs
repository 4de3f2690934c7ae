//! `/llm_stats` over a large ledger on PostgreSQL (target: ≤ 20 ms with one million rows).
//!
//! Creates a throwaway database, seeds `--rows` ledger rows spread over 30 days (server-side
//! `generate_series`, in batches, with progress), builds the daily rollup from them exactly as
//! `record_call` keeps it, adds `--calls` calls through the real `record_call` path (timed: the
//! write cost), checks that the rollup still equals the ledger, then times `report_llm_stats`
//! (and the per-call hot paths `gate` and `usage_summary`) and prints p50/p99/max.
//!
//! ```text
//! cargo run --release -p botfleet-bench --bin llm_stats -- \
//!     --database-url postgres://postgres@127.0.0.1:5432/postgres --rows 1000000 --runs 200
//! ```

use std::time::{Duration, Instant};

use botfleet_bench::flags::{self, Flag, Flags};

use botfleet_api::{BotConfig, BudgetConfig, ModelPrice};
use botfleet_bench::database::seeded_postgres;
use botfleet_bench::latency::percentile;
use botfleet_bot::metrics::Metrics;
use botfleet_bot::money::{CallContext, Money, RequestType};
use botfleet_llm::{Attempt, Outcome, Usage};

struct Args {
    url: String,
    rows: i64,
    runs: usize,
    calls: usize,
    keep: bool,
}

const FLAGS: &[Flag] = &[
    flags::DATABASE_URL,
    Flag::new("rows", "1000000", "ledger rows to seed"),
    Flag::new(
        "calls",
        "2000",
        "calls recorded through record_call (timed)",
    ),
    flags::RUNS,
    flags::KEEP,
];

fn parse_args() -> Args {
    let flags = Flags::parse("/llm_stats over a large ledger on PostgreSQL", FLAGS);
    Args {
        url: flags.text("database-url"),
        rows: flags.get("rows"),
        calls: flags.get("calls"),
        runs: flags.get("runs"),
        keep: flags.get("keep"),
    }
}

const MODELS: [&str; 3] = ["claude-sonnet-4-5", "claude-haiku-4-5", "gpt-4o"];

fn money() -> Money {
    let price =
        |model: &str, input: &str, output: &str, read: &str, w5m: &str, w1h: &str| ModelPrice {
            model: model.into(),
            input: input.parse().unwrap(),
            output: output.parse().unwrap(),
            cache_read: Some(read.parse().unwrap()),
            cache_write5m: Some(w5m.parse().unwrap()),
            cache_write1h: Some(w1h.parse().unwrap()),
            long_prompt: None,
        };
    Money::from_config(&BotConfig {
        pricing: vec![
            price(MODELS[0], "3.00", "15.00", "0.30", "3.75", "6.00"),
            price(MODELS[1], "1.00", "5.00", "0.10", "1.25", "2.00"),
            price(MODELS[2], "2.50", "10.00", "1.25", "2.50", "2.50"),
        ],
        budget: Some(BudgetConfig {
            daily: Some("50.00".parse().unwrap()),
            monthly: Some("1000.00".parse().unwrap()),
            ..Default::default()
        }),
        owners: vec![1],
        ..Default::default()
    })
    .expect("valid prices")
}

/// One batch of synthetic ledger rows, generated in the server. Rates follow `money()`.
const SEED_BATCH: &str = "
INSERT INTO llm_ledger (at, chat_id, update_id, model, request_type, outcome, http_status,
    input_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, output_tokens,
    cost_nanos, priced, input_rate, cache_read_rate, cache_write_5m_rate, cache_write_1h_rate,
    output_rate, long_prompt, latency_ms)
SELECT at, chat_id, g, model, request_type, outcome, status, i, r, w, 0, o,
       CASE WHEN outcome = 'ok' THEN i * ri + r * rr + w * rw + o * ro ELSE 0 END,
       1, ri, rr, rw, rw, ro, 0, 200 + g % 3000
FROM (
  SELECT g,
         $3::bigint - (g * 2592000000::bigint / $4::bigint) AS at,
         g % 5000 AS chat_id,
         (ARRAY['claude-sonnet-4-5','claude-haiku-4-5','gpt-4o'])[1 + g % 3] AS model,
         CASE WHEN g % 10 < 8 THEN 'chat' WHEN g % 10 = 8 THEN 'followup' ELSE 'summary' END AS request_type,
         CASE WHEN g % 50 = 0 THEN 'overloaded' ELSE 'ok' END AS outcome,
         CASE WHEN g % 50 = 0 THEN 529 ELSE 200 END AS status,
         CASE WHEN g % 50 = 0 THEN 0 ELSE 100 + g % 500 END AS i,
         CASE WHEN g % 50 = 0 OR g % 2 = 0 THEN 0 ELSE 2000 + g % 1000 END AS r,
         CASE WHEN g % 50 = 0 OR g % 7 <> 0 THEN 0 ELSE 1500 END AS w,
         CASE WHEN g % 50 = 0 THEN 0 ELSE 50 + g % 300 END AS o,
         (ARRAY[3000, 1000, 2500])[1 + g % 3] AS ri,
         (ARRAY[300, 100, 1250])[1 + g % 3] AS rr,
         (ARRAY[3750, 1250, 2500])[1 + g % 3] AS rw,
         (ARRAY[15000, 5000, 10000])[1 + g % 3] AS ro
  FROM generate_series($1::bigint, $2::bigint) AS g
) AS s";

/// The rollup `record_call` would have written for those rows.
const BUILD_ROLLUP: &str = "
INSERT INTO llm_usage_daily (day, model, request_type, requests, errors, input_tokens,
    cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, output_tokens, cost_nanos,
    unpriced_calls)
SELECT to_char(to_timestamp(at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD'), model, request_type,
       COUNT(*), SUM(CASE WHEN outcome <> 'ok' THEN 1 ELSE 0 END), SUM(input_tokens),
       SUM(cache_read_tokens), SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens),
       SUM(output_tokens), SUM(cost_nanos), SUM(1 - priced)
FROM llm_ledger GROUP BY 1, 2, 3";

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

async fn time_runs<F, Fut>(runs: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..5 {
        f().await; // warm-up: connections, plan cache
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        f().await;
        times.push(started.elapsed());
    }
    times.sort();
    times
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args();
    // A fresh database next to --database-url, dropped at the end unless --keep true.
    let (scratch, db, now) = seeded_postgres(
        &args.url,
        "ledger rows",
        0..=args.rows - 1,
        SEED_BATCH,
        &[args.rows],
        &[BUILD_ROLLUP, "ANALYZE"],
    )
    .await;

    // Real writes on top, through the same path the bot uses.
    let money = money();
    let metrics = Metrics::default();
    let mut write_times = Vec::with_capacity(args.calls);
    for i in 0..args.calls {
        let attempt = Attempt {
            model: MODELS[i % 3].into(),
            outcome: Outcome::Ok,
            usage: Usage {
                input_tokens: 120,
                cache_read_tokens: 2048,
                cache_write_5m_tokens: 0,
                cache_write_1h_tokens: 0,
                output_tokens: 180,
            },
            latency: Duration::from_millis(900),
            status: Some(200),
        };
        let call = CallContext {
            chat_id: Some(i as i64 % 5000),
            update_id: Some(i as i64),
            request_type: RequestType::Chat,
        };
        let started = Instant::now();
        money
            .record_call(&db, &metrics, call, &[attempt], now)
            .await
            .expect("record_call");
        write_times.push(started.elapsed());
    }
    write_times.sort();

    // The rollup must still equal the ledger.
    let (ledger_rows, ledger_cost): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), CAST(SUM(cost_nanos) AS BIGINT) FROM llm_ledger")
            .fetch_one(&db.pool)
            .await
            .expect("ledger totals");
    let (rollup_rows, rollup_requests, rollup_cost): (i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), CAST(SUM(requests) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT) FROM llm_usage_daily",
    )
    .fetch_one(&db.pool)
    .await
    .expect("rollup totals");
    assert_eq!(
        (ledger_rows, ledger_cost),
        (rollup_requests, rollup_cost),
        "rollup ≠ ledger"
    );

    let report = money.report_llm_stats(&db, now).await.expect("report");
    let stats = time_runs(args.runs, || async {
        money.report_llm_stats(&db, now).await.expect("report");
    })
    .await;
    let gate = time_runs(args.runs, || async {
        money.gate(&db, now).await.expect("gate");
    })
    .await;
    let usage = time_runs(args.runs, || async {
        money.usage_summary(&db, now).await.expect("usage");
    })
    .await;

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("{report}");
    println!(
        "PostgreSQL, {cores} cores, {ledger_rows} ledger rows, {rollup_rows} rollup rows, {} runs each",
        args.runs
    );
    println!(
        "{:<30} {:>9} {:>9} {:>9}",
        "operation", "p50 ms", "p99 ms", "max ms"
    );
    for (name, times) in [
        ("/llm_stats (report)", &stats),
        ("gate (before each call)", &gate),
        ("usage_summary (/api/v1/usage)", &usage),
        ("record_call (1 attempt)", &write_times),
    ] {
        println!(
            "{name:<30} {:>9} {:>9} {:>9}",
            ms(percentile(times, 50.0)),
            ms(percentile(times, 99.0)),
            ms(*times.last().expect("at least one run"))
        );
    }
    let p50 = percentile(&stats, 50.0);
    let slow = stats
        .iter()
        .filter(|t| **t > Duration::from_millis(20))
        .count();
    println!(
        "target /llm_stats ≤ 20 ms: {} at p50; {slow} of {} runs over 20 ms",
        if p50 <= Duration::from_millis(20) {
            "met"
        } else {
            "NOT met"
        },
        stats.len()
    );

    db.pool.close().await;
    if args.keep {
        eprintln!("kept the bench database: {}", scratch.url);
    } else {
        scratch.drop_now().await;
    }
}
