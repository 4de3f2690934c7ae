//! Names of a bot's children, from the bot's name. One place, so the reconciler, the bot and the
//! tests agree.

/// ServiceAccount of the bot pods: `<bot>`.
pub fn service_account(bot: &str) -> String {
    bot.to_owned()
}

/// Role and RoleBinding that let the scheduler hold its Lease: `<bot>-scheduler`.
pub fn scheduler_role(bot: &str) -> String {
    format!("{bot}-scheduler")
}

/// The scheduler's Lease (`BOTFLEET_LEASE_NAME`): `<bot>-scheduler`.
pub fn lease(bot: &str) -> String {
    format!("{bot}-scheduler")
}

/// The bot's ConfigMap: `<bot>-config`.
pub fn config_map(bot: &str) -> String {
    format!("{bot}-config")
}

/// The generated webhook Secret: `<bot>-webhook`.
pub fn webhook_secret(bot: &str) -> String {
    format!("{bot}-webhook")
}

/// The update handlers' Deployment, Service, PodDisruptionBudget and the Ingress: `<bot>`.
pub fn handler(bot: &str) -> String {
    bot.to_owned()
}

/// The scheduler's Deployment, Service and PodDisruptionBudget: `<bot>-scheduler`.
pub fn scheduler(bot: &str) -> String {
    format!("{bot}-scheduler")
}

/// The Ingress of the webhook: `<bot>`.
pub fn ingress(bot: &str) -> String {
    bot.to_owned()
}

/// The NetworkPolicy around the bot's pods.
pub fn network_policy(bot: &str) -> String {
    bot.to_owned()
}

/// The TLS Secret cert-manager fills for the Ingress (unless `webhook.tls.secretName`):
/// `<bot>-webhook-tls`.
pub fn webhook_tls_secret(bot: &str) -> String {
    format!("{bot}-webhook-tls")
}

/// Embedded SQLite's PersistentVolumeClaim: `<bot>-data`.
pub fn data_pvc(bot: &str) -> String {
    format!("{bot}-data")
}

/// ServiceMonitor and PrometheusRule: `<bot>`.
pub fn monitoring(bot: &str) -> String {
    bot.to_owned()
}
