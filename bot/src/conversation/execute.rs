//! Executing a command: what `/start`, `/stop`, `/help`, `/forget`, `/human` and the owners'
//! commands do and answer.

use botfleet_api::HandoffTrigger;

use super::commands::{Command, LeadCommand, OwnerCommand};
use super::{Pipeline, PipelineError, Reply, commands, suggestions};
use crate::broadcast::{self, BroadcastError};
use crate::leads::{self, Inbound, Kind};
use crate::money::MoneyError;
use crate::telegram::Format;

impl Pipeline {
    pub(super) async fn command_reply(
        &self,
        command: Command,
        inbound: &Inbound,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Reply, PipelineError> {
        let db = &self.ctx.db;
        let owner = self.is_operator(inbound);
        let escape = crate::telegram::escape_html;
        let argument = commands::argument(&inbound.text);
        let (text, format) = match command {
            Command::Lead(LeadCommand::Start) => {
                leads::set_opted_out(db, inbound.chat_id, false, now.timestamp_millis()).await?;
                let questions = self
                    .welcome_suggestions(inbound.chat_id, inbound.update_id)
                    .await?;
                let mut buttons = suggestions::buttons(&questions);
                buttons.extend(self.handoff.welcome_button());
                let text = if questions.is_empty() {
                    commands::WELCOME
                } else {
                    commands::WELCOME_WITH_SUGGESTIONS
                };
                return Ok(Reply {
                    text: escape(text),
                    kind: Kind::Command,
                    format: Format::Html,
                    buttons,
                });
            }
            Command::Lead(LeadCommand::Stop) => {
                leads::set_opted_out(db, inbound.chat_id, true, now.timestamp_millis()).await?;
                tracing::info!("lead opted out of follow-ups");
                (escape(commands::STOPPED), Format::Html)
            }
            Command::Lead(LeadCommand::Forget) => {
                let forgotten = crate::knowledge::documents::forget(db, inbound.chat_id)
                    .await
                    .map_err(MoneyError::from)?;
                let text = match forgotten {
                    Some(name) => format!("Done: I forgot {name}."),
                    None => "There is no document to forget.".to_owned(),
                };
                (escape(&text), Format::Html)
            }
            Command::Lead(LeadCommand::Help) | Command::Unknown => {
                (escape(&commands::help(owner)), Format::Html)
            }
            Command::Lead(LeadCommand::Human) => {
                // The welcome's button sends `/human button`.
                let trigger = if argument == Some("button") {
                    HandoffTrigger::Button
                } else {
                    HandoffTrigger::Command
                };
                if !self.handoff.triggers_on(trigger) {
                    (escape(crate::handoff::NOT_AVAILABLE), Format::Html)
                } else {
                    let (text, _) = self.hand_over(inbound, trigger, None).await?;
                    (escape(&text), Format::Html)
                }
            }
            Command::Owner(_) if !owner => (escape(commands::OWNERS_ONLY), Format::Html),
            Command::Owner(OwnerCommand::LlmStats) => {
                (self.money.report_llm_stats(db, now).await?, Format::Html)
            }
            Command::Owner(OwnerCommand::Stats) => {
                let mut text = self.money.report_stats(db, now).await?;
                if self.handoff.enabled() {
                    text.push_str("\n\n");
                    text.push_str(
                        &self
                            .handoff
                            .stats(&self.ctx, now.timestamp_millis())
                            .await?,
                    );
                }
                if self.support.classifies() {
                    text.push_str("\n\n");
                    text.push_str(
                        &self
                            .support
                            .stats(&self.ctx, now.timestamp_millis())
                            .await?,
                    );
                }
                (text, Format::Html)
            }
            Command::Owner(OwnerCommand::Leads) => {
                (self.handoff.leads(&self.ctx).await?, Format::Html)
            }
            Command::Owner(OwnerCommand::Takeover) => (
                self.handoff.takeover(&self.ctx, inbound, argument).await?,
                Format::Html,
            ),
            Command::Owner(OwnerCommand::Resolve) => (
                self.handoff
                    .resolve_command(&self.ctx, inbound, argument)
                    .await?,
                Format::Html,
            ),
            Command::Owner(OwnerCommand::Budget) => {
                (self.money.report_budget(db, now).await?, Format::Html)
            }
            Command::Owner(OwnerCommand::Dashboard) => {
                let settings = &self.ctx.settings;
                let (text, buttons) =
                    crate::dashboard::command_reply(&settings.bot, settings.webhook_path());
                return Ok(Reply {
                    text,
                    kind: Kind::Command,
                    format: Format::Html,
                    buttons,
                });
            }
            Command::Owner(
                command @ (OwnerCommand::Broadcast
                | OwnerCommand::Broadcasts
                | OwnerCommand::BroadcastCancel),
            ) => (
                self.broadcast_command(command, inbound, now).await?,
                Format::Html,
            ),
        };
        Ok(Reply {
            text,
            kind: Kind::Command,
            format,
            buttons: vec![],
        })
    }

    async fn broadcast_command(
        &self,
        command: OwnerCommand,
        inbound: &Inbound,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, BroadcastError> {
        let settings = broadcast::Settings::from_config(&self.ctx.settings.bot)?;
        let args = inbound
            .text
            .trim()
            .split_once(char::is_whitespace)
            .map_or("", |(_, args)| args);
        let ctx = &self.ctx;
        match command {
            OwnerCommand::Broadcast => {
                broadcast::compose::start(ctx, &settings, inbound.chat_id, args, now).await
            }
            OwnerCommand::Broadcasts => broadcast::compose::list(ctx, &settings).await,
            _ => broadcast::compose::cancel_command(ctx, inbound.chat_id, args, now).await,
        }
    }
}
