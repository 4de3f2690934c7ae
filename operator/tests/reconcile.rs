//! The reconciler against an in-memory Kubernetes API server and a fake Telegram Bot API.

use std::sync::Arc;
use std::time::Duration;

use botfleet_operator::controller::cache::ChildKey;
use botfleet_operator::controller::children::KINDS;
use botfleet_operator::controller::{
    Context, ContextConfig, reconcile, status::condition, watch_children,
};
use botfleet_operator::crd::TelegramBot;
use botfleet_operator::fixtures::{FakeApiServer, FakeTelegram};
use botfleet_operator::process::metrics::Metrics;
use botfleet_operator::render::RenderDefaults;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const NS: &str = "bots";
const TOKEN: &str = "123456:test-token";

struct Harness {
    server: FakeApiServer,
    telegram: FakeTelegram,
    ctx: Arc<Context>,
    bots: Api<TelegramBot>,
    /// Stops the watches that keep the operator's cache (started by the first reconcile).
    watches: CancellationToken,
    watching: std::sync::atomic::AtomicBool,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.watches.cancel();
    }
}

impl Harness {
    async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    async fn with_config(adjust: impl FnOnce(&mut ContextConfig)) -> Self {
        let server = FakeApiServer::new();
        let telegram = FakeTelegram::start().await;
        let mut config = ContextConfig {
            defaults: RenderDefaults {
                telegram_api_url: telegram.url.clone(),
                ..RenderDefaults::default()
            },
            discovery_ttl: Duration::ZERO,
            telegram_timeout: Duration::from_secs(5),
            webhook_info_interval: Duration::ZERO,
            ..ContextConfig::default()
        };
        adjust(&mut config);
        let ctx = Arc::new(Context::new(
            server.client(),
            config,
            Arc::new(Metrics::default()),
        ));
        let bots = Api::namespaced(server.client(), NS);
        let secrets: Api<Secret> = Api::namespaced(server.client(), NS);
        for (name, key, value) in [
            ("sales-bot-telegram", "token", TOKEN),
            ("sales-bot-llm", "apiKey", "sk-test"),
            ("sales-bot-db", "url", "postgres://db/bot"),
        ] {
            let secret: Secret = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name},
                "stringData": {key: value},
            }))
            .unwrap();
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .unwrap();
        }
        server.clear_requests();
        Self {
            server,
            telegram,
            ctx,
            bots,
            watches: CancellationToken::new(),
            watching: std::sync::atomic::AtomicBool::new(false),
        }
    }

    async fn create_bot(&self, spec: Value) -> TelegramBot {
        let bot: TelegramBot = serde_json::from_value(json!({
            "apiVersion": "botfleet.dev/v1alpha1", "kind": "TelegramBot",
            "metadata": {"name": "sales-bot", "namespace": NS},
            "spec": spec,
        }))
        .unwrap();
        let bot = self
            .bots
            .create(&PostParams::default(), &bot)
            .await
            .unwrap();
        self.server.clear_requests();
        bot
    }

    /// Starts the watches (once) and waits until the cache shows what the server holds, as it
    /// would by the time the controller reconciles after an event.
    async fn settle(&self) {
        if !self
            .watching
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            tokio::spawn(watch_children(
                self.server.client(),
                Some(NS.into()),
                self.ctx.clone(),
                self.watches.clone(),
            ));
            assert!(
                self.ctx
                    .cache
                    .wait_until_synced(Duration::from_secs(10))
                    .await
            );
        }
        let kinds: Vec<&str> = KINDS.iter().map(|k| k.kind).collect();
        for _ in 0..500 {
            let mut children = Vec::new();
            let mut secrets = Vec::new();
            for path in self.server.paths() {
                let Some(object) = self.server.object(&path) else {
                    continue;
                };
                let kind = object["kind"].as_str().unwrap_or_default();
                let meta = &object["metadata"];
                let namespace = meta["namespace"].as_str().unwrap_or_default().to_string();
                let name = meta["name"].as_str().unwrap_or_default().to_string();
                let version = meta["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if kind == "Secret" {
                    secrets.push((namespace, name, version));
                } else if kinds.contains(&kind)
                    && meta["labels"]["app.kubernetes.io/managed-by"] == "botfleet-operator"
                    && self.ctx.cache.is_synced(kind, &namespace)
                {
                    let key = ChildKey {
                        kind: kind.into(),
                        namespace,
                        name,
                    };
                    children.push((key, version));
                }
            }
            let mut cached = self.ctx.cache.versions();
            let mut cached_secrets = self.ctx.cache.secret_versions();
            children.sort();
            secrets.sort();
            cached.sort();
            cached_secrets.sort();
            if children == cached && secrets == cached_secrets {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the operator's cache did not catch up with the API server");
    }

    /// Reconciles the bot as the controller would: from its current state in the API server,
    /// once the watches have seen every change.
    async fn reconcile(
        &self,
    ) -> Result<kube::runtime::controller::Action, botfleet_operator::controller::Error> {
        let bot = self.bots.get("sales-bot").await.unwrap();
        self.settle().await;
        reconcile(Arc::new(bot), self.ctx.clone()).await
    }

    /// The requests one reconcile makes (after the watches caught up).
    async fn requests_of_one_reconcile(&self) -> Vec<String> {
        let bot = self.bots.get("sales-bot").await.unwrap();
        self.settle().await;
        let before = self.server.requests().len();
        reconcile(Arc::new(bot), self.ctx.clone()).await.unwrap();
        self.server.requests()[before..]
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    async fn bot(&self) -> TelegramBot {
        self.bots.get("sales-bot").await.unwrap()
    }

    /// `METHOD /path` of every write since the last `clear_requests`.
    fn writes(&self) -> Vec<String> {
        self.server
            .writes()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Reasons of the Events recorded about the bot, in order.
    fn event_reasons(&self) -> Vec<String> {
        self.server
            .paths()
            .iter()
            .filter(|p| p.starts_with("/apis/events.k8s.io/v1/"))
            .filter_map(|p| self.server.object(p))
            .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn dynamic(&self, api_version: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        Api::namespaced_with(self.server.client(), NS, &resource)
    }
}

fn polling_sqlite() -> Value {
    json!({
        "telegram": {"tokenSecretRef": {"name": "sales-bot-telegram", "key": "token"}},
        "llm": {"provider": "anthropic", "model": "claude-sonnet-4-5",
                "apiKeySecretRef": {"name": "sales-bot-llm", "key": "apiKey"}},
        "pricing": [{"model": "claude-sonnet-4-5", "input": "3.00", "output": "15.00"}],
    })
}

fn webhook_postgres() -> Value {
    let mut spec = polling_sqlite();
    spec["mode"] = json!("webhook");
    spec["replicas"] = json!(2);
    spec["webhook"] = json!({"domain": "bots.example.com", "ingressClassName": "nginx",
                             "tls": {"clusterIssuer": "letsencrypt-prod"}});
    spec["database"] = json!({"urlSecretRef": {"name": "sales-bot-db", "key": "url"}});
    spec
}

fn with_monitoring(mut spec: Value) -> Value {
    spec["monitoring"] =
        json!({"serviceMonitor": {"enabled": true}, "prometheusRule": {"enabled": true}});
    spec
}

fn cond(bot: &TelegramBot, type_: &str) -> (String, String) {
    let c = condition(bot.status.as_ref(), type_)
        .unwrap_or_else(|| panic!("no {type_} condition: {:?}", bot.status));
    (c.status.clone(), c.reason.clone())
}

#[tokio::test]
async fn first_reconcile_creates_every_child_with_owner_references_and_labels() {
    let h = Harness::new().await;
    let bot = h.create_bot(with_monitoring(polling_sqlite())).await;
    h.reconcile().await.unwrap();

    let expected = [
        ("/api/v1", "serviceaccounts", "sales-bot"),
        (
            "/apis/rbac.authorization.k8s.io/v1",
            "roles",
            "sales-bot-scheduler",
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1",
            "rolebindings",
            "sales-bot-scheduler",
        ),
        ("/api/v1", "configmaps", "sales-bot-config"),
        ("/api/v1", "persistentvolumeclaims", "sales-bot-data"),
        ("/apis/apps/v1", "deployments", "sales-bot"),
        ("/api/v1", "services", "sales-bot"),
        ("/apis/networking.k8s.io/v1", "networkpolicies", "sales-bot"),
        (
            "/apis/monitoring.coreos.com/v1",
            "servicemonitors",
            "sales-bot",
        ),
        (
            "/apis/monitoring.coreos.com/v1",
            "prometheusrules",
            "sales-bot",
        ),
    ];
    let uid = bot.uid().unwrap();
    for (gv, plural, name) in expected {
        let path = format!("{gv}/namespaces/{NS}/{plural}/{name}");
        let object = h
            .server
            .object(&path)
            .unwrap_or_else(|| panic!("{path} was not created"));
        let owner = &object["metadata"]["ownerReferences"][0];
        assert_eq!(owner["uid"], json!(uid), "{path}");
        assert_eq!(owner["kind"], "TelegramBot", "{path}");
        assert_eq!(owner["controller"], true, "{path}");
        let labels = &object["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/instance"], "sales-bot", "{path}");
        assert_eq!(
            labels["app.kubernetes.io/managed-by"], "botfleet-operator",
            "{path}"
        );
        assert_eq!(labels["app.kubernetes.io/name"], "botfleet-bot", "{path}");
        assert!(labels["app.kubernetes.io/component"].is_string(), "{path}");
    }
    // Polling + SQLite: no Ingress, no scheduler Deployment, no webhook Secret, no finalizer.
    for path in [
        "/apis/networking.k8s.io/v1/namespaces/bots/ingresses/sales-bot",
        "/apis/apps/v1/namespaces/bots/deployments/sales-bot-scheduler",
        "/api/v1/namespaces/bots/secrets/sales-bot-webhook",
    ] {
        assert!(h.server.object(path).is_none(), "{path} should not exist");
    }
    // Every child went through server-side apply under the one field manager.
    let applies: Vec<_> = h
        .server
        .writes()
        .into_iter()
        .filter(|r| {
            r.content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/apply-patch"))
                && !r.path.ends_with("/status")
        })
        .collect();
    assert_eq!(applies.len(), expected.len(), "{applies:?}");
    // The status too, under a field manager of its own, on the status subresource.
    let status_writes: Vec<_> = h
        .server
        .writes()
        .into_iter()
        .filter(|r| r.path.ends_with("/telegrambots/sales-bot/status"))
        .collect();
    assert_eq!(status_writes.len(), 1, "{status_writes:?}");
    assert!(
        status_writes[0]
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/apply-patch"))
            && status_writes[0]
                .query
                .contains("fieldManager=botfleet-operator-status"),
        "{:?}",
        status_writes[0]
    );
    assert!(
        applies
            .iter()
            .all(|r| r.query.contains("fieldManager=botfleet-operator")
                && r.query.contains("force=true"))
    );
    assert_eq!(
        h.telegram.calls(),
        vec![],
        "a polling bot costs no Telegram call"
    );

    let bot = h.bot().await;
    assert!(bot.finalizers().is_empty());
    let status = bot.status.clone().unwrap();
    assert_eq!(status.observed_generation, bot.meta().generation);
    assert_eq!(
        cond(&bot, "Ready"),
        ("False".into(), "ReplicasNotReady".into())
    );
    assert_eq!(
        cond(&bot, "Progressing"),
        ("True".into(), "RollingOut".into())
    );
    assert_eq!(
        cond(&bot, "Degraded"),
        ("False".into(), "AsExpected".into())
    );
    assert_eq!(
        cond(&bot, "WebhookReady"),
        ("True".into(), "PollingMode".into())
    );
    assert_eq!(
        cond(&bot, "MonitoringReady"),
        ("True".into(), "Applied".into())
    );
    assert!(
        h.event_reasons().contains(&"Created".to_string()),
        "{:?}",
        h.event_reasons()
    );
}

#[tokio::test]
async fn reconciling_an_unchanged_bot_sends_no_request_at_all() {
    for spec in [
        with_monitoring(polling_sqlite()),
        with_monitoring(webhook_postgres()),
    ] {
        // Discovery answers are trusted for a minute, as in production.
        let h = Harness::with_config(|c| c.discovery_ttl = Duration::from_secs(60)).await;
        h.create_bot(spec).await;
        h.reconcile().await.unwrap();
        // Neither reads (the children, the Deployment's rollout, the Secrets come from the
        // watches) nor writes.
        assert_eq!(h.requests_of_one_reconcile().await, Vec::<String>::new());
        assert_eq!(h.requests_of_one_reconcile().await, Vec::<String>::new());
    }
}

#[tokio::test]
async fn a_ready_deployment_makes_the_bot_ready_and_that_is_written_once() {
    let h = Harness::with_config(|c| c.discovery_ttl = Duration::from_secs(60)).await;
    h.create_bot(polling_sqlite()).await;
    h.reconcile().await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(h.server.client(), NS);
    let generation = deployments
        .get("sales-bot")
        .await
        .unwrap()
        .metadata
        .generation;
    deployments
        .patch_status(
            "sales-bot",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
                                            "observedGeneration": generation}}),
            ),
        )
        .await
        .unwrap();
    h.server.clear_requests();
    h.reconcile().await.unwrap();
    let bot = h.bot().await;
    assert_eq!(cond(&bot, "Ready"), ("True".into(), "BotReady".into()));
    assert_eq!(
        cond(&bot, "Progressing"),
        ("False".into(), "RolloutComplete".into())
    );
    assert_eq!(bot.status.as_ref().unwrap().ready_replicas, Some(1));
    assert_eq!(
        h.writes(),
        vec!["PATCH /apis/botfleet.dev/v1alpha1/namespaces/bots/telegrambots/sales-bot/status"]
    );
    assert_eq!(h.requests_of_one_reconcile().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_deleted_child_is_recreated() {
    let h = Harness::new().await;
    h.create_bot(polling_sqlite()).await;
    h.reconcile().await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(h.server.client(), NS);
    let before = config_maps.get("sales-bot-config").await.unwrap();
    config_maps
        .delete("sales-bot-config", &DeleteParams::default())
        .await
        .unwrap();
    h.server.clear_requests();

    h.reconcile().await.unwrap();
    let after = config_maps.get("sales-bot-config").await.unwrap();
    assert_eq!(after.data, before.data);
    assert_ne!(after.metadata.uid, before.metadata.uid, "a new object");
    let writes = h.writes();
    assert!(
        writes.contains(&"PATCH /api/v1/namespaces/bots/configmaps/sales-bot-config".to_string()),
        "{writes:?}"
    );
    assert!(
        !writes.iter().any(|w| w.contains("/deployments/")),
        "untouched children stay untouched: {writes:?}"
    );
}

#[tokio::test]
async fn a_child_changed_by_hand_is_put_back() {
    let h = Harness::new().await;
    h.create_bot(polling_sqlite()).await;
    h.reconcile().await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(h.server.client(), NS);
    let original = deployments.get("sales-bot").await.unwrap();
    let mut containers = serde_json::to_value(
        &original
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers,
    )
    .unwrap();
    containers[0]["image"] = json!("evil/image:latest");
    deployments
        .patch(
            "sales-bot",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"replicas": 3, "template": {"spec": {"containers": containers}}}}),
            ),
        )
        .await
        .unwrap();

    h.reconcile().await.unwrap();
    let restored = deployments.get("sales-bot").await.unwrap();
    assert_eq!(restored.spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(
        restored
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image,
        original
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
    );
    assert!(
        h.event_reasons().contains(&"Updated".to_string()),
        "{:?}",
        h.event_reasons()
    );
}

