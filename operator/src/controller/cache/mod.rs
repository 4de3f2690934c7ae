//! What the reconciler knows about the cluster without asking it: one watch per owned kind
//! (label-selected by `app.kubernetes.io/managed-by`), and one metadata-only watch of Secrets.
//!
//! The watches keep a compact record per child, not the object: its bot (the `instance`
//! label), its controlling owner, the applied-hash annotation, a digest of its content (all but
//! `status` and server-managed metadata) and, for Deployments, the rollout numbers the status
//! needs. That is what deciding "apply or skip", finding obsolete children and writing the
//! status need, at about a hundred bytes per child instead of the whole object ([`store`]).
//!
//! Hand edits are noticed through the content digest: after each apply the reconciler records
//! the digest of the object the API server answered with ([`ChildCache::record_applied`]); a
//! child whose cached digest still equals it is exactly as the operator left it. A child that
//! was never applied by this process (after a restart) is applied once, which the API server
//! treats as a no-op when nothing differs.
//!
//! Each watch is a stream that updates the cache and yields the objects it saw, which the
//! controller uses as triggers ([`kube::runtime::Controller::owns_stream_with`]); a child
//! deleted out of band therefore reconciles its bot, which re-applies it.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, PartialObjectMeta};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::Value;
use tokio::sync::Notify;

use super::kinds::{FIELD_MANAGER, OwnedKind};

mod store;
pub use store::{APPLIED_HASH_ANNOTATION, CachedChild, ChildKey, RolloutState, content_digest};
use store::{ChildStore, Seen};

/// A digest (hex) of an object as the operator applies it, for [`APPLIED_HASH_ANNOTATION`].
pub fn applied_hash(desired: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut object = desired.clone();
    if let Some(annotations) = object["metadata"]["annotations"].as_object_mut() {
        annotations.remove(APPLIED_HASH_ANNOTATION);
    }
    // serde_json's maps are sorted, so equal objects serialize equally.
    hex::encode(&Sha256::digest(object.to_string().as_bytes())[..12])
}

/// A watch's scope: a namespace, or all namespaces (`None`).
type Scope = Option<String>;

#[derive(Default)]
struct State {
    children: ChildStore,
    /// The lists of the child watches, one per (kind, scope).
    lists: Lists<(String, Scope), ChildKey>,
    /// Every Secret in the watched scopes.
    secrets: Versions,
    /// Values read from Secrets: (namespace, name, key) → (resourceVersion, value).
    secret_values: HashMap<(String, String, String), (String, Option<String>)>,
    /// Every ConfigMap in the watched scopes (the knowledge ConfigMaps' versions go into the
    /// pods' knowledge checksum).
    config_maps: Versions,
}

/// The lists of a set of watches `W`: which completed their first list, and the keys `K` a
/// list in progress has shown so far (what a completed relist did not show is gone).
struct Lists<W, K> {
    synced: HashSet<W>,
    listing: HashMap<W, HashSet<K>>,
}

impl<W, K> Default for Lists<W, K> {
    fn default() -> Self {
        Self {
            synced: HashSet::new(),
            listing: HashMap::new(),
        }
    }
}

impl<W: Eq + std::hash::Hash, K: Eq + std::hash::Hash> Lists<W, K> {
    /// The watch `watch` (re)started its list.
    fn begin(&mut self, watch: W) {
        self.listing.insert(watch, HashSet::new());
    }

    /// The list of `watch` showed `key`.
    fn listed(&mut self, watch: &W, key: K) {
        if let Some(keys) = self.listing.get_mut(watch) {
            keys.insert(key);
        }
    }

    /// The list of `watch` is complete: the keys it showed.
    fn complete(&mut self, watch: W) -> HashSet<K> {
        let keys = self.listing.remove(&watch).unwrap_or_default();
        self.synced.insert(watch);
        keys
    }
}

