//! How many answers a crash repeats: steady webhook traffic (one update every `--interval-ms`
//! over `--chats` chats, the model answering after `--llm-latency-ms`) while the real
//! `botfleet-bot serve` is SIGKILLed every `--every-secs`, `--kills` times, and restarted as the
//! same pod. Every update is delivered until the webhook answers 200, as Telegram does; at the
//! end every acknowledged update must be answered (none lost), and each reply beyond one per
//! update is a repeat. Target: at most one repeat per kill on average (only a send Telegram
//! accepted in the instant before the kill may go out again). Exits non-zero on a miss.
//!
//! ```text
//! cargo build --release -p botfleet-bot -p botfleet-bench
//! target/release/crash_repeats --kills 6 --every-secs 25
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use botfleet_api::contract::env;
use botfleet_bench::bot_process::{BotOptions, BotProcess, bot_bin};
use botfleet_bench::database::{Database, Kind};
use botfleet_bench::fakes::{llm::FakeLlm, telegram::FakeTelegram};
use botfleet_bench::flags::{self, Flag, Flags};
use botfleet_bench::load::Target;
use botfleet_bench::report::{Table, print_header};
use tokio::sync::watch;

const FLAGS: &[Flag] = &[
    flags::DB,
    flags::DATABASE_URL,
    flags::BOT_BIN,
    Flag::new("kills", "6", "how many times the bot is SIGKILLed"),
    Flag::new("every-secs", "25", "seconds between kills"),
    Flag::new(
        "interval-ms",
        "150",
        "one update every this many milliseconds",
    ),
    Flag::new("chats", "97", "distinct chats the updates come from"),
    Flag::new("llm-latency-ms", "300", "fixed latency of the fake LLM"),
];

const POD: &str = "bench-bot-7c9d4-aaaaa";
const GIVE_UP: Duration = Duration::from_secs(120);

struct Inputs {
    bot_bin: PathBuf,
    admin_url: String,
    kills: u32,
    every: Duration,
    interval: Duration,
    chats: i64,
    llm_latency: Duration,
}

struct Outcome {
    acked: u64,
    replies: u64,
    unanswered: i64,
}

async fn start_bot(
    inputs: &Inputs,
    db: &Database,
    telegram: &FakeTelegram,
    llm: &FakeLlm,
) -> Result<BotProcess, Box<dyn std::error::Error>> {
    Ok(BotProcess::start(BotOptions {
        bin: &inputs.bot_bin,
        dir: &db.dir,
        database_url: &db.url,
        telegram_url: &telegram.url,
        llm_url: &llm.url,
        workers: None,
        env: vec![(env::POD_NAME, POD.to_owned())],
    })
    .await?)
}

/// Posts one update every `interval` to whichever bot is up, each until it gets a 200.
fn traffic(
    inputs: &Inputs,
    url: watch::Receiver<String>,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let (interval, chats) = (inputs.interval, inputs.chats);
    tokio::spawn(async move {
        let mut deliveries = tokio::task::JoinSet::new();
        let mut update_id = 1;
        while !stop.load(Ordering::Relaxed) {
            let (url, acked) = (url.clone(), acked.clone());
            let id = update_id;
            deliveries.spawn(async move {
                loop {
                    let target = Target::new(url.borrow().clone(), chats);
                    let chat = target.chat_base + id % chats;
                    if target.post(id, chat).await.1 == 200 {
                        acked.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
            update_id += 1;
            tokio::time::sleep(interval).await;
        }
        deliveries.join_all().await;
    })
}

async fn run(kind: Kind, inputs: &Inputs) -> Result<Outcome, Box<dyn std::error::Error>> {
    let db = Database::fresh(kind, &inputs.admin_url).await?;
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(inputs.llm_latency).await;
    let mut bot = start_bot(inputs, &db, &telegram, &llm).await?;
    let (url_tx, url_rx) = watch::channel(bot.webhook_url.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let load = traffic(inputs, url_rx, stop.clone(), acked.clone());
    for _ in 0..inputs.kills {
        tokio::time::sleep(inputs.every).await;
        bot.stop(); // SIGKILL
        bot = start_bot(inputs, &db, &telegram, &llm).await?;
        url_tx.send_replace(bot.webhook_url.clone());
    }
    tokio::time::sleep(inputs.every).await;
    stop.store(true, Ordering::Relaxed);
    load.await?;
    let deadline = Instant::now() + GIVE_UP;
    let mut unanswered = db.pending_updates().await?;
    while unanswered > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        unanswered = db.pending_updates().await?;
    }
    let outcome = Outcome {
        acked: acked.load(Ordering::Relaxed),
        replies: telegram.messages(),
        unanswered,
    };
    drop(bot);
    db.drop_now().await;
    Ok(outcome)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = Flags::parse("Answers repeated per SIGKILL under steady traffic", FLAGS);
    let inputs = Inputs {
        bot_bin: bot_bin(&flags.text("bot-bin")),
        admin_url: flags.text("database-url"),
        kills: flags.get("kills"),
        every: Duration::from_secs(flags.get("every-secs")),
        interval: Duration::from_millis(flags.get("interval-ms")),
        chats: flags.get("chats"),
        llm_latency: Duration::from_millis(flags.get("llm-latency-ms")),
    };
    let kinds: Vec<Kind> = flags.list("db");
    print_header(
        "crash repeats: SIGKILL under steady webhook traffic",
        &[
            ("bot", inputs.bot_bin.display().to_string()),
            ("kills", inputs.kills.to_string()),
            ("every", format!("{} s", inputs.every.as_secs())),
            (
                "update every",
                format!("{} ms", inputs.interval.as_millis()),
            ),
            ("chats", inputs.chats.to_string()),
            (
                "LLM latency",
                format!("{} ms", inputs.llm_latency.as_millis()),
            ),
        ],
    );
    let mut table = Table::new([
        "database",
        "updates acknowledged",
        "lost",
        "replies",
        "repeated",
        "repeats per kill",
        "target",
        "met",
    ]);
    let mut missed = false;
    for &kind in &kinds {
        let o = run(kind, &inputs).await?;
        let repeated = o.replies.saturating_sub(o.acked);
        let per_kill = repeated as f64 / f64::from(inputs.kills.max(1));
        let met = o.unanswered == 0 && per_kill <= 1.0;
        missed |= !met;
        table.row([
            kind.name().to_owned(),
            o.acked.to_string(),
            o.unanswered.to_string(),
            o.replies.to_string(),
            repeated.to_string(),
            format!("{per_kill:.2}"),
            "≤ 1.00, 0 lost".to_owned(),
            if met { "yes" } else { "NO" }.to_owned(),
        ]);
    }
    println!("{}", table.render());
    if missed {
        return Err("repeats per kill above target, or updates lost".into());
    }
    Ok(())
}
