//! The bot's status: what was observed, turned into `metav1.Condition`s a person can act on.
//!
//! Pure: [`desired_status`] takes the previous status and the observations of one reconcile.
//! A condition keeps its `lastTransitionTime` while its status stays the same, so an unchanged
//! bot produces an identical status and the reconciler writes nothing.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::{TelegramBot, TelegramBotStatus, condition_types as types};
use crate::telegram::WebhookInfo;

/// Something that stops the bot from being reconciled as asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `InvalidSpec`, `ApplyFailed`, `TokenSecretMissing`, ...
    pub reason: &'static str,
    pub message: String,
}

/// Where the webhook registration stands.
#[derive(Clone, Debug, PartialEq)]
pub enum WebhookState {
    /// Polling mode: nothing to register.
    NotRequired,
    /// Registered; Telegram's view of it, and the digest of the registered secret token
    /// (`status.webhookRegistration`).
    Registered {
        url: String,
        info: WebhookInfo,
        digest: Option<String>,
    },
    /// Not registered, and why.
    Failed {
        reason: &'static str,
        message: String,
    },
}

/// Whether the monitoring objects are in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonitoringState {
    NotRequested,
    Applied,
    /// Asked for, but `monitoring.coreos.com/v1` is not served.
    CrdsMissing,
}

/// What one reconcile saw.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    pub generation: Option<i64>,
    pub bot_name: &'a str,
    pub webhook_mode: bool,
    pub desired_replicas: i32,
    /// The update handlers' Deployment as it is in the cluster.
    pub deployment: Option<&'a Deployment>,
    pub webhook: WebhookState,
    pub monitoring: MonitoringState,
    pub problem: Option<Problem>,
}

impl<'a> Observed<'a> {
    /// What any reconcile of `bot` knows from the spec alone: no Deployment seen, no webhook
    /// needed, no problem. Each outcome sets what it observed on top.
    pub fn of(bot: &TelegramBot, bot_name: &'a str, monitoring: MonitoringState) -> Self {
        Self {
            generation: bot.metadata.generation,
            bot_name,
            webhook_mode: bot.spec.bot.mode == botfleet_api::Mode::Webhook,
            desired_replicas: bot.spec.replicas,
            deployment: None,
            webhook: WebhookState::NotRequired,
            monitoring,
            problem: None,
        }
    }
}