/// What a metadata-only watch keeps: the resourceVersion of every object it saw, and its lists
/// (one per scope).
#[derive(Default)]
struct Versions {
    /// (namespace, name) → resourceVersion.
    of: HashMap<(String, String), String>,
    lists: Lists<Scope, (String, String)>,
}

impl Versions {
    /// Applies one event of the watch of `scope`; true when it completed a list (objects not
    /// listed are then forgotten).
    fn apply<K>(&mut self, scope: &Scope, event: &watcher::Event<PartialObjectMeta<K>>) -> bool {
        let key_of = |o: &PartialObjectMeta<K>| {
            (
                o.metadata.namespace.clone().unwrap_or_default(),
                o.metadata.name.clone().unwrap_or_default(),
            )
        };
        match event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                let key = key_of(o);
                if matches!(event, watcher::Event::InitApply(_)) {
                    self.lists.listed(scope, key.clone());
                }
                self.of
                    .insert(key, o.metadata.resource_version.clone().unwrap_or_default());
            }
            watcher::Event::Delete(o) => {
                self.of.remove(&key_of(o));
            }
            watcher::Event::Init => self.lists.begin(scope.clone()),
            watcher::Event::InitDone => {
                let seen = self.lists.complete(scope.clone());
                self.of
                    .retain(|k, _| !in_scope(scope, &k.0) || seen.contains(k));
                return true;
            }
        }
        false
    }

    /// Whether a completed list covers `namespace`.
    fn covers(&self, namespace: &str) -> bool {
        self.lists.synced.iter().any(|s| in_scope(s, namespace))
    }

    fn get(&self, namespace: &str, name: &str) -> Option<&String> {
        self.of.get(&(namespace.to_string(), name.to_string()))
    }
}

/// How every watch of the operator lists: the most recent state in pages of 500. (kube sends a
/// list with a limit without `resourceVersion=0`, which the API server would answer whole from
/// its watch cache, so the pages are read from etcd: once at start and after a watch expired.)
/// At 10,000 bots one unpaged list of every Deployment or TelegramBot, managedFields and all,
/// parsed at once, would be the operator's largest allocation by far.
pub fn watch_config() -> watcher::Config {
    watcher::Config::default().page_size(500)
}

/// An API of `K` in `namespace`, or in all namespaces (`None`).
pub fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The ConfigMap watch's entry in the watches started.
const CONFIG_MAP_VERSIONS: &str = "ConfigMap/versions";

/// The children and Secrets the watches have seen. Shared by every controller of the process.
#[derive(Default)]
pub struct ChildCache {
    state: RwLock<State>,
    /// Woken whenever a watch finishes its first list.
    synced: Notify,
    /// (kind, scope) of the watches started, to know what "ready" means.
    started: Mutex<HashSet<(String, Scope)>>,
}

fn in_scope(scope: &Scope, namespace: &str) -> bool {
    scope.as_deref().is_none_or(|s| s == namespace)
}

