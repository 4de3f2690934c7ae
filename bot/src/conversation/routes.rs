//! The routing table: each stored update, parsed into its [`Route`] (`telegram::updates`),
//! goes to the one feature that handles it, top to bottom.

use super::{Pipeline, PipelineError, Reply, Transport, commands};
use crate::broadcast::{self, BroadcastError};
use crate::leads::{self, Inbound, Kind};
use crate::telegram::Format;
use crate::telegram::updates::{self, ButtonPress, Route};

impl Pipeline {
    /// Handles one stored update (the JSON Telegram sent), by its route in the routing table
    /// (`telegram::updates`).
    pub async fn handle_update<T: Transport>(
        &self,
        transport: &T,
        update_id: i64,
        payload: &str,
    ) -> Result<(), PipelineError> {
        let route = updates::route_payload(update_id, payload)?;
        // An owner composing a broadcast: their next message (text, photo, document) is it.
        if let Some(draft) = self.broadcast_draft(&route, update_id).await? {
            return self.broadcast_content(&draft, update_id, payload).await;
        }
        match route {
            Route::Text(inbound) => self.handle_text(transport, inbound).await,
            Route::Reply {
                inbound,
                to_message_id,
            } => {
                // An owner answering a lead through the bot, else an ordinary message.
                if self
                    .handoff
                    .owner_reply(&self.ctx, &inbound, to_message_id)
                    .await?
                {
                    return Ok(());
                }
                self.handle_text(transport, inbound).await
            }
            Route::NotText { chat_id } => {
                transport
                    .send(chat_id, commands::TEXT_ONLY, Format::Plain)
                    .await?;
                Ok(())
            }
            Route::Document(upload) => self.document_received(transport, upload).await,
            Route::Button(press) => self.button_pressed(transport, update_id, press).await,
            Route::Membership { chat_id, blocked } => {
                self.membership_changed(chat_id, blocked).await
            }
            Route::Ignore(why) => {
                tracing::debug!(why, "update acknowledged, nothing to do");
                Ok(())
            }
        }
    }

    /// A button was pressed: the spinner is stopped first, then its data is handled like text
    /// the lead typed (a `/command`, or the suggested question the button shows).
    async fn button_pressed<T: Transport>(
        &self,
        transport: &T,
        update_id: i64,
        press: ButtonPress,
    ) -> Result<(), PipelineError> {
        transport.answer_button(&press.query_id).await;
        let owner = self.is_owner(press.user.user_id);
        if let Some(pressed) = broadcast::compose::Button::parse(&press.data) {
            let text = if owner {
                let settings = broadcast::Settings::from_config(&self.ctx.settings.bot)
                    .map_err(BroadcastError::from)?;
                broadcast::compose::button(&self.ctx, &settings, pressed, chrono::Utc::now())
                    .await?
            } else {
                crate::telegram::escape_html(commands::OWNERS_ONLY)
            };
            transport.send(press.chat.id, &text, Format::Html).await?;
            return Ok(());
        }
        if self
            .handoff
            .button(&self.ctx, update_id, &press, owner)
            .await?
        {
            return Ok(());
        }
        let text = if press.data.starts_with('/') {
            Some(press.data.clone())
        } else {
            self.suggestion_asked(&press).await?
        };
        let Some(text) = text else {
            tracing::info!("a button whose question is no longer known; acknowledged");
            return Ok(());
        };
        let inbound = press.user.inbound(update_id, &press.chat, text);
        self.handle_text(transport, inbound).await
    }

    /// The owner's draft broadcast this message is the content of, if any.
    async fn broadcast_draft(
        &self,
        route: &Route,
        update_id: i64,
    ) -> Result<Option<broadcast::store::Broadcast>, PipelineError> {
        let chat_id = match route {
            Route::Text(inbound)
                if commands::parse(&inbound.text).is_none() && self.is_owner(inbound.user_id) =>
            {
                inbound.chat_id
            }
            Route::NotText { chat_id } if self.is_owner(Some(*chat_id)) => *chat_id,
            _ => return Ok(None),
        };
        Ok(broadcast::compose::draft_for(&self.ctx, chat_id, update_id).await?)
    }

    async fn broadcast_content(
        &self,
        draft: &broadcast::store::Broadcast,
        update_id: i64,
        payload: &str,
    ) -> Result<(), PipelineError> {
        let Some(message) = updates::message_of(payload) else {
            return Ok(());
        };
        let settings = broadcast::Settings::from_config(&self.ctx.settings.bot)
            .map_err(BroadcastError::from)?;
        broadcast::compose::content_received(&self.ctx, &settings, draft, update_id, &message)
            .await?;
        Ok(())
    }

    /// A user blocked the bot (or unblocked it): stop or restart follow-ups.
    async fn membership_changed(&self, chat_id: i64, blocked: bool) -> Result<(), PipelineError> {
        let now = chrono::Utc::now().timestamp_millis();
        leads::set_opted_out(&self.ctx.db, chat_id, blocked, now).await?;
        tracing::info!(chat_id, blocked, "chat membership changed");
        Ok(())
    }

    /// A message (or a pressed button's text): a command, a message for the person a lead
    /// was handed to, or a question for the LLM.
    pub async fn handle_text<T: Transport>(
        &self,
        transport: &T,
        inbound: Inbound,
    ) -> Result<(), PipelineError> {
        let now = chrono::Utc::now();
        let now_ms = now.timestamp_millis();
        let command = commands::parse(&inbound.text);
        if command.is_none() && self.handoff.is_operator_chat(inbound.chat_id) {
            // The operators' own talk: only their replies to relayed messages are for leads.
            tracing::debug!("operators' group chatter; not for the LLM");
            return Ok(());
        }
        let kind = if command.is_some() {
            Kind::Command
        } else {
            Kind::Chat
        };
        leads::record_inbound(&self.ctx.db, &inbound, kind, now_ms).await?;
        if self.finish_stored_reply(transport, &inbound).await? {
            return Ok(());
        }

        // Handed over to a person: the message goes to them, not to the LLM.
        if command.is_none()
            && let Some(handoff) = self.handoff.open_for(&self.ctx, inbound.chat_id).await?
        {
            self.handoff
                .relay_from_lead(&self.ctx, &handoff, &inbound)
                .await?;
            return Ok(());
        }

        let reply = match command {
            Some(command) => self.command_reply(command, &inbound, now).await?,
            None => {
                let Some((text, kind)) = self.chat_reply(transport, &inbound, now).await? else {
                    return Ok(());
                };
                Reply {
                    text,
                    kind,
                    format: Format::Plain,
                    buttons: vec![],
                }
            }
        };
        self.store_and_send(transport, &inbound, reply, now_ms)
            .await?;
        if command.is_none() {
            // After the reply, not before it: the lead does not wait for the owners' alerts.
            self.check_budget_alerts().await;
        }
        Ok(())
    }
}
