//! Webhook intake of the real `botfleet-bot serve` under load, on SQLite and PostgreSQL, with
//! fake Telegram and LLM APIs on loopback, for one or more bot binaries (`--bot-bin
//! target/release/botfleet-bot,target/x86_64-unknown-linux-gnu/image/botfleet-bot`: the
//! release build beside the images' build).
//!
//! Per binary and database: a fresh database and bot; RSS once idle; a warm-up; the ceiling
//! (`GET /healthz` of the same process over `--connections` keep-alive connections, closed
//! loop); a paced run (`--paced-rate` updates/s: p50/p99/max time to 200); then the durable
//! intake at saturation (unique updates over the same connections, closed loop: updates/s,
//! its share of the ceiling, p50/p99, RSS and CPU of the bot). A 200 comes only after the
//! update is committed to the inbox. Workers answer the updates meanwhile (LLM latency
//! `--llm-latency-ms`), as in production.
//!
//! ```text
//! cargo build --release -p botfleet-bot -p botfleet-bench
//! target/release/intake --db sqlite,postgres
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use botfleet_bench::bot_process::{BotProcess, default_bot_bin};
use botfleet_bench::closed_loop::{self, Saturation};
use botfleet_bench::database::Kind;
use botfleet_bench::flags::{Flag, Flags};
use botfleet_bench::load::{RunResult, Target, open_loop};
use botfleet_bench::process_stats::{RssSampler, cpu_time, rss_kib};
use botfleet_bench::report::{Table, mib, ms, print_header};
use botfleet_bench::rig::{self, Rig, RigInputs, run_each};

/// Besides [`rig::FLAGS`] (whose `--bot-bin` takes a comma-separated list here).
const FLAGS: &[Flag] = &[
    Flag::new(
        "connections",
        "64",
        "keep-alive connections of the ceiling and saturation runs",
    ),
    Flag::new("ceiling-secs", "5", "length of the /healthz ceiling run"),
    Flag::new(
        "saturation-secs",
        "10",
        "length of the durable intake run at saturation",
    ),
    Flag::new("paced-rate", "1000", "updates/s of the paced run"),
    Flag::new("paced-secs", "10", "length of the paced run"),
    Flag::new("warmup-secs", "1", "length of the warm-up at saturation"),
    Flag::new("workers", "", "BOTFLEET_WORKERS (default: the bot's own)"),
    Flag::new("chats", "10000", "distinct users the updates come from"),
    Flag::new(
        "max-in-flight",
        "512",
        "paced run: requests in flight before sends are shed (counted as errors)",
    ),
];

/// SQLite's durable rate must reach this share of the same process's `/healthz` rate.
const SQLITE_SHARE_TARGET: f64 = 0.30;
const POSTGRES_RATE_TARGET: f64 = 15_000.0;
const SATURATION_P99_TARGET: Duration = Duration::from_millis(20);
const PACED_P99_TARGET: Duration = Duration::from_millis(2);
/// 30 MB.
const RSS_TARGET_KIB: u64 = 30_000_000 / 1024;

struct Inputs {
    rig: RigInputs,
    bins: Vec<PathBuf>,
    connections: usize,
    ceiling: Duration,
    saturation: Duration,
    paced_rate: f64,
    paced: Duration,
    warmup: Duration,
    workers: Option<usize>,
    chats: i64,
    max_in_flight: usize,
}

fn inputs() -> Inputs {
    let flags = Flags::parse(
        "Webhook intake against botfleet-bot serve: /healthz ceiling, durable rate at saturation, paced latency",
        &[rig::FLAGS, FLAGS].concat(),
    );
    let workers = flags.text("workers");
    let bins = flags.text("bot-bin");
    let secs = |name| Duration::from_secs_f64(flags.get(name));
    Inputs {
        rig: RigInputs::from_flags(&flags),
        bins: if bins.is_empty() {
            vec![default_bot_bin()]
        } else {
            bins.split(',').map(PathBuf::from).collect()
        },
        connections: flags.get("connections"),
        ceiling: secs("ceiling-secs"),
        saturation: secs("saturation-secs"),
        paced_rate: flags.get("paced-rate"),
        paced: secs("paced-secs"),
        warmup: secs("warmup-secs"),
        workers: (!workers.is_empty()).then(|| flags.get("workers")),
        chats: flags.get("chats"),
        max_in_flight: flags.get("max-in-flight"),
    }
}

