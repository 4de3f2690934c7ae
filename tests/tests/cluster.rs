//! End to end on a real cluster. The tests are `#[ignore]`d (they need `KUBECONFIG`), so a run
//! without a cluster reports them as ignored; run them with
//! `KUBECONFIG=... cargo test -p botfleet-tests --test cluster -- --ignored` (see
//! docs/operations.md). They always compile.
//!
//! Applies the TelegramBot CRD (`crds/`) and the prometheus-operator CRDs (`../shared/crds/
//! prometheus-operator/`, or `$BOTFLEET_SHARED_DIR/crds/prometheus-operator/`), starts the
//! controller in-process, applies `examples/polling-sqlite.yaml` in a fresh namespace and waits
//! for the children and the status. The bot pods need not start (no real tokens): the test is
//! about what the operator does.

use std::path::PathBuf;
use std::time::Duration;

use botfleet_operator::crd::TelegramBot;
use botfleet_operator::process::{RunArgs, run_with_client};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const MANAGER: &str = "botfleet-tests";

fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

fn shared_dir() -> PathBuf {
    std::env::var_os("BOTFLEET_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("../shared"))
}

/// The cluster's client; these tests run only when asked for (`--ignored`), so a missing
/// `KUBECONFIG` is a failure, not a skip.
async fn cluster() -> Client {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: the cluster suite needs a cluster"
    );
    Client::try_default()
        .await
        .expect("no client could be built from KUBECONFIG")
}

/// The CRDs applied, a fresh namespace, and the operator running for it in-process.
struct Setup {
    client: Client,
    namespace: String,
    shutdown: CancellationToken,
    operator: tokio::task::JoinHandle<()>,
}

impl Setup {
    async fn start(prefix: &str) -> Self {
        let client = cluster().await;
        apply_crd(
            &client,
            &workspace_dir().join("crds/telegrambots.botfleet.dev.yaml"),
        )
        .await;
        let monitoring_crds = shared_dir().join("crds/prometheus-operator");
        for file in [
            "monitoring.coreos.com_servicemonitors.yaml",
            "monitoring.coreos.com_prometheusrules.yaml",
        ] {
            apply_crd(&client, &monitoring_crds.join(file)).await;
        }
        let namespace = format!(
            "{prefix}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() % 100_000_000)
                .unwrap_or_default()
        );
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("creating the test namespace");
        let shutdown = CancellationToken::new();
        let operator = {
            let (client, args, shutdown) = (client.clone(), run_args(&namespace), shutdown.clone());
            tokio::spawn(async move {
                run_with_client(client, args, shutdown)
                    .await
                    .expect("the operator runs");
            })
        };
        Self {
            client,
            namespace,
            shutdown,
            operator,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.operator).await;
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.namespace, &DeleteParams::default())
            .await;
    }
}

fn yaml_documents(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            serde_json::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

async fn apply_crd(client: &Client, path: &std::path::Path) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for doc in yaml_documents(path) {
        let name = doc["metadata"]["name"]
            .as_str()
            .expect("CRD name")
            .to_string();
        crds.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&doc),
        )
        .await
        .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
        eventually(&format!("CRD {name} established"), || async {
            crds.get(&name)
                .await
                .ok()
                .and_then(|c| c.status)
                .is_some_and(|s| {
                    s.conditions
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
        })
        .await;
    }
}

/// Applies every document of a manifest into `namespace`.
async fn apply_manifest(client: &Client, namespace: &str, path: &std::path::Path) {
    for mut doc in yaml_documents(path) {
        doc["metadata"]["namespace"] = json!(namespace);
        let api_version = doc["apiVersion"].as_str().expect("apiVersion").to_string();
        let kind = doc["kind"].as_str().expect("kind").to_string();
        let name = doc["metadata"]["name"].as_str().expect("name").to_string();
        let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
        let (resource, _) =
            kube::discovery::pinned_kind(client, &GroupVersionKind::gvk(group, version, &kind))
                .await
                .unwrap_or_else(|e| panic!("discovering {api_version}/{kind}: {e}"));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&doc),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
    }
}

/// Polls `check` every second for up to 90 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..90 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn run_args(namespace: &str) -> RunArgs {
    RunArgs {
        namespaces: vec![namespace.to_string()],
        metrics_addr: "127.0.0.1:0".parse().expect("address"),
        leader_election_lease: "botfleet-operator-e2e".into(),
        leader_election_namespace: Some(namespace.to_string()),
        identity: Some("cluster-test".into()),
        disable_leader_election: false,
        default_bot_image: botfleet_operator::render::DEFAULT_BOT_IMAGE.into(),
        bot_image_pull_policy: "IfNotPresent".into(),
        // Polling bots cost no Telegram call; nothing should go out.
        telegram_api_url: "http://127.0.0.1:9".into(),
        log_format: "text".into(),
        bot_log_format: "json".into(),
        resync_seconds: 30,
        concurrency: 16,
        api_qps: 100,
        api_burst: 200,
        shutdown_grace_seconds: 8,
        bot_ingress_namespace: "ingress-nginx".into(),
        bot_monitoring_namespace: "monitoring".into(),
    }
}

