//! `chat`: talk to the bot's pipeline from a terminal — same storage, same LLM client, same
//! ledger — for trying prompts without Telegram. The console user counts as an owner, so
//! `/llm_stats` and `/budget` work here too.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::context::Context;
use crate::conversation::{ConsoleTransport, Pipeline};
use crate::leads::Inbound;
use crate::money::Money;

/// The console's chat and user id. Negative ids are groups in Telegram; this one is far below
/// any real group id.
pub const CONSOLE_CHAT_ID: i64 = -9_000_000_000_000;

pub async fn run(ctx: Context, money: Arc<Money>) -> anyhow::Result<()> {
    let knowledge =
        crate::knowledge::Knowledge::load(&ctx.settings.bot, &ctx.settings.knowledge_dir)
            .await
            .map_err(anyhow::Error::from)?;
    knowledge.observe(&ctx.metrics);
    let mut pipeline = Pipeline::new(ctx, money).with_knowledge(knowledge);
    pipeline.extra_owner = Some(CONSOLE_CHAT_ID);
    // No owners' Telegram chats to hand the console over to.
    pipeline.handoff = Arc::new(crate::handoff::Handoffs::disabled());
    let transport = ConsoleTransport;
    eprintln!(
        "botfleet chat — type a message and press Enter; /help for commands, Ctrl-D to quit."
    );
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        // Console messages get negative update ids so they never meet Telegram's.
        let update_id = -chrono::Utc::now().timestamp_micros();
        let inbound = Inbound {
            update_id,
            chat_id: CONSOLE_CHAT_ID,
            user_id: Some(CONSOLE_CHAT_ID),
            username: Some("console".into()),
            first_name: None,
            text: text.to_owned(),
            private_chat: true,
        };
        if let Err(e) = pipeline.handle_text(&transport, inbound).await {
            eprintln!("error: {e}");
        }
    }
    Ok(())
}
