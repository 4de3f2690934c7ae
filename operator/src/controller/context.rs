//! What every reconcile shares: the API client, the cache of children the watches keep, the
//! Telegram client, operator-wide defaults, the event publisher, metrics, the discovery cache,
//! the per-bot error backoff and the last `getWebhookInfo` answers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};

use super::cache::ChildCache;
use super::discovery::MonitoringDiscovery;
use super::events::EventPublisher;
use crate::crd::TelegramBot;
use crate::process::metrics::Metrics;
use crate::render::RenderDefaults;
use crate::telegram::{TelegramClient, WebhookInfo};

/// A bot as `namespace/name`: its key in the per-bot state here, and in logs.
pub fn bot_key(bot: &TelegramBot) -> String {
    format!("{}/{}", bot.namespace().unwrap_or_default(), bot.name_any())
}

/// Settings of the reconciler (from the command line in production, chosen by tests).
#[derive(Clone, Debug)]
pub struct ContextConfig {
    /// Image, pull policy, default Telegram API URL and log format for the bots.
    pub defaults: RenderDefaults,
    /// How long the answer "are the monitoring CRDs served?" is trusted.
    pub discovery_ttl: Duration,
    /// Timeout of one Telegram Bot API request.
    pub telegram_timeout: Duration,
    /// `reportingInstance` of the Events (the pod name).
    pub instance: Option<String>,
    /// Re-reconcile interval of a healthy bot (drift and Telegram's pending count).
    pub resync: Duration,
    /// First delay after a failed reconcile; doubles per consecutive failure.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long a bot's `getWebhookInfo` answer is reused (pending updates, last error) while
    /// its registration is unchanged.
    pub webhook_info_interval: Duration,
    /// Reconciles running at once.
    pub concurrency: u16,
    /// How long a bot's trigger waits for more events before its reconcile starts (a burst of
    /// child events, e.g. the first apply, becomes one reconcile).
    pub debounce: Duration,
    /// At shutdown, how long in-flight reconciles may finish before they are abandoned.
    pub shutdown_grace: Duration,
}

impl Default for ContextConfig {
    fn default() -> Self {
        Self {
            defaults: RenderDefaults::default(),
            discovery_ttl: Duration::from_secs(60),
            telegram_timeout: Duration::from_secs(15),
            instance: None,
            resync: Duration::from_secs(300),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
            webhook_info_interval: Duration::from_secs(60),
            concurrency: 16,
            debounce: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(8),
        }
    }
}

pub struct Context {
    pub client: Client,
    pub telegram: TelegramClient,
    /// Children and Secrets as the watches last saw them.
    pub cache: Arc<ChildCache>,
    pub config: ContextConfig,
    /// Events about the bots (with a compact memory of recent ones, for series).
    pub events: EventPublisher,
    pub metrics: Arc<Metrics>,
    pub monitoring: MonitoringDiscovery,
    failures: Mutex<HashMap<String, u32>>,
    managed: Mutex<HashSet<String>>,
    /// The controllers' caches of TelegramBots; when present they are the count of managed bots
    /// (a deleted bot leaves them even though it is never reconciled again).
    stores: Mutex<Vec<Store<TelegramBot>>>,
    /// Per bot: when Telegram was last asked, for which registration, and its answer.
    webhook_info: Mutex<HashMap<String, (Instant, String, WebhookInfo)>>,
}

