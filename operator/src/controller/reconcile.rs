//! One reconcile of one `TelegramBot`: validate, render, apply the children, register the
//! webhook, write the status, record events. Deletion runs the webhook finalizer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use botfleet_api::Mode;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::Instrument;

use super::cache::ChildKey;
use super::children::{self, ChildError, ChildrenOutcome};
use super::context::Context;
use super::events::{Event, EventType};
use super::status::{MonitoringState, Observed, Problem, WebhookState, condition, desired_status};
use super::webhook::{self, WebhookError};
use crate::crd::{TelegramBot, condition_types as types};
use crate::render::{self, RenderError};
use crate::telegram::WebhookRegistration;

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the TelegramBot has no namespace")]
    NoNamespace,
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Children(#[from] ChildError),
    #[error("{0}")]
    Webhook(#[from] WebhookError),
    #[error("{0}")]
    Render(RenderError),
}

/// The resourceVersions of the bot's knowledge ConfigMaps: from the ConfigMap watch, or (before
/// it has listed the namespace, at start) one GET each.
async fn knowledge_versions(
    ctx: &Context,
    namespace: &str,
    names: &[String],
) -> Result<Vec<(String, String)>, Error> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(versions) = ctx.cache.config_map_versions(namespace, names) {
        return Ok(versions);
    }
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(ctx.client.clone(), namespace);
    let mut versions = Vec::new();
    for name in names {
        let version = api
            .get_metadata_opt(name)
            .await?
            .and_then(|m| m.resource_version())
            .unwrap_or_default();
        versions.push((name.clone(), version));
    }
    Ok(versions)
}

fn key(bot: &TelegramBot) -> String {
    format!("{}/{}", bot.namespace().unwrap_or_default(), bot.name_any())
}

/// The reconcile function given to the controller (and called directly by tests).
pub async fn reconcile(bot: Arc<TelegramBot>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let span = tracing::info_span!("reconcile", bot = %key(&bot));
    let result = reconcile_bot(&bot, &ctx).instrument(span).await;
    ctx.metrics
        .record_reconcile(result.is_ok(), started.elapsed());
    if result.is_ok() {
        ctx.reset_backoff(&key(&bot));
    }
    result
}

