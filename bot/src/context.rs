//! What every part of a running bot shares: settings, database, clients, metrics.

use std::sync::Arc;

use botfleet_llm::LlmClient;

use crate::config::Settings;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::telegram::TelegramClient;

/// Shared handles of one bot process. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub metrics: Arc<Metrics>,
    pub telegram: TelegramClient,
    pub llm: LlmClient,
}
