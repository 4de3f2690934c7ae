//! What every part of a running bot shares: settings, database, metrics, and the two roads
//! out: [`Delivery`] for every message, [`MeteredLlm`] for every LLM call.

use std::sync::Arc;

use botfleet_api::{BotConfig, LlmConfig};
use botfleet_llm::{LlmClient, LlmError};

use crate::config::Settings;
use crate::db::Db;
use crate::delivery::Delivery;
use crate::metrics::Metrics;
use crate::money::{MeteredLlm, Money};
use crate::telegram::TelegramClient;

/// Shared handles of one bot process. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub metrics: Arc<Metrics>,
    /// Telegram calls that are not messages: typing, drafts, button answers, files, the menu.
    pub telegram: TelegramClient,
    /// Every message the bot sends.
    pub delivery: Delivery,
    /// Every LLM call the bot makes.
    pub llm: MeteredLlm,
    /// The support desk's classifier: the same road on `support.classifierModel`.
    pub classifier: MeteredLlm,
}

impl Context {
    /// The handles of one process; the LLM client is built from the settings (`llm`, the key).
    pub fn new(
        settings: Settings,
        db: Db,
        metrics: Arc<Metrics>,
        telegram: TelegramClient,
        money: Arc<Money>,
    ) -> Result<Self, LlmError> {
        let key = settings.llm_api_key.expose();
        let client = LlmClient::new(&settings.bot.llm, key.to_owned())?;
        let classifier = LlmClient::new(&classifier_config(&settings.bot), key.to_owned())?;
        Ok(Self {
            delivery: Delivery::new(telegram.clone(), db.clone(), metrics.clone()),
            llm: MeteredLlm::new(client, money.clone(), db.clone(), metrics.clone()),
            classifier: MeteredLlm::new(classifier, money, db.clone(), metrics.clone()),
            settings: Arc::new(settings),
            db,
            metrics,
            telegram,
        })
    }
}

/// The LLM settings of the classifier: `support.classifierModel` (default: the fallback
/// model, else the main one), with no fallback of its own.
fn classifier_config(bot: &BotConfig) -> LlmConfig {
    let model = bot
        .support
        .clone()
        .unwrap_or_default()
        .classifier_model(&bot.llm)
        .to_owned();
    LlmConfig {
        model,
        fallback_model: None,
        ..bot.llm.clone()
    }
}
