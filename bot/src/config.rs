//! Settings of one bot process: the config file (the `TelegramBot` spec's vocabulary, see
//! `botfleet_api::BotConfig`) plus secrets and endpoints from the environment.
//!
//! Anything missing or invalid stops the process at start with one line that names the field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use botfleet_api::{BotConfig, ConfigError, Mode, parse_duration};

/// Environment variable names: a contract with the operator, which sets them in the pod.
pub use botfleet_api::contract::env;

pub use botfleet_api::contract::DEFAULT_TELEGRAM_API_URL;
/// The webhook path when `webhook.path` is not set.
pub const DEFAULT_WEBHOOK_PATH: &str = botfleet_api::contract::WEBHOOK_PATH_PREFIX;

#[derive(Debug, thiserror::Error)]
pub enum ConfigLoadError {
    #[error("config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config: {0}")]
    Parse(String),
    #[error("config: {0}")]
    Invalid(#[from] ConfigError),
    #[error("{name} is not set: {why}")]
    MissingEnv {
        name: &'static str,
        why: &'static str,
    },
    #[error("{name}: {message}")]
    InvalidEnv { name: &'static str, message: String },
}

/// The config used when no file is given: the quickstart. Its model is priced by the
/// built-in list prices (`money::list_prices`).
pub const DEFAULT_CONFIG: &str = r#"
mode: polling
llm:
  provider: anthropic
  model: claude-sonnet-4-5
  systemPrompt: "You are a helpful, concise assistant."
"#;

/// Parses and validates config YAML (the operator's ConfigMap `config.yaml`). A parse error
/// names the field path, e.g. `config: llm.maxOutputTokens: invalid type ...`.
pub fn load_config_str(text: &str) -> Result<BotConfig, ConfigLoadError> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    let config: BotConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." || path.is_empty() {
            ConfigLoadError::Parse(inner)
        } else {
            ConfigLoadError::Parse(format!("{path}: {inner}"))
        }
    })?;
    botfleet_api::validate(&config)?;
    Ok(config)
}

pub fn load_config_file(path: &Path) -> Result<BotConfig, ConfigLoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigLoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    load_config_str(&text)
}

/// Secret values: kept out of `Debug` so a settings dump never leaks them.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Everything a bot process needs, resolved and validated.
#[derive(Clone, Debug)]
pub struct Settings {
    pub bot: BotConfig,
    pub telegram_token: Secret,
    pub llm_api_key: Secret,
    pub database_url: Secret,
    pub webhook_secret: Option<Secret>,
    pub telegram_api_url: String,
    pub http_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub inbox_claim_timeout: Duration,
    pub workers: usize,
    pub shutdown_grace: Duration,
    pub scheduler_interval: Duration,
    /// The outbound limiter's limits: this process's share of Telegram's rate.
    pub telegram_limits: crate::telegram::Limits,
    /// Where the ConfigMap keys of `knowledge` are mounted (`BOTFLEET_KNOWLEDGE_DIR`).
    pub knowledge_dir: PathBuf,
}

