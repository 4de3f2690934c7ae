//! The Telegram side of a bot: its webhook secret, its registration and the finalizer that
//! removes the registration when the bot goes away.
//!
//! The finalizer `botfleet.dev/webhook` is present exactly while a webhook may be registered:
//! added before the first `setWebhook`, removed after `deleteWebhook` (on deletion, or when the
//! bot switches to polling). A polling bot never gets it and never costs a Telegram call.

use botfleet_api::SecretKeyRef;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::cache::ChildCache;
use super::context::{Context, bot_key};
use super::events::{Event, EventType, bot_event};
use super::status::{WebhookState, condition};
use crate::crd::{TelegramBot, condition_types as types};
use crate::render;
use crate::telegram::{TelegramError, WebhookInfo, WebhookRegistration};

pub const FINALIZER: &str = "botfleet.dev/webhook";
/// Where earlier versions kept [`registration_digest`]: an annotation on the TelegramBot,
/// written by a request of its own. It is now `status.webhookRegistration`, written with the
/// rest of the status; the annotation is still read (so an upgrade does not register every
/// webhook again) and removed with the finalizer.
pub const REGISTRATION_ANNOTATION: &str = "botfleet.dev/webhook-registration";

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Telegram(#[from] TelegramError),
}

/// What a webhook step did: the events to record (also when it failed), and its result.
pub struct Reported<T> {
    pub events: Vec<Event>,
    pub result: Result<T, WebhookError>,
}

/// Reads one key of a Secret; `Ok(None)` when the Secret or the key does not exist. A value
/// read before is reused while the Secret's resourceVersion (from the Secret watch) is the
/// same, so an unchanged Secret costs no request.
pub async fn read_secret_key(
    client: &Client,
    cache: &ChildCache,
    namespace: &str,
    key_ref: &SecretKeyRef,
) -> Result<Option<String>, kube::Error> {
    if let Some(value) = cache.secret_value(namespace, &key_ref.name, &key_ref.key) {
        return Ok(value);
    }
    if cache.secret_exists(namespace, &key_ref.name) == Some(false) {
        return Ok(None);
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let Some(secret) = api.get_opt(&key_ref.name).await? else {
        return Ok(None);
    };
    let version = secret.metadata.resource_version.clone().unwrap_or_default();
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&key_ref.key))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&key_ref.key))
                .map(|s| s.trim().to_string())
        });
    let value = value.filter(|v| !v.is_empty());
    cache.remember_secret_value(
        namespace,
        &key_ref.name,
        &key_ref.key,
        version,
        value.clone(),
    );
    Ok(value)
}

/// Creates the generated webhook Secret when it does not exist. Never touches an existing one:
/// the token is generated once and not rotated by reconciles. Returns whether it created it.
pub async fn ensure_generated_secret(
    client: &Client,
    cache: &ChildCache,
    bot: &TelegramBot,
) -> Result<bool, kube::Error> {
    let namespace = bot.namespace().unwrap_or_default();
    let name = render::names::webhook_secret(&bot.name_any());
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let exists = match cache.secret_exists(&namespace, &name) {
        Some(exists) => exists,
        None => api.get_opt(&name).await?.is_some(),
    };
    if exists {
        return Ok(false);
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    let secret = render::render_webhook_secret(bot, &token)
        .map_err(|e| kube::Error::Service(Box::new(e)))?;
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(true),
        // Someone (a previous attempt) created it meanwhile: theirs stays.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// A digest of the secret token keyed by the bot token (so the annotation reveals nothing
/// about the secret without the bot token).
pub fn registration_digest(bot_token: &str, secret_token: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(bot_token.as_bytes());
    hasher.update([0]);
    hasher.update(secret_token.as_bytes());
    hex::encode(&hasher.finalize()[..16])
}

pub fn has_finalizer(bot: &TelegramBot) -> bool {
    bot.finalizers().iter().any(|f| f == FINALIZER)
}

/// Adds the finalizer (merge patch guarded by resourceVersion, so a concurrent change to the
/// finalizer list fails and is retried rather than overwritten). Returns the updated bot.
pub async fn add_finalizer(
    api: &Api<TelegramBot>,
    bot: &TelegramBot,
) -> Result<TelegramBot, kube::Error> {
    let mut finalizers = bot.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    api.patch(
        &bot.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": bot.resource_version(),
        }})),
    )
    .await
}

