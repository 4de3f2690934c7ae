//! The owner's progress message: one message per broadcast, edited in place
//! (`editMessageText`) at most every [`EDIT_EVERY`], with a Cancel button while it runs; the
//! final report replaces it when the broadcast ends.

use std::time::{Duration, Instant};

use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup, MessageId, ParseMode};

use super::BroadcastError;
use super::compose::Button;
use super::store::{self, Counts};
use crate::context::Context;
use crate::delivery::Put;
use crate::telegram::Priority;

/// Telegram lets a message be edited about once a second; every few seconds is plenty.
pub const EDIT_EVERY: Duration = Duration::from_secs(3);

/// Where a broadcast stands, for its progress message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Sending,
    Done,
    Cancelled,
}

/// The progress message's text (HTML).
pub fn render(id: i64, stage: Stage, c: &Counts, eta: Option<Duration>, took: Duration) -> String {
    let head = match stage {
        Stage::Sending => format!("📣 <b>Broadcast #{id}</b> — sending"),
        Stage::Done => format!("📣 <b>Broadcast #{id}</b> — done in {}", clock(took)),
        Stage::Cancelled => format!("🛑 <b>Broadcast #{id}</b> — cancelled"),
    };
    let mut text = format!(
        "{head}\n\nSent: <b>{}</b>\nFailed: {}\nBlocked (opted out): {}",
        c.sent, c.failed, c.blocked
    );
    if c.skipped > 0 {
        text.push_str(&format!("\nSkipped (opted out meanwhile): {}", c.skipped));
    }
    match stage {
        Stage::Sending => {
            text.push_str(&format!("\nRemaining: {}", c.remaining()));
            if let Some(eta) = eta {
                text.push_str(&format!("\nAbout {} left", clock(eta)));
            }
        }
        Stage::Cancelled => text.push_str(&format!("\nNot sent: {}", c.remaining())),
        Stage::Done => {}
    }
    text
}

/// `1 h 02 min`, `5 min 36 s`, `12 s`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 3600 => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{} min {:02} s", s / 60, s % 60),
        s => format!("{s} s"),
    }
}

/// The time left at the pace of this run so far (or, before there is one, the limiter's).
pub fn eta(remaining: i64, done_this_run: u64, elapsed: Duration, slot: Duration) -> Duration {
    let remaining = u32::try_from(remaining.max(0)).unwrap_or(u32::MAX);
    if done_this_run >= 10 && !elapsed.is_zero() {
        let per = elapsed.as_secs_f64() / done_this_run as f64;
        Duration::from_secs_f64(per * f64::from(remaining))
    } else {
        slot * remaining
    }
}

/// The progress message of one running broadcast.
pub struct Progress {
    id: i64,
    owner_chat_id: i64,
    message_id: Option<i64>,
    last_edit: Option<Instant>,
    started: Instant,
    /// Rows finished by this process, for the pace.
    pub done_this_run: u64,
}

impl Progress {
    /// Sends the progress message unless the broadcast has one (a resumed broadcast keeps
    /// editing its message).
    pub async fn open(ctx: &Context, id: i64, owner_chat_id: i64, message_id: Option<i64>) -> Self {
        let mut progress = Self {
            id,
            owner_chat_id,
            message_id,
            last_edit: None,
            started: Instant::now(),
            done_this_run: 0,
        };
        if progress.message_id.is_none() {
            let text = render(id, Stage::Sending, &Counts::default(), None, Duration::ZERO);
            let keyboard = cancel_keyboard(id);
            let sent = ctx
                .delivery
                .request(owner_chat_id, Priority::Interactive, Put::Message, || {
                    ctx.delivery
                        .bot()
                        .send_message(ChatId(owner_chat_id), text.clone())
                        .parse_mode(ParseMode::Html)
                        .reply_markup(keyboard.clone())
                        .into_future()
                })
                .await;
            match sent {
                Ok(message) => {
                    let message_id = i64::from(message.id.0);
                    progress.message_id = Some(message_id);
                    if let Err(e) = store::set_progress_message(&ctx.db, id, message_id).await {
                        tracing::warn!(broadcast = id, error = %e, "could not record the progress message; a resumed run sends a new one");
                    }
                }
                Err(e) => {
                    tracing::warn!(broadcast = id, error = %e, "could not send the broadcast's progress message")
                }
            }
            progress.last_edit = Some(Instant::now());
        }
        progress
    }