impl ChildCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets everything (leadership lost: the next controllers start new watches).
    pub fn clear(&self) {
        *self.write() = State::default();
        self.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Whether the watch of `kind` covering `namespace` has completed its first list, i.e.
    /// whether an absent child is really absent.
    pub fn is_synced(&self, kind: &str, namespace: &str) -> bool {
        self.read()
            .lists
            .synced
            .iter()
            .any(|(k, scope)| k == kind && in_scope(scope, namespace))
    }

    /// Waits until every watch started so far has listed once (or `timeout` passes).
    pub async fn wait_until_synced(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.synced.notified();
            if self.all_synced() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.all_synced();
            }
        }
    }

    fn all_synced(&self) -> bool {
        let started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let state = self.read();
        started.iter().all(|(kind, scope)| match kind.as_str() {
            "Secret" => state.secrets.lists.synced.contains(scope),
            CONFIG_MAP_VERSIONS => state.config_maps.lists.synced.contains(scope),
            _ => state.lists.synced.contains(&(kind.clone(), scope.clone())),
        })
    }

    /// The child, when its kind is watched; `Err(())` when the kind is not (yet) watched for
    /// this namespace, so the caller must ask the API server.
    #[allow(clippy::result_unit_err)]
    pub fn get(&self, key: &ChildKey) -> Result<Option<CachedChild>, ()> {
        if !self.is_synced(&key.kind, &key.namespace) {
            return Err(());
        }
        Ok(self
            .read()
            .children
            .get(&key.kind, &key.namespace, &key.name)
            .cloned())
    }

    /// The cached children of kind `kind` of the bot `instance` in `namespace`; `None` when the
    /// kind is not (yet) watched for this namespace, so the caller must list them.
    pub fn synced_children_of(
        &self,
        namespace: &str,
        instance: &str,
        kind: &str,
    ) -> Option<Vec<(String, CachedChild)>> {
        self.is_synced(kind, namespace)
            .then(|| self.read().children.children_of(namespace, instance, kind))
    }

    /// Remembers the content of a child as the API server answered an apply.
    pub fn record_applied(&self, key: ChildKey, answered: &DynamicObject) {
        self.write()
            .children
            .set_applied(key, content_digest(answered));
    }

    /// Every cached child with its resourceVersion (tests wait for the cache to catch up).
    pub fn versions(&self) -> Vec<(ChildKey, String)> {
        self.read()
            .children
            .iter()
            .map(|(k, c)| (k, c.resource_version.to_string()))
            .collect()
    }

    /// Every Secret seen, as (namespace, name, resourceVersion).
    pub fn secret_versions(&self) -> Vec<(String, String, String)> {
        self.read()
            .secrets
            .of
            .iter()
            .map(|((ns, n), rv)| (ns.clone(), n.clone(), rv.clone()))
            .collect()
    }

    /// Number of cached children (benchmarks and tests).
    pub fn len(&self) -> usize {
        self.read().children.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn apply_event(&self, kind: &str, scope: &Scope, event: &watcher::Event<DynamicObject>) {
        let key_of = |o: &DynamicObject| ChildKey {
            kind: kind.to_string(),
            namespace: o.namespace().unwrap_or_default(),
            name: o.name_any(),
        };
        let watch = || (kind.to_string(), scope.clone());
        let mut state = self.write();
        match event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                let Some(seen) = Seen::of(o, kind) else {
                    return;
                };
                if matches!(event, watcher::Event::InitApply(_)) {
                    state.lists.listed(&watch(), seen.key.clone());
                }
                state.children.upsert(seen);
            }
            watcher::Event::Delete(o) => state.children.remove(&key_of(o)),
            watcher::Event::Init => state.lists.begin(watch()),
            watcher::Event::InitDone => {
                let seen = state.lists.complete(watch());
                let gone: Vec<ChildKey> = state
                    .children
                    .entries()
                    .filter(|(namespace, _, c)| c.kind == kind && in_scope(scope, namespace))
                    .map(|(namespace, name, _)| ChildKey {
                        kind: kind.to_string(),
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                    })
                    .filter(|k| !seen.contains(k))
                    .collect();
                for key in gone {
                    state.children.remove(&key);
                }
                drop(state);
                self.synced.notify_waiters();
            }
        }
    }

    fn apply_secret_event(&self, scope: &Scope, event: &watcher::Event<PartialObjectMeta<Secret>>) {
        let mut state = self.write();
        let State {
            secrets,
            secret_values,
            ..
        } = &mut *state;
        let listed = secrets.apply(scope, event);
        // Values read from a Secret that is gone or changed are forgotten.
        if let watcher::Event::Delete(o) = event {
            let (namespace, name) = (o.namespace().unwrap_or_default(), o.name_any());
            secret_values.retain(|(ns, n, _), _| !(*ns == namespace && *n == name));
        } else if listed {
            secret_values.retain(|(ns, n, _), (rv, _)| secrets.get(ns, n) == Some(&*rv));
        }
        drop(state);
        if listed {
            self.synced.notify_waiters();
        }
    }

    fn apply_config_map_event(
        &self,
        scope: &Scope,
        event: &watcher::Event<PartialObjectMeta<ConfigMap>>,
    ) {
        let listed = self.write().config_maps.apply(scope, event);
        if listed {
            self.synced.notify_waiters();
        }
    }

    /// `(name, resourceVersion)` of each named ConfigMap of `namespace` (an absent one with an
    /// empty version), or `None` while the ConfigMap watch has not listed the namespace.
    pub fn config_map_versions(
        &self,
        namespace: &str,
        names: &[String],
    ) -> Option<Vec<(String, String)>> {
        let state = self.read();
        if !state.config_maps.covers(namespace) {
            return None;
        }
        Some(
            names
                .iter()
                .map(|name| {
                    let version = state
                        .config_maps
                        .get(namespace, name)
                        .cloned()
                        .unwrap_or_default();
                    (name.clone(), version)
                })
                .collect(),
        )
    }

    /// The metadata-only watch of every ConfigMap in `scope` (names and resourceVersions:
    /// a changed knowledge ConfigMap rolls its bot's pods). Yields what it saw, for the
    /// controller to find the bots that read it.
    pub fn watch_config_maps(
        self: &std::sync::Arc<Self>,
        client: Client,
        scope: Scope,
    ) -> impl Stream<Item = Result<PartialObjectMeta<ConfigMap>, watcher::Error>> + Send + 'static
    {
        let api = scoped(&client, scope.as_deref());
        self.cached_watch(
            api,
            watch_config(),
            CONFIG_MAP_VERSIONS,
            scope,
            Self::apply_config_map_event,
        )
    }

    /// Whether the Secret exists: `Some` when the Secret watch covers the namespace.
    pub fn secret_exists(&self, namespace: &str, name: &str) -> Option<bool> {
        let state = self.read();
        state
            .secrets
            .covers(namespace)
            .then(|| state.secrets.get(namespace, name).is_some())
    }

    /// A value read from a Secret earlier, if the Secret has not changed since.
    /// `Some(None)`: the key was absent then.
    pub fn secret_value(&self, namespace: &str, name: &str, key: &str) -> Option<Option<String>> {
        let state = self.read();
        let rv = state.secrets.get(namespace, name)?;
        let (seen_rv, value) =
            state
                .secret_values
                .get(&(namespace.to_string(), name.to_string(), key.to_string()))?;
        (seen_rv == rv).then(|| value.clone())
    }

    /// Remembers a value read from a Secret at `resource_version`.
    pub fn remember_secret_value(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        resource_version: String,
        value: Option<String>,
    ) {
        self.write().secret_values.insert(
            (namespace.to_string(), name.to_string(), key.to_string()),
            (resource_version, value),
        );
    }

    /// Forgets a remembered Secret value (e.g. Telegram refused the token read from it).
    pub fn forget_secret_value(&self, namespace: &str, name: &str, key: &str) {
        self.write().secret_values.remove(&(
            namespace.to_string(),
            name.to_string(),
            key.to_string(),
        ));
    }

    /// A watch of `api` whose every event goes through `apply` into the cache, yielding every
    /// object it saw (added, changed or deleted) for the controller's triggers. `started` names
    /// it among the watches [`ChildCache::wait_until_synced`] waits for.
    fn cached_watch<K>(
        self: &std::sync::Arc<Self>,
        api: Api<K>,
        config: watcher::Config,
        started: &str,
        scope: Scope,
        apply: impl Fn(&ChildCache, &Scope, &watcher::Event<K>) + Send + 'static,
    ) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        self.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((started.to_string(), scope.clone()));
        let cache = self.clone();
        watcher(api, config)
            .default_backoff()
            .inspect(move |event| {
                if let Ok(event) = event {
                    apply(&cache, &scope, event);
                }
            })
            .touched_objects()
    }

    /// The watch of one owned kind in `scope`: keeps the cache and yields every object it saw
    /// (added, changed or deleted), for the controller's owner triggers.
    pub fn watch_kind(
        self: &std::sync::Arc<Self>,
        client: Client,
        scope: Scope,
        kind: &OwnedKind,
    ) -> impl Stream<Item = Result<DynamicObject, watcher::Error>> + Send + 'static {
        let resource: ApiResource = kind.api_resource();
        let api: Api<DynamicObject> = match &scope {
            Some(ns) => Api::namespaced_with(client, ns, &resource),
            None => Api::all_with(client, &resource),
        };
        let config =
            watch_config().labels(&format!("app.kubernetes.io/managed-by={FIELD_MANAGER}"));
        let kind_name = kind.kind;
        self.cached_watch(api, config, kind_name, scope, move |cache, scope, event| {
            cache.apply_event(kind_name, scope, event)
        })
    }

    /// The metadata-only watch of every Secret in `scope` (resourceVersions, so that values
    /// read once are reused until the Secret changes). Yields what it saw, for owner triggers
    /// (the generated webhook Secret is a child).
    pub fn watch_secrets(
        self: &std::sync::Arc<Self>,
        client: Client,
        scope: Scope,
    ) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static
    {
        let api = scoped(&client, scope.as_deref());
        self.cached_watch(
            api,
            watch_config(),
            "Secret",
            scope,
            Self::apply_secret_event,
        )
        // Only the operator's own Secrets trigger their owner.
        .filter(|o| {
            futures::future::ready(o.as_ref().map_or(true, |o| {
                o.meta()
                    .owner_references
                    .as_ref()
                    .is_some_and(|r| !r.is_empty())
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_map(name: &str, rv: &str) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "bots", "resourceVersion": rv,
                "labels": {"app.kubernetes.io/instance": "a"}},
        }))
        .unwrap()
    }

    fn secret(name: &str, rv: &str) -> PartialObjectMeta<Secret> {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "bots", "resourceVersion": rv},
        }))
        .unwrap()
    }

    #[test]
    fn a_relist_forgets_the_children_and_secrets_it_no_longer_shows() {
        use watcher::Event::{Init, InitApply, InitDone};
        let cache = ChildCache::new();
        let scope: Scope = Some("bots".into());
        let names = |cache: &ChildCache| {
            let mut names: Vec<String> =
                cache.versions().into_iter().map(|(k, _)| k.name).collect();
            names.sort();
            names
        };

        assert!(!cache.is_synced("ConfigMap", "bots"));
        for event in [
            Init,
            InitApply(config_map("a-config", "1")),
            InitApply(config_map("b-config", "2")),
            InitDone,
        ] {
            cache.apply_event("ConfigMap", &scope, &event);
        }
        assert!(cache.is_synced("ConfigMap", "bots"));
        assert!(!cache.is_synced("ConfigMap", "other"));
        assert_eq!(names(&cache), ["a-config", "b-config"]);
        // The watch expired and listed again: b-config was deleted in between.
        for event in [Init, InitApply(config_map("a-config", "3")), InitDone] {
            cache.apply_event("ConfigMap", &scope, &event);
        }
        assert_eq!(names(&cache), ["a-config"]);

        assert_eq!(cache.secret_exists("bots", "token"), None, "not listed yet");
        for event in [
            Init,
            InitApply(secret("token", "1")),
            InitApply(secret("old", "2")),
            InitDone,
        ] {
            cache.apply_secret_event(&scope, &event);
        }
        assert_eq!(cache.secret_exists("bots", "old"), Some(true));
        for event in [Init, InitApply(secret("token", "1")), InitDone] {
            cache.apply_secret_event(&scope, &event);
        }
        assert_eq!(cache.secret_exists("bots", "old"), Some(false));
        assert_eq!(cache.secret_exists("bots", "token"), Some(true));
    }
}