#[tokio::test]
async fn webhook_mode_registers_once_and_reports_the_queue() {
    let h = Harness::new().await;
    h.create_bot(webhook_postgres()).await;
    h.reconcile().await.unwrap();

    assert_eq!(h.telegram.count("setWebhook"), 1);
    let hook = h.telegram.webhook(TOKEN);
    assert_eq!(hook.url, "https://bots.example.com/telegram/sales-bot");
    assert_eq!(hook.max_connections, Some(40));
    let mut allowed = hook.allowed_updates.clone().unwrap();
    allowed.sort();
    assert_eq!(allowed, ["callback_query", "message", "my_chat_member"]);
    // The secret registered is the generated one the bot pods get.
    let secrets: Api<Secret> = Api::namespaced(h.server.client(), NS);
    let generated = secrets.get("sales-bot-webhook").await.unwrap();
    let token = String::from_utf8(generated.data.unwrap()["secretToken"].0.clone()).unwrap();
    assert!(token.len() >= 32);
    assert_eq!(hook.secret_token.as_deref(), Some(token.as_str()));
    let set_call = h
        .telegram
        .calls()
        .into_iter()
        .find(|c| c.method == "setWebhook")
        .unwrap();
    assert_eq!(set_call.body["drop_pending_updates"], false);

    let bot = h.bot().await;
    assert!(
        bot.finalizers()
            .contains(&"botfleet.dev/webhook".to_string())
    );
    assert_eq!(
        bot.status.as_ref().unwrap().webhook_url.as_deref(),
        Some("https://bots.example.com/telegram/sales-bot")
    );
    assert_eq!(
        cond(&bot, "WebhookReady"),
        ("True".into(), "Registered".into())
    );
    for path in [
        "/apis/networking.k8s.io/v1/namespaces/bots/ingresses/sales-bot",
        "/apis/apps/v1/namespaces/bots/deployments/sales-bot-scheduler",
    ] {
        assert!(h.server.object(path).is_some(), "{path} missing");
    }
    assert!(h.event_reasons().contains(&"WebhookRegistered".to_string()));

    // Telegram has updates queued: status shows them, nothing is registered again.
    h.telegram
        .set_delivery_state(TOKEN, 5, Some((1_700_000_000, "Connection refused")));
    h.reconcile().await.unwrap();
    assert_eq!(
        h.telegram.count("setWebhook"),
        1,
        "not registered again when nothing changed"
    );
    let status = h.bot().await.status.unwrap();
    assert_eq!(status.pending_update_count, Some(5));
    assert!(
        status
            .last_webhook_error
            .unwrap()
            .contains("Connection refused")
    );

    // And a further reconcile with nothing new writes nothing at all.
    h.server.clear_requests();
    h.reconcile().await.unwrap();
    assert_eq!(h.writes(), Vec::<String>::new());
    assert_eq!(h.telegram.count("setWebhook"), 1);
    // The generated secret was not rotated.
    let again = secrets.get("sales-bot-webhook").await.unwrap();
    assert_eq!(
        String::from_utf8(again.data.unwrap()["secretToken"].0.clone()).unwrap(),
        token
    );
}

