use botfleet_operator::crd::TelegramBot;
use clap::{Parser, Subcommand};
use kube::CustomResourceExt;

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
    /// Run the operator (not yet).
    Run,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => print!("{}", serde_yaml_ng::to_string(&TelegramBot::crd())?),
        Command::Run => println!("not yet"),
    }
    Ok(())
}
