//! The compact record the cache keeps per child, and the store of them.
//!
//! Sized for 10,000 bots of a dozen children each: a record is ~110 bytes plus its
//! resourceVersion; namespaces and bot names are shared (`Arc<str>`) by every child that has
//! them, kinds are `&'static str` from [`KINDS`], and hashes and uids are kept as fixed-size
//! digests. Children are found by namespace and name (then kind), and a bot's children through
//! the names it owns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use kube::api::DynamicObject;
use kube::core::ObjectMeta;

use crate::controller::kinds::KINDS;

/// The annotation every applied child carries: a digest of exactly the object the operator
/// applied (without this annotation). A spec change changes it, so the apply that prunes what
/// the operator stopped setting always happens.
pub const APPLIED_HASH_ANNOTATION: &str = "botfleet.dev/applied-hash";

/// Metadata annotations that other controllers write on our children, left out of the content
/// digest so that their bookkeeping does not count as a hand edit.
const FOREIGN_ANNOTATIONS: &[&str] = &[
    "deployment.kubernetes.io/revision",
    "kubectl.kubernetes.io/last-applied-configuration",
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
];

/// Where a child lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildKey {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// The rollout numbers of a Deployment (what the bot's status reports).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolloutState {
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    pub replicas: Option<i32>,
    pub ready_replicas: Option<i32>,
    pub updated_replicas: Option<i32>,
}

/// What the cache keeps of one child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedChild {
    /// One of [`KINDS`].
    pub kind: &'static str,
    /// `app.kubernetes.io/instance`: the bot it belongs to.
    pub instance: Arc<str>,
    /// A digest of the uid of its controlling owner reference.
    controller: Option<u64>,
    /// [`APPLIED_HASH_ANNOTATION`], decoded (None also when it is not a hash we write).
    applied_hash: Option<[u8; 12]>,
    /// [`content_digest`] of the object as last seen.
    content: u64,
    /// The content digest of the object the API server answered the operator's last apply with.
    applied: Option<u64>,
    pub deleting: bool,
    pub resource_version: Box<str>,
    /// Deployments only.
    pub rollout: Option<Box<RolloutState>>,
}

impl CachedChild {
    /// Whether the child carries `hash` (hex) as its [`APPLIED_HASH_ANNOTATION`].
    pub fn carries_hash(&self, hash: &str) -> bool {
        self.applied_hash.is_some() && self.applied_hash == decode_hash(hash)
    }

    /// Whether its controlling owner reference has the uid `uid`.
    pub fn is_controlled_by(&self, uid: &str) -> bool {
        self.controller == Some(digest(uid))
    }

    /// Whether it is exactly as the operator's last apply left it (no hand edit since).
    pub fn unchanged_since_apply(&self) -> bool {
        self.applied == Some(self.content)
    }
}

fn digest(text: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

fn decode_hash(hex: &str) -> Option<[u8; 12]> {
    let mut bytes = [0u8; 12];
    hex::decode_to_slice(hex, &mut bytes).ok()?;
    Some(bytes)
}

/// The kind as one of [`KINDS`] (None: not a kind the operator creates).
pub fn static_kind(kind: &str) -> Option<&'static str> {
    KINDS.iter().find(|k| k.kind == kind).map(|k| k.kind)
}

/// A digest of what a person or the operator could have changed on the object: everything but
/// `status`, server-managed metadata (uid, resourceVersion, generation, managedFields, ...) and
/// other controllers' annotations.
pub fn content_digest(object: &DynamicObject) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    let meta = &object.metadata;
    ("labels", json(&meta.labels)).hash(&mut hasher);
    ("ownerReferences", json(&meta.owner_references)).hash(&mut hasher);
    ("finalizers", json(&meta.finalizers)).hash(&mut hasher);
    for (k, v) in meta.annotations.iter().flatten() {
        if !FOREIGN_ANNOTATIONS.contains(&k.as_str()) {
            (k, v).hash(&mut hasher);
        }
    }
    if let serde_json::Value::Object(map) = &object.data {
        for (key, value) in map {
            if !matches!(key.as_str(), "status" | "apiVersion" | "kind" | "metadata") {
                (key, value.to_string()).hash(&mut hasher);
            }
        }
    }
    hasher.finish()
}

