//! Streamed replies: how soon the lead sees text, and what the bot adds to the final message.
//!
//! The real `botfleet-bot serve` (release) against a fake Anthropic API that streams each answer
//! over `--answer-seconds` at a steady rate (first word at once) and a fake Telegram that keeps
//! the time of each chat's first `sendMessageDraft` and first `sendMessage`. One update at a
//! time, each from a new private chat (streamed: `llm.streaming` is on by default), then the
//! same from group chats (no drafts there: the plain call, for comparison). Per reply:
//!
//! - time to first text: from the update's send to the first draft (private) or the message
//!   (group); and from the model's first word to the first draft (target ≤ 0.6 s);
//! - added latency on the final message: from the stream's last event to the `sendMessage`
//!   (target ≤ 10 ms).
//!
//! ```text
//! cargo build --release -p botfleet-bot -p botfleet-bench
//! target/release/streaming --replies 10 --answer-seconds 3
//! ```

use std::time::{Duration, Instant};

use botfleet_bench::bot_process::{BotOptions, BotProcess};
use botfleet_bench::database::{Database, Kind};
use botfleet_bench::fakes::{llm::FakeLlm, telegram::FakeTelegram};
use botfleet_bench::flags::{self, Flag, Flags};
use botfleet_bench::latency::Summary;
use botfleet_bench::load::Target;
use botfleet_bench::report::{Table, ms, print_header};
use botfleet_bench::rig::{RigInputs, run_each};

/// The database and binary flags of `rig::FLAGS`, and the model's pace of this benchmark.
const FLAGS: &[Flag] = &[
    flags::DB,
    flags::DATABASE_URL,
    flags::BOT_BIN,
    flags::PG_PLAN_CACHE_MODE,
    Flag::new(
        "replies",
        "10",
        "replies measured per database and kind of chat, one at a time",
    ),
    Flag::new(
        "answer-seconds",
        "3",
        "how long the fake model takes for the whole answer",
    ),
    Flag::new(
        "answer-words",
        "120",
        "words (stream events) of the answer, spread evenly over its time",
    ),
];

const TARGET_FIRST_TEXT: Duration = Duration::from_millis(600);
const TARGET_ADDED: Duration = Duration::from_millis(10);

struct Inputs {
    rig: RigInputs,
    replies: usize,
    answer: Duration,
    words: usize,
}

fn inputs() -> Inputs {
    let flags = Flags::parse(
        "Time to first text and added latency of streamed replies",
        FLAGS,
    );
    let answer = Duration::from_secs_f64(flags.get("answer-seconds"));
    Inputs {
        // The rig's inputs but for the model's pace, which is `--answer-seconds` here.
        rig: RigInputs::with_llm_latency(&flags, answer),
        replies: flags.get("replies"),
        answer,
        words: flags.get("answer-words"),
    }
}

/// What one kind of chat measured.
#[derive(Default)]
struct Measured {
    /// Update sent → first visible text (a draft, or the message where there are none).
    first_text: Vec<Duration>,
    /// Model's first word → first draft (streamed only).
    after_first_token: Vec<Duration>,
    /// Stream's last event → the final `sendMessage` (streamed only).
    added: Vec<Duration>,
    missing: usize,
}

