//! The bot's identity: ServiceAccount, and the Role that lets its scheduler hold the Lease.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::meta::{Component, Ctx};
use super::names;

pub(super) fn service_account(ctx: &Ctx<'_>) -> ServiceAccount {
    ServiceAccount {
        metadata: ctx.metadata(names::service_account(&ctx.name), Component::Handler),
        // Pods that need the API (the scheduler) mount the token themselves.
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

/// get/update/patch of exactly the Lease `<bot>-scheduler`; create cannot be limited by name
/// (the object does not exist yet when it is checked).
pub(super) fn role(ctx: &Ctx<'_>) -> Role {
    let lease = |verbs: &[&str], names: Option<Vec<String>>| PolicyRule {
        api_groups: Some(vec!["coordination.k8s.io".into()]),
        resources: Some(vec!["leases".into()]),
        resource_names: names,
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..Default::default()
    };
    Role {
        metadata: ctx.metadata(names::scheduler_role(&ctx.name), Component::Scheduler),
        rules: Some(vec![
            lease(
                &["get", "update", "patch"],
                Some(vec![names::lease(&ctx.name)]),
            ),
            lease(&["create"], None),
        ]),
    }
}

pub(super) fn role_binding(ctx: &Ctx<'_>) -> RoleBinding {
    RoleBinding {
        metadata: ctx.metadata(names::scheduler_role(&ctx.name), Component::Scheduler),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: names::scheduler_role(&ctx.name),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: names::service_account(&ctx.name),
            namespace: Some(ctx.namespace.clone()),
            ..Default::default()
        }]),
    }
}
