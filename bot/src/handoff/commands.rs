//! What owners do with handoffs: the Take / Resolve / Back to bot buttons, `/leads`,
//! `/takeover <lead>` and `/resolve <lead>` (or `/resolve` as a reply to a lead's message).

use botfleet_api::HandoffTrigger;

use super::actions::{OwnerAction, button_action};
use super::store::{self, Handoff};
use super::{HandoffError, Handoffs, notify, relay};
use crate::context::Context;
use crate::leads::Inbound;
use crate::telegram::updates::ButtonPress;
use crate::telegram::{Format, Priority, escape_html};

impl Handoffs {
    /// An owner's button under a handoff notification. Returns false for any other button.
    /// `is_owner`: the presser is one of the bot's owners.
    pub async fn button(
        &self,
        ctx: &Context,
        update_id: i64,
        press: &ButtonPress,
        is_owner: bool,
    ) -> Result<bool, HandoffError> {
        let Some((action, id)) = button_action(&press.data) else {
            return Ok(false);
        };
        if !self.enabled() {
            return Ok(true);
        }
        if !is_owner && !self.is_recipient(press.chat.id) {
            tracing::info!("a handoff button pressed by someone who is not an owner; ignored");
            return Ok(true);
        }
        let actor = press
            .user
            .clone()
            .inbound(update_id, &press.chat, String::new());
        let handoff = store::get(&ctx.db, id).await?;
        self.owner_action(ctx, &actor, action, handoff.as_ref())
            .await?;
        Ok(true)
    }

    /// Takes or hands back `handoff` for `actor`, and tells the actor's chat what happened.
    pub(super) async fn owner_action(
        &self,
        ctx: &Context,
        actor: &Inbound,
        action: OwnerAction,
        handoff: Option<&Handoff>,
    ) -> Result<(), HandoffError> {
        let text = match handoff {
            None => "That handoff is not known (any more).".to_owned(),
            Some(handoff) => self.act(ctx, actor, action, handoff).await?,
        };
        ctx.delivery
            .send(actor.chat_id, &text, Format::Html, Priority::Interactive)
            .await?;
        Ok(())
    }

    /// Does `action`; returns the confirmation for the owner (Telegram HTML).
    async fn act(
        &self,
        ctx: &Context,
        actor: &Inbound,
        action: OwnerAction,
        handoff: &Handoff,
    ) -> Result<String, HandoffError> {
        let db = &ctx.db;
        let lead = store::lead_info(db, handoff.chat_id).await?;
        let lead_name = escape_html(&notify::lead_name(&lead));
        let now = chrono::Utc::now().timestamp_millis();
        let me = relay::sender_name(actor);
        if !handoff.is_open() {
            return Ok(format!("{lead_name} is already back with the bot."));
        }
        match action {
            OwnerAction::Take => {
                let owner = actor.user_id.unwrap_or(actor.chat_id);
                if store::take(db, handoff.id, owner, &me, actor.chat_id, now).await? {
                    tracing::info!(handoff = handoff.id, "an owner took the handoff");
                    Ok(format!(
                        "🙋 {} took {lead_name}. Reply to the lead's messages to answer them as the bot; /resolve {} hands them back.",
                        escape_html(&me),
                        escape_html(&notify::lead_handle(&lead)),
                    ))
                } else {
                    let taker = handoff.taken_by_name.as_deref().unwrap_or("another owner");
                    Ok(format!(
                        "{lead_name} is already taken by {}.",
                        escape_html(taker)
                    ))
                }
            }
            OwnerAction::Resolve | OwnerAction::Back => {
                if store::close(db, handoff.id, action.close_reason(), now).await? {
                    tracing::info!(
                        handoff = handoff.id,
                        reason = action.close_reason(),
                        "handoff closed: the lead is back with the bot"
                    );
                    relay::tell_lead_resumed(ctx, self, handoff.chat_id).await?;
                    Ok(format!("✅ {lead_name} is back with the bot."))
                } else {
                    Ok(format!("{lead_name} is already back with the bot."))
                }
            }
        }
    }

