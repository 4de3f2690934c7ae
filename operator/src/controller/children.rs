//! Applying a bot's rendered children and deleting the ones a spec change made obsolete.
//!
//! Every child goes through server-side apply under one field manager (forced: the operator
//! owns these fields), carrying [`APPLIED_HASH_ANNOTATION`], a digest of exactly the object
//! applied. A child is skipped only when the cached one carries the hash of this desired
//! object *and* is exactly as the operator's last apply left it (see [`super::cache`]), so a
//! spec change always applies (and the API server prunes what the operator stopped setting)
//! and a hand edit is put back, while an unchanged bot costs no request at all.

use std::collections::BTreeSet;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::ApiResource;
use serde_json::Value;

use super::cache::{APPLIED_HASH_ANNOTATION, ChildKey, applied_hash};
use super::context::Context;
use super::kinds::is_monitoring;
pub use super::kinds::{FIELD_MANAGER, KINDS, OwnedKind};
use super::subset::contains;

/// Kinds whose leftovers are kept rather than deleted: a PVC holds the embedded database, and a
/// spec change (SQLite → PostgreSQL) must not destroy data someone may still want to migrate.
const KEPT_WHEN_OBSOLETE: &[&str] = &["PersistentVolumeClaim"];

/// A child as `Kind namespace/name`, for events and logs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChildId {
    pub kind: String,
    pub name: String,
}

impl std::fmt::Display for ChildId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// What one pass over the children did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildrenOutcome {
    pub created: Vec<ChildId>,
    pub updated: Vec<ChildId>,
    pub deleted: Vec<ChildId>,
    /// Obsolete children left in place on purpose (see `KEPT_WHEN_OBSOLETE`).
    pub kept: Vec<ChildId>,
}

impl ChildrenOutcome {
    pub fn changed(&self) -> bool {
        !(self.created.is_empty() && self.updated.is_empty() && self.deleted.is_empty())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("child object without apiVersion, kind or metadata.name")]
    Malformed,
    #[error("the operator does not know the kind {0}")]
    UnknownKind(String),
    #[error("apply {child}: {source}")]
    Apply {
        child: ChildId,
        #[source]
        source: kube::Error,
    },
    #[error("read {child}: {source}")]
    Read {
        child: ChildId,
        #[source]
        source: kube::Error,
    },
    #[error("list {kind} of the bot: {source}")]
    List {
        kind: String,
        #[source]
        source: kube::Error,
    },
    #[error("delete obsolete {child}: {source}")]
    Delete {
        child: ChildId,
        #[source]
        source: kube::Error,
    },
}

fn api_resource(api_version: &str, kind: &str) -> Result<ApiResource, ChildError> {
    KINDS
        .iter()
        .find(|k| k.api_version == api_version && k.kind == kind)
        .map(OwnedKind::api_resource)
        .ok_or_else(|| ChildError::UnknownKind(format!("{api_version}/{kind}")))
}