async fn first_at(seen: impl Fn() -> Option<Instant>, limit: Duration) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(at) = seen() {
            return Some(at);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

async fn measure(
    target: &Target,
    telegram: &FakeTelegram,
    llm: &FakeLlm,
    chats: impl Iterator<Item = i64>,
    limit: Duration,
) -> Measured {
    let mut m = Measured::default();
    for chat in chats {
        let streams_before = llm.streams().len();
        let update_id = target
            .next_update_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent = Instant::now();
        let (_, status) = target.post(update_id, chat).await;
        let replied = if status == 200 {
            first_at(|| telegram.first_replies().get(&chat).copied(), limit).await
        } else {
            None
        };
        let Some(replied) = replied else {
            m.missing += 1;
            continue;
        };
        let drafted = telegram.first_drafts().get(&chat).copied();
        m.first_text
            .push(drafted.unwrap_or(replied).saturating_duration_since(sent));
        if let (Some(drafted), Some(stream)) = (drafted, llm.streams().get(streams_before)) {
            m.after_first_token
                .push(drafted.saturating_duration_since(stream.first_text));
            m.added.push(replied.saturating_duration_since(stream.done));
        }
    }
    m
}

struct Row {
    kind: Kind,
    chat: &'static str,
    m: Measured,
}

async fn run(kind: Kind, inputs: &Inputs) -> Result<Vec<Row>, Box<dyn std::error::Error>> {
    let db = Database::fresh(kind, &inputs.rig.admin_url).await?;
    db.set_plan_cache_mode(&inputs.rig.plan_cache_mode).await?;
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::with_answer(inputs.answer, inputs.words).await;
    let mut bot = BotProcess::start(BotOptions {
        bin: &inputs.rig.bot_bin,
        dir: &db.dir,
        database_url: &db.url,
        telegram_url: &telegram.url,
        llm_url: &llm.url,
        workers: None,
        env: vec![],
    })
    .await?;
    let target = Target::new(bot.webhook_url.clone(), 1);
    let limit = inputs.answer * 3 + Duration::from_secs(10);
    let n = inputs.replies as i64;
    eprintln!("[{}] {n} streamed replies, {n} plain", kind.name());
    let private = measure(&target, &telegram, &llm, 20_000..20_000 + n, limit).await;
    let group = measure(
        &target,
        &telegram,
        &llm,
        (1..=n).map(|i| -30_000 - i),
        limit,
    )
    .await;
    bot.stop();
    db.drop_now().await;
    Ok(vec![
        Row {
            kind,
            chat: "private (streamed)",
            m: private,
        },
        Row {
            kind,
            chat: "group (plain)",
            m: group,
        },
    ])
}

fn p50_max(samples: &[Duration]) -> String {
    if samples.is_empty() {
        return "-".into();
    }
    let s = Summary::of(samples.to_vec());
    format!("{} / {}", ms(s.p50), ms(s.max))
}

#[tokio::main]
async fn main() {
    let inputs = inputs();
    let rows: Vec<Row> = run_each(
        inputs.rig.dbs.clone(),
        |kind| kind.name().to_owned(),
        |kind| run(kind, &inputs),
    )
    .await
    .into_iter()
    .flatten()
    .collect();
    print_header(
        "Streamed replies: time to first text and the bot's added latency (botfleet-bot serve, release)",
        &[
            (
                "fake model",
                format!(
                    "{} words over {:.1} s, first word at once",
                    inputs.words,
                    inputs.answer.as_secs_f64()
                ),
            ),
            (
                "replies",
                format!("{} per row, one at a time", inputs.replies),
            ),
            ("draft interval", "the default (llm.draftInterval)".into()),
        ],
    );
    let mut table = Table::new([
        "database",
        "chat",
        "first text after the update (p50 / max)",
        "first draft after the model's first word (p50 / max)",
        "final message after the stream ended (p50 / max)",
        "missing",
    ]);
    let mut missed = Vec::new();
    for r in &rows {
        table.row([
            r.kind.name().to_owned(),
            r.chat.to_owned(),
            p50_max(&r.m.first_text),
            p50_max(&r.m.after_first_token),
            p50_max(&r.m.added),
            r.m.missing.to_string(),
        ]);
        if let Some(max) = r.m.after_first_token.iter().max()
            && *max > TARGET_FIRST_TEXT
        {
            missed.push(format!(
                "{} {}: first draft {} after the first word (target {})",
                r.kind.name(),
                r.chat,
                ms(*max),
                ms(TARGET_FIRST_TEXT)
            ));
        }
        if let Some(max) = r.m.added.iter().max()
            && *max > TARGET_ADDED
        {
            missed.push(format!(
                "{} {}: final message {} after the stream (target {})",
                r.kind.name(),
                r.chat,
                ms(*max),
                ms(TARGET_ADDED)
            ));
        }
        if r.m.missing > 0 {
            missed.push(format!(
                "{} {}: {} replies missing",
                r.kind.name(),
                r.chat,
                r.m.missing
            ));
        }
    }
    println!("{}", table.render());
    if missed.is_empty() {
        println!(
            "targets (first draft ≤ 0.6 s after the first word, final message ≤ 10 ms after the stream): met"
        );
    } else {
        println!("targets missed:\n- {}", missed.join("\n- "));
        std::process::exit(2);
    }
}