impl Context {
    pub fn new(client: Client, config: ContextConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            events: EventPublisher::new(
                client.clone(),
                super::kinds::FIELD_MANAGER.to_string(),
                config.instance.clone(),
            ),
            telegram: TelegramClient::new(config.telegram_timeout),
            cache: Arc::new(ChildCache::new()),
            monitoring: MonitoringDiscovery::new(config.discovery_ttl),
            client,
            config,
            metrics,
            failures: Mutex::new(HashMap::new()),
            managed: Mutex::new(HashSet::new()),
            stores: Mutex::new(Vec::new()),
            webhook_info: Mutex::new(HashMap::new()),
        }
    }

    /// Telegram's last answer for `key`'s registration `digest`, if recent enough to reuse.
    pub fn recent_webhook_info(&self, key: &str, digest: &str) -> Option<WebhookInfo> {
        let seen = self.webhook_info.lock().unwrap_or_else(|e| e.into_inner());
        let (at, seen_digest, info) = seen.get(key)?;
        (seen_digest == digest && at.elapsed() < self.config.webhook_info_interval)
            .then(|| info.clone())
    }

    /// Remembers Telegram's answer for `key`'s registration `digest` (None: forget it).
    pub fn remember_webhook_info(&self, key: &str, seen: Option<(String, WebhookInfo)>) {
        let mut map = self.webhook_info.lock().unwrap_or_else(|e| e.into_inner());
        match seen {
            Some((digest, info)) => {
                map.insert(key.to_string(), (Instant::now(), digest, info));
            }
            None => {
                map.remove(key);
            }
        }
    }

    /// The delay before retrying `key` after one more failure: base × 2^(failures-1), capped.
    pub fn next_backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let factor = 2u32.saturating_pow((*n - 1).min(16));
        (self.config.backoff_base * factor).min(self.config.backoff_max)
    }

    pub fn reset_backoff(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Counts `key` as managed (or not). Without a controller (tests) this updates
    /// `botfleet_managed_bots` at once; with one, the gauge comes from the controllers' caches
    /// on a timer, since counting them costs a pass over every bot, too much for every reconcile
    /// of a large fleet.
    pub fn set_managed(&self, key: &str, managed: bool) {
        let mut set = self.managed.lock().unwrap_or_else(|e| e.into_inner());
        if managed {
            set.insert(key.to_string());
        } else {
            set.remove(key);
        }
        drop(set);
        if self
            .stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            self.refresh_managed_bots();
        }
    }

    /// Forgets the caches of controllers that stopped (leadership lost and regained).
    pub fn clear_stores(&self) {
        self.stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.cache.clear();
    }

    /// Makes a controller's cache of bots the source of `botfleet_managed_bots`.
    pub fn register_store(&self, store: Store<TelegramBot>) {
        self.stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(store);
        self.refresh_managed_bots();
    }

    /// Sets `botfleet_managed_bots`: bots in the controllers' caches that are not being
    /// deleted, or (without a controller, e.g. in tests) the bots reconciled and not deleted.
    pub fn refresh_managed_bots(&self) {
        let stores = self.stores.lock().unwrap_or_else(|e| e.into_inner());
        let count = if stores.is_empty() {
            self.managed.lock().unwrap_or_else(|e| e.into_inner()).len()
        } else {
            stores
                .iter()
                .flat_map(|s| s.state())
                .filter(|b| b.metadata.deletion_timestamp.is_none())
                .count()
        };
        self.metrics.set_managed_bots(count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_failure_up_to_the_cap_and_resets() {
        let client = {
            let server = crate::fixtures::FakeApiServer::new();
            // Building a client needs a runtime only for its background buffer task.
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let _guard = rt.enter();
            server.client()
        };
        let ctx = Context::new(
            client,
            ContextConfig {
                backoff_base: Duration::from_secs(5),
                backoff_max: Duration::from_secs(60),
                ..ContextConfig::default()
            },
            Arc::new(Metrics::default()),
        );
        let delays: Vec<u64> = (0..6)
            .map(|_| ctx.next_backoff("bots/a").as_secs())
            .collect();
        assert_eq!(delays, [5, 10, 20, 40, 60, 60]);
        assert_eq!(ctx.next_backoff("bots/b").as_secs(), 5, "per bot");
        ctx.reset_backoff("bots/a");
        assert_eq!(ctx.next_backoff("bots/a").as_secs(), 5);
    }
}
