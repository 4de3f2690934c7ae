//! Reminders to people (`handoff.remindAfter`): an open handoff nobody has taken reminds the
//! people notified once at each step, naming the lead and how long they have waited. A step is
//! taken by one process in the transaction that queues its messages (so exactly once across
//! restarts and replicas); the outbox sends them, retrying a refused one with backoff up to
//! `handoff.reminderMaxAttempts`, then giving it up (never marked sent).

use std::time::Duration;

use chrono::Utc;

use super::notify::{self, ago, lead_name};
use super::store::{self, LeadInfo, OutboxMessage, Waiting};
use crate::context::Context;
use crate::telegram::escape_html;

/// How many of `steps` (waits since the handoff opened, shortest first) are due after
/// `waited_ms`: the step a handoff should be at. Steps passed together count as one reminder
/// (the latest), so a bot that was down does not send a burst.
pub fn due_steps(steps: &[Duration], waited_ms: i64) -> usize {
    steps
        .iter()
        .take_while(|step| waited_ms >= step.as_millis() as i64)
        .count()
}

/// The reminder's text: who waits, for how long, and how to take them.
pub fn text(handoff_id: i64, lead: &LeadInfo, opened_at: i64, now_ms: i64) -> String {
    format!(
        "⏰ <b>{} has waited {} for a person</b>\n\nNobody has taken this lead yet. Press Take, \
         or reply to the handoff message to answer as the bot. (handoff #{handoff_id})",
        escape_html(&lead_name(lead)),
        ago(opened_at, now_ms),
    )
}

/// Queues the reminders that are due (each step once) for every waiting handoff.
pub(super) async fn queue_due(
    ctx: &Context,
    recipients: &[i64],
    steps: &[Duration],
    max_attempts: u32,
) {
    if steps.is_empty() || recipients.is_empty() {
        return;
    }
    let waiting = match store::waiting_for_reminders(&ctx.db, steps.len() as i64).await {
        Ok(waiting) => waiting,
        Err(e) => {
            tracing::warn!(error = %e, "handoffs waiting for a reminder could not be read; trying again later");
            return;
        }
    };
    let now = Utc::now().timestamp_millis();
    for handoff in waiting {
        let due = due_steps(steps, now - handoff.opened_at) as i64;
        if due > handoff.reminder_steps
            && let Err(e) = queue(ctx, &handoff, due, recipients, max_attempts, now).await
        {
            tracing::warn!(handoff = handoff.id, error = %e, "queueing a reminder failed; trying again later");
        }
    }
}

async fn queue(
    ctx: &Context,
    handoff: &Waiting,
    step: i64,
    recipients: &[i64],
    max_attempts: u32,
    now: i64,
) -> Result<(), crate::db::SqlError> {
    let lead = store::lead_info(&ctx.db, handoff.chat_id).await?;
    let text = text(handoff.id, &lead, handoff.opened_at, now);
    let messages: Vec<OutboxMessage> = notify::outbox(
        recipients,
        &text,
        &notify::owner_buttons(handoff.id),
        &format!("remind:{}:{step}", handoff.id),
    )
    .into_iter()
    .map(|message| OutboxMessage {
        max_attempts: Some(max_attempts),
        ..message
    })
    .collect();
    if store::take_reminder_step(&ctx.db, handoff, step, &messages, now).await? {
        tracing::info!(
            handoff = handoff.id,
            step,
            "reminder about a waiting lead queued"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_due_by_the_wait_and_passed_ones_count_together() {
        let steps = [
            Duration::from_secs(15 * 60),
            Duration::from_secs(30 * 60),
            Duration::from_secs(86_400),
        ];
        let min = 60_000;
        assert_eq!(due_steps(&steps, 14 * min), 0);
        assert_eq!(due_steps(&steps, 15 * min), 1);
        assert_eq!(due_steps(&steps, 29 * min), 1);
        assert_eq!(due_steps(&steps, 31 * min), 2);
        assert_eq!(due_steps(&steps, 2 * 86_400_000), 3);
        assert_eq!(due_steps(&[], 2 * 86_400_000), 0);
    }
}
