//! What owners are told, and getting it to them: the handoff notification (with the LLM's
//! summary of the conversation), relayed lead messages, and the outbox that delivers both
//! through the outbound limiter, retrying a failed send until Telegram takes it.

use std::time::Duration;

use botfleet_llm::{ChatMessage, CompletionRequest, Role};
use chrono::{DateTime, Utc};

use super::store::{self, AfterFailure, Handoff, LeadInfo, OutboxMessage};
use crate::context::Context;
use crate::db::{Db, SqlError};
use crate::leads::history;
use crate::money::{CallSpec, Metered, RequestType};
use crate::telegram::{Format, Priority, escape_html};

/// How long a process holds an outbox row it is sending.
const CLAIM: Duration = Duration::from_secs(60);
/// Retries of a failed owner message back off up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// History the summary is written from.
const SUMMARY_HISTORY_TOKENS: u32 = 6000;
const SUMMARY_MAX_TOKENS: u32 = 400;
const SUMMARY_PROMPT: &str = "You brief a salesperson who takes over a Telegram conversation \
from a sales bot. In two to four plain sentences, no greeting: what the lead wants, where the \
conversation stands, and anything urgent or sensitive (anger, a deadline, a large order).";

/// An LLM-written brief of the lead's conversation, priced in the ledger as request type
/// `summary`. `None` when it cannot be had (budget stopped, LLM failed, no history): the
/// owners are told without it.
pub(super) async fn summarize(
    ctx: &Context,
    chat_id: i64,
    update_id: Option<i64>,
) -> Option<String> {
    let history = match history::recent(&ctx.db, chat_id, SUMMARY_HISTORY_TOKENS).await {
        Ok(history) if !history.is_empty() => history,
        Ok(_) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "reading the history to summarise failed");
            return None;
        }
    };
    let transcript = history
        .iter()
        .map(|m| {
            let who = if m.role == Role::User { "Lead" } else { "Bot" };
            format!("{who}: {}", m.text)
        })
        .collect::<Vec<_>>()
        .join("\n");
    let request = CompletionRequest {
        system: Some(SUMMARY_PROMPT.to_owned()),
        messages: vec![ChatMessage::user(format!(
            "The conversation so far:\n\n{transcript}\n\nWrite the brief."
        ))],
        max_output_tokens: SUMMARY_MAX_TOKENS,
        ..CompletionRequest::default()
    };
    let spec = CallSpec {
        request_type: RequestType::Summary,
        chat_id: Some(chat_id),
        update_id,
        request: &request,
        tools: &[],
        at: Utc::now(),
    };
    match ctx.llm.call(spec).await {
        Ok(Metered::Answered(completion)) if !completion.text.trim().is_empty() => {
            Some(completion.text.trim().to_owned())
        }
        Ok(Metered::Answered(_)) => None,
        Ok(Metered::Refused { .. }) => {
            tracing::info!("budget reached: the handoff goes out without a summary");
            None
        }
        Ok(Metered::Failed { error, .. }) => {
            tracing::warn!(%error, "the summary call failed: the handoff goes out without a summary");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "budget or ledger failed: the handoff goes out without a summary");
            None
        }
    }
}

/// "Anna (@anna)", or the chat id when the lead has no name on record.
pub(super) fn lead_name(lead: &LeadInfo) -> String {
    let name = lead.first_name.as_deref().filter(|n| !n.trim().is_empty());
    match (name, lead.username.as_deref()) {
        (Some(name), Some(user)) => format!("{name} (@{user})"),
        (Some(name), None) => name.to_owned(),
        (None, Some(user)) => format!("@{user}"),
        (None, None) => format!("chat {}", lead.chat_id),
    }
}

/// How a lead is named in `/takeover` and `/resolve`.
pub(super) fn lead_handle(lead: &LeadInfo) -> String {
    match &lead.username {
        Some(user) => format!("@{user}"),
        None => lead.chat_id.to_string(),
    }
}

pub(super) fn why(reason: &str, detail: Option<&str>) -> String {
    let why = match reason {
        "command" => "the lead asked for a person (/human)",
        "button" => "the lead pressed “Talk to a person”",
        "llm" => "the bot judged the lead needs a person",
        "llm_failure" => "the bot could not reach its language model",
        "unanswered" => "the bot could not answer several messages in a row",
        "takeover" => "an owner took the conversation over",
        "intent" => "the support desk classified the message as",
        other => other,
    };
    match detail.map(str::trim).filter(|d| !d.is_empty()) {
        Some(detail) => format!("{why}: “{detail}”"),
        None => why.to_owned(),
    }
}

pub(super) fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// "12 min", "3 h 5 min", "2 d 4 h".
pub fn ago(from_ms: i64, now_ms: i64) -> String {
    let minutes = (now_ms - from_ms).max(0) / 60_000;
    match minutes {
        m if m < 60 => format!("{m} min"),
        m if m < 24 * 60 => format!("{} h {} min", m / 60, m % 60),
        m => format!("{} d {} h", m / (24 * 60), (m / 60) % 24),
    }
}