/// Removes the finalizer and the registration annotation in one guarded patch.
pub async fn remove_finalizer(
    api: &Api<TelegramBot>,
    bot: &TelegramBot,
) -> Result<(), kube::Error> {
    let finalizers: Vec<&String> = bot
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .collect();
    let mut meta = json!({
        "finalizers": finalizers,
        "resourceVersion": bot.resource_version(),
    });
    if bot.annotations().contains_key(REGISTRATION_ANNOTATION) {
        meta["annotations"] = json!({ REGISTRATION_ANNOTATION: null });
    }
    match api
        .patch(
            &bot.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": meta })),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The result of making Telegram's registration match the spec.
#[derive(Clone, Debug)]
pub struct Registered {
    pub info: WebhookInfo,
    /// [`registration_digest`] of what is registered now, for `status.webhookRegistration`.
    pub digest: String,
    /// Whether `setWebhook` was called in this pass.
    pub changed: bool,
}

/// The digest of the last registration: `status.webhookRegistration`, or the annotation that
/// earlier versions wrote.
pub fn recorded_digest(bot: &TelegramBot) -> Option<&str> {
    bot.status
        .as_ref()
        .and_then(|s| s.webhook_registration.as_deref())
        .or_else(|| {
            bot.annotations()
                .get(REGISTRATION_ANNOTATION)
                .map(String::as_str)
        })
}

/// Calls `setWebhook` when `getWebhookInfo` differs from `registration` or the secret token
/// changed since the last registration. The new digest is returned, not written: it goes into
/// the status apply that ends the reconcile, so a registration costs no write of its own (if
/// that status write fails, the next pass registers once more, which is harmless). Telegram is
/// asked at most once per `webhook_info_interval` while the registration stays the same.
pub async fn register(
    ctx: &Context,
    bot: &TelegramBot,
    api_url: &str,
    bot_token: &str,
    registration: &WebhookRegistration,
) -> Result<Registered, WebhookError> {
    let key = bot_key(bot);
    let digest = registration_digest(bot_token, &registration.secret_token);
    // What Telegram's answer is reused for: this token, secret, URL and limits at this API.
    let seen_for = format!(
        "{digest} {api_url} {} {}",
        registration.url, registration.max_connections
    );
    let recorded = recorded_digest(bot) == Some(digest.as_str());
    if recorded && let Some(info) = ctx.recent_webhook_info(&key, &seen_for) {
        return Ok(Registered {
            info,
            digest,
            changed: false,
        });
    }
    let telegram = &ctx.telegram;
    let info = telegram.get_webhook_info(api_url, bot_token).await?;
    if !registration.differs_from(&info) && recorded {
        ctx.remember_webhook_info(&key, Some((seen_for, info.clone())));
        return Ok(Registered {
            info,
            digest,
            changed: false,
        });
    }
    ctx.remember_webhook_info(&key, None);
    telegram
        .set_webhook(api_url, bot_token, registration)
        .await?;
    let info = telegram.get_webhook_info(api_url, bot_token).await?;
    ctx.remember_webhook_info(&key, Some((seen_for, info.clone())));
    Ok(Registered {
        info,
        digest,
        changed: true,
    })
}

/// Makes Telegram's webhook match the spec; failures become the `WebhookReady` condition.
/// Returns the events to record about it.
pub async fn ensure_registered(ctx: &Context, bot: &TelegramBot) -> Reported<WebhookState> {
    let mut events = Vec::new();
    let result = registration_state(ctx, bot, &mut events).await;
    Reported { events, result }
}

async fn registration_state(
    ctx: &Context,
    bot: &TelegramBot,
    events: &mut Vec<Event>,
) -> Result<WebhookState, WebhookError> {
    let namespace = bot.namespace().unwrap_or_default();
    let name = bot.name_any();
    let token_ref = &bot.spec.telegram.token_secret_ref;
    let previous = condition(bot.status.as_ref(), types::WEBHOOK_READY).cloned();
    let failed = |reason: &'static str, message: String| WebhookState::Failed { reason, message };

    let state = 'state: {
        let Some(token) = read_secret_key(&ctx.client, &ctx.cache, &namespace, token_ref).await?
        else {
            break 'state failed(
                "TokenSecretMissing",
                format!(
                    "Secret {namespace}/{} has no key {:?}: create it with the bot token from @BotFather \
                     (kubectl -n {namespace} create secret generic {} --from-literal={}=<token>)",
                    token_ref.name, token_ref.key, token_ref.name, token_ref.key
                ),
            );
        };
        let Some(secret_ref) = render::webhook_secret_ref(bot) else {
            break 'state WebhookState::NotRequired;
        };
        let Some(secret_token) =
            read_secret_key(&ctx.client, &ctx.cache, &namespace, &secret_ref).await?
        else {
            break 'state failed(
                "WebhookSecretMissing",
                format!(
                    "Secret {namespace}/{} has no key {:?} (spec.telegram.webhookSecretRef): create it, or remove \
                     webhookSecretRef to let the operator generate one",
                    secret_ref.name, secret_ref.key
                ),
            );
        };
        let Some(url) = bot.spec.webhook_url(&name) else {
            break 'state failed(
                "InvalidSpec",
                "webhook mode needs spec.webhook.domain".into(),
            );
        };
        let max_connections = bot
            .spec
            .bot
            .webhook
            .as_ref()
            .and_then(|w| w.max_connections)
            .unwrap_or(botfleet_api::WebhookConfig::DEFAULT_MAX_CONNECTIONS);
        let registration = WebhookRegistration::new(url.clone(), secret_token, max_connections);
        let api_url = render::telegram_api_url(bot, &ctx.config.defaults);
        match register(ctx, bot, &api_url, &token, &registration).await {
            Ok(registered) => {
                if registered.changed {
                    tracing::info!(bot = %bot_key(bot), url, "registered webhook with Telegram");
                    events.push(bot_event(
                        EventType::Normal,
                        "WebhookRegistered",
                        "SetWebhook",
                        format!(
                            "Telegram delivers updates to {url} (max {max_connections} connections)"
                        ),
                    ));
                }
                WebhookState::Registered {
                    url,
                    info: registered.info,
                    digest: Some(registered.digest),
                }
            }
            Err(WebhookError::Telegram(e)) => {
                if e.is_unauthorized() {
                    // Read the token again next time: it may have been replaced.
                    ctx.cache
                        .forget_secret_value(&namespace, &token_ref.name, &token_ref.key);
                }
                let reason = if e.is_unauthorized() {
                    "TelegramUnauthorized"
                } else {
                    "SetWebhookFailed"
                };
                let hint = if e.is_unauthorized() {
                    "; check the bot token in the Secret"
                } else {
                    "; the operator retries"
                };
                failed(reason, format!("{e}{hint}"))
            }
            Err(e @ WebhookError::Kube(_)) => return Err(e),
        }
    };
    if let WebhookState::Failed { reason, message } = &state
        && previous
            .as_ref()
            .is_none_or(|c| c.status != "False" || c.reason != *reason)
    {
        events.push(bot_event(
            EventType::Warning,
            reason,
            "SetWebhook",
            message.clone(),
        ));
    }
    Ok(state)
}

