//! Slash commands: `/start`, `/stop`, `/help` for everyone; `/llm_stats`, `/stats`, `/budget`
//! for the owners.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Start,
    Stop,
    Help,
    LlmStats,
    Stats,
    Budget,
    Unknown,
}

/// Parses `/name`, `/name@botname` and `/name args`; `None` for plain text.
pub fn parse(text: &str) -> Option<Command> {
    let first = text.split_whitespace().next()?;
    let name = first.strip_prefix('/')?;
    let name = name
        .split('@')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    Some(match name.as_str() {
        "start" => Command::Start,
        "stop" => Command::Stop,
        "help" => Command::Help,
        "llm_stats" => Command::LlmStats,
        "stats" => Command::Stats,
        "budget" => Command::Budget,
        _ => Command::Unknown,
    })
}

pub const WELCOME: &str = "Hello! I'm happy to help — just write your question.\n\n\
Send /stop if you don't want reminders from me, and /help to see what I can do.";
pub const STOPPED: &str = "Done — I won't send you any more follow-up messages. \
You can still write to me any time, and /start turns reminders back on.";
pub const OWNERS_ONLY: &str = "Sorry, that command is only for the bot's owners.";
pub const RATE_LIMITED: &str =
    "You're writing faster than I can keep up — please wait a minute and try again.";
pub const APOLOGY: &str = "Sorry, I can't answer right now. Please try again in a few minutes.";
pub const TEXT_ONLY: &str = "Sorry, I can only read text messages for now.";

pub fn help(is_owner: bool) -> String {
    let mut text = String::from(
        "Write to me in plain words and I'll answer.\n\n\
         /start — start over and turn reminders on\n\
         /stop — no more follow-up messages\n\
         /help — this message",
    );
    if is_owner {
        text.push_str(
            "\n\nOwner commands:\n\
             /llm_stats — LLM requests, tokens, cache hit rate and cost (today, 7 days)\n\
             /stats — leads: new, active, followed up, opted out\n\
             /budget — spend against the daily and monthly budget",
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(parse("/start"), Some(Command::Start));
        assert_eq!(parse("/stop@sales_bot"), Some(Command::Stop));
        assert_eq!(parse("  /LLM_STATS now"), Some(Command::LlmStats));
        assert_eq!(parse("/nope"), Some(Command::Unknown));
        assert_eq!(parse("hello /start"), None);
        assert_eq!(parse(""), None);
    }
}