/// A metadata field as JSON text, for the digest.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A child as a watch event shows it, before it is stored.
pub struct Seen {
    pub key: ChildKey,
    instance: String,
    child: CachedChild,
}

impl Seen {
    /// None for an object of a kind the operator does not create.
    pub fn of(object: &DynamicObject, kind: &str) -> Option<Self> {
        let kind = static_kind(kind)?;
        let meta: &ObjectMeta = &object.metadata;
        let rollout = (kind == "Deployment").then(|| {
            let status = &object.data["status"];
            let int = |field: &str| status[field].as_i64();
            Box::new(RolloutState {
                generation: meta.generation,
                observed_generation: int("observedGeneration"),
                replicas: int("replicas").map(|n| n as i32),
                ready_replicas: int("readyReplicas").map(|n| n as i32),
                updated_replicas: int("updatedReplicas").map(|n| n as i32),
            })
        });
        let instance = meta
            .labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/instance"))
            .cloned()
            .unwrap_or_default();
        Some(Self {
            key: ChildKey {
                kind: kind.to_string(),
                namespace: meta.namespace.clone().unwrap_or_default(),
                name: meta.name.clone().unwrap_or_default(),
            },
            child: CachedChild {
                kind,
                instance: Arc::from(""),
                controller: meta
                    .owner_references
                    .iter()
                    .flatten()
                    .find(|r| r.controller == Some(true))
                    .map(|r| digest(&r.uid)),
                applied_hash: meta
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(APPLIED_HASH_ANNOTATION))
                    .and_then(|h| decode_hash(h)),
                content: content_digest(object),
                applied: None,
                deleting: meta.deletion_timestamp.is_some(),
                resource_version: meta
                    .resource_version
                    .clone()
                    .unwrap_or_default()
                    .into_boxed_str(),
                rollout,
            },
            instance,
        })
    }
}

/// namespace → bot → the names of its children.
type NamesByBot = HashMap<Arc<str>, HashMap<Arc<str>, BTreeSet<Box<str>>>>;

/// Every cached child, by namespace and name, and by bot.
#[derive(Default)]
pub struct ChildStore {
    /// namespace → name → the children of that name (one per kind).
    by_name: HashMap<Arc<str>, BTreeMap<Box<str>, Vec<CachedChild>>>,
    /// namespace → bot → the names of its children.
    by_bot: NamesByBot,
    /// Applies answered before the watch showed the child.
    applied_early: HashMap<ChildKey, u64>,
}

impl ChildStore {
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<&CachedChild> {
        self.by_name
            .get(namespace)?
            .get(name)?
            .iter()
            .find(|c| c.kind == kind)
    }

    fn get_mut(&mut self, kind: &str, namespace: &str, name: &str) -> Option<&mut CachedChild> {
        self.by_name
            .get_mut(namespace)?
            .get_mut(name)?
            .iter_mut()
            .find(|c| c.kind == kind)
    }

    /// The shared `Arc` of a namespace.
    fn namespace(&mut self, namespace: &str) -> Arc<str> {
        if let Some((shared, _)) = self.by_name.get_key_value(namespace) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(namespace);
        self.by_name.insert(shared.clone(), BTreeMap::new());
        shared
    }

    /// The shared `Arc` of a bot's name in `namespace`.
    fn bot(&mut self, namespace: &Arc<str>, instance: &str) -> Arc<str> {
        let bots = self.by_bot.entry(namespace.clone()).or_default();
        if let Some((shared, _)) = bots.get_key_value(instance) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(instance);
        bots.insert(shared.clone(), BTreeSet::new());
        shared
    }