    /// Whether an edit is due.
    pub fn due(&self) -> bool {
        self.last_edit.is_none_or(|at| at.elapsed() >= EDIT_EVERY)
    }

    /// Edits the message to show `counts` at `stage`. Best effort: a failed edit is logged and
    /// the next one shows the newer numbers.
    pub async fn show(
        &mut self,
        ctx: &Context,
        stage: Stage,
        counts: &Counts,
    ) -> Result<(), BroadcastError> {
        self.last_edit = Some(Instant::now());
        let elapsed = self.started.elapsed();
        let eta = (stage == Stage::Sending).then(|| {
            eta(
                counts.remaining(),
                self.done_this_run,
                elapsed,
                ctx.telegram.outbound().limits().slot,
            )
        });
        let took = match stage {
            Stage::Sending => elapsed,
            _ => self.took(ctx).await.unwrap_or(elapsed),
        };
        let text = render(self.id, stage, counts, eta, took);
        let (owner, id) = (self.owner_chat_id, self.id);
        let Some(message_id) = self.message_id else {
            if stage != Stage::Sending {
                // No message to edit: the report is a message of its own.
                ctx.delivery
                    .send(
                        owner,
                        &text,
                        crate::telegram::Format::Html,
                        Priority::Interactive,
                    )
                    .await?;
            }
            return Ok(());
        };
        let keyboard = (stage == Stage::Sending).then(|| cancel_keyboard(id));
        let message_id = MessageId(i32::try_from(message_id).unwrap_or_default());
        let edited = ctx
            .delivery
            .request(owner, Priority::Interactive, Put::Edit, || {
                let mut request = ctx
                    .delivery
                    .bot()
                    .edit_message_text(ChatId(owner), message_id, text.clone())
                    .parse_mode(ParseMode::Html);
                if let Some(k) = &keyboard {
                    request = request.reply_markup(k.clone());
                }
                request.into_future()
            })
            .await;
        if let Err(e) = edited {
            tracing::debug!(broadcast = id, error = %e, "editing the progress message failed");
        }
        Ok(())
    }

    /// The whole broadcast's duration, across restarts.
    async fn took(&self, ctx: &Context) -> Option<Duration> {
        let b = store::load(&ctx.db, self.id).await.ok()??;
        let ms = b.finished_at?.checked_sub(b.started_at?)?;
        Some(Duration::from_millis(u64::try_from(ms).ok()?))
    }
}

fn cancel_keyboard(id: i64) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new([[InlineKeyboardButton::callback(
        "🛑 Cancel broadcast",
        Button::Cancel(id).data(),
    )]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_shows_counts_and_time_left() {
        let c = Counts {
            pending: 480,
            sending: 20,
            sent: 495,
            failed: 2,
            blocked: 3,
            skipped: 0,
        };
        let text = render(
            7,
            Stage::Sending,
            &c,
            Some(Duration::from_secs(17)),
            Duration::ZERO,
        );
        assert!(text.contains("Broadcast #7</b> — sending"), "{text}");
        assert!(text.contains("Sent: <b>495</b>"));
        assert!(text.contains("Failed: 2"));
        assert!(text.contains("Blocked (opted out): 3"));
        assert!(text.contains("Remaining: 500"));
        assert!(text.contains("About 17 s left"));
        let done = render(7, Stage::Done, &c, None, Duration::from_secs(336));
        assert!(done.contains("done in 5 min 36 s"), "{done}");
        assert!(!done.contains("Remaining"));
        let cancelled = render(7, Stage::Cancelled, &c, None, Duration::ZERO);
        assert!(cancelled.contains("Not sent: 500"));
    }

    #[test]
    fn time_left_follows_the_pace_of_the_run() {
        let slot = Duration::from_millis(34);
        // Before there is a pace: the limiter's.
        assert_eq!(
            eta(100, 0, Duration::ZERO, slot),
            Duration::from_millis(3400)
        );
        // 300 in 10 s: 30/s, so 600 more take 20 s.
        let left = eta(600, 300, Duration::from_secs(10), slot);
        assert!((left.as_secs_f64() - 20.0).abs() < 0.01, "{left:?}");
    }
}
