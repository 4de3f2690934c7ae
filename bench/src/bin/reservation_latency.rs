//! The budget reservation's added latency per LLM call (target: p99 ≤ 2 ms on PostgreSQL over
//! loopback), on SQLite and PostgreSQL, alone and under 64 concurrent calls.
//!
//! Each run makes `--calls` calls through the real metered path (`MeteredLlm::call`) against a
//! fake LLM that answers at once, twice: without limits (no reservation: the call and its
//! ledger write) and with a daily, monthly and per-lead limit that never run out (a reservation
//! taken, then deleted in the ledger transaction). The difference of the two is what the
//! reservation adds.
//!
//! ```text
//! cargo run --release -p botfleet-bench --bin reservation_latency -- \
//!     --db sqlite,postgres --concurrency 1,64 --calls 2000
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use botfleet_bench::database::{Database, Kind};
use botfleet_bench::fakes::llm::FakeLlm;
use botfleet_bench::flags::{self, Flag, Flags};
use botfleet_bench::latency::Summary;
use botfleet_bot::metrics::Metrics;
use botfleet_bot::money::{CallSpec, Metered, MeteredLlm, Money, RequestType};
use botfleet_llm::{ChatMessage, CompletionRequest, LlmClient};

const FLAGS: &[Flag] = &[
    flags::DB,
    flags::DATABASE_URL,
    Flag::new(
        "calls",
        "2000",
        "timed calls per database, mode and concurrency",
    ),
    Flag::new("concurrency", "1,64", "calls in flight at once"),
];

fn config(llm_url: &str, limited: bool) -> botfleet_api::BotConfig {
    let budget = if limited {
        serde_json::json!({"daily": "1000000.00", "monthly": "1000000.00", "hardStop": true,
                           "perLead": {"daily": "1000000.00"}})
    } else {
        serde_json::json!({"hardStop": false})
    };
    serde_json::from_value(serde_json::json!({
        "llm": {"provider": "anthropic", "model": "claude-sonnet-4-5", "baseUrl": llm_url,
                "maxRetries": 0, "timeout": "30s",
                "systemPrompt": "You answer questions about our plans."},
        "budget": budget,
    }))
    .expect("a valid bench config")
}

fn metered(llm_url: &str, limited: bool, db: &botfleet_bot::db::Db) -> MeteredLlm {
    let config = config(llm_url, limited);
    let money = Money::from_config(&config).expect("valid money config");
    let client = LlmClient::new(&config.llm, "bench-key".into()).expect("an LLM client");
    MeteredLlm::new(
        client,
        Arc::new(money),
        db.clone(),
        Arc::new(Metrics::default()),
    )
}

/// `calls` calls, `concurrency` at a time, each timed.
async fn run(llm: &MeteredLlm, calls: usize, concurrency: usize) -> Vec<Duration> {
    let request = CompletionRequest {
        system: Some("You answer questions about our plans.".into()),
        messages: vec![ChatMessage::user("How much is the pro plan?")],
        max_output_tokens: 256,
        ..Default::default()
    };
    let per_task = calls.div_ceil(concurrency);
    let tasks = (0..concurrency).map(|task| {
        let llm = llm.clone();
        let request = request.clone();
        tokio::spawn(async move {
            let mut times = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let spec = CallSpec {
                    request_type: RequestType::Chat,
                    chat_id: Some(task as i64 + 1),
                    update_id: None,
                    request: &request,
                    tools: &[],
                    at: chrono::Utc::now(),
                };
                let started = Instant::now();
                let outcome = llm.call(spec).await.expect("a metered call");
                times.push(started.elapsed());
                assert!(matches!(outcome, Metered::Answered(_)), "{outcome:?}");
            }
            times
        })
    });
    let mut all = Vec::new();
    for task in futures::future::join_all(tasks).await {
        all.extend(task.expect("a bench task"));
    }
    all
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let flags = Flags::parse("the budget reservation's added latency per LLM call", FLAGS);
    let kinds: Vec<Kind> = flags.list("db");
    let admin_url = flags.text("database-url");
    let calls: usize = flags.get("calls");
    let llm = FakeLlm::start(Duration::ZERO).await;
    println!(
        "| database | in flight | no limit p50 / p99 | reserved p50 / p99 | added p50 / p99 |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for kind in kinds {
        for concurrency in flags.list::<usize>("concurrency") {
            let (scratch, db) = Database::fresh_migrated(kind, &admin_url).await;
            let free = metered(&llm.url, false, &db);
            let limited = metered(&llm.url, true, &db);
            // Warm the connections and statements of both paths.
            run(&free, concurrency, concurrency).await;
            run(&limited, concurrency, concurrency).await;
            let plain = Summary::of(run(&free, calls, concurrency).await);
            let reserved = Summary::of(run(&limited, calls, concurrency).await);
            println!(
                "| {} | {concurrency} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
                kind.name(),
                ms(plain.p50),
                ms(plain.p99),
                ms(reserved.p50),
                ms(reserved.p99),
                ms(reserved.p50.saturating_sub(plain.p50)),
                ms(reserved.p99.saturating_sub(plain.p99)),
            );
            db.pool.close().await;
            scratch.drop_now().await;
        }
    }
}
