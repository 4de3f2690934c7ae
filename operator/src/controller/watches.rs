//! The watches of a bot's children, Secrets and ConfigMaps in one scope: built once here for
//! the controller (as its triggers) and for [`watch_children`] (the cache alone).

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::DynamicObject;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::kinds::{KINDS, OwnedKind};

type Watch<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// The watches of one scope; each keeps the cache and yields what it saw.
pub struct ChildWatches {
    /// One per owned kind the cluster serves.
    pub kinds: Vec<(&'static OwnedKind, Watch<DynamicObject>)>,
    pub secrets: Watch<PartialObjectMeta<Secret>>,
    pub config_maps: Watch<PartialObjectMeta<ConfigMap>>,
}

/// The watches of `namespace` (None: all namespaces).
pub async fn child_watches(
    ctx: &Context,
    client: &Client,
    namespace: Option<String>,
) -> ChildWatches {
    let monitoring = ctx.monitoring.served(client).await.unwrap_or(false);
    let kinds = KINDS
        .iter()
        // A watch of kinds the cluster does not serve would only fail; they are read from the
        // API server when the CRDs appear later (until the operator restarts).
        .filter(|kind| monitoring || !kind.is_monitoring())
        .map(|kind| {
            let watch = ctx
                .cache
                .watch_kind(client.clone(), namespace.clone(), kind);
            (kind, watch.boxed())
        })
        .collect();
    ChildWatches {
        kinds,
        secrets: ctx
            .cache
            .watch_secrets(client.clone(), namespace.clone())
            .boxed(),
        config_maps: ctx
            .cache
            .watch_config_maps(client.clone(), namespace)
            .boxed(),
    }
}

/// Runs the watches of the children (and Secrets) of `namespace` (None: all) without a
/// controller, so that [`super::reconcile`] can be called directly (tests, benchmarks). Returns
/// when `stop` fires.
pub async fn watch_children(
    client: Client,
    namespace: Option<String>,
    ctx: Arc<Context>,
    stop: CancellationToken,
) {
    let watches = child_watches(&ctx, &client, namespace).await;
    let mut streams: Vec<BoxStream<'static, ()>> = watches
        .kinds
        .into_iter()
        .map(|(_, watch)| watch.map(|_| ()).boxed())
        .collect();
    streams.push(watches.secrets.map(|_| ()).boxed());
    streams.push(watches.config_maps.map(|_| ()).boxed());
    let all = futures::stream::select_all(streams).for_each(|()| async {});
    tokio::select! {
        () = all => {}
        () = stop.cancelled() => {}
    }
}