/// Reads an environment variable; `lookup` is injectable for tests.
pub trait EnvSource {
    fn get(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> EnvSource for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// What a subcommand needs from the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// `serve` and `scheduler`: Telegram and the LLM.
    TelegramAndLlm,
    /// `chat`: the LLM only (replies go to the terminal).
    LlmOnly,
}

impl Settings {
    /// Resolves settings from a config (already loaded) and the environment.
    pub fn resolve(
        bot: BotConfig,
        env_source: &impl EnvSource,
        needs: Needs,
    ) -> Result<Self, ConfigLoadError> {
        let required = |name: &'static str, why: &'static str| {
            env_source
                .get(name)
                .map(Secret::new)
                .ok_or(ConfigLoadError::MissingEnv { name, why })
        };
        let telegram_token = match needs {
            Needs::TelegramAndLlm => required(
                env::TELEGRAM_BOT_TOKEN,
                "the bot token from @BotFather is needed to talk to Telegram",
            )?,
            Needs::LlmOnly => {
                Secret::new(env_source.get(env::TELEGRAM_BOT_TOKEN).unwrap_or_default())
            }
        };
        let llm_api_key = required(
            env::LLM_API_KEY,
            "the LLM provider's API key is needed to answer",
        )?;
        let webhook_secret = env_source.get(env::WEBHOOK_SECRET_TOKEN).map(Secret::new);
        if needs == Needs::TelegramAndLlm && bot.mode == Mode::Webhook && webhook_secret.is_none() {
            return Err(ConfigLoadError::MissingEnv {
                name: env::WEBHOOK_SECRET_TOKEN,
                why: "webhook mode checks Telegram's X-Telegram-Bot-Api-Secret-Token header against it",
            });
        }
        if let Some(secret) = &webhook_secret
            && !botfleet_api::contract::is_valid_webhook_secret(secret.expose())
        {
            return Err(ConfigLoadError::InvalidEnv {
                name: env::WEBHOOK_SECRET_TOKEN,
                message: "must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)"
                    .into(),
            });
        }
        let telegram_api_url = env_source
            .get(env::TELEGRAM_API_URL)
            .unwrap_or_else(|| DEFAULT_TELEGRAM_API_URL.to_owned());
        if !(telegram_api_url.starts_with("http://") || telegram_api_url.starts_with("https://")) {
            return Err(ConfigLoadError::InvalidEnv {
                name: env::TELEGRAM_API_URL,
                message: "must start with http:// or https://".into(),
            });
        }
        let addr =
            |name: &'static str, default: SocketAddr| -> Result<SocketAddr, ConfigLoadError> {
                let Some(value) = env_source.get(name) else {
                    return Ok(default);
                };
                value.parse().map_err(|e| ConfigLoadError::InvalidEnv {
                    name,
                    message: format!("{value:?} is not a host:port address ({e})"),
                })
            };
        let duration = |name: &'static str, default: &str| -> Result<Duration, ConfigLoadError> {
            let value = env_source.get(name).unwrap_or_else(|| default.to_owned());
            parse_duration(&value).map_err(|e| ConfigLoadError::InvalidEnv {
                name,
                message: e.to_string(),
            })
        };
        let workers = match env_source.get(env::BOTFLEET_WORKERS) {
            None => 8,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1024).contains(n))
                .ok_or(ConfigLoadError::InvalidEnv {
                    name: env::BOTFLEET_WORKERS,
                    message: format!("{v:?} is not a number from 1 to 1024"),
                })?,
        };
        let count = |name: &'static str, default: u32, max: u32| -> Result<u32, ConfigLoadError> {
            match env_source.get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or(ConfigLoadError::InvalidEnv {
                        name,
                        message: format!("{v:?} is not a number from 1 to {max}"),
                    }),
            }
        };
        let telegram_limits = crate::telegram::Limits::with_rate(
            count(
                env::BOTFLEET_TELEGRAM_MESSAGES_PER_SEC,
                crate::telegram::outbound::TELEGRAM_MESSAGES_PER_SEC,
                100_000,
            )?,
            count(env::BOTFLEET_TELEGRAM_SENDERS, 1, 1000)?,
        );
        Ok(Self {
            telegram_token,
            llm_api_key,
            database_url: Secret::new(
                env_source
                    .get(env::DATABASE_URL)
                    .unwrap_or_else(|| crate::db::DEFAULT_SQLITE_URL.to_owned()),
            ),
            webhook_secret,
            telegram_api_url: telegram_api_url.trim_end_matches('/').to_owned(),
            http_addr: addr(env::BOTFLEET_HTTP_ADDR, botfleet_api::contract::HTTP_ADDR)?,
            metrics_addr: addr(
                env::BOTFLEET_METRICS_ADDR,
                botfleet_api::contract::METRICS_ADDR,
            )?,
            inbox_claim_timeout: duration(env::BOTFLEET_INBOX_CLAIM_TIMEOUT, "15s")?,
            workers,
            shutdown_grace: duration(env::BOTFLEET_SHUTDOWN_GRACE, "20s")?,
            scheduler_interval: duration(env::BOTFLEET_SCHEDULER_INTERVAL, "30s")?,
            telegram_limits,
            knowledge_dir: env_source.get(env::BOTFLEET_KNOWLEDGE_DIR).map_or_else(
                || PathBuf::from(botfleet_api::ConfigMapKeyRef::MOUNT_ROOT),
                PathBuf::from,
            ),
            bot,
        })
    }

    pub fn webhook_path(&self) -> &str {
        self.bot
            .webhook
            .as_ref()
            .and_then(|w| w.path.as_deref())
            .unwrap_or(DEFAULT_WEBHOOK_PATH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const MINIMAL: &str = "llm: {model: claude-sonnet-4-5}\n";

    #[test]
    fn quickstart_needs_only_a_token_and_a_key() {
        let bot = load_config_str(MINIMAL).unwrap();
        let settings = Settings::resolve(
            bot,
            &env_of(&[("TELEGRAM_BOT_TOKEN", "123:abc"), ("LLM_API_KEY", "sk-x")]),
            Needs::TelegramAndLlm,
        )
        .unwrap();
        assert_eq!(settings.bot.mode, Mode::Polling);
        assert!(settings.database_url.expose().starts_with("sqlite:"));
        assert_eq!(settings.telegram_api_url, DEFAULT_TELEGRAM_API_URL);
        assert!(
            !format!("{settings:?}").contains("123:abc"),
            "token leaked into Debug"
        );
    }

    #[test]
    fn a_missing_token_names_the_variable() {
        let bot = load_config_str(MINIMAL).unwrap();
        let err = Settings::resolve(bot, &env_of(&[("LLM_API_KEY", "k")]), Needs::TelegramAndLlm)
            .unwrap_err();
        assert!(
            err.to_string().starts_with("TELEGRAM_BOT_TOKEN is not set"),
            "{err}"
        );
    }

    #[test]
    fn webhook_mode_requires_a_valid_secret() {
        let bot = load_config_str("mode: webhook\nllm: {model: m}\n").unwrap();
        let base = [("TELEGRAM_BOT_TOKEN", "t"), ("LLM_API_KEY", "k")];
        let err =
            Settings::resolve(bot.clone(), &env_of(&base), Needs::TelegramAndLlm).unwrap_err();
        assert!(err.to_string().contains("WEBHOOK_SECRET_TOKEN"), "{err}");
        let mut bad = base.to_vec();
        bad.push(("WEBHOOK_SECRET_TOKEN", "has spaces"));
        let err = Settings::resolve(bot, &env_of(&bad), Needs::TelegramAndLlm).unwrap_err();
        assert!(
            err.to_string().starts_with("WEBHOOK_SECRET_TOKEN:"),
            "{err}"
        );
    }

    #[test]
    fn parse_errors_name_the_field_path() {
        let err = load_config_str("llm: {model: m, maxOutputTokens: lots}\n").unwrap_err();
        assert!(err.to_string().contains("llm.maxOutputTokens"), "{err}");
        let err = load_config_str("llm: {model: m}\nmode: carrier-pigeon\n").unwrap_err();
        assert!(err.to_string().contains("mode"), "{err}");
        let err = load_config_str(
            "llm: {model: m}\npricing: [{model: m, input: '1.0001', output: '1'}]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("pricing[0].input"), "{err}");
        let err = load_config_str("mode: polling\n").unwrap_err();
        assert!(err.to_string().contains("llm"), "{err}");
    }
}
