//! How soon a crashed bot answers the update it was working on: the real `botfleet-bot serve`
//! is SIGKILLed with one update in flight (its LLM call hangs), then
//!
//! - **restart**: the same pod's next container (same `POD_NAME`) starts; measured from ready
//!   to the reply at the fake Telegram; target ≤ 5 s (SQLite and PostgreSQL);
//! - **other replica** (PostgreSQL): a second pod is already running; measured from the crash
//!   to its reply; target ≤ 20 s (the production claim of 15 s with a 5 s heartbeat).
//!
//! Exits non-zero when a target is missed.
//!
//! ```text
//! cargo build --release -p botfleet-bot -p botfleet-bench
//! target/release/restart
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use botfleet_api::contract::env;
use botfleet_bench::bot_process::{BotOptions, BotProcess, bot_bin};
use botfleet_bench::database::{Database, Kind};
use botfleet_bench::fakes::{llm::FakeLlm, telegram::FakeTelegram};
use botfleet_bench::flags::{self, Flag, Flags};
use botfleet_bench::load::Target;
use botfleet_bench::report::{Table, ms, print_header};

const FLAGS: &[Flag] = &[flags::DB, flags::DATABASE_URL, flags::BOT_BIN];

const RESTART_TARGET: Duration = Duration::from_secs(5);
const OTHER_REPLICA_TARGET: Duration = Duration::from_secs(20);
const GIVE_UP: Duration = Duration::from_secs(60);

/// The pod that crashes (and, in the restart case, comes back), and another replica.
const FIRST_POD: &str = "bench-bot-7c9d4-aaaaa";
const OTHER_POD: &str = "bench-bot-7c9d4-bbbbb";

/// A fresh database, the fake Telegram, an LLM that hangs (the crashing bot's) and one that
/// answers at once (the bot that takes over).
struct Scene {
    bin: PathBuf,
    db: Database,
    telegram: FakeTelegram,
    hanging: FakeLlm,
    fast: FakeLlm,
}

impl Scene {
    async fn new(kind: Kind, inputs: &Inputs) -> Result<Self, Box<dyn std::error::Error>> {
        Ok(Self {
            bin: inputs.bot_bin.clone(),
            db: Database::fresh(kind, &inputs.admin_url).await?,
            telegram: FakeTelegram::start().await,
            hanging: FakeLlm::start(Duration::from_secs(600)).await,
            fast: FakeLlm::start(Duration::ZERO).await,
        })
    }

    /// A bot as pod `pod` on the fast LLM.
    async fn bot(&self, pod: &str) -> Result<BotProcess, Box<dyn std::error::Error>> {
        self.bot_on(&self.fast, pod).await
    }

    async fn bot_on(
        &self,
        llm: &FakeLlm,
        pod: &str,
    ) -> Result<BotProcess, Box<dyn std::error::Error>> {
        Ok(BotProcess::start(BotOptions {
            bin: &self.bin,
            dir: &self.db.dir,
            database_url: &self.db.url,
            telegram_url: &self.telegram.url,
            llm_url: &llm.url,
            workers: None,
            env: vec![(env::POD_NAME, pod.to_owned())],
        })
        .await?)
    }

    /// The first pod, on the hanging LLM, with one update in flight (its LLM call started).
    async fn first_in_flight(&self) -> Result<BotProcess, Box<dyn std::error::Error>> {
        let bot = self.bot_on(&self.hanging, FIRST_POD).await?;
        let target = Target::new(bot.webhook_url.clone(), 1);
        let (_, status) = target.post(1, 4242).await;
        if status != 200 {
            return Err(format!("the webhook answered {status}").into());
        }
        wait_for("the LLM call", || self.hanging.requests() >= 1).await?;
        Ok(bot)
    }

    /// Waits for the reply to the update in flight; the time since `since`.
    async fn reply_since(
        self,
        what: &str,
        since: Instant,
    ) -> Result<Duration, Box<dyn std::error::Error>> {
        wait_for(what, || self.telegram.messages() >= 1).await?;
        let took = since.elapsed();
        self.db.drop_now().await;
        Ok(took)
    }
}

async fn wait_for(
    what: &str,
    mut done: impl FnMut() -> bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + GIVE_UP;
    while !done() {
        if Instant::now() > deadline {
            return Err(format!("{what}: nothing after {GIVE_UP:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Crash, then the same pod restarts: from ready to the reply.
async fn restart(kind: Kind, inputs: &Inputs) -> Result<Duration, Box<dyn std::error::Error>> {
    let scene = Scene::new(kind, inputs).await?;
    let mut first = scene.first_in_flight().await?;
    first.stop(); // SIGKILL
    let _restarted = scene.bot(FIRST_POD).await?;
    let ready = Instant::now();
    scene
        .reply_since("the reply after the restart", ready)
        .await
}

/// PostgreSQL: crash while another replica runs: from the crash to its reply.
async fn other_replica(inputs: &Inputs) -> Result<Duration, Box<dyn std::error::Error>> {
    let scene = Scene::new(Kind::Postgres, inputs).await?;
    let mut first = scene.first_in_flight().await?;
    let _second = scene.bot(OTHER_POD).await?;
    first.stop(); // SIGKILL
    let crash = Instant::now();
    scene.reply_since("the other replica's reply", crash).await
}

struct Inputs {
    bot_bin: PathBuf,
    admin_url: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = Flags::parse(
        "A crashed bot answers what it left in flight: time to the reply",
        FLAGS,
    );
    let inputs = Inputs {
        bot_bin: bot_bin(&flags.text("bot-bin")),
        admin_url: flags.text("database-url"),
    };
    let kinds: Vec<Kind> = flags.list("db");
    print_header(
        "restart: SIGKILL with one update in flight",
        &[("bot", inputs.bot_bin.display().to_string())],
    );
    let mut table = Table::new(["database", "case", "time to the reply", "target", "met"]);
    let mut missed = false;
    let mut row = |db: &str, case: &str, took: Duration, target: Duration| {
        let met = took <= target;
        missed |= !met;
        table.row([
            db.to_owned(),
            case.to_owned(),
            ms(took),
            format!("≤ {} s", target.as_secs()),
            if met { "yes" } else { "NO" }.to_owned(),
        ]);
    };
    for &kind in &kinds {
        let took = restart(kind, &inputs).await?;
        row(
            kind.name(),
            "same pod restarts (from ready)",
            took,
            RESTART_TARGET,
        );
        if kind == Kind::Postgres {
            let took = other_replica(&inputs).await?;
            row(
                kind.name(),
                "another replica (from the crash)",
                took,
                OTHER_REPLICA_TARGET,
            );
        }
    }
    println!("{}", table.render());
    if missed {
        return Err("a restart target was missed".into());
    }
    Ok(())
}
