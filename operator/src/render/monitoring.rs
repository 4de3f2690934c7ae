//! Prometheus Operator objects: a ServiceMonitor that scrapes the bot and a PrometheusRule with
//! its alerts. Typed here (only the fields we set) and tested against the upstream CRD schemas.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::contract;
use super::meta::{APP_NAME, Component, Ctx};
use super::names;

/// Where every alert's `runbook_url` points; the anchor is the alert name in lower case.
pub const RUNBOOK_BASE_URL: &str =
    "https://github.com/botfleet/botfleet/blob/main/docs/runbooks.md";

/// Every alert of the rendered PrometheusRule. `docs/runbooks.md` has a section (heading = the
/// alert name) for each; a docs test checks it.
pub const ALERT_NAMES: &[&str] = &[
    "BotfleetBudgetNearlySpent",
    "BotfleetBudgetExhausted",
    "BotfleetBudgetRefusingCalls",
    "BotfleetSpendBurnRateHigh",
    "BotfleetLLMErrorRatioHigh",
    "BotfleetUnpricedModelCalls",
    "BotfleetUpdateBacklog",
    "BotfleetNoReadyReplica",
    "BotfleetHandoffWaiting",
];

/// The runbook link of an alert.
pub fn runbook_url(alert: &str) -> String {
    format!("{RUNBOOK_BASE_URL}#{}", alert.to_lowercase())
}

/// `monitoring.coreos.com/v1` ServiceMonitor (the fields the operator sets).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "ServiceMonitor",
    plural = "servicemonitors",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    /// Services to scrape, by label.
    pub selector: LabelSelector,
    /// Namespaces of those Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<NamespaceSelector>,
    /// Ports of the Services to scrape.
    pub endpoints: Vec<Endpoint>,
}

/// A ServiceMonitor's namespace selector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_names: Vec<String>,
}

/// One scraped port of a ServiceMonitor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub port: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

/// `monitoring.coreos.com/v1` PrometheusRule.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "PrometheusRule",
    plural = "prometheusrules",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
pub struct PrometheusRuleSpec {
    pub groups: Vec<RuleGroup>,
}

/// A group of rules, evaluated together. Also the shape of a plain Prometheus rules file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleGroup {
    pub name: String,
    pub rules: Vec<AlertRule>,
}

/// One alerting rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    pub alert: String,
    pub expr: String,
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A plain Prometheus rules file (`groups:`) of a PrometheusRule, for `promtool check rules`.
pub fn prometheus_rules_file(rule: &PrometheusRule) -> String {
    serde_yaml_ng::to_string(&rule.spec).expect("rule groups serialize")
}