#[tokio::test]
async fn a_changed_webhook_secret_or_a_webhook_changed_at_telegram_is_registered_again() {
    let h = Harness::new().await;
    let mut spec = webhook_postgres();
    spec["telegram"]["webhookSecretRef"] = json!({"name": "own-webhook", "key": "token"});
    let secrets: Api<Secret> = Api::namespaced(h.server.client(), NS);
    let own = |value: &str| -> Secret {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "own-webhook"}, "stringData": {"token": value}}))
        .unwrap()
    };
    secrets
        .create(&PostParams::default(), &own("first-secret"))
        .await
        .unwrap();
    h.create_bot(spec).await;
    h.reconcile().await.unwrap();
    assert_eq!(
        h.telegram.webhook(TOKEN).secret_token.as_deref(),
        Some("first-secret")
    );
    assert!(
        h.server
            .object("/api/v1/namespaces/bots/secrets/sales-bot-webhook")
            .is_none()
    );

    secrets
        .replace("own-webhook", &PostParams::default(), &{
            let mut s = own("second-secret");
            s.metadata.resource_version = secrets
                .get("own-webhook")
                .await
                .unwrap()
                .metadata
                .resource_version;
            s
        })
        .await
        .unwrap();
    h.reconcile().await.unwrap();
    assert_eq!(h.telegram.count("setWebhook"), 2);
    assert_eq!(
        h.telegram.webhook(TOKEN).secret_token.as_deref(),
        Some("second-secret")
    );

    // Someone pointed the webhook elsewhere: the operator puts it back.
    reqwest::Client::new()
        .post(format!("{}/bot{TOKEN}/setWebhook", h.telegram.url))
        .json(&json!({"url": "https://elsewhere.example/x"}))
        .send()
        .await
        .unwrap();
    h.reconcile().await.unwrap();
    assert_eq!(
        h.telegram.webhook(TOKEN).url,
        "https://bots.example.com/telegram/sales-bot"
    );
}

