//! The ServiceMonitor and PrometheusRule the operator renders: valid against the upstream
//! prometheus-operator CRD schemas (v0.93, in `../shared/crds/prometheus-operator/`), alerts that
//! are complete and scoped to the one bot the ServiceMonitor scrapes.

mod common;

use std::collections::BTreeSet;

use botfleet_operator::render::{self, ALERT_NAMES, Children, RenderDefaults};
use serde_json::Value;

fn render(bot: &botfleet_operator::crd::TelegramBot) -> Children {
    render::render_all(bot, &RenderDefaults::default()).unwrap()
}

/// The openAPIV3Schema of an upstream CRD file.
fn upstream_schema(file: &str) -> Value {
    let path = common::repo_root()
        .join("../shared/crds/prometheus-operator")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the upstream CRDs ship beside the repo in shared/)",
            path.display()
        )
    });
    let crd: Value = serde_yaml_ng::from_str(&text).unwrap();
    let version = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1")
        .expect("a v1 version")
        .clone();
    version["schema"]["openAPIV3Schema"].clone()
}

fn assert_valid(file: &str, object: &Value) {
    let validator = jsonschema::validator_for(&upstream_schema(file)).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(object)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{file}: {errors:#?}");
}

#[test]
fn the_service_monitor_and_rule_are_valid_against_the_upstream_crds() {
    let c = render(&common::webhook_postgres());
    let sm = serde_json::to_value(c.service_monitor.as_ref().unwrap()).unwrap();
    let pr = serde_json::to_value(c.prometheus_rule.as_ref().unwrap()).unwrap();
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["kind"], "ServiceMonitor");
    assert_eq!(pr["kind"], "PrometheusRule");
    assert_valid("monitoring.coreos.com_servicemonitors.yaml", &sm);
    assert_valid("monitoring.coreos.com_prometheusrules.yaml", &pr);

    // The schemas do bite: a rule without expr is refused.
    let mut broken = pr.clone();
    broken["spec"]["groups"][0]["rules"][0]
        .as_object_mut()
        .unwrap()
        .remove("expr");
    let validator = jsonschema::validator_for(&upstream_schema(
        "monitoring.coreos.com_prometheusrules.yaml",
    ))
    .unwrap();
    assert!(!validator.is_valid(&broken));
}

#[test]
fn the_service_monitor_scrapes_the_metrics_port_of_every_bot_service() {
    let c = render(&common::webhook_postgres());
    let sm = c.service_monitor.as_ref().unwrap();
    assert_eq!(sm.spec.endpoints.len(), 1);
    assert_eq!(sm.spec.endpoints[0].port, "metrics");
    assert_eq!(sm.spec.endpoints[0].path.as_deref(), Some("/metrics"));
    assert_eq!(sm.spec.endpoints[0].interval.as_deref(), Some("30s"));
    assert_eq!(
        sm.spec.namespace_selector.as_ref().unwrap().match_names,
        vec!["bots".to_owned()]
    );
    let selector = sm.spec.selector.match_labels.as_ref().unwrap();
    let services: Vec<_> = std::iter::once(&c.service)
        .chain(c.scheduler_service.as_ref())
        .collect();
    assert_eq!(services.len(), 2);
    for service in services {
        let labels = service.metadata.labels.as_ref().unwrap();
        assert!(
            selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
            "{:?} is not selected",
            service.metadata.name
        );
        let ports = service.spec.as_ref().unwrap().ports.as_ref().unwrap();
        assert!(ports.iter().any(|p| p.name.as_deref() == Some("metrics")));
    }
}