    pub fn upsert(&mut self, seen: Seen) {
        let Seen {
            key,
            instance,
            mut child,
        } = seen;
        let namespace = self.namespace(&key.namespace);
        child.instance = self.bot(&namespace, &instance);
        let previous = self.take(child.kind, &key.namespace, &key.name);
        child.applied = match previous {
            Some(old) => old.applied,
            None => self.applied_early.remove(&key),
        };
        if let Some(names) = self
            .by_bot
            .get_mut(&key.namespace as &str)
            .and_then(|bots| bots.get_mut(&child.instance))
        {
            names.insert(key.name.clone().into_boxed_str());
        }
        if let Some(names) = self.by_name.get_mut(&key.namespace as &str) {
            names
                .entry(key.name.into_boxed_str())
                .or_default()
                .push(child);
        }
    }

    pub fn remove(&mut self, key: &ChildKey) {
        self.applied_early.remove(key);
        if let Some(kind) = static_kind(&key.kind) {
            self.take(kind, &key.namespace, &key.name);
        }
    }

    /// Removes the child and, when its bot has no other child of that name, the name from the
    /// bot's names.
    fn take(&mut self, kind: &str, namespace: &str, name: &str) -> Option<CachedChild> {
        let names = self.by_name.get_mut(namespace)?;
        let list = names.get_mut(name)?;
        let at = list.iter().position(|c| c.kind == kind)?;
        let old = list.swap_remove(at);
        let bot_keeps_name = list.iter().any(|c| c.instance == old.instance);
        if list.is_empty() {
            names.remove(name);
        }
        if !bot_keeps_name
            && let Some(bots) = self.by_bot.get_mut(namespace)
            && let Some(set) = bots.get_mut(&old.instance)
        {
            set.remove(name);
            if set.is_empty() {
                bots.remove(&old.instance);
            }
        }
        Some(old)
    }

    /// Remembers the content digest the API server answered an apply of `key` with.
    pub fn set_applied(&mut self, key: ChildKey, content: u64) {
        match self.get_mut(&key.kind, &key.namespace, &key.name) {
            Some(child) => child.applied = Some(content),
            None => {
                self.applied_early.insert(key, content);
            }
        }
    }

