//! Applying a bot's rendered children and deleting the ones a spec change made obsolete.
//!
//! Every child goes through server-side apply under one field manager (forced: the operator
//! owns these fields). A child whose live object already contains every desired field is not
//! written at all, so reconciling an unchanged bot sends no write.

use std::collections::BTreeSet;

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use super::subset::contains;

/// The one field manager of every write the operator makes.
pub use botfleet_api::contract::FIELD_MANAGER;

/// `kind` → plural, for every kind the operator creates.
const KINDS: &[(&str, &str, &str)] = &[
    ("v1", "ServiceAccount", "serviceaccounts"),
    ("rbac.authorization.k8s.io/v1", "Role", "roles"),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
    ),
    ("v1", "ConfigMap", "configmaps"),
    ("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("apps/v1", "Deployment", "deployments"),
    ("v1", "Service", "services"),
    ("networking.k8s.io/v1", "Ingress", "ingresses"),
    ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    (
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        "servicemonitors",
    ),
    (
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        "prometheusrules",
    ),
];

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
    let (_, _, plural) = KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
        .ok_or_else(|| ChildError::UnknownKind(format!("{api_version}/{kind}")))?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Ok(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural,
    ))
}

fn is_monitoring(api_version: &str) -> bool {
    api_version.starts_with("monitoring.coreos.com/")
}

/// Applies every desired child in `namespace` that is not already as desired. Children of the
/// monitoring group are skipped when `monitoring_served` is false.
pub async fn apply_children(
    client: &Client,
    namespace: &str,
    desired: &[Value],
    monitoring_served: bool,
    outcome: &mut ChildrenOutcome,
) -> Result<(), ChildError> {
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
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &api_resource(api_version, kind)?);
        let live = api.get_opt(name).await.map_err(|source| ChildError::Read {
            child: child.clone(),
            source,
        })?;
        if let Some(live) = &live {
            let live = serde_json::to_value(live).unwrap_or(Value::Null);
            if contains(&live, object) {
                continue;
            }
        }
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(|source| ChildError::Apply {
            child: child.clone(),
            source,
        })?;
        tracing::info!(
            kind,
            name,
            namespace,
            created = live.is_none(),
            "applied child"
        );
        if live.is_none() {
            outcome.created.push(child);
        } else {
            outcome.updated.push(child);
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
    client: &Client,
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
    let selector = children_selector(bot);
    for (api_version, kind, _) in KINDS {
        if is_monitoring(api_version) && !monitoring_served {
            continue;
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &api_resource(api_version, kind)?);
        let list = api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|source| ChildError::List {
                kind: kind.to_string(),
                source,
            })?;
        for item in list.items {
            let Some(name) = item.metadata.name.clone() else {
                continue;
            };
            let controlled = item
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == owner_uid && r.controller == Some(true));
            let key = (api_version.to_string(), kind.to_string(), name.clone());
            if !controlled || wanted.contains(&key) || item.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let child = ChildId {
                kind: kind.to_string(),
                name: name.clone(),
            };
            if KEPT_WHEN_OBSOLETE.contains(kind) {
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
