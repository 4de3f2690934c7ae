//! The support desk (`support:`): every text a lead sends is classified (intent and topic)
//! by one call of the `classify_message` tool on `support.classifierModel` before it is
//! answered; the conversation routes by the intent (hand over, no answer to spam, else the
//! usual answer). The result is cached by the message's normalised text, so a repeat costs
//! nothing, and stored per message for `/stats`.

pub mod classify;
pub mod store;

use botfleet_api::{BotConfig, Intent, SupportConfig};
use chrono::{DateTime, Utc};

use crate::context::Context;
use crate::leads::Inbound;
use crate::metrics::IntentLabels;
use crate::money::{CallSpec, Metered, RequestType};
pub use classify::Classification;
use store::ClassifiedMessage;

/// The bot's support-desk settings, read once from the config.
#[derive(Debug, Clone, Default)]
pub struct Support {
    config: Option<SupportConfig>,
}

impl Support {
    pub fn from_config(bot: &BotConfig) -> Self {
        Self {
            config: bot.support.clone(),
        }
    }

    pub fn classifies(&self) -> bool {
        self.config.as_ref().is_some_and(SupportConfig::classifies)
    }

    /// Whether `intent` hands the lead over (`support.handoffOn`).
    pub fn hands_over_on(&self, intent: Intent) -> bool {
        self.config
            .as_ref()
            .is_some_and(|c| c.hands_over_on(intent))
    }

    /// The message's intent and topic: from the cache, else one metered call. `None` when it
    /// cannot be had (classification off, budget stopped, the call failed, no tool call):
    /// the message is then answered as it would be without the support desk.
    pub async fn classify(
        &self,
        ctx: &Context,
        inbound: &Inbound,
        now: DateTime<Utc>,
    ) -> Option<Classification> {
        if !self.classifies() {
            return None;
        }
        let key = store::cache_key(ctx.classifier.model(), &inbound.text);
        let classification = match store::cached(&ctx.db, &key).await {
            Ok(Some(hit)) => hit,
            Ok(None) => {
                let fresh = call(ctx, inbound, now).await?;
                if let Err(e) = store::remember(&ctx.db, &key, &fresh, now.timestamp_millis()).await
                {
                    tracing::warn!(error = %e, "the classification is not cached; a repeat asks again");
                }
                fresh
            }
            Err(e) => {
                tracing::warn!(error = %e, "the classification cache cannot be read; answering without one");
                return None;
            }
        };
        self.recorded(ctx, inbound, &classification, now).await;
        Some(classification)
    }

    /// Counted and stored for `/stats` (and incidents); a failed write is logged, not fatal.
    async fn recorded(
        &self,
        ctx: &Context,
        inbound: &Inbound,
        classification: &Classification,
        now: DateTime<Utc>,
    ) {
        ctx.metrics
            .messages_classified
            .get_or_create(&IntentLabels {
                intent: classification.intent.as_str().to_owned(),
            })
            .inc();
        tracing::info!(
            intent = classification.intent.as_str(),
            topic = %classification.topic,
            "message classified"
        );
        let message = ClassifiedMessage {
            update_id: inbound.update_id,
            chat_id: inbound.chat_id,
            text: &inbound.text,
            classification,
        };
        if let Err(e) = store::record(&ctx.db, &message, now.timestamp_millis()).await {
            tracing::warn!(error = %e, "the message's intent is not stored; /stats misses it");
        }
    }

    /// `/stats`'s support lines (Telegram HTML): classified messages in 24 h by intent.
    pub async fn stats(&self, ctx: &Context, now_ms: i64) -> Result<String, crate::db::SqlError> {
        let counts = store::intents_since(&ctx.db, now_ms - 86_400_000).await?;
        let mut text = String::from("<b>Support desk</b>\nMessages classified in 24 h: ");
        let total: i64 = counts.iter().map(|(_, n)| n).sum();
        text.push_str(&total.to_string());
        for (intent, n) in counts {
            text.push_str(&format!("\n{intent}: {n}"));
        }
        Ok(text)
    }
}

/// The classification call, metered as request type `classification`.
async fn call(ctx: &Context, inbound: &Inbound, now: DateTime<Utc>) -> Option<Classification> {
    let request = classify::request(&inbound.text);
    let tools = [classify::tool()];
    let spec = CallSpec {
        request_type: RequestType::Classification,
        chat_id: Some(inbound.chat_id),
        update_id: Some(inbound.update_id),
        request: &request,
        tools: &tools,
        at: now,
    };
    match ctx.classifier.call(spec).await {
        Ok(Metered::Answered(completion)) => {
            let read = classify::read(&completion);
            if read.is_none() {
                tracing::warn!(model = %completion.model, "the classifier did not call classify_message; answering unclassified");
            }
            read
        }
        Ok(Metered::Refused { .. }) => {
            tracing::info!("budget reached: the message is not classified");
            None
        }
        Ok(Metered::Failed { error, attempts }) => {
            tracing::warn!(%error, attempts, "the classification call failed; answering unclassified");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "budget or ledger failed; answering unclassified");
            None
        }
    }
}
