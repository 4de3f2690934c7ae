use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use botfleet_operator::crd::TelegramBot;
use botfleet_operator::render::{self, RenderDefaults};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

/// The botfleet operator: runs TelegramBot resources as monitored bots.
#[derive(Parser)]
#[command(name = "botfleet-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the TelegramBot CustomResourceDefinition as YAML.
    Crd,
    /// Print the objects the operator would create for the TelegramBots in a file, as
    /// multi-document YAML (other documents in the file, e.g. Secrets, are skipped).
    Render(FileArgs),
    /// Print the alerts of a TelegramBot as a plain Prometheus rules file
    /// (for `promtool check rules`), whether or not its PrometheusRule is enabled.
    Rules(FileArgs),
    /// Run the operator: watch TelegramBots and keep their children, webhook and status.
    Run(Box<botfleet_operator::process::RunArgs>),
}

#[derive(Args)]
struct FileArgs {
    /// A YAML file with one or more TelegramBot documents (`-` for stdin).
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    /// The bot image used when `spec.image` is not set.
    #[arg(long, default_value = render::DEFAULT_BOT_IMAGE)]
    image: String,
    /// The Bot API URL used when `spec.telegram.apiUrl` is not set.
    #[arg(long, default_value = render::DEFAULT_TELEGRAM_API_URL)]
    telegram_api_url: String,
}

impl FileArgs {
    fn defaults(&self) -> RenderDefaults {
        RenderDefaults {
            image: self.image.clone(),
            telegram_api_url: self.telegram_api_url.clone(),
            ..RenderDefaults::default()
        }
    }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => print!("{}", botfleet_operator::crd::crd_yaml()),
        Command::Render(args) => {
            let mut docs = Vec::new();
            for bot in read_bots(&args.file)? {
                let children = render::render_all(&bot, &args.defaults())
                    .with_context(|| format!("TelegramBot {}", name_of(&bot)))?;
                docs.push(children.to_yaml());
            }
            print!("{}", docs.join("---\n"));
        }
        Command::Rules(args) => {
            let bots = read_bots(&args.file)?;
            let [bot] = bots.as_slice() else {
                bail!(
                    "{} holds {} TelegramBots; rules takes one",
                    args.file.display(),
                    bots.len()
                );
            };
            let mut bot = bot.clone();
            let monitoring = bot.spec.monitoring.get_or_insert_default();
            monitoring.prometheus_rule =
                Some(botfleet_operator::crd::PrometheusRuleSpec { enabled: true });
            let children = render::render_all(&bot, &args.defaults())
                .with_context(|| format!("TelegramBot {}", name_of(&bot)))?;
            let rule = children.prometheus_rule.expect("enabled above");
            print!("{}", render::prometheus_rules_file(&rule));
        }
        Command::Run(args) => {
            botfleet_operator::process::memory::limit_malloc_arenas();
            tokio::runtime::Runtime::new()?.block_on(botfleet_operator::process::run(*args))?
        }
    }
    Ok(())
}

/// The TelegramBots of a YAML file, with a namespace (`default`) and a placeholder uid filled in
/// when absent, as the API server would.
fn read_bots(path: &Path) -> anyhow::Result<Vec<TelegramBot>> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let mut bots = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = serde_yaml_ng::Value::deserialize(doc)
            .with_context(|| format!("parsing {}", path.display()))?;
        if value.get("kind").and_then(|k| k.as_str()) != Some("TelegramBot") {
            continue;
        }
        let mut bot: TelegramBot = serde_yaml_ng::from_value(value)
            .with_context(|| format!("a TelegramBot in {}", path.display()))?;
        bot.metadata
            .namespace
            .get_or_insert_with(|| "default".into());
        bot.metadata
            .uid
            .get_or_insert_with(|| "00000000-0000-0000-0000-000000000000".into());
        bots.push(bot);
    }
    if bots.is_empty() {
        bail!("no TelegramBot in {}", path.display());
    }
    Ok(bots)
}

fn name_of(bot: &TelegramBot) -> String {
    format!(
        "{}/{}",
        bot.metadata.namespace.as_deref().unwrap_or_default(),
        bot.metadata.name.as_deref().unwrap_or_default()
    )
}