/// Retries a failed bot with per-bot exponential backoff.
pub fn error_policy(bot: Arc<TelegramBot>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.next_backoff(&key(&bot));
    tracing::warn!(bot = %key(&bot), error = %error, retry_in_secs = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}

async fn reconcile_bot(bot: &TelegramBot, ctx: &Context) -> Result<Action, Error> {
    let namespace = bot.namespace().ok_or(Error::NoNamespace)?;
    let name = bot.name_any();
    let api: Api<TelegramBot> = Api::namespaced(ctx.client.clone(), &namespace);
    if bot.meta().deletion_timestamp.is_some() {
        ctx.set_managed(&key(bot), false);
        return cleanup(bot, ctx, &api).await;
    }
    ctx.set_managed(&key(bot), true);
    let spec = &bot.spec;
    let webhook_mode = spec.bot.mode == Mode::Webhook;

    let monitoring_served = ctx.monitoring.served(&ctx.client).await?;
    let monitoring_requested = spec.service_monitor_enabled() || spec.prometheus_rule_enabled();
    let monitoring = match (monitoring_requested, monitoring_served) {
        (false, _) => MonitoringState::NotRequested,
        (true, true) => MonitoringState::Applied,
        (true, false) => MonitoringState::CrdsMissing,
    };

    let children = match render::render_all(bot, &ctx.config.defaults) {
        Ok(children) => children,
        Err(RenderError::Invalid(errors)) => {
            let message = errors.join("; ");
            let was_invalid = condition(bot.status.as_ref(), types::DEGRADED)
                .is_some_and(|c| c.status == "True" && c.reason == "InvalidSpec");
            let observed = Observed {
                webhook: if webhook_mode {
                    WebhookState::Failed {
                        reason: "InvalidSpec",
                        message: "the spec is invalid; the webhook registration was left as it was"
                            .into(),
                    }
                } else {
                    WebhookState::NotRequired
                },
                problem: Some(Problem {
                    reason: "InvalidSpec",
                    message: message.clone(),
                }),
                ..Observed::of(bot, &name, monitoring)
            };
            write_status(&api, bot, &observed).await?;
            if !was_invalid {
                publish(
                    ctx,
                    bot,
                    EventType::Warning,
                    "InvalidSpec",
                    "Validate",
                    message,
                )
                .await;
            }
            // Nothing to retry until someone edits the spec.
            return Ok(Action::await_change());
        }
        Err(e) => return Err(Error::Render(e)),
    };
    let children = children.with_knowledge_versions(
        &knowledge_versions(ctx, &namespace, &spec.knowledge_config_maps()).await?,
    );

    // The finalizer goes on before anything is registered with Telegram.
    let mut bot = bot.clone();
    if webhook_mode && !webhook::has_finalizer(&bot) {
        bot = webhook::add_finalizer(&api, &bot).await?;
    }
    if render::needs_generated_webhook_secret(&bot)
        && webhook::ensure_generated_secret(&ctx.client, &ctx.cache, &bot).await?
    {
        publish(
            ctx,
            &bot,
            EventType::Normal,
            "WebhookSecretCreated",
            "CreateSecret",
            format!(
                "generated the webhook secret token in Secret {}",
                render::names::webhook_secret(&name)
            ),
        )
        .await;
    }

    let desired = children.objects();
    let mut outcome = ChildrenOutcome::default();
    let uid = bot.uid().unwrap_or_default();
    let applied = async {
        children::apply_children(ctx, &namespace, &desired, monitoring_served, &mut outcome)
            .await?;
        children::delete_obsolete(
            ctx,
            &namespace,
            &name,
            &uid,
            &desired,
            monitoring_served,
            &mut outcome,
        )
        .await
    }
    .await;
    report_children(ctx, &bot, &outcome).await;
    if let Err(error) = applied {
        let message = error.to_string();
        let deployment = handler_deployment(ctx, &namespace, &name)
            .await
            .ok()
            .flatten();
        let observed = Observed {
            deployment: deployment.as_ref(),
            webhook: previous_webhook_state(&bot),
            problem: Some(Problem {
                reason: "ApplyFailed",
                message: format!("{message}; the operator retries with backoff"),
            }),
            ..Observed::of(&bot, &name, monitoring)
        };
        publish(
            ctx,
            &bot,
            EventType::Warning,
            "ApplyFailed",
            "Apply",
            message,
        )
        .await;
        // The status is best effort here: the error that matters is the apply.
        let _ = write_status(&api, &bot, &observed).await;
        return Err(error.into());
    }

    let webhook_state = if webhook_mode {
        register_webhook(ctx, &bot).await?
    } else {
        if webhook::has_finalizer(&bot) {
            deregister_webhook(ctx, &api, &bot, "the bot switched to polling").await?;
        }
        WebhookState::NotRequired
    };

    if monitoring == MonitoringState::CrdsMissing
        && condition(bot.status.as_ref(), types::MONITORING_READY)
            .is_none_or(|c| c.reason != "MonitoringCRDsMissing")
    {
        publish(
            ctx,
            &bot,
            EventType::Warning,
            "MonitoringCRDsMissing",
            "Apply",
            "monitoring.coreos.com/v1 is not served: ServiceMonitor/PrometheusRule skipped; install the prometheus-operator CRDs".into(),
        )
        .await;
    }

    let deployment = handler_deployment(ctx, &namespace, &name).await?;
    let webhook_failed = matches!(webhook_state, WebhookState::Failed { .. });
    let observed = Observed {
        deployment: deployment.as_ref(),
        webhook: webhook_state,
        ..Observed::of(&bot, &name, monitoring)
    };
    write_status(&api, &bot, &observed).await?;

    let resync = ctx.config.resync;
    Ok(Action::requeue(if webhook_failed {
        resync.min(Duration::from_secs(30))
    } else if webhook_mode {
        // Telegram's queue length and last delivery error are refreshed this often.
        resync.min(Duration::from_secs(60))
    } else {
        resync
    }))
}

/// The update handlers' Deployment as far as the status needs it (generation and rollout
/// numbers): from the cache, or from the API server when Deployments are not watched.
async fn handler_deployment(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<Deployment>, kube::Error> {
    let key = ChildKey {
        kind: "Deployment".into(),
        namespace: namespace.into(),
        name: render::names::handler(name),
    };
    match ctx.cache.get(&key) {
        Ok(cached) => Ok(cached.map(|c| {
            let rollout = c.rollout.map(|r| *r).unwrap_or_default();
            let mut deployment = Deployment::default();
            deployment.metadata.generation = rollout.generation;
            deployment.status = Some(DeploymentStatus {
                observed_generation: rollout.observed_generation,
                replicas: rollout.replicas,
                ready_replicas: rollout.ready_replicas,
                updated_replicas: rollout.updated_replicas,
                ..Default::default()
            });
            deployment
        })),
        Err(()) => {
            Api::<Deployment>::namespaced(ctx.client.clone(), namespace)
                .get_opt(&key.name)
                .await
        }
    }
}

/// While the children could not be applied, the webhook keeps the state the status showed.
fn previous_webhook_state(bot: &TelegramBot) -> WebhookState {
    match (
        bot.spec.bot.mode,
        bot.status.as_ref().and_then(|s| s.webhook_url.clone()),
    ) {
        (Mode::Polling, _) => WebhookState::NotRequired,
        (Mode::Webhook, Some(url)) => WebhookState::Registered {
            url,
            info: crate::telegram::WebhookInfo {
                pending_update_count: bot
                    .status
                    .as_ref()
                    .and_then(|s| s.pending_update_count)
                    .unwrap_or(0),
                ..Default::default()
            },
            digest: bot
                .status
                .as_ref()
                .and_then(|s| s.webhook_registration.clone()),
        },
        (Mode::Webhook, None) => WebhookState::Failed {
            reason: "ApplyFailed",
            message: "the webhook is registered once the children are applied".into(),
        },
    }
}

/// Makes Telegram's webhook match the spec; failures become the `WebhookReady` condition.
async fn register_webhook(ctx: &Context, bot: &TelegramBot) -> Result<WebhookState, Error> {
    let namespace = bot.namespace().unwrap_or_default();
    let name = bot.name_any();
    let token_ref = &bot.spec.telegram.token_secret_ref;
    let previous = condition(bot.status.as_ref(), types::WEBHOOK_READY).cloned();
    let failed = |reason: &'static str, message: String| WebhookState::Failed { reason, message };

    let state = 'state: {
        let Some(token) =
            webhook::read_secret_key(&ctx.client, &ctx.cache, &namespace, token_ref).await?
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
            webhook::read_secret_key(&ctx.client, &ctx.cache, &namespace, &secret_ref).await?
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
        match webhook::register(ctx, bot, &api_url, &token, &registration).await {
            Ok(registered) => {
                if registered.changed {
                    tracing::info!(bot = %key(bot), url, "registered webhook with Telegram");
                    publish(
                        ctx,
                        bot,
                        EventType::Normal,
                        "WebhookRegistered",
                        "SetWebhook",
                        format!(
                            "Telegram delivers updates to {url} (max {max_connections} connections)"
                        ),
                    )
                    .await;
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
            Err(WebhookError::Kube(e)) => return Err(e.into()),
        }
    };
    if let WebhookState::Failed { reason, message } = &state
        && previous
            .as_ref()
            .is_none_or(|c| c.status != "False" || c.reason != *reason)
    {
        publish(
            ctx,
            bot,
            EventType::Warning,
            reason,
            "SetWebhook",
            message.clone(),
        )
        .await;
    }
    Ok(state)
}

/// Calls `deleteWebhook` and removes the finalizer. A token that is gone or revoked cannot
/// delete anything: that is reported, and the finalizer removed so the bot is not stuck.
async fn deregister_webhook(
    ctx: &Context,
    api: &Api<TelegramBot>,
    bot: &TelegramBot,
    why: &str,
) -> Result<(), Error> {
    let namespace = bot.namespace().unwrap_or_default();
    let token_ref = &bot.spec.telegram.token_secret_ref;
    let api_url = render::telegram_api_url(bot, &ctx.config.defaults);
    let token = webhook::read_secret_key(&ctx.client, &ctx.cache, &namespace, token_ref).await?;
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
                tracing::info!(bot = %key(bot), "deleted webhook at Telegram");
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
    publish(ctx, bot, type_, reason, "DeleteWebhook", note).await;
    if let Some(e) = retry {
        return Err(WebhookError::Telegram(e).into());
    }
    webhook::remove_finalizer(api, bot).await?;
    Ok(())
}

/// The bot is being deleted: remove its webhook; the children go with it (owner references).
async fn cleanup(
    bot: &TelegramBot,
    ctx: &Context,
    api: &Api<TelegramBot>,
) -> Result<Action, Error> {
    if webhook::has_finalizer(bot) {
        deregister_webhook(ctx, api, bot, "the TelegramBot is being deleted").await?;
    }
    Ok(Action::await_change())
}

/// The field manager of the status: its own, so that the status apply never takes (or prunes)
/// fields of the object's spec or metadata.
pub const STATUS_FIELD_MANAGER: &str = "botfleet-operator-status";

/// Writes the status when it differs from the current one: server-side apply of the whole
/// status on the status subresource, so a field the operator stops reporting (e.g. the webhook
/// URL after a switch to polling) is removed by the API server, without sending nulls.
async fn write_status(
    api: &Api<TelegramBot>,
    bot: &TelegramBot,
    observed: &Observed<'_>,
) -> Result<(), kube::Error> {
    let new = desired_status(bot.status.as_ref(), observed, Timestamp::now());
    if bot.status.as_ref() == Some(&new) {
        return Ok(());
    }
    api.patch_status(
        &bot.name_any(),
        &PatchParams::apply(STATUS_FIELD_MANAGER).force(),
        &Patch::Apply(serde_json::json!({
            "apiVersion": TelegramBot::api_version(&()),
            "kind": TelegramBot::kind(&()),
            "status": new,
        })),
    )
    .await?;
    Ok(())
}

/// One Normal event per kind of change the pass made to the children.
async fn report_children(ctx: &Context, bot: &TelegramBot, outcome: &ChildrenOutcome) {
    let list = |ids: &[children::ChildId]| {
        ids.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    // A PVC kept on purpose is worth saying only in the pass that made it obsolete.
    let kept = if outcome.changed() {
        &outcome.kept[..]
    } else {
        &[]
    };
    let reports = [
        (&outcome.created[..], "Created", "Apply", "created {}"),
        (
            &outcome.updated[..],
            "Updated",
            "Apply",
            "brought back to the spec: {}",
        ),
        (
            &outcome.deleted[..],
            "DeletedObsolete",
            "Delete",
            "the spec no longer asks for {}",
        ),
        (
            kept,
            "ObsoleteDataKept",
            "Delete",
            "kept {} although the spec no longer uses it (it holds data); delete it by hand when no longer needed",
        ),
    ];
    for (ids, reason, action, note) in reports {
        if !ids.is_empty() {
            let note = note.replacen("{}", &list(ids), 1);
            publish(ctx, bot, EventType::Normal, reason, action, note).await;
        }
    }
}

async fn publish(
    ctx: &Context,
    bot: &TelegramBot,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let mut note = note;
    if note.len() > 1000 {
        let mut cut = 1000;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
    }
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.events.publish(&event, &bot.object_ref(&())).await {
        tracing::warn!(bot = %key(bot), reason, error = %e, "could not record an event");
    }
}