/// Applies every desired child in `namespace` that is not exactly as applied before. Children
/// of the monitoring group are skipped when `monitoring_served` is false.
pub async fn apply_children(
    ctx: &Context,
    namespace: &str,
    desired: &[Value],
    monitoring_served: bool,
    outcome: &mut ChildrenOutcome,
) -> Result<(), ChildError> {
    let (client, cache) = (&ctx.client, &ctx.cache);
    for object in desired {
        let api_version = object["apiVersion"].as_str().ok_or(ChildError::Malformed)?;
        let kind = object["kind"].as_str().ok_or(ChildError::Malformed)?;
        let name = object["metadata"]["name"]
            .as_str()
            .ok_or(ChildError::Malformed)?;
        if is_monitoring(api_version) && !monitoring_served {
            continue;
        }
        let child = ChildId {
            kind: kind.to_string(),
            name: name.to_string(),
        };
        let hash = applied_hash(object);
        let mut object = object.clone();
        object["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] = Value::String(hash.clone());
        let key = ChildKey {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &api_resource(api_version, kind)?);
        // What is there now: from the cache, or (a kind not watched) from the API server.
        let previous_version = match cache.get(&key) {
            Ok(Some(cached)) => {
                if cached.carries_hash(&hash) && !cached.deleting && cached.unchanged_since_apply()
                {
                    continue;
                }
                Some(cached.resource_version.to_string())
            }
            Ok(None) => None,
            Err(()) => {
                let live = api.get_opt(name).await.map_err(|source| ChildError::Read {
                    child: child.clone(),
                    source,
                })?;
                match live {
                    Some(live) => {
                        let version = live.metadata.resource_version.clone().unwrap_or_default();
                        let live = serde_json::to_value(&live).unwrap_or(Value::Null);
                        if live["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] == hash.as_str()
                            && contains(&live, &object)
                        {
                            continue;
                        }
                        Some(version)
                    }
                    None => None,
                }
            }
        };
        let answered = api
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .map_err(|source| {
                if is_monitoring(api_version)
                    && matches!(&source, kube::Error::Api(s) if s.code == 404)
                {
                    // The prometheus-operator CRDs are gone: ask discovery again next time.
                    ctx.monitoring.forget();
                }
                ChildError::Apply {
                    child: child.clone(),
                    source,
                }
            })?;
        let answered_version = answered
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        cache.record_applied(key, &answered);
        match previous_version {
            None => {
                tracing::info!(kind, name, namespace, "created child");
                outcome.created.push(child);
            }
            // The API server found nothing to change (e.g. the first pass after a restart).
            Some(version) if version == answered_version => {}
            Some(_) => {
                tracing::info!(kind, name, namespace, "applied child");
                outcome.updated.push(child);
            }
        }
    }
    Ok(())
}

/// The label selector that finds every child of a bot.
pub fn children_selector(bot: &str) -> String {
    format!("app.kubernetes.io/instance={bot},app.kubernetes.io/managed-by={FIELD_MANAGER}")
}

/// Deletes children of the bot (labelled as its children and controlled by `owner_uid`) that
/// are not in `desired`. Monitoring kinds are looked at only when served.
pub async fn delete_obsolete(
    ctx: &Context,
    namespace: &str,
    bot: &str,
    owner_uid: &str,
    desired: &[Value],
    monitoring_served: bool,
    outcome: &mut ChildrenOutcome,
) -> Result<(), ChildError> {
    let wanted: BTreeSet<(String, String, String)> = desired
        .iter()
        .map(|o| {
            (
                o["apiVersion"].as_str().unwrap_or_default().to_string(),
                o["kind"].as_str().unwrap_or_default().to_string(),
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let (client, cache) = (&ctx.client, &ctx.cache);
    let selector = children_selector(bot);
    for owned in KINDS {
        let (api_version, kind) = (owned.api_version, owned.kind);
        if owned.is_monitoring() && !monitoring_served {
            continue;
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &owned.api_resource());
        // (name, controlled by the bot, being deleted), from the cache when the kind is watched.
        let candidates: Vec<(String, bool, bool)> =
            if let Some(cached) = cache.synced_children_of(namespace, bot, kind) {
                cached
                    .into_iter()
                    .map(|(name, c)| {
                        let controlled = c.is_controlled_by(owner_uid);
                        (name, controlled, c.deleting)
                    })
                    .collect()
            } else {
                let list = api
                    .list_metadata(&ListParams::default().labels(&selector))
                    .await
                    .map_err(|source| ChildError::List {
                        kind: kind.to_string(),
                        source,
                    })?;
                list.items
                    .into_iter()
                    .filter_map(|item| {
                        let controlled = item
                            .metadata
                            .owner_references
                            .iter()
                            .flatten()
                            .any(|r| r.uid == owner_uid && r.controller == Some(true));
                        let deleting = item.metadata.deletion_timestamp.is_some();
                        item.metadata.name.map(|n| (n, controlled, deleting))
                    })
                    .collect()
            };
        for (name, controlled, deleting) in candidates {
            let key = (api_version.to_string(), kind.to_string(), name.clone());
            if !controlled || wanted.contains(&key) || deleting {
                continue;
            }
            let child = ChildId {
                kind: kind.to_string(),
                name: name.clone(),
            };
            if KEPT_WHEN_OBSOLETE.contains(&kind) {
                outcome.kept.push(child);
                continue;
            }
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(source) => return Err(ChildError::Delete { child, source }),
            }
            tracing::info!(kind, name, namespace, "deleted obsolete child");
            outcome.deleted.push(child);
        }
    }
    Ok(())
}