    /// The children of kind `kind` of the bot `instance` in `namespace`, with their names.
    pub fn children_of(
        &self,
        namespace: &str,
        instance: &str,
        kind: &str,
    ) -> Vec<(String, CachedChild)> {
        let (Some(names), Some(by_name)) = (
            self.by_bot.get(namespace).and_then(|b| b.get(instance)),
            self.by_name.get(namespace),
        ) else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|name| {
                let child = by_name
                    .get(name)?
                    .iter()
                    .find(|c| c.kind == kind && &*c.instance == instance)?;
                Some((name.to_string(), child.clone()))
            })
            .collect()
    }

    /// Every child: its namespace, name and what is kept of it.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, &CachedChild)> {
        self.by_name.iter().flat_map(|(namespace, names)| {
            names
                .iter()
                .flat_map(move |(name, list)| list.iter().map(move |c| (&**namespace, &**name, c)))
        })
    }

    /// Every child's key and what is kept of it.
    pub fn iter(&self) -> impl Iterator<Item = (ChildKey, &CachedChild)> {
        self.entries().map(|(namespace, name, c)| {
            (
                ChildKey {
                    kind: c.kind.to_string(),
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                },
                c,
            )
        })
    }

    pub fn len(&self) -> usize {
        self.by_name
            .values()
            .flat_map(|names| names.values())
            .map(Vec::len)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: &str, name: &str, instance: &str, owner_uid: &str, rv: &str) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": kind,
            "metadata": {
                "name": name, "namespace": "bots", "resourceVersion": rv,
                "labels": {"app.kubernetes.io/instance": instance},
                "annotations": {APPLIED_HASH_ANNOTATION: "00112233445566778899aabb"},
                "ownerReferences": [{"apiVersion": "botfleet.dev/v1alpha1", "kind": "TelegramBot",
                    "name": instance, "uid": owner_uid, "controller": true}],
            },
            "data": {"config.yaml": "mode: polling"},
        }))
        .unwrap()
    }

    fn seen(o: &DynamicObject) -> Seen {
        let kind = o.types.as_ref().unwrap().kind.clone();
        Seen::of(o, &kind).unwrap()
    }

    fn key(kind: &str, name: &str) -> ChildKey {
        ChildKey {
            kind: kind.into(),
            namespace: "bots".into(),
            name: name.into(),
        }
    }

    #[test]
    fn children_are_found_by_key_and_by_bot_and_forgotten_when_removed() {
        let mut store = ChildStore::default();
        store.upsert(seen(&object("ConfigMap", "a-config", "a", "uid-a", "1")));
        store.upsert(seen(&object("ServiceAccount", "a", "a", "uid-a", "2")));
        store.upsert(seen(&object("Service", "a", "a", "uid-a", "3")));
        store.upsert(seen(&object("Service", "b", "b", "uid-b", "4")));
        assert_eq!(store.len(), 4);

        let sa = store.get("ServiceAccount", "bots", "a").unwrap();
        assert_eq!(&*sa.resource_version, "2");
        assert!(sa.is_controlled_by("uid-a") && !sa.is_controlled_by("uid-b"));
        assert!(sa.carries_hash("00112233445566778899aabb") && !sa.carries_hash("ff"));
        assert!(store.get("Service", "bots", "a-config").is_none());
        let names = |kind| -> Vec<String> {
            store
                .children_of("bots", "a", kind)
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        assert_eq!(names("Service"), ["a"]);
        assert_eq!(names("ConfigMap"), ["a-config"]);

        store.remove(&key("Service", "a"));
        assert!(store.get("Service", "bots", "a").is_none());
        assert!(
            store.get("ServiceAccount", "bots", "a").is_some(),
            "other kinds keep the name"
        );
        assert!(store.children_of("bots", "a", "Service").is_empty());
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn a_child_relabelled_to_another_bot_moves_to_it() {
        let mut store = ChildStore::default();
        store.upsert(seen(&object("Service", "shared", "a", "uid-a", "1")));
        store.upsert(seen(&object("Service", "shared", "b", "uid-a", "2")));
        assert!(store.children_of("bots", "a", "Service").is_empty());
        assert_eq!(store.children_of("bots", "b", "Service").len(), 1);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn an_apply_answered_before_the_watch_event_still_counts_and_a_hand_edit_is_seen() {
        let mut store = ChildStore::default();
        let applied = object("ConfigMap", "a-config", "a", "uid-a", "1");
        store.set_applied(key("ConfigMap", "a-config"), content_digest(&applied));
        store.upsert(seen(&applied));
        assert!(
            store
                .get("ConfigMap", "bots", "a-config")
                .unwrap()
                .unchanged_since_apply()
        );

        // A new resourceVersion with the same content is still as applied...
        store.upsert(seen(&object("ConfigMap", "a-config", "a", "uid-a", "2")));
        assert!(
            store
                .get("ConfigMap", "bots", "a-config")
                .unwrap()
                .unchanged_since_apply()
        );
        // ...an edited one is not.
        let mut edited = object("ConfigMap", "a-config", "a", "uid-a", "3");
        edited.data["data"]["config.yaml"] = "mode: webhook".into();
        store.upsert(seen(&edited));
        assert!(
            !store
                .get("ConfigMap", "bots", "a-config")
                .unwrap()
                .unchanged_since_apply()
        );
    }

    #[test]
    fn a_kind_the_operator_does_not_create_is_not_kept() {
        assert!(Seen::of(&object("Pod", "p", "a", "uid-a", "1"), "Pod").is_none());
    }
}
