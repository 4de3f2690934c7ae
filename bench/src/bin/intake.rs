//! Webhook intake of the real `botfleet-bot serve` (release build) under load, on SQLite and
//! PostgreSQL, with fake Telegram and LLM APIs on loopback.
//!
//! Per database: a fresh database and bot; RSS once idle; a warm-up; then the steady run
//! (`--steady-rate` updates/s for `--steady-secs`: p50/p99/max time to 200, RSS and CPU of the
//! bot under that load); then the offered rate steps up (`--rates`) until acknowledgements slow
//! (p99 over `--p99-limit-ms`, an error, or fewer than 90% of the offered rate acknowledged).
//! Workers answer the updates meanwhile (LLM latency `--llm-latency-ms`), as in production.
//!
//! ```text
//! cargo build --release -p botfleet-bot -p botfleet-bench
//! target/release/intake --db sqlite,postgres
//! ```

use std::sync::Arc;
use std::time::Duration;

use botfleet_bench::database::Kind;
use botfleet_bench::flags::{Flag, Flags};
use botfleet_bench::load::{RunResult, Target, open_loop};
use botfleet_bench::process_stats::{RssSampler, cpu_time, rss_kib};
use botfleet_bench::report::{Table, mib, ms, print_header};
use botfleet_bench::rig::{self, Rig, RigInputs, run_each};

/// Besides [`rig::FLAGS`].
const FLAGS: &[Flag] = &[
    Flag::new("steady-rate", "1000", "updates/s of the steady run"),
    Flag::new("steady-secs", "10", "length of the steady run"),
    Flag::new(
        "rates",
        "500,1000,2000,4000,8000",
        "offered rates of the step-up",
    ),
    Flag::new("step-secs", "3", "length of each step"),
    Flag::new(
        "p99-limit-ms",
        "50",
        "a step whose p99 is above this ends the step-up",
    ),
    Flag::new("workers", "", "BOTFLEET_WORKERS (default: the bot's own)"),
    Flag::new("chats", "10000", "distinct users the updates come from"),
    Flag::new(
        "max-in-flight",
        "512",
        "requests in flight before sends are shed (counted as errors)",
    ),
];

struct Inputs {
    rig: RigInputs,
    steady_rate: f64,
    steady: Duration,
    rates: Vec<f64>,
    step: Duration,
    p99_limit: Duration,
    workers: Option<usize>,
    chats: i64,
    max_in_flight: usize,
}

fn inputs() -> Inputs {
    let flags = Flags::parse(
        "Webhook intake load against botfleet-bot serve",
        &[rig::FLAGS, FLAGS].concat(),
    );
    let workers = flags.text("workers");
    Inputs {
        rig: RigInputs::from_flags(&flags),
        steady_rate: flags.get("steady-rate"),
        steady: Duration::from_secs_f64(flags.get("steady-secs")),
        rates: flags.list("rates"),
        step: Duration::from_secs_f64(flags.get("step-secs")),
        p99_limit: Duration::from_secs_f64(flags.get::<f64>("p99-limit-ms") / 1e3),
        workers: (!workers.is_empty()).then(|| flags.get("workers")),
        chats: flags.get("chats"),
        max_in_flight: flags.get("max-in-flight"),
    }
}