/// The status to write, from the previous one (for transition times and fields this reconcile
/// did not observe) and the observations.
pub fn desired_status(
    previous: Option<&TelegramBotStatus>,
    observed: &Observed<'_>,
    now: Timestamp,
) -> TelegramBotStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let generation = observed.generation;
    status.observed_generation = generation;

    let deployment_status = observed.deployment.and_then(|d| d.status.as_ref());
    let ready = deployment_status
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let updated = deployment_status
        .and_then(|s| s.updated_replicas)
        .unwrap_or(0);
    let rolled_out = observed.deployment.is_some_and(|d| {
        d.status.as_ref().and_then(|s| s.observed_generation) >= d.metadata.generation
    });
    if observed
        .problem
        .as_ref()
        .is_none_or(|p| p.reason != "InvalidSpec")
    {
        status.replicas = Some(deployment_status.and_then(|s| s.replicas).unwrap_or(0));
        status.ready_replicas = Some(ready);
    }

    match &observed.webhook {
        WebhookState::Registered { url, info, digest } => {
            status.webhook_url = Some(url.clone());
            status.webhook_registration = digest.clone();
            status.pending_update_count = Some(info.pending_update_count);
            status.last_webhook_error =
                info.last_error_message
                    .as_ref()
                    .map(|m| match info.last_error_date {
                        Some(date) => format!("{} (at {})", m, format_unix(date)),
                        None => m.clone(),
                    });
        }
        WebhookState::NotRequired => {
            status.webhook_url = None;
            status.webhook_registration = None;
            status.pending_update_count = None;
            status.last_webhook_error = None;
        }
        WebhookState::Failed { .. } => {}
    }

    let mut set = |type_: &str, ok: bool, reason: &str, message: String| {
        set_condition(
            &mut status.conditions,
            type_,
            ok,
            reason,
            message,
            generation,
            now,
        );
    };
    let name = observed.bot_name;
    let want = observed.desired_replicas;

    // Degraded: something the operator cannot fix by itself.
    match (&observed.problem, &observed.webhook) {
        (Some(p), _) => set(types::DEGRADED, true, p.reason, p.message.clone()),
        (None, WebhookState::Failed { reason, message }) => {
            set(types::DEGRADED, true, reason, message.clone())
        }
        _ => set(
            types::DEGRADED,
            false,
            "AsExpected",
            "the operator applied every child the spec asks for".into(),
        ),
    }

    // WebhookReady.
    match &observed.webhook {
        WebhookState::NotRequired => set(
            types::WEBHOOK_READY,
            true,
            "PollingMode",
            "polling mode: the bot fetches updates with getUpdates, no webhook is registered"
                .into(),
        ),
        WebhookState::Registered { url, info, .. } => {
            let mut message = format!(
                "Telegram delivers updates to {url}; {} pending",
                info.pending_update_count
            );
            if let Some(error) = &info.last_error_message {
                message.push_str(&format!("; last delivery error: {error}"));
            }
            set(types::WEBHOOK_READY, true, "Registered", message)
        }
        WebhookState::Failed { reason, message } => {
            set(types::WEBHOOK_READY, false, reason, message.clone())
        }
    }

    // MonitoringReady.
    match observed.monitoring {
        MonitoringState::NotRequested => set(
            types::MONITORING_READY,
            true,
            "NotRequested",
            "spec.monitoring asks for no ServiceMonitor or PrometheusRule".into(),
        ),
        MonitoringState::Applied => set(
            types::MONITORING_READY,
            true,
            "Applied",
            format!("the ServiceMonitor and/or PrometheusRule {name} are applied"),
        ),
        MonitoringState::CrdsMissing => set(
            types::MONITORING_READY,
            false,
            "MonitoringCRDsMissing",
            "spec.monitoring asks for a ServiceMonitor or PrometheusRule, but this cluster does not serve \
             monitoring.coreos.com/v1: install the prometheus-operator CRDs (e.g. with kube-prometheus-stack) \
             or disable spec.monitoring; the bot runs without them"
                .into(),
        ),
    }

    // Progressing and Ready.
    if let Some(p) = &observed.problem
        && p.reason == "InvalidSpec"
    {
        set(
            types::PROGRESSING,
            false,
            "InvalidSpec",
            "fix the spec; nothing was changed".into(),
        );
        set(types::READY, false, "InvalidSpec", p.message.clone());
        return status;
    }
    let deployment_seen = observed.deployment.is_some();
    if !deployment_seen || !rolled_out || updated < want || ready < want {
        set(
            types::PROGRESSING,
            true,
            "RollingOut",
            format!(
                "{ready} of {want} update handlers ready and up to date; see kubectl describe deployment {name}"
            ),
        );
    } else {
        set(
            types::PROGRESSING,
            false,
            "RolloutComplete",
            format!("Deployment {name} has rolled out"),
        );
    }
    let (ready_ok, reason, message) = if let Some(p) = &observed.problem {
        (false, p.reason, p.message.clone())
    } else if want == 0 {
        (
            false,
            "ScaledToZero",
            "spec.replicas is 0: no pod handles updates".to_string(),
        )
    } else if ready < want {
        (
            false,
            "ReplicasNotReady",
            format!(
                "{ready} of {want} update handlers ready; see kubectl describe deployment {name} and the pods' events"
            ),
        )
    } else if let WebhookState::Failed { reason, message } = &observed.webhook {
        (false, *reason, message.clone())
    } else {
        let how = if observed.webhook_mode {
            "webhook"
        } else {
            "polling"
        };
        (
            true,
            "BotReady",
            format!("{ready} of {want} update handlers ready ({how})"),
        )
    };
    set(types::READY, ready_ok, reason, message);
    status
}

/// Sets one condition, keeping `lastTransitionTime` unless the status flips.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if ok { "True" } else { "False" }.to_string();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = Time(now);
            }
            existing.status = status;
            existing.reason = reason.to_string();
            existing.message = message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message,
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
}

/// The condition of `type_`, if set.
pub fn condition<'a>(status: Option<&'a TelegramBotStatus>, type_: &str) -> Option<&'a Condition> {
    status?.conditions.iter().find(|c| c.type_ == type_)
}

