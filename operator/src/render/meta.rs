//! Metadata every child shares: names, labels, owner reference.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use super::{RenderDefaults, RenderError};
use crate::crd::{TelegramBot, TelegramBotSpec};

/// `app.kubernetes.io/name` of every child.
pub const APP_NAME: &str = "botfleet-bot";
/// `app.kubernetes.io/managed-by` of every child.
pub const MANAGED_BY: &str = botfleet_api::contract::FIELD_MANAGER;

/// What part of the bot a child belongs to (`app.kubernetes.io/component`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// Update handlers: their Deployment, Service, Ingress, PDB (and the ServiceAccount).
    Handler,
    /// The scheduler: its Deployment, Service, PDB, Role and RoleBinding.
    Scheduler,
    /// The bot's ConfigMap.
    Config,
    /// The generated webhook Secret.
    Webhook,
    /// The embedded database's PVC.
    Database,
    /// ServiceMonitor and PrometheusRule.
    Monitoring,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Handler => "handler",
            Component::Scheduler => "scheduler",
            Component::Config => "config",
            Component::Webhook => "webhook",
            Component::Database => "database",
            Component::Monitoring => "monitoring",
        }
    }
}

/// The labels of a child: `app.kubernetes.io/{name,instance,managed-by,component}`.
pub fn labels(bot_name: &str, component: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(bot_name, component);
    l.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    l
}

/// The labels that select a bot's pods of one component (immutable Deployment selectors: they
/// never change with the spec). The children of a bot are all found by
/// `app.kubernetes.io/instance=<bot>,app.kubernetes.io/managed-by=botfleet-operator`.
pub fn selector_labels(bot_name: &str, component: &str) -> BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name", APP_NAME),
        ("app.kubernetes.io/instance", bot_name),
        ("app.kubernetes.io/component", component),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// What every render function needs: the bot, its identity and the operator defaults.
pub(super) struct Ctx<'a> {
    pub name: String,
    pub namespace: String,
    pub spec: &'a TelegramBotSpec,
    pub defaults: &'a RenderDefaults,
    owner: OwnerReference,
}

impl<'a> Ctx<'a> {
    pub fn new(bot: &'a TelegramBot, defaults: &'a RenderDefaults) -> Result<Self, RenderError> {
        let name = bot
            .metadata
            .name
            .clone()
            .ok_or(RenderError::MissingMetadata("name"))?;
        let namespace = bot
            .metadata
            .namespace
            .clone()
            .ok_or(RenderError::MissingMetadata("namespace"))?;
        let uid = bot
            .metadata
            .uid
            .clone()
            .ok_or(RenderError::MissingMetadata("uid"))?;
        let owner = OwnerReference {
            api_version: TelegramBot::api_version(&()).into_owned(),
            kind: TelegramBot::kind(&()).into_owned(),
            name: name.clone(),
            uid,
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        Ok(Self {
            name,
            namespace,
            spec: &bot.spec,
            defaults,
            owner,
        })
    }

    pub fn labels(&self, component: Component) -> BTreeMap<String, String> {
        labels(&self.name, component.as_str())
    }

    pub fn selector(&self, component: Component) -> BTreeMap<String, String> {
        selector_labels(&self.name, component.as_str())
    }

    /// Name, namespace, labels and the controller owner reference.
    pub fn metadata(&self, name: String, component: Component) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels(component)),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }
}