#[test]
fn every_alert_is_complete_and_listed() {
    let c = render(&common::webhook_postgres());
    let rule = c.prometheus_rule.as_ref().unwrap();
    assert_eq!(rule.spec.groups.len(), 1);
    let alerts = &rule.spec.groups[0].rules;
    let names: Vec<&str> = alerts.iter().map(|a| a.alert.as_str()).collect();
    assert_eq!(
        names, ALERT_NAMES,
        "ALERT_NAMES lists every rendered alert, in order"
    );
    for a in alerts {
        let severity = a.labels.get("severity").map(String::as_str);
        assert!(
            matches!(severity, Some("warning" | "critical")),
            "{}",
            a.alert
        );
        for key in ["summary", "description"] {
            assert!(
                a.annotations.get(key).is_some_and(|s| s.len() > 20),
                "{} {key}",
                a.alert
            );
        }
        assert_eq!(
            a.annotations["runbook_url"],
            format!(
                "https://github.com/botfleet/botfleet/blob/main/docs/runbooks.md#{}",
                a.alert.to_lowercase()
            )
        );
        assert!(a.for_.is_some(), "{}", a.alert);
    }
}

/// The series each alert reads, with the label matchers it puts on them.
fn selectors(expr: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(open) = rest.find('{') {
        let metric: String = rest[..open]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let close = rest[open..].find('}').unwrap() + open;
        out.push((metric, rest[open + 1..close].to_owned()));
        rest = &rest[close + 1..];
    }
    out
}

#[test]
fn alerts_read_only_this_bots_series_and_use_the_bots_metric_names() {
    let known: BTreeSet<&str> = [
        "botfleet_llm_spend_usd",
        "botfleet_llm_budget_usd",
        "botfleet_llm_cost_usd_total",
        "botfleet_llm_requests_total",
        "botfleet_llm_unpriced_calls_total",
        "botfleet_inbox_pending",
        "botfleet_handoff_oldest_waiting_seconds",
        "kube_deployment_status_replicas_available",
        "kube_deployment_spec_replicas",
    ]
    .into();
    let c = render(&common::webhook_postgres());
    for a in &c.prometheus_rule.as_ref().unwrap().spec.groups[0].rules {
        let series = selectors(&a.expr);
        assert!(!series.is_empty(), "{}", a.alert);
        for (metric, matchers) in series {
            assert!(
                known.contains(metric.as_str()),
                "{}: unknown metric {metric}",
                a.alert
            );
            assert!(
                matchers.contains(r#"namespace="bots""#),
                "{}: {matchers}",
                a.alert
            );
            if metric.starts_with("kube_") {
                assert!(
                    matchers.contains(r#"deployment=~"sales-bot|sales-bot-scheduler""#),
                    "{}",
                    a.alert
                );
            } else {
                // The ServiceMonitor's targets carry service=<Service name>.
                assert!(
                    matchers.contains(r#"service=~"sales-bot|sales-bot-scheduler""#),
                    "{}",
                    a.alert
                );
            }
        }
    }
    // Budget alerts are per period (day, month) and compare spend with a configured budget.
    let budget = &c.prometheus_rule.as_ref().unwrap().spec.groups[0].rules[0];
    assert!(
        budget.expr.contains("by (namespace, period)"),
        "{}",
        budget.expr
    );
    assert!(budget.expr.contains(">= 0.8 < 1"), "{}", budget.expr);

    // With SQLite there is no scheduler Deployment to watch.
    let c = render(&common::polling_sqlite_with_rules());
    let rules = &c.prometheus_rule.as_ref().unwrap().spec.groups[0].rules;
    let no_ready = rules
        .iter()
        .find(|r| r.alert == "BotfleetNoReadyReplica")
        .unwrap();
    assert!(
        no_ready.expr.contains(r#"deployment=~"hello-bot""#),
        "{}",
        no_ready.expr
    );
}

#[test]
fn the_rules_file_is_a_plain_prometheus_rules_file() {
    let c = render(&common::webhook_postgres());
    let text = render::prometheus_rules_file(c.prometheus_rule.as_ref().unwrap());
    let file: Value = serde_yaml_ng::from_str(&text).unwrap();
    let keys: Vec<&String> = file.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["groups"]);
    assert_eq!(
        file["groups"][0]["rules"].as_array().unwrap().len(),
        ALERT_NAMES.len()
    );
    assert_eq!(file["groups"][0]["rules"][0]["for"], "1m");
}