    /// `/leads`: the open handoffs, oldest first (Telegram HTML).
    pub async fn leads(&self, ctx: &Context) -> Result<String, HandoffError> {
        if !self.enabled() {
            return Ok("Handoff to a person is off (<code>handoff:</code> in the config).".into());
        }
        let now = chrono::Utc::now().timestamp_millis();
        let open = store::list_open(&ctx.db).await?;
        if open.is_empty() {
            return Ok("No lead is waiting for a person.".into());
        }
        let mut text = format!("<b>Leads with a person ({})</b>", open.len());
        for item in open {
            let h = &item.handoff;
            let state = match &h.taken_by_name {
                Some(name) => format!("taken by {}", escape_html(name)),
                None => "<b>waiting</b>".to_owned(),
            };
            text.push_str(&format!(
                "\n• {} — {state}, since {} ago ({}); /resolve {}",
                escape_html(&notify::lead_name(&item.lead)),
                notify::ago(h.opened_at, now),
                escape_html(&notify::why(&h.reason, None)),
                escape_html(&notify::lead_handle(&item.lead)),
            ));
        }
        Ok(text)
    }

    /// `/takeover <lead>`: the owner takes the lead over from the bot at once.
    pub async fn takeover(
        &self,
        ctx: &Context,
        actor: &Inbound,
        arg: Option<&str>,
    ) -> Result<String, HandoffError> {
        if !self.triggers_on(HandoffTrigger::Takeover) {
            return Ok("Taking a lead over is off (<code>handoff.triggers</code>).".into());
        }
        let Some(arg) = arg else {
            return Ok("Whom? <code>/takeover @username</code> or <code>/takeover 123456789</code> (the lead's chat id).".into());
        };
        let Some(chat_id) = store::find_lead(&ctx.db, arg).await? else {
            return Ok(format!("No lead {} is known.", escape_html(arg)));
        };
        let me = relay::sender_name(actor);
        let owner = actor.user_id.unwrap_or(actor.chat_id);
        let lead = store::lead_info(&ctx.db, chat_id).await?;
        let opened = self
            .open(
                ctx,
                super::OpenRequest {
                    chat_id,
                    update_id: Some(actor.update_id),
                    trigger: HandoffTrigger::Takeover,
                    detail: None,
                    taken: Some((owner, &me, actor.chat_id)),
                },
            )
            .await?;
        if !opened.new
            && let Some(handoff) = store::open_for_lead(&ctx.db, chat_id).await?
        {
            let now = chrono::Utc::now().timestamp_millis();
            if !store::take(&ctx.db, handoff.id, owner, &me, actor.chat_id, now).await? {
                return Ok(format!(
                    "{} is already with {}.",
                    escape_html(&notify::lead_name(&lead)),
                    escape_html(handoff.taken_by_name.as_deref().unwrap_or("another owner"))
                ));
            }
        }
        Ok(format!(
            "You have {} now: the bot stops answering them. Reply to the handoff message to write to them; /resolve {} hands them back.",
            escape_html(&notify::lead_name(&lead)),
            escape_html(&notify::lead_handle(&lead)),
        ))
    }

    /// `/resolve <lead>`: hands the lead back to the bot.
    pub async fn resolve_command(
        &self,
        ctx: &Context,
        actor: &Inbound,
        arg: Option<&str>,
    ) -> Result<String, HandoffError> {
        if !self.enabled() {
            return Ok("Handoff to a person is off (<code>handoff:</code> in the config).".into());
        }
        let Some(arg) = arg else {
            return Ok("Whom? <code>/resolve @username</code>, <code>/resolve 123456789</code>, or reply <code>/resolve</code> to the lead's message.".into());
        };
        let Some(chat_id) = store::find_lead(&ctx.db, arg).await? else {
            return Ok(format!("No lead {} is known.", escape_html(arg)));
        };
        match store::open_for_lead(&ctx.db, chat_id).await? {
            Some(handoff) => self.act(ctx, actor, OwnerAction::Resolve, &handoff).await,
            None => Ok(format!(
                "{} is not with a person.",
                escape_html(&notify::lead_name(
                    &store::lead_info(&ctx.db, chat_id).await?
                ))
            )),
        }
    }
}