#[tokio::test]
async fn switching_to_polling_deletes_the_ingress_and_the_webhook() {
    let h = Harness::new().await;
    h.create_bot(webhook_postgres()).await;
    h.reconcile().await.unwrap();
    assert!(
        h.server
            .object("/apis/networking.k8s.io/v1/namespaces/bots/ingresses/sales-bot")
            .is_some()
    );

    h.bots
        .patch(
            "sales-bot",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"mode": "polling", "replicas": 1}})),
        )
        .await
        .unwrap();
    h.reconcile().await.unwrap();

    assert_eq!(h.telegram.count("deleteWebhook"), 1);
    assert_eq!(h.telegram.webhook(TOKEN).url, "");
    let ingresses: Api<Ingress> = Api::namespaced(h.server.client(), NS);
    assert!(
        ingresses.get_opt("sales-bot").await.unwrap().is_none(),
        "the Ingress is obsolete"
    );
    let bot = h.bot().await;
    assert!(bot.finalizers().is_empty(), "no webhook left to clean up");
    assert_eq!(bot.status.as_ref().unwrap().webhook_url, None);
    assert_eq!(
        cond(&bot, "WebhookReady"),
        ("True".into(), "PollingMode".into())
    );
    let reasons = h.event_reasons();
    assert!(
        reasons.contains(&"WebhookDeleted".to_string()),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"DeletedObsolete".to_string()),
        "{reasons:?}"
    );

    // Polling from now on: no more Telegram calls.
    let calls = h.telegram.calls().len();
    h.reconcile().await.unwrap();
    assert_eq!(h.telegram.calls().len(), calls);
}

