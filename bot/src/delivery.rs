//! Sending a message to a lead from anywhere in the bot (replies, follow-ups, later
//! broadcasts): through the one outbound limiter, counted in `botfleet_messages_sent_total`,
//! and a chat that refuses messages (the user blocked the bot, deleted the account) is opted
//! out, exactly as `/stop` does, so nothing is sent to it again until the user writes
//! `/start` or unblocks the bot.

use crate::context::Context;
use crate::metrics::ReasonLabels;
use crate::telegram::{Format, Priority, TelegramError};

/// Sends `text` to `chat_id`; returns how many Telegram messages it took.
pub async fn send(
    ctx: &Context,
    chat_id: i64,
    text: &str,
    format: Format,
    priority: Priority,
) -> Result<usize, TelegramError> {
    send_with_buttons(ctx, chat_id, text, format, priority, &[]).await
}

/// [`send`] with inline buttons `(label, callback data)` under the message.
pub async fn send_with_buttons(
    ctx: &Context,
    chat_id: i64,
    text: &str,
    format: Format,
    priority: Priority,
    buttons: &[(String, String)],
) -> Result<usize, TelegramError> {
    match ctx
        .telegram
        .send_returning_ids(chat_id, text, format, priority, buttons)
        .await
        .map(|ids| ids.len())
    {
        Ok(parts) => {
            ctx.metrics.messages_sent.inc_by(parts as u64);
            Ok(parts)
        }
        Err(e) => {
            if let Some(why) = e.unreachable() {
                opt_out(ctx, chat_id, why.as_str()).await;
            }
            Err(e)
        }
    }
}

pub(crate) async fn opt_out(ctx: &Context, chat_id: i64, reason: &'static str) {
    ctx.metrics
        .telegram_unreachable
        .get_or_create(&ReasonLabels {
            reason: reason.to_owned(),
        })
        .inc();
    let now = chrono::Utc::now().timestamp_millis();
    match crate::conversation::store::set_opted_out(&ctx.db, chat_id, true, now).await {
        Ok(()) => tracing::info!(chat_id, reason, "chat unreachable: the lead is opted out"),
        // The send already failed for good; a later send refuses again and retries this.
        Err(e) => {
            tracing::warn!(chat_id, reason, error = %e, "chat unreachable, but opting the lead out failed")
        }
    }
}
