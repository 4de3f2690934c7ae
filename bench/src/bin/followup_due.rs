//! Selecting the leads due a follow-up among one million leads on PostgreSQL (target: ≤ 50 ms
//! per scheduler tick).
//!
//! Creates a throwaway database, seeds `--leads` leads (server-side `generate_series` in
//! batches, with progress) in a steady state: last messages spread over 90 days, most of the
//! quiet ones already followed up, a backlog of about 2 % still due (a scheduler that was down
//! for a while). Then it times, over `--runs` runs, what every scheduler tick does on the
//! database with `followUp.after: [24h, 48h]`:
//!
//! - the due selection: `followup::store::select_due` for each step (the index range scan,
//!   `LIMIT` one batch of 200),
//! - the due/overdue gauges: `followup::store::count_due` for each step, twice.
//!
//! ```text
//! cargo run --release -p botfleet-bench --bin followup_due -- \
//!     --database-url postgres://postgres@127.0.0.1:5432/postgres --leads 1000000 --runs 200
//! ```

use std::time::{Duration, Instant};

use botfleet_bench::flags::{self, Flag, Flags};

use botfleet_api::FollowUpConfig;
use botfleet_bench::database::seeded_postgres;
use botfleet_bench::latency::percentile;
use botfleet_bot::followup::{DEFAULT_BATCH, FollowUpPlan, store};

struct Args {
    url: String,
    leads: i64,
    runs: usize,
    keep: bool,
}

const FLAGS: &[Flag] = &[
    flags::DATABASE_URL,
    Flag::new("leads", "1000000", "leads to seed"),
    flags::RUNS,
    flags::KEEP,
];

fn parse_args() -> Args {
    let flags = Flags::parse(
        "Due follow-up selection over many leads on PostgreSQL",
        FLAGS,
    );
    Args {
        url: flags.text("database-url"),
        leads: flags.get("leads"),
        runs: flags.get("runs"),
        keep: flags.get("keep"),
    }
}

/// One batch of leads, ids `$1..=$2`, relative to `$3` = now (ms). `r` is a per-row random
/// number that decides the lead's state:
/// - silent < 24 h: nothing sent yet (not due);
/// - silent 24–48 h: 95 % had follow-up 1, 5 % are due it;
/// - silent > 48 h: 97 % had both, 2 % are due follow-up 2, 1 % are due follow-up 1;
/// - 7 % opted out, 3 % converted, whatever their silence.
const SEED_BATCH: &str = "
INSERT INTO leads (chat_id, user_id, first_seen_at, last_inbound_at, status, followups_sent,
                   last_followup_at)
SELECT id, id, last_in - 86400000, last_in,
       CASE WHEN r < 0.07 THEN 'opted_out' WHEN r < 0.10 THEN 'converted' ELSE 'active' END,
       sent,
       CASE WHEN sent = 0 THEN NULL ELSE last_in + 86400000 * sent END
FROM (
    SELECT id, last_in, r,
           CASE
               WHEN $3 - last_in < 86400000 THEN 0
               WHEN $3 - last_in < 172800000 THEN CASE WHEN r2 < 0.05 THEN 0 ELSE 1 END
               ELSE CASE WHEN r2 < 0.01 THEN 0 WHEN r2 < 0.03 THEN 1 ELSE 2 END
           END AS sent
    FROM (
        SELECT id, random() AS r, random() AS r2,
               $3 - (random() * 90 * 86400000)::BIGINT AS last_in
        FROM generate_series($1::BIGINT, $2::BIGINT) AS id
    ) raw
) lead";

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args();
    // A fresh database next to --database-url, dropped at the end unless --keep true. After
    // the bulk load, what autovacuum would do soon: statistics and the visibility map
    // (index-only scans for the counts).
    let (scratch, db, now) = seeded_postgres(
        &args.url,
        "leads",
        1..=args.leads,
        SEED_BATCH,
        &[],
        &["VACUUM ANALYZE leads"],
    )
    .await;
    let now_ms = now.timestamp_millis();

    let plan = FollowUpPlan::from_config(Some(&FollowUpConfig {
        enabled: true,
        after: vec!["24h".parse().unwrap(), "48h".parse().unwrap()],
        quiet_hours: None,
        prompt: None,
    }))
    .expect("valid plan")
    .expect("follow-ups on");

    let mut due = 0;
    for step in 0..plan.steps() {
        due += store::count_due(&db, step as u32, plan.cutoff_ms(step, now))
            .await
            .expect("count");
    }

    let select_tick = || async {
        let mut selected = 0;
        for step in 0..plan.steps() {
            selected += store::select_due(
                &db,
                step as u32,
                plan.cutoff_ms(step, now),
                plan.gap_cutoff_ms(step, now),
                now_ms,
                DEFAULT_BATCH,
            )
            .await
            .expect("select_due")
            .len();
        }
        selected
    };
    let gauges_tick = || async {
        for step in 0..plan.steps() {
            let cutoff = plan.cutoff_ms(step, now);
            store::count_due(&db, step as u32, cutoff)
                .await
                .expect("count");
            store::count_due(&db, step as u32, cutoff - 3_600_000)
                .await
                .expect("count");
        }
    };

    for _ in 0..5 {
        select_tick().await; // warm-up: connections, plan cache
        gauges_tick().await;
    }
    let mut selected = 0;
    let mut select_times = Vec::with_capacity(args.runs);
    let mut gauge_times = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let started = Instant::now();
        selected = select_tick().await;
        select_times.push(started.elapsed());
        let started = Instant::now();
        gauges_tick().await;
        gauge_times.push(started.elapsed());
    }
    select_times.sort();
    gauge_times.sort();

    // Our own numbers, formatted: safe to splice into EXPLAIN (which takes no parameters).
    let explain = format!(
        "EXPLAIN SELECT chat_id, last_inbound_at FROM leads
         WHERE status = 'active' AND followups_sent = 0 AND last_inbound_at <= {cutoff}
           AND (followup_claim IS NULL OR followup_claim_until < {now_ms})
         ORDER BY last_inbound_at LIMIT {DEFAULT_BATCH}",
        cutoff = plan.cutoff_ms(0, now),
    );
    let plan_text: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
        .fetch_all(&db.pool)
        .await
        .unwrap_or_default();

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "PostgreSQL, {cores} cores, {} leads, {due} due, {selected} selected per tick (batch {DEFAULT_BATCH} per step, 2 steps), {} runs",
        args.leads, args.runs
    );
    println!(
        "{:<44} {:>9} {:>9} {:>9}",
        "operation", "p50 ms", "p99 ms", "max ms"
    );
    for (name, times) in [
        ("due selection (select_due, both steps)", &select_times),
        ("due/overdue gauges (count_due ×4)", &gauge_times),
    ] {
        println!(
            "{name:<44} {:>9} {:>9} {:>9}",
            ms(percentile(times, 50.0)),
            ms(percentile(times, 99.0)),
            ms(*times.last().expect("at least one run"))
        );
    }
    println!("plan of the step-1 selection:");
    for line in plan_text {
        println!("  {line}");
    }
    let p99 = percentile(&select_times, 99.0);
    println!(
        "target due selection ≤ 50 ms: {}",
        if p99 <= Duration::from_millis(50) {
            "met (p99)"
        } else {
            "NOT met (p99)"
        }
    );

    db.pool.close().await;
    if args.keep {
        eprintln!("kept the bench database: {}", scratch.url);
    } else {
        scratch.drop_now().await;
    }
}