#[tokio::test]
async fn postgres_to_sqlite_deletes_the_scheduler_deployment_and_adds_the_volume() {
    let h = Harness::new().await;
    h.create_bot(webhook_postgres()).await;
    h.reconcile().await.unwrap();
    assert!(
        h.server
            .object("/apis/apps/v1/namespaces/bots/deployments/sales-bot-scheduler")
            .is_some()
    );
    h.bots
        .patch(
            "sales-bot",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"database": null, "replicas": 1}})),
        )
        .await
        .unwrap();
    h.reconcile().await.unwrap();
    assert!(
        h.server
            .object("/apis/apps/v1/namespaces/bots/deployments/sales-bot-scheduler")
            .is_none()
    );
    assert!(
        h.server
            .object("/api/v1/namespaces/bots/persistentvolumeclaims/sales-bot-data")
            .is_some()
    );
    assert!(
        h.server
            .object("/apis/apps/v1/namespaces/bots/deployments/sales-bot")
            .is_some()
    );
}

#[tokio::test]
async fn missing_monitoring_crds_are_explained_and_the_bot_still_runs() {
    let h = Harness::new().await;
    h.server.set_monitoring_served(false);
    h.create_bot(with_monitoring(polling_sqlite())).await;
    h.reconcile().await.unwrap();

    assert!(
        h.server
            .object("/apis/apps/v1/namespaces/bots/deployments/sales-bot")
            .is_some()
    );
    assert!(
        !h.server
            .requests()
            .iter()
            .any(|r| r.path.contains("/servicemonitors") || r.path.contains("/prometheusrules")),
        "no request for kinds the cluster does not serve"
    );
    let bot = h.bot().await;
    assert_eq!(
        cond(&bot, "MonitoringReady"),
        ("False".into(), "MonitoringCRDsMissing".into())
    );
    let message = &condition(bot.status.as_ref(), "MonitoringReady")
        .unwrap()
        .message;
    assert!(message.contains("monitoring.coreos.com/v1"), "{message}");
    assert!(
        h.event_reasons()
            .contains(&"MonitoringCRDsMissing".to_string())
    );

    // Once the CRDs are installed, the next reconcile adds the monitoring objects.
    h.server.set_monitoring_served(true);
    h.reconcile().await.unwrap();
    let monitors = h.dynamic(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        "servicemonitors",
    );
    assert!(monitors.get_opt("sales-bot").await.unwrap().is_some());
    assert_eq!(
        cond(&h.bot().await, "MonitoringReady"),
        ("True".into(), "Applied".into())
    );

    // Monitoring switched off: the objects are obsolete.
    h.bots
        .patch(
            "sales-bot",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"monitoring": null}})),
        )
        .await
        .unwrap();
    h.reconcile().await.unwrap();
    assert!(monitors.get_opt("sales-bot").await.unwrap().is_none());
}

