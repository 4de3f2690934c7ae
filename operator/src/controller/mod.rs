//! The live half of the operator: the kube-rs controller that reconciles `TelegramBot`s. This
//! module is the wiring only; the process around it (flags, leader loop) is
//! [`crate::process`].
//!
//! Layers, bottom to top (a module imports only from those before it): [`kinds`], [`subset`],
//! [`events`], [`discovery`], [`status`] → [`cache`] → [`context`] → [`children`] →
//! [`webhook`] → [`reconcile`], [`watches`] → this wiring.
//!
//! - [`reconcile`]: one bot — validate, render ([`crate::render`]), server-side apply the
//!   children that differ, delete obsolete ones, register the webhook, write status and events.
//! - [`run_controllers`]: one controller per watched namespace (or one for all), each fed by
//!   the bot watch and the [`watches`] of the children, until stopped.

pub mod cache;
pub mod children;
pub mod context;
pub mod discovery;
pub mod events;
pub mod kinds;
pub mod reconcile;
pub mod status;
pub mod subset;
pub mod watches;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::{Controller, WatchStreamExt, controller, predicates, reflector, watcher};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

pub use context::{Context, ContextConfig};
pub use reconcile::{Error, error_policy, reconcile};
pub use watches::watch_children;

use crate::crd::TelegramBot;
use cache::scoped;
use watches::{ChildWatches, child_watches};

/// Runs one controller per namespace (or one for all namespaces) until `stop` fires; in-flight
/// reconciles finish first.
pub async fn run_controllers(
    client: Client,
    namespaces: &[String],
    ctx: Arc<Context>,
    stop: CancellationToken,
) {
    ctx.clear_stores();
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.clone())).collect()
    };
    let controllers = scopes
        .into_iter()
        .map(|namespace| controller(client.clone(), namespace, ctx.clone(), stop.clone()));
    // A deleted bot is never reconciled again; the gauge follows the caches on a timer too.
    let refresher = {
        let ctx = ctx.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(15)) => ctx.refresh_managed_bots(),
                }
            }
        })
    };
    futures::future::join_all(controllers).await;
    refresher.abort();
}

async fn controller(
    client: Client,
    namespace: Option<String>,
    ctx: Arc<Context>,
    stop: CancellationToken,
) {
    let ns = namespace.as_deref();
    let (bots, writer) = reflector::store();
    ctx.register_store(bots.clone());
    // Only spec changes (and deletion, which bumps the generation) reconcile a bot: the
    // operator's own status and annotation writes do not come back as a reconcile.
    let bot_events = watcher(scoped::<TelegramBot>(&client, ns), cache::watch_config())
        .default_backoff()
        .modify(|bot| bot.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let readers = bots.clone();
    let mut controller = Controller::for_stream(bot_events, bots).with_config(
        controller::Config::default()
            .concurrency(ctx.config.concurrency)
            .debounce(ctx.config.debounce),
    );
    let ChildWatches {
        kinds,
        secrets,
        config_maps,
    } = child_watches(&ctx, &client, namespace).await;
    for (kind, watch) in kinds {
        controller = controller.owns_stream_with(watch, kind.api_resource());
    }
    controller = controller.owns_stream(secrets);
    // A changed knowledge ConfigMap reconciles the bots that read it (new checksum, new pods).
    controller = controller.watches_stream(config_maps, move |config_map| {
        knowledge_readers(&readers, &config_map)
    });
    let grace = ctx.config.shutdown_grace;
    let stopping = stop.clone();
    let run = controller
        .graceful_shutdown_on(async move { stopping.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((bot, _)) => tracing::debug!(bot = %bot, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "controller event"),
            }
        });
    // In-flight reconciles get `grace` to finish; after that they are abandoned (the next
    // leader applies everything again, so nothing half-written matters).
    tokio::select! {
        () = run => {}
        () = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_secs = grace.as_secs(), "reconciles still running at shutdown: abandoned");
        }
    }
}

/// The bots of the ConfigMap's namespace whose `knowledge` reads it.
fn knowledge_readers(
    bots: &reflector::Store<TelegramBot>,
    config_map: &kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::ConfigMap>,
) -> Vec<reflector::ObjectRef<TelegramBot>> {
    // The operator's own ConfigMaps (every bot's config) are never knowledge; skipping them
    // spares a pass over every bot per config applied.
    if config_map
        .labels()
        .get("app.kubernetes.io/managed-by")
        .is_some_and(|m| m == kinds::FIELD_MANAGER)
    {
        return Vec::new();
    }
    let namespace = config_map.namespace();
    let name = config_map.name_any();
    bots.state()
        .iter()
        .filter(|bot| bot.namespace() == namespace)
        .filter(|bot| bot.spec.knowledge_config_maps().contains(&name))
        .map(|bot| reflector::ObjectRef::from_obj(bot.as_ref()))
        .collect()
}
