//! What the benchmarks of the bot process share: their common flags, and one run's rig (a
//! fresh database, the fake Telegram and LLM, and the real bot on them).

use std::path::PathBuf;
use std::time::Duration;

use crate::bot_process::{BotOptions, BotProcess, default_bot_bin};
use crate::database::{Database, Kind};
use crate::fakes::{llm::FakeLlm, telegram::FakeTelegram};
use crate::flags::{self, Flag, Flags};

/// The flags every benchmark of the bot process takes (parse them together with its own:
/// `Flags::parse(about, &[rig::FLAGS, FLAGS].concat())`).
pub const FLAGS: &[Flag] = &[
    flags::DB,
    flags::DATABASE_URL,
    flags::BOT_BIN,
    flags::LLM_LATENCY_MS,
    flags::PG_PLAN_CACHE_MODE,
];

/// The inputs of [`FLAGS`].
#[derive(Clone)]
pub struct RigInputs {
    pub dbs: Vec<Kind>,
    pub admin_url: String,
    pub bot_bin: PathBuf,
    pub llm_latency: Duration,
    pub plan_cache_mode: String,
}

impl RigInputs {
    pub fn from_flags(flags: &Flags) -> Self {
        Self::with_llm_latency(flags, Duration::from_millis(flags.get("llm-latency-ms")))
    }

    /// The inputs of [`FLAGS`] but for the model's latency, which a benchmark that paces the
    /// model itself gives (it leaves `--llm-latency-ms` out of its flags).
    pub fn with_llm_latency(flags: &Flags, llm_latency: Duration) -> Self {
        let bot_bin = flags.text("bot-bin");
        Self {
            dbs: flags.list("db"),
            admin_url: flags.text("database-url"),
            bot_bin: if bot_bin.is_empty() {
                default_bot_bin()
            } else {
                bot_bin.into()
            },
            llm_latency,
            plan_cache_mode: flags.text("pg-plan-cache-mode"),
        }
    }

    /// The databases, for a table's header: `SQLite, PostgreSQL`.
    pub fn databases(&self) -> String {
        self.dbs
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One run: a fresh database, the fakes, and the bot serving on them.
pub struct Rig {
    pub db: Database,
    pub telegram: FakeTelegram,
    pub llm: FakeLlm,
    pub bot: BotProcess,
}

impl Rig {
    /// Starts everything on a fresh `kind` database; `workers` and `env` go to the bot.
    pub async fn start(
        kind: Kind,
        inputs: &RigInputs,
        workers: Option<usize>,
        env: Vec<(&str, String)>,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let db = Database::fresh(kind, &inputs.admin_url).await?;
        db.set_plan_cache_mode(&inputs.plan_cache_mode).await?;
        let telegram = FakeTelegram::start().await;
        let llm = FakeLlm::start(inputs.llm_latency).await;
        let bot = BotProcess::start(BotOptions {
            bin: &inputs.bot_bin,
            dir: &db.dir,
            database_url: &db.url,
            telegram_url: &telegram.url,
            llm_url: &llm.url,
            workers,
            env,
        })
        .await?;
        Ok(Self {
            db,
            telegram,
            llm,
            bot,
        })
    }

    /// Stops the bot and drops the database.
    pub async fn stop(mut self) {
        self.bot.stop();
        self.db.drop_now().await;
    }
}

/// Runs `run` on each case in turn and collects the results; the first failure ends the
/// benchmark (exit status 1) with the case's `label` and the error.
pub async fn run_each<C, R, Fut>(
    cases: impl IntoIterator<Item = C>,
    label: impl Fn(&C) -> String,
    mut run: impl FnMut(C) -> Fut,
) -> Vec<R>
where
    Fut: std::future::Future<Output = Result<R, Box<dyn std::error::Error>>>,
{
    let mut results = Vec::new();
    for case in cases {
        let what = label(&case);
        match run(case).await {
            Ok(result) => results.push(result),
            Err(e) => {
                eprintln!("error: {what}: {e}");
                std::process::exit(1);
            }
        }
    }
    results
}
