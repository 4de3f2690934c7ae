//! Services and the webhook Ingress.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, NetworkPolicy, NetworkPolicyIngressRule,
    NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::contract;
use super::meta::{Component, Ctx};
use super::names;
use botfleet_api::Mode;

/// Annotation that makes cert-manager issue the Ingress certificate from a ClusterIssuer.
pub const CLUSTER_ISSUER_ANNOTATION: &str = "cert-manager.io/cluster-issuer";
/// Annotation that makes cert-manager issue the Ingress certificate from an Issuer.
pub const ISSUER_ANNOTATION: &str = "cert-manager.io/issuer";

fn service_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// `<bot>`: the update handlers, port `http` (the webhook, what the Ingress targets) and
/// port `metrics` (what the ServiceMonitor scrapes).
pub(super) fn service(ctx: &Ctx<'_>) -> Service {
    Service {
        metadata: ctx.metadata(names::handler(&ctx.name), Component::Handler),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(ctx.selector(Component::Handler)),
            ports: Some(vec![
                service_port(contract::HTTP_PORT_NAME, contract::HTTP_CONTAINER_PORT),
                service_port(
                    contract::METRICS_PORT_NAME,
                    contract::METRICS_CONTAINER_PORT,
                ),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `<bot>-scheduler`: headless, port `metrics`, only so the ServiceMonitor scrapes the
/// scheduler pods too.
pub(super) fn scheduler_service(ctx: &Ctx<'_>) -> Service {
    Service {
        metadata: ctx.metadata(names::scheduler(&ctx.name), Component::Scheduler),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(ctx.selector(Component::Scheduler)),
            ports: Some(vec![service_port(
                contract::METRICS_PORT_NAME,
                contract::METRICS_CONTAINER_PORT,
            )]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The routes of the Ingress `<bot>`: in webhook mode `https://<webhook.domain><path>` (path
/// type `Exact`); with `dashboard.enabled` and a domain (`dashboard.domain`, else
/// `webhook.domain`) `https://<domain><path>/app` and below (type `Prefix`), also for a polling
/// bot. Both go to the Service's `http` port. Empty: no Ingress.
fn routes(ctx: &Ctx<'_>) -> Vec<(String, String, &'static str)> {
    let bot = &ctx.spec.bot;
    let path = ctx.spec.webhook_path(&ctx.name);
    let mut routes = Vec::new();
    if bot.mode == Mode::Webhook
        && let Some(domain) = bot.webhook.as_ref().and_then(|w| w.domain.clone())
    {
        routes.push((domain, path.clone(), "Exact"));
    }
    if let Some(domain) = bot.dashboard_domain() {
        routes.push((
            domain.to_owned(),
            format!("{}/app", path.trim_end_matches('/')),
            "Prefix",
        ));
    }
    routes
}

/// `<bot>` when it has [`routes`] (the webhook, the dashboard). TLS for every host: a
/// cert-manager (Cluster)Issuer annotation and the Secret `<bot>-webhook-tls`, or the given
/// `webhook.tls.secretName` as it is.
pub(super) fn ingress(ctx: &Ctx<'_>) -> Option<Ingress> {
    let routes = routes(ctx);
    if routes.is_empty() {
        return None;
    }
    let webhook = ctx.spec.bot.webhook.clone().unwrap_or_default();
    let mut hosts: Vec<String> = routes.iter().map(|(host, _, _)| host.clone()).collect();
    hosts.dedup();
    let mut annotations = BTreeMap::new();
    let mut tls = None;
    if let Some(t) = &webhook.tls {
        let secret_name = match (&t.cluster_issuer, &t.issuer, &t.secret_name) {
            (_, _, Some(secret)) => secret.clone(),
            (Some(issuer), _, _) => {
                annotations.insert(CLUSTER_ISSUER_ANNOTATION.to_owned(), issuer.clone());
                names::webhook_tls_secret(&ctx.name)
            }
            (None, Some(issuer), None) => {
                annotations.insert(ISSUER_ANNOTATION.to_owned(), issuer.clone());
                names::webhook_tls_secret(&ctx.name)
            }
            (None, None, None) => names::webhook_tls_secret(&ctx.name),
        };
        tls = Some(vec![IngressTLS {
            hosts: Some(hosts.clone()),
            secret_name: Some(secret_name),
        }]);
    }
    let mut metadata = ctx.metadata(names::ingress(&ctx.name), Component::Handler);
    if !annotations.is_empty() {
        metadata.annotations = Some(annotations);
    }
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: names::handler(&ctx.name),
            port: Some(ServiceBackendPort {
                name: Some(contract::HTTP_PORT_NAME.into()),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    let rules = hosts
        .iter()
        .map(|host| IngressRule {
            host: Some(host.clone()),
            http: Some(HTTPIngressRuleValue {
                paths: routes
                    .iter()
                    .filter(|(h, _, _)| h == host)
                    .map(|(_, path, path_type)| HTTPIngressPath {
                        path: Some(path.clone()),
                        path_type: (*path_type).into(),
                        backend: backend.clone(),
                    })
                    .collect(),
            }),
        })
        .collect();
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: webhook.ingress_class_name.clone(),
            tls,
            rules: Some(rules),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// `<bot>`, unless `spec.networkPolicy.enabled: false`: ingress to every pod of the bot only
/// on the `http` port (webhook, dashboard) from the Ingress controller's namespace when the
/// Ingress exists, and on the
/// metrics port (`/metrics`, `/api/v1/usage`) from the monitoring namespace and the
/// operator's. Egress stays open (Telegram, the LLM API, the database, the API server).
pub(super) fn network_policy(ctx: &Ctx<'_>) -> Option<NetworkPolicy> {
    if !ctx.spec.network_policy_enabled() {
        return None;
    }
    let peers = &ctx.defaults.network;
    let namespace = |ns: &str| NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                ns.to_owned(),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let port = |name: &str| NetworkPolicyPort {
        port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    let mut rules = Vec::new();
    if !routes(ctx).is_empty() {
        rules.push(NetworkPolicyIngressRule {
            from: Some(vec![namespace(&peers.ingress_namespace)]),
            ports: Some(vec![port(contract::HTTP_PORT_NAME)]),
        });
    }
    let mut metrics_from = vec![namespace(&peers.monitoring_namespace)];
    if peers.operator_namespace != peers.monitoring_namespace {
        metrics_from.push(namespace(&peers.operator_namespace));
    }
    rules.push(NetworkPolicyIngressRule {
        from: Some(metrics_from),
        ports: Some(vec![port(contract::METRICS_PORT_NAME)]),
    });
    let pods = BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            super::meta::APP_NAME.to_owned(),
        ),
        ("app.kubernetes.io/instance".to_owned(), ctx.name.clone()),
    ]);
    Some(NetworkPolicy {
        metadata: ctx.metadata(names::network_policy(&ctx.name), Component::Handler),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(pods),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(rules),
            egress: None,
        }),
    })
}
