//! The kinds of children the operator creates, and the field manager it writes them with: the
//! vocabulary the cache, the context and the apply share.

use kube::core::{ApiResource, GroupVersionKind};

/// The one field manager of every write the operator makes to children.
pub use botfleet_api::contract::FIELD_MANAGER;

/// A kind the operator creates: its apiVersion, kind and plural.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnedKind {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

impl OwnedKind {
    const fn new(api_version: &'static str, kind: &'static str, plural: &'static str) -> Self {
        Self {
            api_version,
            kind,
            plural,
        }
    }

    pub fn api_resource(&self) -> ApiResource {
        let (group, version) = self
            .api_version
            .split_once('/')
            .unwrap_or(("", self.api_version));
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, self.kind),
            self.plural,
        )
    }

    /// ServiceMonitor and PrometheusRule: only when the cluster serves them.
    pub fn is_monitoring(&self) -> bool {
        is_monitoring(self.api_version)
    }
}

/// Every kind the operator creates from the rendered children.
pub const KINDS: &[OwnedKind] = &[
    OwnedKind::new("v1", "ServiceAccount", "serviceaccounts"),
    OwnedKind::new("rbac.authorization.k8s.io/v1", "Role", "roles"),
    OwnedKind::new(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
    ),
    OwnedKind::new("v1", "ConfigMap", "configmaps"),
    OwnedKind::new("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    OwnedKind::new("apps/v1", "Deployment", "deployments"),
    OwnedKind::new("v1", "Service", "services"),
    OwnedKind::new("networking.k8s.io/v1", "Ingress", "ingresses"),
    OwnedKind::new("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    OwnedKind::new("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    OwnedKind::new(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        "servicemonitors",
    ),
    OwnedKind::new(
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        "prometheusrules",
    ),
];

/// Whether the apiVersion is prometheus-operator's (served only where its CRDs are installed).
pub fn is_monitoring(api_version: &str) -> bool {
    api_version.starts_with("monitoring.coreos.com/")
}