pub(super) fn service_monitor(ctx: &Ctx<'_>) -> ServiceMonitor {
    let interval = ctx
        .spec
        .monitoring
        .as_ref()
        .and_then(|m| m.service_monitor.as_ref())
        .and_then(|s| s.interval.clone());
    let selector = [
        ("app.kubernetes.io/name", APP_NAME),
        ("app.kubernetes.io/instance", ctx.name.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    ServiceMonitor {
        metadata: ctx.metadata(names::monitoring(&ctx.name), Component::Monitoring),
        spec: ServiceMonitorSpec {
            // Both the handler Service and the scheduler Service carry these labels and a
            // `metrics` port; the targets' `service` label is the Service name.
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            namespace_selector: Some(NamespaceSelector {
                match_names: vec![ctx.namespace.clone()],
            }),
            endpoints: vec![Endpoint {
                port: contract::METRICS_PORT_NAME.into(),
                path: Some(contract::METRICS_PATH.into()),
                interval,
            }],
        },
    }
}

pub(super) fn prometheus_rule(ctx: &Ctx<'_>) -> PrometheusRule {
    PrometheusRule {
        metadata: ctx.metadata(names::monitoring(&ctx.name), Component::Monitoring),
        spec: PrometheusRuleSpec {
            groups: vec![RuleGroup {
                name: format!("botfleet.{}.{}", ctx.namespace, ctx.name),
                rules: alerts(ctx),
            }],
        },
    }
}

fn alerts(ctx: &Ctx<'_>) -> Vec<AlertRule> {
    let ns = &ctx.namespace;
    let bot = &ctx.name;
    // The series of this bot, as the ServiceMonitor labels them.
    let sel = format!(
        r#"namespace="{ns}",service=~"{}|{}""#,
        names::handler(bot),
        names::scheduler(bot)
    );
    let ratio = format!(
        "max by (namespace, period) (botfleet_llm_spend_usd{{{sel}}}) / max by (namespace, period) (botfleet_llm_budget_usd{{{sel}}} > 0)"
    );
    let deployments = if ctx.spec.uses_postgres() && ctx.spec.scheduler_replicas() > 0 {
        format!("{}|{}", names::handler(bot), names::scheduler(bot))
    } else {
        names::handler(bot)
    };
    let who = format!("TelegramBot {ns}/{bot}");
    // `handoff.waitAlertAfter`; without a handoff section the gauge is never exported.
    let handoff_wait = ctx
        .spec
        .bot
        .handoff
        .as_ref()
        .map_or(botfleet_api::HandoffConfig::DEFAULT_WAIT_ALERT_AFTER, |h| {
            h.wait_alert_after()
        })
        .as_secs();

    let alert = |name: &str,
                 severity: &str,
                 expr: String,
                 for_: &str,
                 summary: String,
                 description: String| {
        debug_assert!(
            ALERT_NAMES.contains(&name),
            "{name} missing from ALERT_NAMES"
        );
        AlertRule {
            alert: name.to_owned(),
            expr,
            for_: Some(for_.to_owned()),
            labels: [("severity", severity), ("botfleet_bot", bot.as_str())]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            annotations: [
                ("summary".to_owned(), summary),
                ("description".to_owned(), description),
                ("runbook_url".to_owned(), runbook_url(name)),
            ]
            .into_iter()
            .collect(),
        }
    };

    vec![
        alert(
            "BotfleetBudgetNearlySpent",
            "warning",
            format!("({ratio}) >= 0.8 < 1"),
            "1m",
            format!("{who} has spent 80% of its {{{{ $labels.period }}}} LLM budget"),
            "Spend is at {{ $value | humanizePercentage }} of the {{ $labels.period }} budget. At 100% the bot stops calling the LLM if hardStop is on.".to_owned(),
        ),
        alert(
            "BotfleetBudgetExhausted",
            "critical",
            format!("({ratio}) >= 1"),
            "1m",
            format!("{who} has spent its whole {{{{ $labels.period }}}} LLM budget"),
            "Spend is at {{ $value | humanizePercentage }} of the {{ $labels.period }} budget. With hardStop the bot answers with a fixed text until the period rolls over.".to_owned(),
        ),
        // With hardStop every call reserves its worst-case cost first, so spend stops short of
        // the limit and the ratio above may never reach 1 while leads already get the stop reply.
        alert(
            "BotfleetBudgetRefusingCalls",
            "critical",
            format!(
                "sum by (namespace) (increase(botfleet_llm_requests_total{{{sel},outcome=\"budget_refused\"}}[10m])) > 0"
            ),
            "0m",
            format!("{who} refuses LLM calls because its budget is reached"),
            "LLM calls were refused by the budget in the last 10 minutes; those leads got the fixed stop reply. It clears 10 minutes after the last refusal (the period rolled over or the limit was raised).".to_owned(),
        ),
        alert(
            "BotfleetSpendBurnRateHigh",
            "warning",
            format!(
                "sum by (namespace) (rate(botfleet_llm_cost_usd_total{{{sel}}}[1h])) * 86400 > max by (namespace) (botfleet_llm_budget_usd{{{sel},period=\"day\"}} > 0)"
            ),
            "15m",
            format!("{who} spends faster than its daily budget allows"),
            "At the last hour's rate the bot would spend {{ $value | humanize }} USD a day, more than its daily budget.".to_owned(),
        ),
        alert(
            "BotfleetLLMErrorRatioHigh",
            "warning",
            format!(
                "sum by (namespace) (rate(botfleet_llm_requests_total{{{sel},outcome!~\"ok|budget_refused\"}}[10m])) / sum by (namespace) (rate(botfleet_llm_requests_total{{{sel},outcome!=\"budget_refused\"}}[10m])) > 0.1"
            ),
            "10m",
            format!("More than 10% of the LLM requests of {who} fail"),
            "{{ $value | humanizePercentage }} of LLM requests failed over 10 minutes (rate limits, overload, server errors, timeouts or client errors). Users get late or fallback replies.".to_owned(),
        ),
        alert(
            "BotfleetUnpricedModelCalls",
            "warning",
            format!(
                "sum by (namespace, model) (increase(botfleet_llm_unpriced_calls_total{{{sel}}}[15m])) > 0"
            ),
            "0m",
            format!("{who} calls model {{{{ $labels.model }}}} that has no price"),
            "Calls to {{ $labels.model }} are not in spec.pricing, so their cost is not counted against the budget. Add a price for the model.".to_owned(),
        ),
        alert(
            "BotfleetUpdateBacklog",
            "warning",
            format!("max by (namespace) (botfleet_inbox_pending{{{sel}}}) > 100"),
            "10m",
            format!("{who} has a backlog of unprocessed Telegram updates"),
            "{{ $value }} updates wait in the inbox: replies are delayed. The workers are slow (LLM latency) or stuck.".to_owned(),
        ),
        alert(
            "BotfleetNoReadyReplica",
            "critical",
            format!(
                "max by (namespace, deployment) (kube_deployment_status_replicas_available{{namespace=\"{ns}\",deployment=~\"{deployments}\"}}) < 1 and on (namespace, deployment) max by (namespace, deployment) (kube_deployment_spec_replicas{{namespace=\"{ns}\",deployment=~\"{deployments}\"}}) > 0"
            ),
            "5m",
            format!("{who}: Deployment {{{{ $labels.deployment }}}} has no ready replica"),
            "No pod of {{ $labels.deployment }} is available: the bot does not answer (or, for the scheduler, sends no follow-ups). Check the pods' events and logs.".to_owned(),
        ),
        alert(
            "BotfleetHandoffWaiting",
            "warning",
            format!(
                "max by (namespace) (botfleet_handoff_oldest_waiting_seconds{{{sel}}}) > {handoff_wait}"
            ),
            "1m",
            format!("A lead of {who} waits for a person"),
            format!("A lead handed over to a person has waited {{{{ $value | humanizeDuration }}}} and no one has taken it (handoff.waitAlertAfter is {handoff_wait}s). Take it with the Take button or /leads in Telegram."),
        ),
    ]
}
