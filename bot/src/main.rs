//! `botfleet-bot`: serve | scheduler | migrate | chat.

use std::path::PathBuf;
use std::process::ExitCode;

use botfleet_api::BotConfig;
use botfleet_bot::config::{self, Needs, ProcessEnv, Settings, env};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "botfleet-bot", version, about = "An LLM-powered Telegram bot")]
struct Cli {
    /// Config file (the TelegramBot spec's vocabulary). Without one: polling, Anthropic
    /// claude-sonnet-4-5 at its list prices, no budget.
    #[arg(long, env = env::BOTFLEET_CONFIG, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Receive updates (webhook or polling) and answer them.
    Serve,
    /// Follow-ups and budget alerts, leader-elected on a Lease (PostgreSQL deployments).
    Scheduler,
    /// Apply database migrations and exit.
    Migrate,
    /// Talk to the bot from this terminal.
    Chat,
}

fn load(cli: &Cli) -> Result<BotConfig, config::ConfigLoadError> {
    match &cli.config {
        Some(path) => config::load_config_file(path),
        None => config::load_config_str(config::DEFAULT_CONFIG),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    botfleet_telemetry::init_logging(&std::env::var(env::BOTFLEET_LOG_FORMAT).unwrap_or_default());
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line a person can act on, naming the field or variable.
            tracing::error!("{e:#}");
            eprintln!("botfleet-bot: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // `migrate` needs only the database; everything else needs the config.
    let bot = match cli.command {
        Command::Migrate => BotConfig::default(),
        _ => load(&cli)?,
    };
    match cli.command {
        Command::Migrate => {
            let url = std::env::var(env::DATABASE_URL)
                .unwrap_or_else(|_| botfleet_bot::db::DEFAULT_SQLITE_URL.to_owned());
            let db = botfleet_bot::db::Db::connect(&url).await?;
            db.migrate().await?;
            tracing::info!(database = ?db.dialect, "migrations applied");
            Ok(())
        }
        Command::Serve => {
            let settings = Settings::resolve(bot, &ProcessEnv, Needs::TelegramAndLlm)?;
            let shutdown = botfleet_telemetry::shutdown_on_signals();
            botfleet_bot::app::serve(settings, shutdown).await
        }
        Command::Scheduler => {
            let settings = Settings::resolve(bot, &ProcessEnv, Needs::TelegramAndLlm)?;
            let (ctx, money) = botfleet_bot::app::build_context(settings).await?;
            let shutdown = botfleet_telemetry::shutdown_on_signals();
            // In a cluster one replica leads on a Lease; elsewhere this process simply runs
            // (database claims keep each follow-up single even with two schedulers).
            let mode = if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
                botfleet_bot::scheduler::LeadershipMode::lease_from_env()?
            } else {
                tracing::info!("not in a Kubernetes cluster: no leader election");
                botfleet_bot::scheduler::LeadershipMode::Always
            };
            botfleet_bot::scheduler::run(ctx, money, mode, shutdown).await
        }
        Command::Chat => {
            let settings = Settings::resolve(bot, &ProcessEnv, Needs::LlmOnly)?;
            let (ctx, money) = botfleet_bot::app::build_context(settings).await?;
            botfleet_bot::chat::run(ctx, money).await
        }
    }
}
