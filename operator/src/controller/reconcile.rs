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
use super::context::{Context, bot_key};
use super::events::{Event, EventType, bot_event};
use super::status::{MonitoringState, Observed, Problem, WebhookState, condition, desired_status};
use super::webhook::{self, Reported, WebhookError};
use crate::crd::{TelegramBot, condition_types as types};
use crate::render::{self, Children, RenderError};

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
    Webhook(WebhookError),
    #[error("{0}")]
    Render(RenderError),
}

impl From<WebhookError> for Error {
    /// A Kubernetes error met on the way to Telegram is reported as one.
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::Kube(e) => Error::Kube(e),
            e @ WebhookError::Telegram(_) => Error::Webhook(e),
        }
    }
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

/// The reconcile function given to the controller (and called directly by tests).
pub async fn reconcile(bot: Arc<TelegramBot>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let span = tracing::info_span!("reconcile", bot = %bot_key(&bot));
    let result = reconcile_bot(&bot, &ctx).instrument(span).await;
    ctx.metrics
        .record_reconcile(result.is_ok(), started.elapsed());
    if result.is_ok() {
        ctx.reset_backoff(&bot_key(&bot));
    }
    result
}

/// Retries a failed bot with per-bot exponential backoff.
pub fn error_policy(bot: Arc<TelegramBot>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.next_backoff(&bot_key(&bot));
    tracing::warn!(bot = %bot_key(&bot), error = %error, retry_in_secs = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}

async fn reconcile_bot(bot: &TelegramBot, ctx: &Context) -> Result<Action, Error> {
    let namespace = bot.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<TelegramBot> = Api::namespaced(ctx.client.clone(), &namespace);
    if bot.meta().deletion_timestamp.is_some() {
        ctx.set_managed(&bot_key(bot), false);
        return cleanup(bot, ctx, &api).await;
    }
    ctx.set_managed(&bot_key(bot), true);
    let monitoring = Monitoring::of(ctx, bot).await?;
    let Some(children) = render_or_report_invalid(ctx, &api, bot, monitoring).await? else {
        // Nothing to retry until someone edits the spec.
        return Ok(Action::await_change());
    };
    let bot = prepare_webhook(ctx, &api, bot).await?;
    apply_or_report(ctx, &api, &bot, &children, monitoring).await?;
    let webhook = sync_webhook(ctx, &api, &bot).await?;
    report_missing_monitoring(ctx, &bot, monitoring).await;
    let webhook_failed = matches!(webhook, WebhookState::Failed { .. });
    write_ready_status(ctx, &api, &bot, monitoring, webhook).await?;
    Ok(Action::requeue(next_resync(ctx, &bot, webhook_failed)))
}

/// Whether the bot asks for monitoring objects and whether the cluster serves their kinds.
#[derive(Clone, Copy)]
struct Monitoring {
    served: bool,
    state: MonitoringState,
}

impl Monitoring {
    async fn of(ctx: &Context, bot: &TelegramBot) -> Result<Self, Error> {
        let served = ctx.monitoring.served(&ctx.client).await?;
        let requested = bot.spec.service_monitor_enabled() || bot.spec.prometheus_rule_enabled();
        let state = match (requested, served) {
            (false, _) => MonitoringState::NotRequested,
            (true, true) => MonitoringState::Applied,
            (true, false) => MonitoringState::CrdsMissing,
        };
        Ok(Self { served, state })
    }
}

/// The bot's children (with its knowledge ConfigMaps' versions), or `None` for an invalid
/// spec, which is reported in the status and (once) as an event.
async fn render_or_report_invalid(
    ctx: &Context,
    api: &Api<TelegramBot>,
    bot: &TelegramBot,
    monitoring: Monitoring,
) -> Result<Option<Children>, Error> {
    let errors = match render::render_all(bot, &ctx.config.defaults) {
        Ok(children) => {
            let namespace = bot.namespace().unwrap_or_default();
            let names = bot.spec.knowledge_config_maps();
            let versions = knowledge_versions(ctx, &namespace, &names).await?;
            return Ok(Some(children.with_knowledge_versions(&versions)));
        }
        Err(RenderError::Invalid(errors)) => errors,
        Err(e) => return Err(Error::Render(e)),
    };
    let name = bot.name_any();
    let message = errors.join("; ");
    let was_invalid = condition(bot.status.as_ref(), types::DEGRADED)
        .is_some_and(|c| c.status == "True" && c.reason == "InvalidSpec");
    let observed = Observed {
        webhook: if bot.spec.bot.mode == Mode::Webhook {
            WebhookState::Failed {
                reason: "InvalidSpec",
                message: "the spec is invalid; the webhook registration was left as it was".into(),
            }
        } else {
            WebhookState::NotRequired
        },
        problem: Some(Problem {
            reason: "InvalidSpec",
            message: message.clone(),
        }),
        ..Observed::of(bot, &name, monitoring.state)
    };
    write_status(api, bot, &observed).await?;
    if !was_invalid {
        let event = bot_event(EventType::Warning, "InvalidSpec", "Validate", message);
        publish(ctx, bot, event).await;
    }
    Ok(None)
}

/// What must exist before anything is registered with Telegram: the finalizer (webhook mode)
/// and the generated webhook secret. Returns the bot as updated.
async fn prepare_webhook(
    ctx: &Context,
    api: &Api<TelegramBot>,
    bot: &TelegramBot,
) -> Result<TelegramBot, Error> {
    let mut bot = bot.clone();
    if bot.spec.bot.mode == Mode::Webhook && !webhook::has_finalizer(&bot) {
        bot = webhook::add_finalizer(api, &bot).await?;
    }
    if render::needs_generated_webhook_secret(&bot)
        && webhook::ensure_generated_secret(&ctx.client, &ctx.cache, &bot).await?
    {
        let note = format!(
            "generated the webhook secret token in Secret {}",
            render::names::webhook_secret(&bot.name_any())
        );
        let event = bot_event(
            EventType::Normal,
            "WebhookSecretCreated",
            "CreateSecret",
            note,
        );
        publish(ctx, &bot, event).await;
    }
    Ok(bot)
}

/// Applies the children and deletes obsolete ones, reporting what changed; a failure is also
/// reported in the status and as an event.
async fn apply_or_report(
    ctx: &Context,
    api: &Api<TelegramBot>,
    bot: &TelegramBot,
    children: &Children,
    monitoring: Monitoring,
) -> Result<(), Error> {
    let namespace = bot.namespace().unwrap_or_default();
    let name = bot.name_any();
    let uid = bot.uid().unwrap_or_default();
    let desired = children.objects();
    let mut outcome = ChildrenOutcome::default();
    let applied = async {
        children::apply_children(ctx, &namespace, &desired, monitoring.served, &mut outcome)
            .await?;
        children::delete_obsolete(
            ctx,
            &namespace,
            &name,
            &uid,
            &desired,
            monitoring.served,
            &mut outcome,
        )
        .await
    }
    .await;
    report_children(ctx, bot, &outcome).await;
    let Err(error) = applied else {
        return Ok(());
    };
    let message = error.to_string();
    let deployment = handler_deployment(ctx, &namespace, &name)
        .await
        .ok()
        .flatten();
    let observed = Observed {
        deployment: deployment.as_ref(),
        webhook: previous_webhook_state(bot),
        problem: Some(Problem {
            reason: "ApplyFailed",
            message: format!("{message}; the operator retries with backoff"),
        }),
        ..Observed::of(bot, &name, monitoring.state)
    };
    let event = bot_event(EventType::Warning, "ApplyFailed", "Apply", message);
    publish(ctx, bot, event).await;
    // The status is best effort here: the error that matters is the apply.
    let _ = write_status(api, bot, &observed).await;
    Err(error.into())
}

/// Registers the webhook (webhook mode), or deletes it after a switch to polling.
async fn sync_webhook(
    ctx: &Context,
    api: &Api<TelegramBot>,
    bot: &TelegramBot,
) -> Result<WebhookState, Error> {
    if bot.spec.bot.mode == Mode::Webhook {
        return publish_reported(ctx, bot, webhook::ensure_registered(ctx, bot).await).await;
    }
    if webhook::has_finalizer(bot) {
        let why = "the bot switched to polling";
        publish_reported(ctx, bot, webhook::deregister(ctx, api, bot, why).await).await?;
    }
    Ok(WebhookState::NotRequired)
}

/// Says once that the monitoring objects were skipped because their CRDs are not served.
async fn report_missing_monitoring(ctx: &Context, bot: &TelegramBot, monitoring: Monitoring) {
    if monitoring.state == MonitoringState::CrdsMissing
        && condition(bot.status.as_ref(), types::MONITORING_READY)
            .is_none_or(|c| c.reason != "MonitoringCRDsMissing")
    {
        let event = bot_event(
            EventType::Warning,
            "MonitoringCRDsMissing",
            "Apply",
            "monitoring.coreos.com/v1 is not served: ServiceMonitor/PrometheusRule skipped; install the prometheus-operator CRDs".into(),
        );
        publish(ctx, bot, event).await;
    }
}

/// The status of a pass that applied everything.
async fn write_ready_status(
    ctx: &Context,
    api: &Api<TelegramBot>,
    bot: &TelegramBot,
    monitoring: Monitoring,
    webhook: WebhookState,
) -> Result<(), Error> {
    let namespace = bot.namespace().unwrap_or_default();
    let name = bot.name_any();
    let deployment = handler_deployment(ctx, &namespace, &name).await?;
    let observed = Observed {
        deployment: deployment.as_ref(),
        webhook,
        ..Observed::of(bot, &name, monitoring.state)
    };
    write_status(api, bot, &observed).await?;
    Ok(())
}

/// When to look at a healthy bot again.
fn next_resync(ctx: &Context, bot: &TelegramBot, webhook_failed: bool) -> Duration {
    let resync = ctx.config.resync;
    if webhook_failed {
        resync.min(Duration::from_secs(30))
    } else if bot.spec.bot.mode == Mode::Webhook {
        // Telegram's queue length and last delivery error are refreshed this often.
        resync.min(Duration::from_secs(60))
    } else {
        resync
    }
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

/// The bot is being deleted: remove its webhook; the children go with it (owner references).
async fn cleanup(
    bot: &TelegramBot,
    ctx: &Context,
    api: &Api<TelegramBot>,
) -> Result<Action, Error> {
    if webhook::has_finalizer(bot) {
        let why = "the TelegramBot is being deleted";
        publish_reported(ctx, bot, webhook::deregister(ctx, api, bot, why).await).await?;
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
            publish(ctx, bot, bot_event(EventType::Normal, reason, action, note)).await;
        }
    }
}

/// Records the events of a webhook step, then gives its result.
async fn publish_reported<T>(
    ctx: &Context,
    bot: &TelegramBot,
    reported: Reported<T>,
) -> Result<T, Error> {
    for event in reported.events {
        publish(ctx, bot, event).await;
    }
    Ok(reported.result?)
}

/// Records one event about the bot; a failure to record it is logged, not returned.
async fn publish(ctx: &Context, bot: &TelegramBot, event: Event) {
    if let Err(e) = ctx.events.publish(&event, &bot.object_ref(&())).await {
        tracing::warn!(bot = %bot_key(bot), reason = %event.reason, error = %e, "could not record an event");
    }
}
