//! Updates fully answered per second by the real `botfleet-bot serve` with a fake LLM of fixed
//! latency, at several worker counts, on SQLite and PostgreSQL: concurrency, not the LLM's
//! wait, should bound throughput (ideal: workers / latency, e.g. 8 / 0.2 s = 40 updates/s).
//!
//! Per database and worker count: a fresh database and bot; a few single updates answered one at
//! a time (the unloaded reply time); then a burst of updates, each from its own new chat
//! (updates of one chat are processed in order), enough to keep the workers busy for about
//! `--seconds`; answered/s is counted from the first send to the last reply the fake Telegram
//! saw.
//!
//! ```text
//! cargo build --release -p botfleet-bot -p botfleet-bench
//! target/release/end_to_end --workers 1,8,32,64
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use botfleet_bench::database::Kind;
use botfleet_bench::fakes::telegram::FakeTelegram;
use botfleet_bench::flags::{Flag, Flags};
use botfleet_bench::load::{Target, burst_new_chats};
use botfleet_bench::process_stats::{RssSampler, cpu_time};
use botfleet_bench::report::{Table, mib, ms, print_header};
use botfleet_bench::rig::{self, Rig, RigInputs, run_each};

/// Besides [`rig::FLAGS`].
const FLAGS: &[Flag] = &[
    Flag::new("workers", "1,8,32,64", "BOTFLEET_WORKERS values to run"),
    Flag::new(
        "seconds",
        "5",
        "burst size: about this many seconds of work at the ideal rate",
    ),
    Flag::new(
        "probes",
        "5",
        "single updates answered one at a time before the burst",
    ),
    Flag::new(
        "connections",
        "32",
        "concurrent webhook connections of the burst",
    ),
];

struct Inputs {
    rig: RigInputs,
    workers: Vec<usize>,
    seconds: f64,
    probes: usize,
    connections: usize,
}

fn inputs() -> Inputs {
    let flags = Flags::parse(
        "End-to-end answered updates/s of botfleet-bot serve",
        &[rig::FLAGS, FLAGS].concat(),
    );
    Inputs {
        rig: RigInputs::from_flags(&flags),
        workers: flags.list("workers"),
        seconds: flags.get("seconds"),
        probes: flags.get("probes"),
        connections: flags.get("connections"),
    }
}

struct RunResult {
    kind: Kind,
    workers: usize,
    updates: usize,
    rejected: usize,
    answered: usize,
    elapsed: Duration,
    probe_median: Option<Duration>,
    llm_calls: u64,
    cpu_cores: f64,
    rss_max_kib: u64,
}

