//! An LLM call whose text the lead watches arrive: one draft per reply (`sendMessageDraft`),
//! updated at most every `llm.draftInterval` (the first text at once), growing only. Until
//! the first draft is shown, and wherever drafts turn out not to work, the lead sees the
//! typing action as for a plain call. The final text is not sent here: the pipeline stores
//! it and sends it with `sendMessage`, as for any reply.

use std::time::Duration;

use botfleet_llm::StreamEvent;
use tokio::time::{Instant, sleep_until};

use super::{TYPING_EVERY, Transport};
use crate::money::{Metered, MoneyError, Permit};
use crate::telegram::{DraftShown, TELEGRAM_MAX_MESSAGE_UTF16, split_message};

/// Where the drafts of one reply go, and how often.
pub(super) struct DraftTarget {
    pub chat_id: i64,
    /// Non-zero and the same for every update of this reply's draft.
    pub draft_id: i64,
    pub interval: Duration,
}

pub(super) async fn call_with_drafts<T: Transport>(
    permit: Permit<'_>,
    transport: &T,
    target: DraftTarget,
) -> Result<Metered, MoneyError> {
    let (text_tx, mut text_rx) = tokio::sync::watch::channel(String::new());
    // Only text reaches the drafts: a tool call (a handoff) is never shown to the lead.
    let call = permit.stream(move |event| match event {
        StreamEvent::Text(text) => text_tx.send_modify(|all| all.push_str(text)),
        StreamEvent::Restart => text_tx.send_modify(String::clear),
    });
    tokio::pin!(call);

    let chat_id = target.chat_id;
    let mut drafting = true;
    let mut pending = false;
    // Length (in characters) of the longest draft shown: drafts only grow, so after a
    // restart the lead keeps seeing the old draft until the new text is longer.
    let mut shown_chars = 0;
    let mut last_draft: Option<Instant> = None;
    let mut next_typing = Instant::now();
    loop {
        let typing = shown_chars == 0 || !drafting;
        if typing && Instant::now() >= next_typing {
            transport.typing(chat_id).await;
            next_typing = Instant::now() + TYPING_EVERY;
        }
        let draft_due = last_draft.map_or_else(Instant::now, |at| at + target.interval);
        if drafting && pending && Instant::now() >= draft_due {
            pending = false;
            let text = first_message(&text_rx.borrow_and_update());
            let chars = text.chars().count();
            // An empty draft would be refused (and read as drafts not working here).
            if chars > shown_chars && !text.trim().is_empty() {
                last_draft = Some(Instant::now());
                match transport.draft(chat_id, target.draft_id, &text).await {
                    DraftShown::Shown => shown_chars = chars,
                    DraftShown::Skipped => {}
                    DraftShown::Unavailable => drafting = false,
                }
            }
            continue;
        }
        let far = Instant::now() + Duration::from_secs(3600);
        let wake = match (typing, drafting && pending) {
            (true, true) => next_typing.min(draft_due),
            (true, false) => next_typing,
            (false, true) => draft_due,
            (false, false) => far,
        };
        tokio::select! {
            biased;
            outcome = &mut call => return outcome,
            changed = text_rx.changed(), if drafting && !pending => {
                match changed {
                    Ok(()) => pending = true,
                    Err(_) => drafting = false, // the call is over; its result comes next
                }
            }
            _ = sleep_until(wake) => {}
        }
    }
}

/// What fits in one draft: the part of the text the first message of the reply will hold.
fn first_message(text: &str) -> String {
    split_message(text, TELEGRAM_MAX_MESSAGE_UTF16)
        .into_iter()
        .next()
        .unwrap_or_default()
}