fn format_unix(seconds: i64) -> String {
    Timestamp::from_second(seconds)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentStatus;

    fn deployment(ready: i32, generation: i64, observed: i64) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.generation = Some(generation);
        d.status = Some(DeploymentStatus {
            replicas: Some(ready),
            ready_replicas: Some(ready),
            updated_replicas: Some(ready),
            observed_generation: Some(observed),
            ..Default::default()
        });
        d
    }

    fn observed<'a>(deployment: Option<&'a Deployment>) -> Observed<'a> {
        Observed {
            generation: Some(2),
            bot_name: "sales-bot",
            webhook_mode: false,
            desired_replicas: 1,
            deployment,
            webhook: WebhookState::NotRequired,
            monitoring: MonitoringState::NotRequested,
            problem: None,
        }
    }

    fn get<'a>(s: &'a TelegramBotStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn a_rolled_out_bot_is_ready_and_the_same_observation_gives_the_same_status() {
        let d = deployment(1, 3, 3);
        let now = Timestamp::from_second(1_000).unwrap();
        let first = desired_status(None, &observed(Some(&d)), now);
        assert_eq!(get(&first, "Ready").status, "True");
        assert_eq!(get(&first, "Progressing").reason, "RolloutComplete");
        assert_eq!(get(&first, "Degraded").status, "False");
        assert_eq!(first.observed_generation, Some(2));
        assert_eq!(first.ready_replicas, Some(1));
        let later = Timestamp::from_second(2_000).unwrap();
        assert_eq!(
            desired_status(Some(&first), &observed(Some(&d)), later),
            first
        );
    }

    #[test]
    fn a_flip_moves_the_transition_time_and_explains_itself() {
        let ready = deployment(1, 3, 3);
        let t1 = Timestamp::from_second(1_000).unwrap();
        let first = desired_status(None, &observed(Some(&ready)), t1);
        let not_ready = deployment(0, 3, 3);
        let t2 = Timestamp::from_second(2_000).unwrap();
        let second = desired_status(Some(&first), &observed(Some(&not_ready)), t2);
        let c = get(&second, "Ready");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "ReplicasNotReady")
        );
        assert!(
            c.message.contains("kubectl describe deployment sales-bot"),
            "{}",
            c.message
        );
        assert_eq!(c.last_transition_time, Time(t2));
        assert_eq!(get(&second, "Degraded").last_transition_time, Time(t1));
    }

    #[test]
    fn invalid_spec_and_missing_monitoring_crds_say_what_to_do() {
        let mut o = observed(None);
        o.problem = Some(Problem {
            reason: "InvalidSpec",
            message: "spec.webhook.domain: webhook mode needs webhook.domain".into(),
        });
        o.monitoring = MonitoringState::CrdsMissing;
        let s = desired_status(None, &o, Timestamp::from_second(1).unwrap());
        assert_eq!(get(&s, "Degraded").reason, "InvalidSpec");
        assert_eq!(get(&s, "Degraded").status, "True");
        assert_eq!(get(&s, "Ready").reason, "InvalidSpec");
        let m = get(&s, "MonitoringReady");
        assert_eq!(
            (m.status.as_str(), m.reason.as_str()),
            ("False", "MonitoringCRDsMissing")
        );
        assert!(m.message.contains("install the prometheus-operator CRDs"));
    }

    #[test]
    fn a_registered_webhook_reports_its_queue_and_last_error() {
        let d = deployment(1, 1, 1);
        let mut o = observed(Some(&d));
        o.webhook_mode = true;
        o.webhook = WebhookState::Registered {
            url: "https://b.example/telegram/sales-bot".into(),
            info: WebhookInfo {
                pending_update_count: 7,
                last_error_message: Some("Wrong response from the webhook: 502 Bad Gateway".into()),
                last_error_date: Some(1_700_000_000),
                ..Default::default()
            },
            digest: Some("0123abcd".into()),
        };
        let s = desired_status(None, &o, Timestamp::from_second(1).unwrap());
        assert_eq!(s.webhook_registration.as_deref(), Some("0123abcd"));
        assert_eq!(s.pending_update_count, Some(7));
        assert_eq!(
            s.webhook_url.as_deref(),
            Some("https://b.example/telegram/sales-bot")
        );
        assert!(
            s.last_webhook_error
                .as_deref()
                .unwrap()
                .contains("502 Bad Gateway")
        );
        assert_eq!(get(&s, "WebhookReady").status, "True");
        assert_eq!(get(&s, "Ready").status, "True");
    }
}
