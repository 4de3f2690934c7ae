//! The operator process end to end against the in-memory API server: watches, `Controller::owns`,
//! Lease leader election between two replicas, graceful shutdown.

use std::time::Duration;

use botfleet_operator::controller::{RunArgs, run_with_client};
use botfleet_operator::crd::TelegramBot;
use botfleet_operator::fixtures::FakeApiServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn args(identity: &str) -> RunArgs {
    RunArgs {
        namespaces: vec![],
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        leader_election_lease: "botfleet-operator".into(),
        leader_election_namespace: Some("botfleet-system".into()),
        identity: Some(identity.into()),
        disable_leader_election: false,
        default_bot_image: "ghcr.io/botfleet/botfleet-bot:test".into(),
        bot_image_pull_policy: "IfNotPresent".into(),
        telegram_api_url: "http://127.0.0.1:9".into(),
        log_format: "text".into(),
        bot_log_format: "json".into(),
        resync_seconds: 300,
    }
}

async fn create_bot(server: &FakeApiServer, namespace: &str) {
    let secrets: Api<Secret> = Api::namespaced(server.client(), namespace);
    let secret: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "tg"}, "stringData": {"token": "1:x"}}))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let bot: TelegramBot = serde_json::from_value(json!({
        "apiVersion": "botfleet.dev/v1alpha1", "kind": "TelegramBot",
        "metadata": {"name": "demo", "namespace": namespace},
        "spec": {"telegram": {"tokenSecretRef": {"name": "tg", "key": "token"}},
                 "llm": {"model": "claude-haiku-4-5",
                         "apiKeySecretRef": {"name": "llm", "key": "apiKey"}}},
    }))
    .unwrap();
    Api::<TelegramBot>::namespaced(server.client(), namespace)
        .create(&PostParams::default(), &bot)
        .await
        .unwrap();
}

/// Polls `check` every 50 ms for up to 15 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn the_leader_reconciles_puts_back_a_deleted_child_and_steps_down_on_shutdown() {
    let server = FakeApiServer::new();
    let shutdown = CancellationToken::new();
    let operator = tokio::spawn(run_with_client(
        server.client(),
        args("operator-a"),
        shutdown.clone(),
    ));
    create_bot(&server, "bots").await;

    let deployments: Api<Deployment> = Api::namespaced(server.client(), "bots");
    eventually("the bot's Deployment", || async {
        deployments.get_opt("demo").await.unwrap().is_some()
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(server.client(), "botfleet-system");
    let lease = leases.get("botfleet-operator").await.unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("operator-a")
    );
    let bots: Api<TelegramBot> = Api::namespaced(server.client(), "bots");
    eventually("a status", || async {
        bots.get("demo")
            .await
            .unwrap()
            .status
            .is_some_and(|s| s.observed_generation == Some(1))
    })
    .await;

    // Deleted by hand: the watch on owned Deployments brings the bot back to the reconciler.
    let uid = deployments.get("demo").await.unwrap().metadata.uid;
    deployments
        .delete("demo", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the Deployment put back", || async {
        deployments
            .get_opt("demo")
            .await
            .unwrap()
            .is_some_and(|d| d.metadata.uid != uid)
    })
    .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), operator)
        .await
        .expect("shuts down promptly")
        .unwrap()
        .unwrap();
    let lease = leases.get("botfleet-operator").await.unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity,
        None,
        "released on shutdown"
    );
}

#[tokio::test]
async fn of_two_replicas_only_the_leader_reconciles() {
    let server = FakeApiServer::new();
    let shutdown = CancellationToken::new();
    let a = tokio::spawn(run_with_client(
        server.client(),
        args("operator-a"),
        shutdown.clone(),
    ));
    let leases: Api<Lease> = Api::namespaced(server.client(), "botfleet-system");
    eventually("a leader", || async {
        leases
            .get_opt("botfleet-operator")
            .await
            .unwrap()
            .and_then(|l| l.spec?.holder_identity)
            .is_some()
    })
    .await;
    let b = tokio::spawn(run_with_client(
        server.client(),
        args("operator-b"),
        shutdown.clone(),
    ));
    create_bot(&server, "bots").await;
    let deployments: Api<Deployment> = Api::namespaced(server.client(), "bots");
    eventually("the bot's Deployment", || async {
        deployments.get_opt("demo").await.unwrap().is_some()
    })
    .await;

    // Events name the replica that wrote them: all come from the leader.
    let events: Vec<_> = server
        .paths()
        .into_iter()
        .filter(|p| p.starts_with("/apis/events.k8s.io/"))
        .filter_map(|p| server.object(&p))
        .collect();
    assert!(!events.is_empty());
    assert!(
        events
            .iter()
            .all(|e| e["reportingInstance"] == "operator-a"),
        "{:?}",
        events
            .iter()
            .map(|e| &e["reportingInstance"])
            .collect::<Vec<_>>()
    );
    let deployment_applies = server
        .requests()
        .iter()
        .filter(|r| r.method == http::Method::PATCH && r.path.contains("/deployments/"))
        .count();
    assert_eq!(
        deployment_applies, 1,
        "one apply of the Deployment, by one replica"
    );

    shutdown.cancel();
    for task in [a, b] {
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn a_namespace_list_limits_what_is_reconciled() {
    let server = FakeApiServer::new();
    let shutdown = CancellationToken::new();
    let mut args = args("operator-a");
    args.namespaces = vec!["team-a".into(), "team-b".into()];
    args.disable_leader_election = true;
    let operator = tokio::spawn(run_with_client(server.client(), args, shutdown.clone()));
    create_bot(&server, "team-b").await;
    create_bot(&server, "elsewhere").await;
    let in_b: Api<Deployment> = Api::namespaced(server.client(), "team-b");
    eventually("the team-b bot's Deployment", || async {
        in_b.get_opt("demo").await.unwrap().is_some()
    })
    .await;
    let elsewhere: Api<Deployment> = Api::namespaced(server.client(), "elsewhere");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        elsewhere.get_opt("demo").await.unwrap().is_none(),
        "not watched"
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), operator)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