struct DbResult {
    kind: Kind,
    idle_rss_kib: u64,
    steady: RunResult,
    steady_rss_max_kib: u64,
    steady_cpu_cores: f64,
    steps: Vec<(RunResult, &'static str)>,
    sustained: Option<f64>,
    answered: u64,
    pending_after: Option<i64>,
}

async fn run_on(kind: Kind, inputs: &Inputs) -> Result<DbResult, Box<dyn std::error::Error>> {
    let Rig {
        db,
        telegram,
        llm: _llm,
        mut bot,
    } = Rig::start(kind, &inputs.rig, inputs.workers, vec![]).await?;
    eprintln!(
        "[{}] bot pid {} ready; log {}",
        kind.name(),
        bot.pid,
        bot.log_path.display()
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss_kib = rss_kib(bot.pid).unwrap_or(0);

    let target = Arc::new(Target::new(bot.webhook_url.clone(), inputs.chats));
    eprintln!("[{}] warm-up", kind.name());
    open_loop(&target, 200.0, Duration::from_secs(1), inputs.max_in_flight).await;

    eprintln!(
        "[{}] steady {} updates/s for {:?}",
        kind.name(),
        inputs.steady_rate,
        inputs.steady
    );
    let sampler = RssSampler::start(bot.pid, Duration::from_millis(100));
    let cpu_before = cpu_time(bot.pid).unwrap_or_default();
    let steady = open_loop(
        &target,
        inputs.steady_rate,
        inputs.steady,
        inputs.max_in_flight,
    )
    .await;
    let cpu_used = cpu_time(bot.pid)
        .unwrap_or_default()
        .saturating_sub(cpu_before);
    let steady_rss_max_kib = sampler.max_kib();
    drop(sampler);
    let steady_cpu_cores = cpu_used.as_secs_f64() / inputs.steady.as_secs_f64();

    let mut steps = Vec::new();
    let mut sustained = None;
    for &rate in &inputs.rates {
        tokio::time::sleep(Duration::from_secs(1)).await;
        eprintln!(
            "[{}] step {rate} updates/s for {:?}",
            kind.name(),
            inputs.step
        );
        let run = open_loop(&target, rate, inputs.step, inputs.max_in_flight).await;
        let verdict = if !run.clean() {
            "errors"
        } else if run.latency.p99 > inputs.p99_limit {
            "p99 over limit"
        } else if run.achieved_per_sec < 0.9 * rate {
            "fell behind"
        } else {
            "ok"
        };
        if verdict == "ok" {
            sustained = Some(run.achieved_per_sec);
        }
        steps.push((run, verdict));
        if verdict != "ok" {
            break;
        }
    }
    let answered = telegram.messages();
    bot.stop();
    let pending_after = db.pending_updates().await.ok();
    db.drop_now().await;
    Ok(DbResult {
        kind,
        idle_rss_kib,
        steady,
        steady_rss_max_kib,
        steady_cpu_cores,
        steps,
        sustained,
        answered,
        pending_after,
    })
}

#[tokio::main]
async fn main() {
    let inputs = inputs();
    let results = run_each(
        inputs.rig.dbs.clone(),
        |kind| format!("{} run failed", kind.name()),
        |kind| run_on(kind, &inputs),
    )
    .await;

    print_header(
        "Webhook intake (botfleet-bot serve, release)",
        &[
            ("databases", inputs.rig.databases()),
            (
                "steady run",
                format!("{} updates/s for {:?}", inputs.steady_rate, inputs.steady),
            ),
            (
                "step-up",
                format!(
                    "{:?} updates/s, {:?} each, until p99 > {} or errors",
                    inputs.rates,
                    inputs.step,
                    ms(inputs.p99_limit)
                ),
            ),
            (
                "bot",
                format!(
                    "workers {}, fake LLM latency {}, {} distinct users, load generator on the same machine",
                    inputs
                        .workers
                        .map_or("default (8)".into(), |w| w.to_string()),
                    ms(inputs.rig.llm_latency),
                    inputs.chats
                ),
            ),
        ],
    );

    let mut steady = Table::new([
        "database",
        "offered/s",
        "acked (200)",
        "errors",
        "p50",
        "p99",
        "max",
        "bot CPU",
        "RSS idle",
        "RSS under load",
    ]);
    for r in &results {
        let s = &r.steady;
        steady.row([
            r.kind.name().to_owned(),
            format!("{:.0}", s.offered_per_sec),
            s.ok.to_string(),
            (s.errors + s.shed).to_string(),
            ms(s.latency.p50),
            ms(s.latency.p99),
            ms(s.latency.max),
            format!("{:.2} cores", r.steady_cpu_cores),
            mib(r.idle_rss_kib),
            mib(r.steady_rss_max_kib),
        ]);
    }
    println!(
        "### Time to 200 at {} updates/s\n\n{}",
        inputs.steady_rate,
        steady.render()
    );

    let mut steps = Table::new([
        "database",
        "offered/s",
        "acked/s",
        "p50",
        "p99",
        "max",
        "errors",
        "max send lag",
        "verdict",
    ]);
    for r in &results {
        for (run, verdict) in &r.steps {
            steps.row([
                r.kind.name().to_owned(),
                format!("{:.0}", run.offered_per_sec),
                format!("{:.0}", run.achieved_per_sec),
                ms(run.latency.p50),
                ms(run.latency.p99),
                ms(run.latency.max),
                (run.errors + run.shed).to_string(),
                ms(run.max_send_lag),
                (*verdict).to_owned(),
            ]);
        }
    }
    println!(
        "### Step-up until acknowledgements slow\n\n{}",
        steps.render()
    );

    let mut summary = Table::new([
        "database",
        "sustained updates/s",
        "p99 ≤ 5 ms at 1,000/s",
        "RSS idle ≤ 25 MiB",
        "answered during the run",
        "left in the inbox",
    ]);
    for r in &results {
        summary.row([
            r.kind.name().to_owned(),
            r.sustained
                .map_or("below the first step".into(), |s| format!("{s:.0}")),
            verdict(r.steady.clean() && r.steady.latency.p99 <= Duration::from_millis(5)),
            verdict(r.idle_rss_kib <= 25 * 1024),
            r.answered.to_string(),
            r.pending_after.map_or("?".into(), |p| p.to_string()),
        ]);
    }
    println!("### Summary\n\n{}", summary.render());
    println!(
        "(targets: p99 ≤ 5 ms at 1,000 updates/s on two cores; RSS ≤ 25 MiB idle. The load generator shares the cores with the bot.)"
    );
}

fn verdict(met: bool) -> String {
    if met { "met".into() } else { "NOT met".into() }
}
