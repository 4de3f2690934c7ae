//! The operator process end to end against the in-memory API server: watches, `Controller::owns`,
//! Lease leader election between two replicas, graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use botfleet_operator::controller::{Context, ContextConfig, run_controllers};
use botfleet_operator::crd::TelegramBot;
use botfleet_operator::fixtures::FakeApiServer;
use botfleet_operator::process::metrics::Metrics;
use botfleet_operator::process::{RunArgs, run_with_client};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
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
        concurrency: 16,
        api_qps: 100,
        api_burst: 200,
        shutdown_grace_seconds: 8,
        bot_ingress_namespace: "ingress-nginx".into(),
        bot_monitoring_namespace: "monitoring".into(),
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

/// The sum of `botfleet_reconcile_total` over its results.
fn reconciles(ctx: &Context) -> u64 {
    ctx.metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("botfleet_reconcile_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn context(server: &FakeApiServer, adjust: impl FnOnce(&mut ContextConfig)) -> Arc<Context> {
    let mut config = ContextConfig {
        debounce: Duration::from_millis(100),
        ..ContextConfig::default()
    };
    adjust(&mut config);
    Arc::new(Context::new(
        server.client(),
        config,
        Arc::new(Metrics::default()),
    ))
}

#[tokio::test]
async fn status_writes_do_not_reconcile_and_a_spec_change_does() {
    let server = FakeApiServer::new();
    let ctx = context(&server, |_| {});
    let stop = CancellationToken::new();
    let controllers = tokio::spawn(run_controllers(
        server.client(),
        &[],
        ctx.clone(),
        stop.clone(),
    ));
    create_bot(&server, "bots").await;
    let bots: Api<TelegramBot> = Api::namespaced(server.client(), "bots");
    eventually("a status", || async {
        bots.get("demo")
            .await
            .unwrap()
            .status
            .is_some_and(|s| s.observed_generation == Some(1))
    })
    .await;
    // Let the events of the first pass (the operator's own applies) play out.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = reconciles(&ctx);

    // Someone (or the operator itself) writes the status: that is no reason to reconcile.
    for n in 0..5 {
        bots.patch_status(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 10 + n}})),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(reconciles(&ctx), settled, "status-only updates reconciled");

    // A spec change (new generation) does.
    bots.patch(
        "demo",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"owners": [42]}})),
    )
    .await
    .unwrap();
    eventually("a reconcile of generation 2", || async {
        bots.get("demo")
            .await
            .unwrap()
            .status
            .is_some_and(|s| s.observed_generation == Some(2))
    })
    .await;
    assert!(reconciles(&ctx) > settled);
    stop.cancel();
    controllers.await.unwrap();
}

#[tokio::test]
async fn a_stop_returns_within_ten_seconds_whatever_the_queue_holds() {
    // A Telegram API that accepts connections and never answers: every webhook bot's
    // reconcile hangs in getWebhookInfo (up to the 15 s Telegram timeout).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let server = FakeApiServer::new();
    let secrets: Api<Secret> = Api::namespaced(server.client(), "bots");
    let secret: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "tg"}, "stringData": {"token": "1:x"}}))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let bots: Api<TelegramBot> = Api::namespaced(server.client(), "bots");
    for i in 0..200 {
        let bot: TelegramBot = serde_json::from_value(json!({
            "apiVersion": "botfleet.dev/v1alpha1", "kind": "TelegramBot",
            "metadata": {"name": format!("bot-{i}"), "namespace": "bots"},
            "spec": {"mode": "webhook", "webhook": {"domain": "bots.example.com"},
                     "telegram": {"tokenSecretRef": {"name": "tg", "key": "token"}, "apiUrl": silent},
                     "llm": {"model": "claude-haiku-4-5"}},
        }))
        .unwrap();
        bots.create(&PostParams::default(), &bot).await.unwrap();
    }
    let ctx = context(&server, |c| {
        c.concurrency = 4;
        c.telegram_timeout = Duration::from_secs(60);
    });
    let stop = CancellationToken::new();
    let controllers = tokio::spawn(run_controllers(
        server.client(),
        &[],
        ctx.clone(),
        stop.clone(),
    ));
    // Reconciles are in flight (hanging at Telegram) and the rest is queued.
    eventually("reconciles in flight", || async {
        server
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/finalizers") || r.path.contains("/telegrambots/bot-"))
            .count()
            >= 4
    })
    .await;
    let stopped_at = std::time::Instant::now();
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), controllers)
        .await
        .expect("the controllers stop within 10 s of the signal")
        .unwrap();
    assert!(stopped_at.elapsed() < Duration::from_secs(10));
    assert!(
        reconciles(&ctx) < 200,
        "the queue was not worked off before stopping"
    );
}
