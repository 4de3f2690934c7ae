//! Talking through the bot: the lead's messages to the owners, an owner's replies to the lead.

use super::store::{self, Handoff};
use super::{HandoffError, Handoffs, notify};
use crate::context::Context;
use crate::leads::{self as conversation, Inbound, Kind};
use crate::telegram::{Format, Priority, escape_html};

impl Handoffs {
    /// The lead wrote while handed over: the message goes to the owner who took the lead (or
    /// to everyone notified), not to the LLM. Queued once per update, so a retried update
    /// does not relay twice.
    pub async fn relay_from_lead(
        &self,
        ctx: &Context,
        handoff: &Handoff,
        inbound: &Inbound,
    ) -> Result<(), HandoffError> {
        let now = chrono::Utc::now().timestamp_millis();
        let lead = store::lead_info(&ctx.db, inbound.chat_id).await?;
        let text = notify::relayed(&lead, &inbound.text);
        let audience = notify::audience(handoff, &self.recipients);
        let messages = notify::outbox(
            &audience,
            &text,
            &[],
            &format!("relay:{}", inbound.update_id),
        );
        store::enqueue_all(&ctx.db, handoff.id, &messages, now).await?;
        store::touch(&ctx.db, handoff.id, now).await?;
        tracing::info!(
            handoff = handoff.id,
            owners = audience.len(),
            "lead message relayed to a person, not the LLM"
        );
        notify::deliver_due(ctx, Some(handoff.id)).await;
        Ok(())
    }

    /// A message that replies to one of the bot's messages: when that message was shown to
    /// an owner for a lead, the reply is for the lead. Returns false when it is not (the
    /// update is then an ordinary message).
    pub async fn owner_reply(
        &self,
        ctx: &Context,
        inbound: &Inbound,
        to_message_id: i64,
    ) -> Result<bool, HandoffError> {
        if !self.enabled() {
            return Ok(false);
        }
        let db = &ctx.db;
        let Some((handoff_id, lead_chat)) =
            store::relay_target(db, inbound.chat_id, to_message_id).await?
        else {
            return Ok(false);
        };
        let Some(handoff) = store::get(db, handoff_id).await? else {
            return Ok(false);
        };
        let text = inbound.text.trim();
        if let Some(action) = super::actions::reply_action(text) {
            self.owner_action(ctx, inbound, action, Some(&handoff))
                .await?;
            return Ok(true);
        }
        let lead = store::lead_info(db, lead_chat).await?;
        if !handoff.is_open() {
            let note = format!(
                "{} is back with the bot, so this was not sent. /takeover {} to talk to them again.",
                escape_html(&notify::lead_name(&lead)),
                escape_html(&notify::lead_handle(&lead)),
            );
            ctx.delivery
                .send(inbound.chat_id, &note, Format::Html, Priority::Interactive)
                .await?;
            return Ok(true);
        }
        let now = chrono::Utc::now().timestamp_millis();
        if handoff.taken_by.is_none()
            && let Some(owner) = inbound.user_id
        {
            // Answering is taking: the lead's next messages go to this owner only.
            store::take(
                db,
                handoff.id,
                owner,
                &sender_name(inbound),
                inbound.chat_id,
                now,
            )
            .await?;
        }
        // Stored under the owner's update, so a retried update sends it once.
        let stored = conversation::reply_for_update(db, inbound.update_id).await?;
        let id = match stored {
            Some(reply) if reply.sent => return Ok(true),
            Some(reply) => reply.id,
            None => {
                conversation::store_reply(
                    db,
                    lead_chat,
                    Some(inbound.update_id),
                    Kind::Chat,
                    text,
                    now,
                )
                .await?
            }
        };
        ctx.delivery
            .send(lead_chat, text, Format::Plain, Priority::Interactive)
            .await?;
        conversation::record_sent(db, id, lead_chat).await;
        store::touch(db, handoff.id, now).await?;
        tracing::info!(handoff = handoff.id, "an owner's reply sent to the lead");
        Ok(true)
    }
}

/// Tells a lead handed back to the bot that the bot answers again (stored as a notice).
pub(super) async fn tell_lead_resumed(
    ctx: &Context,
    handoffs: &Handoffs,
    lead_chat: i64,
) -> Result<(), HandoffError> {
    let text = handoffs
        .config
        .as_ref()
        .map(|c| c.resume_message().to_owned())
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp_millis();
    let id = conversation::store_reply(&ctx.db, lead_chat, None, Kind::Notice, &text, now).await?;
    ctx.delivery
        .send(lead_chat, &text, Format::Plain, Priority::Interactive)
        .await?;
    conversation::record_sent(&ctx.db, id, lead_chat).await;
    Ok(())
}

/// "Anna (@anna)" for whoever wrote or pressed.
pub(super) fn sender_name(inbound: &Inbound) -> String {
    let info = store::LeadInfo {
        chat_id: inbound.user_id.unwrap_or(inbound.chat_id),
        first_name: inbound.first_name.clone(),
        username: inbound.username.clone(),
        ..Default::default()
    };
    notify::lead_name(&info)
}
