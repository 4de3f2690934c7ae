//! The bot's config file and its ConfigMap.

use botfleet_api::BotConfig;
use k8s_openapi::api::core::v1::ConfigMap;
use sha2::{Digest, Sha256};

use super::meta::{Component, Ctx};
use super::{RenderError, names};
use crate::crd::TelegramBot;

/// Key of the config file in the ConfigMap (mounted as `/etc/botfleet/config.yaml`).
pub const CONFIG_KEY: &str = botfleet_api::contract::CONFIG_FILE;

/// The bot's config: the parts of the spec the bot reads, `webhook.path` resolved (default
/// `/telegram/<bot name>`).
pub fn render_bot_config(bot: &TelegramBot) -> BotConfig {
    bot.spec
        .bot_config(bot.metadata.name.as_deref().unwrap_or_default())
}

/// The text of `config.yaml`: a comment naming its source, then [`render_bot_config`] as YAML.
/// Deterministic: the same spec gives the same bytes (and so the same checksum).
pub fn config_yaml(bot: &TelegramBot) -> Result<String, RenderError> {
    let body = serde_yaml_ng::to_string(&render_bot_config(bot))
        .map_err(|e| RenderError::Config(e.to_string()))?;
    Ok(format!(
        "# Rendered by botfleet-operator from TelegramBot {}/{}; edits here are overwritten.\n{body}",
        bot.metadata.namespace.as_deref().unwrap_or_default(),
        bot.metadata.name.as_deref().unwrap_or_default(),
    ))
}

/// sha256 of the config text, lower-case hex: the value of `botfleet.dev/config-checksum`.
pub fn config_checksum(config_text: &str) -> String {
    hex::encode(Sha256::digest(config_text.as_bytes()))
}

pub(super) fn config_map(ctx: &Ctx<'_>, config_text: String) -> ConfigMap {
    ConfigMap {
        metadata: ctx.metadata(names::config_map(&ctx.name), Component::Config),
        data: Some([(CONFIG_KEY.to_owned(), config_text)].into_iter().collect()),
        ..Default::default()
    }
}