#[tokio::test]
async fn deletion_runs_the_finalizer_and_removes_it() {
    let h = Harness::new().await;
    h.create_bot(webhook_postgres()).await;
    h.reconcile().await.unwrap();
    h.bots
        .delete("sales-bot", &DeleteParams::default())
        .await
        .unwrap();
    let held = h.bot().await;
    assert!(
        held.meta().deletion_timestamp.is_some(),
        "the finalizer holds the bot"
    );

    assert!(h.ctx.metrics.encode().contains("botfleet_managed_bots 1"));
    h.reconcile().await.unwrap();
    assert_eq!(h.telegram.count("deleteWebhook"), 1);
    assert_eq!(h.telegram.webhook(TOKEN).url, "");
    assert!(h.ctx.metrics.encode().contains("botfleet_managed_bots 0"));
    assert!(
        h.bots.get_opt("sales-bot").await.unwrap().is_none(),
        "the bot is gone"
    );
    // The children went with it (owner references).
    assert!(
        h.server
            .object("/apis/apps/v1/namespaces/bots/deployments/sales-bot")
            .is_none()
    );
}

#[tokio::test]
async fn a_failing_delete_webhook_keeps_the_finalizer_until_it_succeeds() {
    let h = Harness::new().await;
    h.create_bot(webhook_postgres()).await;
    h.reconcile().await.unwrap();
    h.bots
        .delete("sales-bot", &DeleteParams::default())
        .await
        .unwrap();
    // Telegram is unreachable: point the operator at a closed port for this bot.
    h.bots
        .patch(
            "sales-bot",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"telegram": {"apiUrl": "http://127.0.0.1:9"}}})),
        )
        .await
        .unwrap();
    assert!(h.reconcile().await.is_err());
    assert!(
        h.bot()
            .await
            .finalizers()
            .contains(&"botfleet.dev/webhook".to_string())
    );
    assert!(
        h.event_reasons()
            .contains(&"DeleteWebhookFailed".to_string())
    );
}

#[tokio::test]
async fn an_invalid_spec_sets_the_condition_and_touches_no_child() {
    let h = Harness::new().await;
    let mut spec = polling_sqlite();
    spec["mode"] = json!("webhook"); // without webhook.domain
    h.create_bot(spec).await;
    h.reconcile().await.unwrap();

    let bot = h.bot().await;
    assert_eq!(
        cond(&bot, "Degraded"),
        ("True".into(), "InvalidSpec".into())
    );
    assert_eq!(cond(&bot, "Ready"), ("False".into(), "InvalidSpec".into()));
    let message = &condition(bot.status.as_ref(), "Degraded").unwrap().message;
    assert!(message.contains("webhook.domain"), "{message}");
    let writes = h.writes();
    assert!(
        writes
            .iter()
            .all(|w| w.contains("/telegrambots/sales-bot/status") || w.contains("/events")),
        "only status and an event: {writes:?}"
    );
    assert!(h.telegram.calls().is_empty());
    assert_eq!(h.event_reasons(), ["InvalidSpec"]);

    // Still invalid: nothing new is written, no second event.
    h.server.clear_requests();
    h.reconcile().await.unwrap();
    assert_eq!(h.writes(), Vec::<String>::new());

    // Fixed: the bot is created.
    h.bots
        .patch(
            "sales-bot",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"webhook": {"domain": "bots.example.com"}}})),
        )
        .await
        .unwrap();
    h.reconcile().await.unwrap();
    assert_eq!(
        cond(&h.bot().await, "Degraded"),
        ("False".into(), "AsExpected".into())
    );
    assert!(
        h.server
            .object("/apis/apps/v1/namespaces/bots/deployments/sales-bot")
            .is_some()
    );
}