/// Waits until `chat` got a reply; the time since `since`.
async fn reply_time(
    telegram: &FakeTelegram,
    chat: i64,
    since: Instant,
    limit: Duration,
) -> Option<Duration> {
    let deadline = since + limit;
    while Instant::now() < deadline {
        if let Some(at) = telegram.first_replies().get(&chat) {
            return Some(at.saturating_duration_since(since));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

async fn run(
    kind: Kind,
    workers: usize,
    inputs: &Inputs,
) -> Result<RunResult, Box<dyn std::error::Error>> {
    // This measures the pipeline's concurrency, not Telegram's 30 messages/s (which the
    // outbound limiter would otherwise impose above 30 updates/s).
    let rig = Rig::start(
        kind,
        &inputs.rig,
        Some(workers),
        vec![(
            botfleet_api::contract::env::BOTFLEET_TELEGRAM_MESSAGES_PER_SEC,
            "100000".into(),
        )],
    )
    .await?;
    let (telegram, llm, bot) = (&rig.telegram, &rig.llm, &rig.bot);
    let llm_latency = inputs.rig.llm_latency;
    let target = Arc::new(Target::new(bot.webhook_url.clone(), 1));

    // Unloaded: one update at a time, from the send to the reply at the fake Telegram.
    let mut probes = Vec::new();
    for i in 0..inputs.probes as i64 {
        let chat = 10_000 + i;
        let since = Instant::now();
        let update_id = target
            .next_update_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (_, status) = target.post(update_id, chat).await;
        if status == 200
            && let Some(t) = reply_time(telegram, chat, since, Duration::from_secs(10)).await
        {
            probes.push(t);
        }
    }
    probes.sort();
    let probe_median = probes.get(probes.len() / 2).copied();

    let ideal = workers as f64 / llm_latency.as_secs_f64().max(1e-3);
    let updates = ((ideal * inputs.seconds).round() as usize).max(20);
    let before_llm = llm.requests();
    let before_replies = telegram.replied_chats();
    eprintln!(
        "[{} workers={workers}] burst of {updates} updates",
        kind.name()
    );
    let sampler = RssSampler::start(bot.pid, Duration::from_millis(100));
    let cpu_before = cpu_time(bot.pid).unwrap_or_default();
    let started = Instant::now();
    let (chats, rejected) = burst_new_chats(&target, 1_000_000, updates, inputs.connections).await;
    // Generous: three times the ideal time, at least 30 s.
    let deadline = started + Duration::from_secs_f64((3.0 * updates as f64 / ideal).max(30.0));
    let want = before_replies + updates - rejected;
    while telegram.replied_chats() < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let replies = telegram.first_replies();
    let answered_at: Vec<Instant> = chats
        .iter()
        .filter_map(|c| replies.get(c).copied())
        .collect();
    let last = answered_at.iter().max().copied().unwrap_or(started);
    let elapsed = last.saturating_duration_since(started);
    let cpu_cores = cpu_time(bot.pid)
        .unwrap_or_default()
        .saturating_sub(cpu_before)
        .as_secs_f64()
        / started.elapsed().as_secs_f64();
    let rss_max_kib = sampler.max_kib();
    drop(sampler);
    let llm_calls = llm.requests() - before_llm;
    rig.stop().await;
    Ok(RunResult {
        kind,
        workers,
        updates,
        rejected,
        answered: answered_at.len(),
        elapsed,
        probe_median,
        llm_calls,
        cpu_cores,
        rss_max_kib,
    })
}

#[tokio::main]
async fn main() {
    let inputs = inputs();
    let cases = inputs
        .rig
        .dbs
        .iter()
        .flat_map(|&kind| inputs.workers.iter().map(move |&workers| (kind, workers)));
    let results = run_each(
        cases,
        |(kind, workers)| format!("{} workers={workers}", kind.name()),
        |(kind, workers)| run(kind, workers, &inputs),
    )
    .await;

    print_header(
        "End to end: updates fully answered per second (botfleet-bot serve, release)",
        &[
            ("databases", inputs.rig.databases()),
            ("fake LLM latency", ms(inputs.rig.llm_latency)),
            (
                "burst",
                format!(
                    "about {} s of work at the ideal rate, each update from a new chat, over {} connections",
                    inputs.seconds, inputs.connections
                ),
            ),
            ("ideal", "workers / LLM latency".into()),
        ],
    );
    let mut table = Table::new([
        "database",
        "workers",
        "updates",
        "answered",
        "time",
        "answered/s",
        "ideal/s",
        "of ideal",
        "single reply",
        "LLM calls",
        "bot CPU",
        "RSS max",
    ]);
    for r in &results {
        let ideal = r.workers as f64 / inputs.rig.llm_latency.as_secs_f64();
        let rate = r.answered as f64 / r.elapsed.as_secs_f64().max(1e-9);
        table.row([
            r.kind.name().to_owned(),
            r.workers.to_string(),
            if r.rejected > 0 {
                format!("{} ({} not acked)", r.updates, r.rejected)
            } else {
                r.updates.to_string()
            },
            r.answered.to_string(),
            format!("{:.2} s", r.elapsed.as_secs_f64()),
            format!("{rate:.1}"),
            format!("{ideal:.0}"),
            format!("{:.0}%", 100.0 * rate / ideal),
            r.probe_median.map_or("-".into(), ms),
            r.llm_calls.to_string(),
            format!("{:.2} cores", r.cpu_cores),
            mib(r.rss_max_kib),
        ]);
    }
    println!("{}", table.render());
    println!(
        "(single reply: median time from sending one update to its reply at the fake Telegram, bot otherwise idle.)"
    );
}
