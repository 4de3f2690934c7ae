//! Polling mode: long-poll `getUpdates` and put every update into the inbox, exactly like the
//! webhook does, one transaction per answer. The offset only moves past updates that are
//! committed, so a crash loses nothing: Telegram hands unconfirmed updates out again, and the
//! inbox drops the repeats.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::db::SqlError;
use crate::inbox::{self, Enqueued, MAX_BATCH, NewUpdate};
use crate::metrics::KindLabels;
use crate::telegram::TelegramError;
use crate::telegram::updates::update_header;

const LONG_POLL_SECS: u32 = 25;
const ERROR_BACKOFF_MAX: Duration = Duration::from_secs(30);

pub async fn run(ctx: Context, wake: Arc<Notify>, shutdown: CancellationToken) {
    tracing::info!("polling Telegram for updates");
    let mut offset: i64 = 0;
    let mut backoff = Duration::from_millis(500);
    loop {
        let poll = ctx.telegram.get_updates(offset, LONG_POLL_SECS);
        let updates = tokio::select! {
            // Dropping an in-flight poll is safe: its updates are not confirmed yet.
            _ = shutdown.cancelled() => break,
            result = poll => result,
        };
        let updates = match updates {
            Ok(updates) => {
                backoff = Duration::from_millis(500);
                updates
            }
            Err(e) => {
                let hint = match &e {
                    TelegramError::Conflict(_) => {
                        " (another poller uses this token, or a webhook is set: the operator removes it when a bot switches to polling)"
                    }
                    TelegramError::Unauthorized => " (check TELEGRAM_BOT_TOKEN)",
                    _ => "",
                };
                // Flood control asks for a wait of its own; never poll sooner than that.
                let wait = match &e {
                    TelegramError::RetryAfter(wait) => backoff.max(*wait),
                    _ => backoff,
                };
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "getUpdates failed{hint}");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                backoff = (backoff * 2).min(ERROR_BACKOFF_MAX);
                continue;
            }
        };
        match store(&ctx, &updates).await {
            Ok(next) => {
                if let Some(next) = next {
                    offset = next;
                }
                if !updates.is_empty() {
                    wake.notify_waiters();
                }
            }
            Err(e) => {
                // Offset unchanged: the same updates come again on the next poll.
                tracing::error!(error = %e, "could not store polled updates; polling them again");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ERROR_BACKOFF_MAX);
            }
        }
    }
    tracing::info!("polling stopped");
}

/// Stores one `getUpdates` answer (at most 100 updates: one batch); returns the offset that
/// confirms them all.
async fn store(ctx: &Context, updates: &[serde_json::Value]) -> Result<Option<i64>, SqlError> {
    let now = chrono::Utc::now().timestamp_millis();
    let rows: Vec<NewUpdate> = updates
        .iter()
        .filter_map(|update| {
            let Some(header) = update_header(update) else {
                tracing::warn!("getUpdates returned an entry without update_id; skipping it");
                return None;
            };
            Some(NewUpdate::from_header(&header, update.to_string(), now))
        })
        .collect();
    for chunk in rows.chunks(MAX_BATCH) {
        ctx.metrics.inbox_batch_rows.observe(chunk.len() as f64);
        let outcomes = inbox::batch::insert(&ctx.db, chunk).await?;
        for (row, outcome) in chunk.iter().zip(outcomes) {
            if outcome == Enqueued::New {
                ctx.metrics
                    .telegram_updates
                    .get_or_create(&KindLabels {
                        kind: row.kind.to_owned(),
                    })
                    .inc();
            }
        }
    }
    Ok(rows.last().map(|row| row.update_id + 1))
}