#[tokio::test]
#[ignore = "needs KUBECONFIG"]
async fn polling_sqlite_example_becomes_children_and_status() {
    let setup = Setup::start("botfleet-e2e").await;
    let (client, namespace) = (setup.client.clone(), setup.namespace.clone());
    apply_manifest(
        &client,
        &namespace,
        &workspace_dir().join("examples/polling-sqlite.yaml"),
    )
    .await;

    let bots: Api<TelegramBot> = Api::namespaced(client.clone(), &namespace);
    let bot = bots.get("hello-bot").await.expect("the example's bot");
    let uid = bot.uid().expect("uid");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    eventually("Deployment hello-bot", || async {
        deployments
            .get_opt("hello-bot")
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;
    for (api_version, kind, plural, name) in [
        ("v1", "ConfigMap", "configmaps", "hello-bot-config"),
        ("v1", "Service", "services", "hello-bot"),
        ("v1", "ServiceAccount", "serviceaccounts", "hello-bot"),
        (
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            "hello-bot-data",
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "Role",
            "roles",
            "hello-bot-scheduler",
        ),
        ("apps/v1", "Deployment", "deployments", "hello-bot"),
    ] {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource = kube::core::ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, kind),
            plural,
        );
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
        let object = api
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("{kind} {name}: {e}"));
        assert!(
            object
                .owner_references()
                .iter()
                .any(|r| r.uid == uid && r.controller == Some(true)),
            "{kind} {name} is owned by the bot"
        );
        assert_eq!(
            object
                .labels()
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("botfleet-operator")
        );
    }
    eventually("status with conditions", || async {
        bots.get("hello-bot")
            .await
            .ok()
            .and_then(|b| b.status)
            .is_some_and(|s| {
                s.observed_generation == Some(1)
                    && [
                        "Ready",
                        "Progressing",
                        "Degraded",
                        "WebhookReady",
                        "MonitoringReady",
                    ]
                    .iter()
                    .all(|t| s.conditions.iter().any(|c| c.type_ == *t))
            })
    })
    .await;
    let status = bots
        .get("hello-bot")
        .await
        .expect("bot")
        .status
        .expect("status");
    let degraded = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("Degraded");
    assert_eq!(degraded.status, "False", "{}", degraded.message);

    // A child deleted by hand comes back.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let old_uid = config_maps
        .get("hello-bot-config")
        .await
        .expect("ConfigMap")
        .uid();
    config_maps
        .delete("hello-bot-config", &DeleteParams::default())
        .await
        .expect("delete ConfigMap");
    eventually("ConfigMap put back", || async {
        config_maps
            .get_opt("hello-bot-config")
            .await
            .ok()
            .flatten()
            .is_some_and(|c| c.uid() != old_uid)
    })
    .await;

    // Monitoring on: the CRDs are served, so the ServiceMonitor and PrometheusRule appear.
    bots.patch(
        "hello-bot",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"monitoring": {"serviceMonitor": {"enabled": true}, "prometheusRule": {"enabled": true}}}})),
    )
    .await
    .expect("enable monitoring");
    eventually("MonitoringReady=True", || async {
        bots.get("hello-bot")
            .await
            .ok()
            .and_then(|b| b.status)
            .is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == "MonitoringReady" && c.status == "True" && c.reason == "Applied"
                })
            })
    })
    .await;

    setup.stop().await;
}

#[tokio::test]
#[ignore = "needs KUBECONFIG"]
async fn fields_removed_from_the_spec_are_pruned_from_the_children() {
    let setup = Setup::start("botfleet-prune").await;
    let (client, namespace) = (setup.client.clone(), setup.namespace.clone());
    // A webhook bot; its token is fake, so the registration fails, but the children are applied.
    let bot: TelegramBot = serde_json::from_value(json!({
        "apiVersion": "botfleet.dev/v1alpha1", "kind": "TelegramBot",
        "metadata": {"name": "prune-bot", "namespace": namespace},
        "spec": {
            "mode": "webhook",
            "webhook": {"domain": "bots.example.com", "ingressClassName": "nginx",
                        "tls": {"clusterIssuer": "letsencrypt-prod"}},
            "telegram": {"tokenSecretRef": {"name": "prune-bot-telegram", "key": "token"}},
            "llm": {"model": "claude-haiku-4-5",
                    "apiKeySecretRef": {"name": "prune-bot-llm", "key": "apiKey"}},
        },
    }))
    .expect("a TelegramBot");
    let bots: Api<TelegramBot> = Api::namespaced(client.clone(), &namespace);
    bots.create(&PostParams::default(), &bot)
        .await
        .expect("create the bot");
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &namespace);
    eventually("the Ingress with class and TLS", || async {
        ingresses
            .get_opt("prune-bot")
            .await
            .ok()
            .flatten()
            .and_then(|i| i.spec)
            .is_some_and(|s| s.ingress_class_name.as_deref() == Some("nginx") && s.tls.is_some())
    })
    .await;

    // The operator stops setting them: the API server prunes them (server-side apply).
    bots.patch(
        "prune-bot",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"webhook": {"ingressClassName": null, "tls": null}}})),
    )
    .await
    .expect("edit the spec");
    eventually(
        "the Ingress without class, TLS and cert-manager annotation",
        || async {
            ingresses
                .get_opt("prune-bot")
                .await
                .ok()
                .flatten()
                .is_some_and(|i| {
                    let spec = i.spec.clone().unwrap_or_default();
                    spec.ingress_class_name.is_none()
                        && spec.tls.is_none()
                        && !i
                            .annotations()
                            .contains_key("cert-manager.io/cluster-issuer")
                })
        },
    )
    .await;
    setup.stop().await;
}