/// A binary's name in the tables: its last two path components (`release/botfleet-bot`).
fn label(bin: &Path) -> String {
    let parts: Vec<_> = bin.iter().map(|p| p.to_string_lossy()).collect();
    parts[parts.len().saturating_sub(2)..].join("/")
}

struct CaseResult {
    bin: String,
    kind: Kind,
    idle_rss_kib: u64,
    ceiling: Saturation,
    paced: RunResult,
    intake: Saturation,
    intake_rss_max_kib: u64,
    intake_cpu_cores: f64,
    /// Mean updates per inbox transaction at saturation (the group commit's batches).
    rows_per_write: Option<f64>,
    answered: u64,
    pending_after: Option<i64>,
}

impl CaseResult {
    fn share(&self) -> f64 {
        self.intake.per_sec / self.ceiling.per_sec.max(1.0)
    }

    fn rate_met(&self) -> bool {
        match self.kind {
            Kind::Sqlite => self.share() >= SQLITE_SHARE_TARGET,
            Kind::Postgres => self.intake.per_sec >= POSTGRES_RATE_TARGET,
        }
    }
}

async fn run_case(
    bin: &Path,
    kind: Kind,
    inputs: &Inputs,
) -> Result<CaseResult, Box<dyn std::error::Error>> {
    let name = format!("{} {}", label(bin), kind.name());
    let rig_inputs = RigInputs {
        bot_bin: bin.to_owned(),
        ..inputs.rig.clone()
    };
    let Rig {
        db,
        telegram,
        llm: _llm,
        mut bot,
    } = Rig::start(kind, &rig_inputs, inputs.workers, vec![]).await?;
    eprintln!(
        "[{name}] bot pid {} ready; log {}",
        bot.pid,
        bot.log_path.display()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss_kib = rss_kib(bot.pid).unwrap_or(0);

    let target = Arc::new(Target::new(bot.webhook_url.clone(), inputs.chats));
    let (webhook, updates) = target.raw_requests();
    eprintln!("[{name}] warm-up");
    closed_loop::run(webhook, updates.clone(), inputs.connections, inputs.warmup).await;

    eprintln!("[{name}] /healthz ceiling for {:?}", inputs.ceiling);
    let ops = reqwest::Url::parse(&bot.metrics_url)?;
    let ops = ops.socket_addrs(|| None)?[0];
    let healthz = closed_loop::get(ops, botfleet_api::contract::LIVENESS_PATH);
    let ceiling = closed_loop::run(ops, healthz, inputs.connections, inputs.ceiling).await;

    eprintln!(
        "[{name}] paced {} updates/s for {:?}",
        inputs.paced_rate, inputs.paced
    );
    let paced = open_loop(
        &target,
        inputs.paced_rate,
        inputs.paced,
        inputs.max_in_flight,
    )
    .await;

    eprintln!(
        "[{name}] durable intake at saturation for {:?}",
        inputs.saturation
    );
    let sampler = RssSampler::start(bot.pid, Duration::from_millis(100));
    let cpu_before = cpu_time(bot.pid).unwrap_or_default();
    let batches_before = batches(&bot).await;
    let intake = closed_loop::run(webhook, updates, inputs.connections, inputs.saturation).await;
    let cpu_used = cpu_time(bot.pid)
        .unwrap_or_default()
        .saturating_sub(cpu_before);
    let intake_rss_max_kib = sampler.max_kib();
    drop(sampler);
    let rows_per_write = match (batches_before, batches(&bot).await) {
        (Some((rows0, writes0)), Some((rows1, writes1))) if writes1 > writes0 => {
            Some((rows1 - rows0) / (writes1 - writes0))
        }
        _ => None,
    };

    let answered = telegram.messages();
    bot.stop();
    let pending_after = db.pending_updates().await.ok();
    db.drop_now().await;
    Ok(CaseResult {
        bin: label(bin),
        kind,
        idle_rss_kib,
        intake_cpu_cores: cpu_used.as_secs_f64() / intake.duration.as_secs_f64(),
        ceiling,
        paced,
        intake,
        intake_rss_max_kib,
        rows_per_write,
        answered,
        pending_after,
    })
}

/// Rows and transactions the inbox's group commit has written so far (`/metrics`).
async fn batches(bot: &BotProcess) -> Option<(f64, f64)> {
    Some((
        bot.metric("botfleet_inbox_batch_rows_sum").await?,
        bot.metric("botfleet_inbox_batch_rows_count").await?,
    ))
}

#[tokio::main]
async fn main() {
    let inputs = inputs();
    let cases: Vec<(PathBuf, Kind)> = inputs
        .bins
        .iter()
        .flat_map(|bin| inputs.rig.dbs.iter().map(|&kind| (bin.clone(), kind)))
        .collect();
    let results = run_each(
        cases,
        |(bin, kind)| format!("{} on {}", label(bin), kind.name()),
        |(bin, kind)| {
            let inputs = &inputs;
            async move { run_case(&bin, kind, inputs).await }
        },
    )
    .await;
    print_header(
        "Webhook intake (botfleet-bot serve)",
        &[
            (
                "binaries",
                inputs
                    .bins
                    .iter()
                    .map(|b| b.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("databases", inputs.rig.databases()),
            (
                "saturation",
                format!(
                    "{} keep-alive connections, closed loop: /healthz for {:?}, then unique updates for {:?}",
                    inputs.connections, inputs.ceiling, inputs.saturation
                ),
            ),
            (
                "paced",
                format!("{} updates/s for {:?}", inputs.paced_rate, inputs.paced),
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
    println!(
        "### Durable intake at saturation against the /healthz ceiling ({} connections)\n\n{}",
        inputs.connections,
        saturation_table(&results).render()
    );
    println!(
        "### Time to 200 at a paced {} updates/s\n\n{}",
        inputs.paced_rate,
        paced_table(&results).render()
    );
    println!("### Targets\n\n{}", targets_table(&results).render());
    println!(
        "(targets: SQLite durable rate ≥ 30 % of the same process's /healthz rate, PostgreSQL ≥ 15,000 updates/s; p99 ≤ 20 ms at saturation, ≤ 2 ms at 1,000/s; RSS ≤ 30 MB under load. The load generator shares the cores with the bot.)"
    );
}

fn saturation_table(results: &[CaseResult]) -> Table {
    let mut table = Table::new([
        "binary",
        "database",
        "/healthz per s",
        "durable updates/s",
        "share of ceiling",
        "p50",
        "p99",
        "max",
        "errors",
        "rows per write",
        "bot CPU",
        "RSS idle",
        "RSS under load",
    ]);
    for r in results {
        table.row([
            r.bin.clone(),
            r.kind.name().to_owned(),
            format!("{:.0}", r.ceiling.per_sec),
            format!("{:.0}", r.intake.per_sec),
            format!("{:.1} %", 100.0 * r.share()),
            ms(r.intake.latency.p50),
            ms(r.intake.latency.p99),
            ms(r.intake.latency.max),
            (r.intake.errors + r.ceiling.errors).to_string(),
            r.rows_per_write.map_or("?".into(), |n| format!("{n:.1}")),
            format!("{:.2} cores", r.intake_cpu_cores),
            mib(r.idle_rss_kib),
            mib(r.intake_rss_max_kib),
        ]);
    }
    table
}

fn paced_table(results: &[CaseResult]) -> Table {
    let mut table = Table::new([
        "binary",
        "database",
        "acked (200)",
        "errors",
        "p50",
        "p99",
        "max",
        "max send lag",
    ]);
    for r in results {
        let p = &r.paced;
        table.row([
            r.bin.clone(),
            r.kind.name().to_owned(),
            p.ok.to_string(),
            (p.errors + p.shed).to_string(),
            ms(p.latency.p50),
            ms(p.latency.p99),
            ms(p.latency.max),
            ms(p.max_send_lag),
        ]);
    }
    table
}

fn targets_table(results: &[CaseResult]) -> Table {
    let mut table = Table::new([
        "binary",
        "database",
        "durable rate",
        "p99 ≤ 20 ms at saturation",
        "p99 ≤ 2 ms paced",
        "RSS ≤ 30 MB",
        "answered during the run",
        "left in the inbox",
    ]);
    for r in results {
        table.row([
            r.bin.clone(),
            r.kind.name().to_owned(),
            verdict(r.rate_met()),
            verdict(r.intake.errors == 0 && r.intake.latency.p99 <= SATURATION_P99_TARGET),
            verdict(r.paced.clean() && r.paced.latency.p99 <= PACED_P99_TARGET),
            verdict(r.intake_rss_max_kib <= RSS_TARGET_KIB),
            r.answered.to_string(),
            r.pending_after.map_or("?".into(), |p| p.to_string()),
        ]);
    }
    table
}

fn verdict(met: bool) -> String {
    if met { "met".into() } else { "NOT met".into() }
}