#[tokio::test]
async fn a_missing_token_secret_is_explained_and_the_children_are_still_applied() {
    let h = Harness::new().await;
    let mut spec = webhook_postgres();
    spec["telegram"]["tokenSecretRef"]["name"] = json!("does-not-exist");
    h.create_bot(spec).await;
    h.reconcile().await.unwrap();
    let bot = h.bot().await;
    assert_eq!(
        cond(&bot, "WebhookReady"),
        ("False".into(), "TokenSecretMissing".into())
    );
    assert_eq!(
        cond(&bot, "Ready"),
        ("False".into(), "ReplicasNotReady".into())
    );
    assert!(
        condition(bot.status.as_ref(), "WebhookReady")
            .unwrap()
            .message
            .contains("kubectl -n bots create secret")
    );
    assert!(
        h.server
            .object("/apis/apps/v1/namespaces/bots/deployments/sales-bot")
            .is_some()
    );
    assert!(h.telegram.calls().is_empty());
}

#[tokio::test]
async fn an_api_error_fails_the_reconcile_with_a_condition_and_an_event() {
    let h = Harness::new().await;
    h.create_bot(polling_sqlite()).await;
    h.server.fail(
        http::Method::PATCH,
        "/apis/apps/v1/namespaces/bots/deployments/",
        500,
    );
    let err = h.reconcile().await.unwrap_err();
    assert!(err.to_string().contains("Deployment sales-bot"), "{err}");
    let bot = h.bot().await;
    assert_eq!(
        cond(&bot, "Degraded"),
        ("True".into(), "ApplyFailed".into())
    );
    assert!(h.event_reasons().contains(&"ApplyFailed".to_string()));
    let metrics = h.ctx.metrics.encode();
    assert!(
        metrics.contains("botfleet_reconcile_total{result=\"error\"} 1"),
        "{metrics}"
    );
    h.server.clear_failures();
    h.reconcile().await.unwrap();
    let metrics = h.ctx.metrics.encode();
    assert!(
        metrics.contains("botfleet_reconcile_total{result=\"success\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        cond(&h.bot().await, "Degraded"),
        ("False".into(), "AsExpected".into())
    );
}

/// Changes the bot's spec with a JSON merge patch (null removes a field).
async fn edit_spec(h: &Harness, patch: Value) {
    h.bots
        .patch(
            "sales-bot",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": patch })),
        )
        .await
        .unwrap();
}

fn ingress_of(h: &Harness) -> Value {
    h.server
        .object("/apis/networking.k8s.io/v1/namespaces/bots/ingresses/sales-bot")
        .expect("the Ingress exists")
}

#[tokio::test]
async fn fields_removed_from_the_spec_are_removed_from_the_ingress() {
    let h = Harness::new().await;
    h.create_bot(webhook_postgres()).await;
    h.reconcile().await.unwrap();
    let ingress = ingress_of(&h);
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
        "letsencrypt-prod"
    );
    assert!(ingress["spec"]["tls"].is_array());

    edit_spec(&h, json!({"webhook": {"ingressClassName": null}})).await;
    h.reconcile().await.unwrap();
    let ingress = ingress_of(&h);
    assert!(
        ingress["spec"].get("ingressClassName").is_none(),
        "ingressClassName stays after it left the spec: {}",
        ingress["spec"]
    );
    assert!(ingress["spec"]["tls"].is_array(), "the rest stays");

    // TLS off: the tls section and the cert-manager annotation go.
    edit_spec(&h, json!({"webhook": {"tls": null}})).await;
    h.reconcile().await.unwrap();
    let ingress = ingress_of(&h);
    assert!(ingress["spec"].get("tls").is_none(), "{}", ingress["spec"]);
    assert!(
        ingress["metadata"]["annotations"]
            .get("cert-manager.io/cluster-issuer")
            .is_none(),
        "{}",
        ingress["metadata"]
    );
    assert_eq!(
        ingress["spec"]["rules"][0]["host"], "bots.example.com",
        "what is still asked for stays"
    );
}