/// Calls `deleteWebhook` and removes the finalizer. A token that is gone or revoked cannot
/// delete anything: that is reported, and the finalizer removed so the bot is not stuck.
/// Returns the event to record about it (also when the call is to be retried).
pub async fn deregister(
    ctx: &Context,
    api: &Api<TelegramBot>,
    bot: &TelegramBot,
    why: &str,
) -> Reported<()> {
    let mut events = Vec::new();
    let result = deregistration(ctx, api, bot, why, &mut events).await;
    Reported { events, result }
}

async fn deregistration(
    ctx: &Context,
    api: &Api<TelegramBot>,
    bot: &TelegramBot,
    why: &str,
    events: &mut Vec<Event>,
) -> Result<(), WebhookError> {
    let namespace = bot.namespace().unwrap_or_default();
    let token_ref = &bot.spec.telegram.token_secret_ref;
    let api_url = render::telegram_api_url(bot, &ctx.config.defaults);
    let token = read_secret_key(&ctx.client, &ctx.cache, &namespace, token_ref).await?;
    // What happened, as an event; a failure Telegram may get over is retried.
    let (type_, reason, note, retry) = match token {
        None => (
            EventType::Warning,
            "WebhookNotDeleted",
            format!(
                "{why}, but Secret {namespace}/{} has no key {:?}: if a webhook is still registered, call \
                 deleteWebhook by hand",
                token_ref.name, token_ref.key
            ),
            None,
        ),
        Some(token) => match ctx.telegram.delete_webhook(&api_url, &token).await {
            Ok(()) => {
                tracing::info!(bot = %bot_key(bot), "deleted webhook at Telegram");
                (
                    EventType::Normal,
                    "WebhookDeleted",
                    format!("{why}: deleted the webhook at Telegram"),
                    None,
                )
            }
            Err(e) if e.is_unauthorized() => (
                EventType::Warning,
                "WebhookNotDeleted",
                format!(
                    "{why}, but Telegram refused the token ({e}); nothing left to delete with it"
                ),
                None,
            ),
            Err(e) => (
                EventType::Warning,
                "DeleteWebhookFailed",
                format!("{why}: {e}; the operator retries"),
                Some(e),
            ),
        },
    };
    events.push(bot_event(type_, reason, "DeleteWebhook", note));
    if let Some(e) = retry {
        return Err(WebhookError::Telegram(e));
    }
    remove_finalizer(api, bot).await?;
    Ok(())
}