/// The one message per handoff: who, why, the summary, and what the owner can do.
pub(super) fn notification(
    handoff_id: i64,
    lead: &LeadInfo,
    new: &store::NewHandoff<'_>,
) -> String {
    let mut text = format!(
        "🙋 <b>A lead needs a person</b>\n\n<b>Lead:</b> {}\n<b>First seen:</b> {}\n<b>Messages so far:</b> {}\n<b>Why:</b> {}",
        escape_html(&lead_name(lead)),
        lead.first_seen_at.map(time).unwrap_or_else(|| "—".into()),
        lead.messages,
        escape_html(&why(new.reason, new.detail)),
    );
    match new.summary {
        Some(summary) => {
            text.push_str(&format!("\n\n<b>Summary:</b> {}", escape_html(summary)));
        }
        None => text.push_str("\n\n<i>No summary: the language model could not write one.</i>"),
    }
    if let Some((_, name, _)) = new.taken {
        text.push_str(&format!("\n\nTaken by {}.", escape_html(name)));
    }
    text.push_str(&format!(
        "\n\nReply to this message (or to the lead's messages I pass on) to answer as the bot. \
         /resolve {} hands the lead back. (handoff #{handoff_id})",
        escape_html(&lead_handle(lead)),
    ));
    text
}

pub(super) fn owner_buttons(handoff_id: i64) -> Vec<(String, String)> {
    vec![
        ("Take".into(), format!("handoff:take:{handoff_id}")),
        ("Resolve".into(), format!("handoff:resolve:{handoff_id}")),
        ("Back to bot".into(), format!("handoff:back:{handoff_id}")),
    ]
}

/// A lead's message passed on to the owners.
pub(super) fn relayed(lead: &LeadInfo, text: &str) -> String {
    format!(
        "💬 <b>{}</b>:\n{}",
        escape_html(&lead_name(lead)),
        escape_html(text)
    )
}

/// Where a handoff's messages go: the owner who took it (in the chat where they took it), or
/// everyone notified while no one has.
pub(super) fn audience(handoff: &Handoff, recipients: &[i64]) -> Vec<i64> {
    match handoff.taken_in_chat {
        Some(chat) => vec![chat],
        None => recipients.to_vec(),
    }
}

pub(super) fn outbox(
    recipients: &[i64],
    text: &str,
    buttons: &[(String, String)],
    key: &str,
) -> Vec<OutboxMessage> {
    recipients
        .iter()
        .map(|chat| OutboxMessage {
            owner_chat_id: *chat,
            text: text.to_owned(),
            buttons: buttons.to_vec(),
            dedupe_key: format!("{key}:{chat}"),
            max_attempts: None,
        })
        .collect()
}

/// Sends the due outbox rows (of one handoff, or all): each through the limiter; a sent one
/// records its message ids (an owner's reply to any of them reaches the lead), a failed one
/// is counted and tried again later. Returns how many were sent.
pub(super) async fn deliver_due(ctx: &Context, handoff_id: Option<i64>) -> usize {
    let now = Utc::now().timestamp_millis();
    let until = now + CLAIM.as_millis() as i64;
    let due = match store::claim_due(&ctx.db, handoff_id, now, until, 50).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "the handoff outbox could not be read; trying again later");
            return 0;
        }
    };
    let mut sent = 0;
    for row in due {
        let result = ctx
            .delivery
            .send_with_buttons(
                row.owner_chat_id,
                &row.text,
                Format::Html,
                Priority::Interactive,
                &row.buttons,
            )
            .await;
        let now = Utc::now().timestamp_millis();
        let outcome = match result {
            Ok(ids) => {
                if row.is_reminder() {
                    reminder_counted(ctx, "sent");
                }
                ctx.db
                    .record_send("recording a sent owner message", || {
                        record_delivered(&ctx.db, &row, &ids, now)
                    })
                    .await;
                sent += 1;
                Ok(())
            }
            Err(e) => failed(ctx, &row, &e.to_string(), now).await,
        };
        if let Err(e) = outcome {
            // The claim expires and the row is tried again (a send may then repeat).
            tracing::warn!(handoff = row.handoff_id, error = %e, "recording an owner message's delivery failed");
        }
    }
    sent
}

/// A send Telegram refused: counted, and tried again after a backoff; a reminder's last
/// allowed attempt gives it up instead (logged once, never marked sent).
async fn failed(
    ctx: &Context,
    row: &store::Pending,
    error: &str,
    now: i64,
) -> Result<(), crate::db::SqlError> {
    if row.is_reminder() {
        reminder_counted(ctx, "failed");
    } else {
        ctx.metrics.handoff_notify_failures.inc();
    }
    if row.last_attempt() {
        reminder_counted(ctx, "given_up");
        tracing::warn!(handoff = row.handoff_id, attempts = row.attempts + 1, %error, "a reminder to an owner could not be sent; given up");
        return store::outbox_failed(&ctx.db, row.id, error, AfterFailure::GiveUp(now)).await;
    }
    let backoff = Duration::from_secs(1 << row.attempts.clamp(0, 9)).min(MAX_BACKOFF);
    if row.attempts == 0 {
        tracing::warn!(handoff = row.handoff_id, %error, "a message to an owner could not be sent; retrying");
    } else {
        tracing::debug!(handoff = row.handoff_id, attempts = row.attempts + 1, %error, "a message to an owner failed again");
    }
    let retry_at = now + backoff.as_millis() as i64;
    store::outbox_failed(&ctx.db, row.id, error, AfterFailure::RetryAt(retry_at)).await
}

fn reminder_counted(ctx: &Context, outcome: &str) {
    ctx.metrics
        .handoff_reminders
        .get_or_create(&crate::metrics::OutcomeLabels {
            outcome: outcome.to_owned(),
        })
        .inc();
}

/// Records a sent outbox row: its message ids (an owner's reply to one reaches the lead), then
/// the row as sent.
async fn record_delivered(
    db: &Db,
    row: &store::Pending,
    ids: &[i64],
    now: i64,
) -> Result<(), SqlError> {
    for &id in ids {
        store::record_relay(
            db,
            row.owner_chat_id,
            id,
            row.handoff_id,
            row.lead_chat_id,
            now,
        )
        .await?;
    }
    store::outbox_sent(db, row.id, now).await
}