#[tokio::test]
async fn an_env_var_whose_spec_field_was_removed_is_removed_from_the_pods() {
    let h = Harness::new().await;
    h.create_bot(webhook_postgres()).await;
    h.reconcile().await.unwrap();
    let env_names = |h: &Harness| -> Vec<String> {
        let deployment = h
            .server
            .object("/apis/apps/v1/namespaces/bots/deployments/sales-bot")
            .unwrap();
        deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(env_names(&h).contains(&"WEBHOOK_SECRET_TOKEN".to_string()));

    // Polling needs no webhook secret: the variable goes.
    edit_spec(
        &h,
        json!({"mode": "polling", "replicas": 1, "webhook": null}),
    )
    .await;
    h.reconcile().await.unwrap();
    let names = env_names(&h);
    assert!(
        !names.contains(&"WEBHOOK_SECRET_TOKEN".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"TELEGRAM_BOT_TOKEN".to_string()),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_spec_change_applies_the_changed_children_with_a_new_hash_and_only_those() {
    let h = Harness::new().await;
    h.create_bot(webhook_postgres()).await;
    h.reconcile().await.unwrap();
    let hash = |h: &Harness| {
        ingress_of(h)["metadata"]["annotations"]["botfleet.dev/applied-hash"]
            .as_str()
            .expect("the apply writes the hash")
            .to_string()
    };
    let before = hash(&h);
    edit_spec(&h, json!({"webhook": {"ingressClassName": "traefik"}})).await;
    h.server.clear_requests();
    h.reconcile().await.unwrap();
    assert_ne!(hash(&h), before);
    assert_eq!(ingress_of(&h)["spec"]["ingressClassName"], "traefik");
    // The config (webhook section) and so the Deployments' checksum changed too; the
    // children the change does not touch were not written.
    let writes = h.writes();
    for untouched in [
        "/serviceaccounts/",
        "/roles/",
        "/rolebindings/",
        "/services/",
        "/poddisruptionbudgets/",
        "/secrets/",
    ] {
        assert!(
            !writes.iter().any(|w| w.contains(untouched)),
            "{untouched} unchanged but written: {writes:?}"
        );
    }
}

/// The knowledge checksum on the handler Deployment's pod template.
fn knowledge_checksum(h: &Harness) -> Option<String> {
    let d = h
        .server
        .object("/apis/apps/v1/namespaces/bots/deployments/sales-bot")
        .expect("the Deployment");
    d["spec"]["template"]["metadata"]["annotations"]["botfleet.dev/knowledge-checksum"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn a_changed_knowledge_config_map_rolls_the_pods_and_steady_state_stays_silent() {
    let h = Harness::with_config(|c| c.discovery_ttl = Duration::from_secs(60)).await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.server.client(), NS);
    let prices = |text: &str| -> ConfigMap {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "acme-prices", "namespace": NS},
            "data": {"prices.md": text},
        }))
        .unwrap()
    };
    config_maps
        .create(&PostParams::default(), &prices("# Prices\nPro: $49"))
        .await
        .unwrap();
    let mut spec = polling_sqlite();
    spec["knowledge"] = json!([{"configMapKeyRef": {"name": "acme-prices", "key": "prices.md"}}]);
    h.create_bot(spec).await;
    h.reconcile().await.unwrap();
    let first = knowledge_checksum(&h).expect("a knowledge checksum");
    let d = h
        .server
        .object("/apis/apps/v1/namespaces/bots/deployments/sales-bot")
        .unwrap();
    let volumes = d["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["configMap"]["name"] == "acme-prices"),
        "{volumes:?}"
    );

    // Unchanged: the steady state makes no request at all (the versions come from the watch).
    assert_eq!(h.requests_of_one_reconcile().await, Vec::<String>::new());

    // The owner edits the price list: a new checksum, so Kubernetes rolls the pods.
    let mut changed = prices("# Prices\nPro: $59");
    changed.metadata.resource_version = config_maps
        .get("acme-prices")
        .await
        .unwrap()
        .resource_version();
    config_maps
        .replace("acme-prices", &PostParams::default(), &changed)
        .await
        .unwrap();
    let new_version = config_maps
        .get("acme-prices")
        .await
        .unwrap()
        .resource_version()
        .unwrap();
    for _ in 0..500 {
        let seen = h
            .ctx
            .cache
            .config_map_versions(NS, &["acme-prices".to_owned()]);
        if seen.is_some_and(|v| v[0].1 == new_version) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.reconcile().await.unwrap();
    let second = knowledge_checksum(&h).expect("a knowledge checksum");
    assert_ne!(first, second);
    assert_eq!(h.requests_of_one_reconcile().await, Vec::<String>::new());
}
