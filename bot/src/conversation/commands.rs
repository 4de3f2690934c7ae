//! Slash commands, declared once with teloxide's `BotCommands`: the same enums parse what a
//! user types, write `/help`, and fill Telegram's command menu (`setMyCommands`; owners get
//! their commands in a scope of their own). A new command is a variant with a doc comment.

use teloxide::types::{BotCommand, BotCommandScope, ChatId, Recipient};
use teloxide::utils::command::BotCommands;

use crate::telegram::TelegramClient;

/// What everyone may ask for.
#[derive(BotCommands, Debug, Clone, Copy, PartialEq, Eq)]
#[command(
    rename_rule = "snake_case",
    description = "Write to me in plain words and I'll answer."
)]
pub enum LeadCommand {
    /// start over and turn reminders on
    Start,
    /// no more follow-ups or announcements
    Stop,
    /// this message
    Help,
    /// forget the document you sent me
    Forget,
    /// talk to a person from our team
    Human,
}

/// What only the bot's owners may ask for (`owners` in the config).
#[derive(BotCommands, Debug, Clone, Copy, PartialEq, Eq)]
#[command(rename_rule = "snake_case", description = "Owner commands:")]
pub enum OwnerCommand {
    /// LLM requests, tokens, cache hit rate and cost (today, 7 days)
    LlmStats,
    /// leads: new, active, followed up, opted out
    Stats,
    /// spend against the daily and monthly budget
    Budget,
    /// leads waiting for or talking to a person
    Leads,
    /// take a lead over from the bot: /takeover @username or chat id
    Takeover,
    /// hand a lead back to the bot: /resolve @username, or as a reply
    Resolve,
    /// announce to every lead: /broadcast [30d] [at 2026-12-24 10:00]
    Broadcast,
    /// recent broadcasts and their counts
    Broadcasts,
    /// stop a broadcast: /broadcast_cancel [number]
    BroadcastCancel,
    /// charts of spend, leads, handoffs and broadcasts (a Mini App)
    Dashboard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Lead(LeadCommand),
    Owner(OwnerCommand),
    /// Starts with `/` but is none of ours: answered with the help text.
    Unknown,
}

/// Parses `/name`, `/name@botname` and `/name args` (the name in any case); `None` for
/// plain text.
pub fn parse(text: &str) -> Option<Command> {
    let text = text.trim_start();
    if !text.starts_with('/') {
        return None;
    }
    let first = text.split_whitespace().next()?;
    // Which bot a group command is addressed to is not checked (the bot does not ask Telegram
    // for its own username); the name is matched case-insensitively.
    let name = first.split('@').next().unwrap_or_default().to_lowercase();
    if let Ok(command) = LeadCommand::parse(&name, "") {
        return Some(Command::Lead(command));
    }
    if let Ok(command) = OwnerCommand::parse(&name, "") {
        return Some(Command::Owner(command));
    }
    Some(Command::Unknown)
}

/// The text after the command's name (`/takeover @anna` → `@anna`), if any.
pub fn argument(text: &str) -> Option<&str> {
    let text = text.trim_start();
    let rest = text.split_once(char::is_whitespace)?.1.trim();
    (!rest.is_empty()).then_some(rest)
}

/// Telegram's menu for everyone (the default scope).
pub fn lead_menu() -> Vec<BotCommand> {
    menu(LeadCommand::bot_commands())
}

/// Telegram's menu for an owner (a chat scope per owner): everyone's commands and theirs.
pub fn owner_menu() -> Vec<BotCommand> {
    let mut commands = LeadCommand::bot_commands();
    commands.extend(OwnerCommand::bot_commands());
    menu(commands)
}

/// `setMyCommands` wants the bare name (`start`); teloxide's list carries the prefix.
fn menu(commands: Vec<BotCommand>) -> Vec<BotCommand> {
    commands
        .into_iter()
        .map(|c| BotCommand::new(c.command.trim_start_matches('/'), c.description))
        .collect()
}

/// Sets Telegram's command menus: everyone's in the default scope, the owners' in a chat
/// scope per owner. Best effort: commands work when typed whatever the menu shows, so a
/// failure is one warning and the bot serves on.
pub async fn publish_menu(telegram: &TelegramClient, owners: &[i64]) {
    let mut scopes = vec![(BotCommandScope::Default, lead_menu())];
    for owner in owners {
        let scope = BotCommandScope::Chat {
            chat_id: Recipient::Id(ChatId(*owner)),
        };
        scopes.push((scope, owner_menu()));
    }
    let total = scopes.len();
    let mut failed = 0;
    let mut first_error = None;
    for (scope, commands) in scopes {
        if let Err(e) = telegram.set_commands(commands, scope).await {
            failed += 1;
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        None => tracing::info!(scopes = total, "command menu set"),
        Some(e) => tracing::warn!(
            failed,
            scopes = total,
            error = %e,
            "could not set Telegram's command menu (an owner who never wrote to the bot has no chat yet); typed commands still work"
        ),
    }
}

pub fn help(is_owner: bool) -> String {
    let mut text = LeadCommand::descriptions().to_string();
    if is_owner {
        text.push_str("\n\n");
        text.push_str(&OwnerCommand::descriptions().to_string());
    }
    text
}

pub const WELCOME: &str = "Hello! I'm happy to help — just write your question.\n\n\
Send /stop if you don't want reminders from me, and /help to see what I can do.";
/// The welcome's second paragraph when it offers suggested questions as buttons.
pub const WELCOME_WITH_SUGGESTIONS: &str = "Hello! I'm happy to help — write your question, \
or pick one below.\n\nSend /stop if you don't want reminders from me, and /help to see what I can do.";
pub const STOPPED: &str = "Done — I won't send you any more follow-ups or announcements. \
You can still write to me any time, and /start turns them back on.";
pub const OWNERS_ONLY: &str = "Sorry, that command is only for the bot's owners.";
pub const RATE_LIMITED: &str =
    "You're writing faster than I can keep up — please wait a minute and try again.";
pub const APOLOGY: &str = "Sorry, I can't answer right now. Please try again in a few minutes.";
pub const TEXT_ONLY: &str = "Sorry, I can only read text messages for now.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(parse("/start"), Some(Command::Lead(LeadCommand::Start)));
        assert_eq!(
            parse("/stop@sales_bot"),
            Some(Command::Lead(LeadCommand::Stop))
        );
        assert_eq!(
            parse("  /LLM_STATS now"),
            Some(Command::Owner(OwnerCommand::LlmStats))
        );
        assert_eq!(parse("/nope"), Some(Command::Unknown));
        assert_eq!(parse("hello /start"), None);
        assert_eq!(parse(""), None);
        assert_eq!(argument("/takeover  @anna "), Some("@anna"));
        assert_eq!(argument("/takeover"), None);
    }

    #[test]
    fn help_and_menus_list_the_same_commands() {
        let lead: Vec<String> = lead_menu().into_iter().map(|c| c.command).collect();
        assert_eq!(lead, ["start", "stop", "help", "forget", "human"]);
        let owner: Vec<String> = owner_menu().into_iter().map(|c| c.command).collect();
        assert_eq!(
            owner,
            [
                "start",
                "stop",
                "help",
                "forget",
                "human",
                "llm_stats",
                "stats",
                "budget",
                "leads",
                "takeover",
                "resolve",
                "broadcast",
                "broadcasts",
                "broadcast_cancel",
                "dashboard"
            ]
        );
        assert!(help(false).contains("/stop — no more follow-ups or announcements"));
        assert!(!help(false).contains("/budget"));
        assert!(help(true).contains("/llm_stats — LLM requests"));
    }
}
