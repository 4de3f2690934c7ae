//! Rendering a TelegramBot into its children: snapshots to the field for the two shapes of bot,
//! and the properties the reconciler and the cluster rely on.
//!
//! Snapshots live in `tests/snapshots/`; after an intended change, review and accept them with
//! `INSTA_UPDATE=always cargo test -p botfleet-operator --test render` (or `cargo insta review`).

mod common;

use std::collections::BTreeMap;

use botfleet_operator::crd::TelegramBot;
use botfleet_operator::render::{
    self, CONFIG_CHECKSUM_ANNOTATION, Children, RenderDefaults, RenderError, contract, names,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
use serde_json::{Value, json};

fn render(bot: &TelegramBot) -> Children {
    render::render_all(bot, &RenderDefaults::default()).expect("renders")
}

fn pod(d: &Deployment) -> &PodSpec {
    d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn deployments(c: &Children) -> Vec<&Deployment> {
    std::iter::once(&c.deployment)
        .chain(c.scheduler_deployment.as_ref())
        .collect()
}

fn env_of(c: &Container) -> BTreeMap<String, EnvVar> {
    c.env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name.clone(), e))
        .collect()
}

fn secret_ref(e: &EnvVar) -> (String, String) {
    let s = e
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .unwrap_or_else(|| panic!("{} is not from a Secret", e.name));
    (s.name.clone(), s.key.clone())
}

#[test]
fn snapshot_polling_sqlite_without_monitoring() {
    insta::assert_snapshot!(
        "polling_sqlite",
        render(&common::polling_sqlite()).to_yaml()
    );
}

#[test]
fn snapshot_webhook_postgres_with_monitoring() {
    insta::assert_snapshot!(
        "webhook_postgres",
        render(&common::webhook_postgres()).to_yaml()
    );
}

#[test]
fn polling_sqlite_is_one_recreated_pod_with_a_volume_and_no_ingress() {
    let c = render(&common::polling_sqlite());
    let kinds: Vec<String> = c
        .refs()
        .iter()
        .map(|r| format!("{}/{}", r.kind, r.name))
        .collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount/hello-bot",
            "Role/hello-bot-scheduler",
            "RoleBinding/hello-bot-scheduler",
            "ConfigMap/hello-bot-config",
            "PersistentVolumeClaim/hello-bot-data",
            "Deployment/hello-bot",
            "Service/hello-bot",
            "NetworkPolicy/hello-bot",
        ]
    );
    let spec = c.deployment.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        spec.strategy.as_ref().unwrap().type_.as_deref(),
        Some("Recreate")
    );
    let p = pod(&c.deployment);
    // The one pod runs the scheduler in-process: it holds the Lease, so it needs the API token.
    assert_eq!(p.automount_service_account_token, Some(true));
    let claim = p
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find_map(|v| v.persistent_volume_claim.as_ref())
        .expect("the data volume");
    assert_eq!(claim.claim_name, "hello-bot-data");
    let env = env_of(&p.containers[0]);
    assert_eq!(
        env["DATABASE_URL"].value.as_deref(),
        Some(contract::SQLITE_URL)
    );
    assert!(
        !env.contains_key("WEBHOOK_SECRET_TOKEN"),
        "polling needs no webhook secret"
    );
    let mounts: Vec<&str> = p.containers[0]
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(mounts, ["/etc/botfleet", "/tmp", "/data"]);
    let pvc = c.pvc.as_ref().unwrap().spec.as_ref().unwrap();
    assert_eq!(pvc.access_modes, Some(vec!["ReadWriteOnce".to_owned()]));
    assert_eq!(
        pvc.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
        "1Gi"
    );
}

#[test]
fn webhook_postgres_scales_handlers_and_runs_a_separate_scheduler() {
    let c = render(&common::webhook_postgres());
    assert!(c.pvc.is_none());
    let handler = c.deployment.spec.as_ref().unwrap();
    assert_eq!(handler.replicas, Some(2));
    let strategy = handler.strategy.as_ref().unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    assert_eq!(
        serde_json::to_value(strategy.rolling_update.as_ref().unwrap()).unwrap(),
        json!({"maxSurge": 1, "maxUnavailable": 0})
    );
    assert_eq!(
        pod(&c.deployment).automount_service_account_token,
        Some(false)
    );

    let scheduler = c
        .scheduler_deployment
        .as_ref()
        .expect("scheduler Deployment");
    assert_eq!(
        scheduler.metadata.name.as_deref(),
        Some("sales-bot-scheduler")
    );
    assert_eq!(scheduler.spec.as_ref().unwrap().replicas, Some(2));
    let sp = pod(scheduler);
    assert_eq!(sp.automount_service_account_token, Some(true));
    assert_eq!(sp.containers[0].args, Some(vec!["scheduler".to_owned()]));
    let env = env_of(&sp.containers[0]);
    assert_eq!(
        env["BOTFLEET_LEASE_NAME"].value.as_deref(),
        Some("sales-bot-scheduler")
    );
    // Telegram's rate is shared by the handler pods and the active scheduler.
    let handlers = c.deployment.spec.as_ref().unwrap().replicas.unwrap();
    let senders = (handlers + 1).to_string();
    assert_eq!(
        env["BOTFLEET_TELEGRAM_SENDERS"].value.as_deref(),
        Some(senders.as_str())
    );
    assert_eq!(
        env_of(&pod(&c.deployment).containers[0])["BOTFLEET_TELEGRAM_SENDERS"]
            .value
            .as_deref(),
        Some(senders.as_str())
    );
    assert_eq!(
        secret_ref(&env["DATABASE_URL"]),
        ("sales-bot-db".into(), "url".into())
    );
    assert_eq!(
        env["TELEGRAM_API_URL"].value.as_deref(),
        Some("https://tg-api.internal.example.com")
    );

    // The default scheduler is one leader and one standby.
    let mut bot = common::webhook_postgres();
    bot.spec.scheduler = None;
    let c = render(&bot);
    assert_eq!(
        c.scheduler_deployment.unwrap().spec.unwrap().replicas,
        Some(2)
    );

    // Polling on PostgreSQL: still one poller, recreated, never rolled over a second one.
    let mut bot = common::webhook_postgres();
    bot.spec.bot.mode = botfleet_api::Mode::Polling;
    bot.spec.replicas = 1;
    let c = render(&bot);
    assert_eq!(
        c.deployment
            .spec
            .unwrap()
            .strategy
            .unwrap()
            .type_
            .as_deref(),
        Some("Recreate")
    );
    assert!(c.ingress.is_none());
}

#[test]
fn monitoring_objects_follow_their_switches_and_nothing_else_changes() {
    let on = render(&common::webhook_postgres());
    assert!(on.service_monitor.is_some() && on.prometheus_rule.is_some());

    let mut bot = common::webhook_postgres();
    bot.spec.monitoring = None;
    let off = render(&bot);
    assert!(off.service_monitor.is_none() && off.prometheus_rule.is_none());
    assert_eq!(
        Children {
            service_monitor: None,
            prometheus_rule: None,
            ..on.clone()
        },
        off
    );

    let mut bot = common::webhook_postgres();
    bot.spec.monitoring.as_mut().unwrap().prometheus_rule = None;
    let only_sm = render(&bot);
    assert!(only_sm.service_monitor.is_some() && only_sm.prometheus_rule.is_none());
}

/// Strips what a config change may change: the ConfigMap's data and the checksum annotations.
fn without_config(c: &Children) -> Vec<Value> {
    c.objects()
        .into_iter()
        .map(|mut o| {
            if o["kind"] == "ConfigMap" {
                o.as_object_mut().unwrap().remove("data");
            }
            if o["kind"] == "Deployment" {
                o["spec"]["template"]["metadata"]["annotations"]
                    .as_object_mut()
                    .unwrap()
                    .remove(CONFIG_CHECKSUM_ANNOTATION);
            }
            o
        })
        .collect()
}

fn checksums(c: &Children) -> Vec<String> {
    deployments(c)
        .iter()
        .map(|d| {
            d.spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[CONFIG_CHECKSUM_ANNOTATION]
                .clone()
        })
        .collect()
}

#[test]
fn a_config_change_changes_the_checksum_and_nothing_else() {
    let before = render(&common::webhook_postgres());
    let mut bot = common::webhook_postgres();
    bot.spec.bot.llm.system_prompt = Some("You are the support assistant of Example Corp.".into());
    let after = render(&bot);

    let text = |c: &Children| c.config_map.data.as_ref().unwrap()[render::CONFIG_KEY].clone();
    assert_ne!(text(&before), text(&after));
    assert!(text(&after).contains("support assistant"));
    // Both pod templates carry the checksum of exactly the ConfigMap text.
    for c in [&before, &after] {
        let expected = render::config_checksum(&text(c));
        assert_eq!(checksums(c), vec![expected.clone(), expected]);
    }
    assert_ne!(checksums(&before), checksums(&after));
    assert_eq!(without_config(&before), without_config(&after));
}

#[test]
fn a_change_outside_the_config_keeps_the_checksum_and_rendering_is_deterministic() {
    let base = render(&common::webhook_postgres());
    assert_eq!(base, render(&common::webhook_postgres()));

    let mut bot = common::webhook_postgres();
    bot.spec.replicas = 3;
    bot.spec.image = Some("registry.example.com/botfleet-bot:0.2.0".into());
    bot.spec.monitoring = None;
    let changed = render(&bot);
    assert_eq!(checksums(&base), checksums(&changed));
    assert_eq!(base.config_map, changed.config_map);
}

#[test]
fn every_child_is_labelled_and_owned_by_the_bot() {
    for bot in [common::polling_sqlite(), common::webhook_postgres()] {
        let name = bot.metadata.name.clone().unwrap();
        let c = render(&bot);
        let objects = c.objects();
        assert!(objects.len() >= 7);
        for o in objects {
            let what = format!("{} {}", o["kind"], o["metadata"]["name"]);
            let labels = &o["metadata"]["labels"];
            assert_eq!(labels["app.kubernetes.io/name"], "botfleet-bot", "{what}");
            assert_eq!(
                labels["app.kubernetes.io/instance"],
                name.as_str(),
                "{what}"
            );
            assert_eq!(
                labels["app.kubernetes.io/managed-by"], "botfleet-operator",
                "{what}"
            );
            assert!(labels["app.kubernetes.io/component"].is_string(), "{what}");
            assert_eq!(
                o["metadata"]["namespace"],
                bot.metadata.namespace.as_deref().unwrap(),
                "{what}"
            );
            assert_eq!(
                o["metadata"]["ownerReferences"],
                json!([{
                    "apiVersion": "botfleet.dev/v1alpha1",
                    "kind": "TelegramBot",
                    "name": name,
                    "uid": bot.metadata.uid.as_deref().unwrap(),
                    "controller": true,
                    "blockOwnerDeletion": true,
                }]),
                "{what}"
            );
        }
    }
}

#[test]
fn pods_follow_the_restricted_profile_with_resources_probes_and_a_migrate_init_container() {
    for bot in [common::polling_sqlite(), common::webhook_postgres()] {
        let c = render(&bot);
        for d in deployments(&c) {
            let p = pod(d);
            let psc = p.security_context.as_ref().unwrap();
            assert_eq!(psc.run_as_non_root, Some(true));
            assert_eq!(psc.run_as_user, Some(65532));
            assert_eq!(
                psc.seccomp_profile.as_ref().unwrap().type_,
                "RuntimeDefault"
            );
            let init = p.init_containers.as_ref().expect("init containers");
            assert_eq!(init.len(), 1);
            assert_eq!(init[0].name, "migrate");
            assert_eq!(init[0].args, Some(vec!["migrate".to_owned()]));
            for container in init.iter().chain(&p.containers) {
                let sc = container.security_context.as_ref().unwrap();
                assert_eq!(
                    sc.allow_privilege_escalation,
                    Some(false),
                    "{}",
                    container.name
                );
                assert_eq!(
                    sc.read_only_root_filesystem,
                    Some(true),
                    "{}",
                    container.name
                );
                assert_eq!(sc.run_as_non_root, Some(true), "{}", container.name);
                assert_eq!(
                    sc.capabilities.as_ref().unwrap().drop,
                    Some(vec!["ALL".to_owned()]),
                    "{}",
                    container.name
                );
                let r = container.resources.as_ref().unwrap();
                assert!(
                    r.requests
                        .as_ref()
                        .is_some_and(|q| q.contains_key("memory"))
                );
                assert!(r.limits.as_ref().is_some_and(|q| q.contains_key("memory")));
            }
            for container in &p.containers {
                let live = container
                    .liveness_probe
                    .as_ref()
                    .unwrap()
                    .http_get
                    .as_ref()
                    .unwrap();
                let ready = container
                    .readiness_probe
                    .as_ref()
                    .unwrap()
                    .http_get
                    .as_ref()
                    .unwrap();
                assert_eq!(live.path.as_deref(), Some("/healthz"));
                assert_eq!(ready.path.as_deref(), Some("/readyz"));
                assert_eq!(serde_json::to_value(&live.port).unwrap(), json!("metrics"));
                let ports: Vec<(Option<&str>, i32)> = container
                    .ports
                    .as_ref()
                    .unwrap()
                    .iter()
                    .map(|p| (p.name.as_deref(), p.container_port))
                    .collect();
                assert!(ports.contains(&(Some("metrics"), 9090)), "{ports:?}");
            }
        }
    }
    // spec.resources replaces the defaults.
    let c = render(&common::webhook_postgres());
    let r = pod(&c.deployment).containers[0].resources.clone().unwrap();
    assert_eq!(r.limits.unwrap()["memory"].0, "512Mi");
}

#[test]
fn the_bot_gets_its_config_secrets_and_endpoints_from_the_environment() {
    let c = render(&common::webhook_postgres());
    let handler = &pod(&c.deployment).containers[0];
    assert_eq!(handler.args, Some(vec!["serve".to_owned()]));
    assert_eq!(
        handler.image.as_deref(),
        Some("registry.example.com/botfleet-bot:0.1.0")
    );
    let env = env_of(handler);
    assert_eq!(
        env["BOTFLEET_CONFIG"].value.as_deref(),
        Some("/etc/botfleet/config.yaml")
    );
    assert_eq!(
        env["BOTFLEET_HTTP_ADDR"].value.as_deref(),
        Some("0.0.0.0:8080")
    );
    assert_eq!(
        env["BOTFLEET_METRICS_ADDR"].value.as_deref(),
        Some("0.0.0.0:9090")
    );
    assert_eq!(
        secret_ref(&env["TELEGRAM_BOT_TOKEN"]),
        ("sales-bot-telegram".into(), "token".into())
    );
    assert_eq!(
        secret_ref(&env["LLM_API_KEY"]),
        ("sales-bot-llm".into(), "apiKey".into())
    );
    assert_eq!(
        secret_ref(&env["WEBHOOK_SECRET_TOKEN"]),
        ("sales-bot-webhook".into(), "secretToken".into())
    );
    assert_eq!(
        env["POD_NAME"]
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path,
        "metadata.name"
    );

    // A given webhook secret replaces the generated one.
    let mut bot = common::webhook_postgres();
    bot.spec.telegram.webhook_secret_ref = Some(botfleet_api::SecretKeyRef {
        name: "my-webhook".into(),
        key: "token".into(),
    });
    assert!(!render::needs_generated_webhook_secret(&bot));
    let c = render(&bot);
    let env = env_of(&pod(&c.deployment).containers[0]);
    assert_eq!(
        secret_ref(&env["WEBHOOK_SECRET_TOKEN"]),
        ("my-webhook".into(), "token".into())
    );

    // The operator-wide defaults apply when the spec is silent.
    let defaults = RenderDefaults {
        image: "example.org/bot:9".into(),
        telegram_api_url: "http://127.0.0.1:8081".into(),
        ..RenderDefaults::default()
    };
    let c = render::render_all(&common::polling_sqlite(), &defaults).unwrap();
    let container = &pod(&c.deployment).containers[0];
    assert_eq!(container.image.as_deref(), Some("example.org/bot:9"));
    assert_eq!(
        env_of(container)["TELEGRAM_API_URL"].value.as_deref(),
        Some("http://127.0.0.1:8081")
    );
}

#[test]
fn the_config_map_holds_the_spec_vocabulary_with_the_webhook_path_resolved() {
    let bot = common::webhook_postgres();
    let c = render(&bot);
    assert_eq!(
        c.config_map.metadata.name.as_deref(),
        Some("sales-bot-config")
    );
    let text = &c.config_map.data.as_ref().unwrap()["config.yaml"];
    let config: botfleet_api::BotConfig = serde_yaml_ng::from_str(text).unwrap();
    assert_eq!(config, render::render_bot_config(&bot));
    assert_eq!(
        config.webhook.unwrap().path.as_deref(),
        Some("/telegram/sales-bot")
    );
    assert_eq!(config.pricing, bot.spec.bot.pricing);
    assert_eq!(config.owners, vec![123456789]);
    // Secrets are never inline: only references reach the config.
    assert!(!text.contains("postgres://"));
}

#[test]
fn fields_only_the_operator_uses_stay_out_of_the_bots_config() {
    let bot = common::webhook_postgres();
    let spec = &bot.spec;
    // The spec has them all...
    let webhook = spec.bot.webhook.as_ref().unwrap();
    assert!(spec.bot.llm.api_key_secret_ref.is_some());
    assert!(webhook.domain.is_some() && webhook.ingress_class_name.is_some());
    assert!(webhook.tls.is_some() && webhook.max_connections.is_some());
    // ...and the bot's config file has none of them, but what the bot needs.
    let text = &render(&bot).config_map.data.unwrap()["config.yaml"];
    for field in [
        "apiKeySecretRef",
        "sales-bot-llm",
        "domain",
        "bots.example.com",
        "ingressClassName",
        "tls",
        "clusterIssuer",
        "letsencrypt-prod",
        "maxConnections",
    ] {
        assert!(
            !text.contains(field),
            "{field} in the bot's config:\n{text}"
        );
    }
    let config: botfleet_api::BotConfig = serde_yaml_ng::from_str(text).unwrap();
    assert_eq!(
        config.webhook.unwrap().path.as_deref(),
        Some("/telegram/sales-bot")
    );
    assert_eq!(config.llm.model, spec.bot.llm.model);
    assert_eq!(config.llm.system_prompt, spec.bot.llm.system_prompt);

    // A polling bot has no webhook section at all, even with one left in the spec.
    let mut polling = common::webhook_postgres();
    polling.spec.bot.mode = botfleet_api::Mode::Polling;
    polling.spec.replicas = 1;
    let text = &render(&polling).config_map.data.unwrap()["config.yaml"];
    assert!(!text.contains("webhook"), "{text}");
}

#[test]
fn pdbs_exist_only_for_deployments_with_more_than_one_replica() {
    let names_of = |c: &Children| -> Vec<String> {
        c.pdbs
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect()
    };
    assert!(render(&common::polling_sqlite()).pdbs.is_empty());
    let c = render(&common::webhook_postgres());
    assert_eq!(names_of(&c), ["sales-bot", "sales-bot-scheduler"]);
    let pdb = c.pdbs[0].spec.as_ref().unwrap();
    assert_eq!(
        serde_json::to_value(&pdb.max_unavailable).unwrap(),
        json!(1)
    );
    assert_eq!(
        pdb.selector.as_ref().unwrap().match_labels,
        c.deployment.spec.as_ref().unwrap().selector.match_labels
    );

    let mut bot = common::webhook_postgres();
    bot.spec.replicas = 1;
    bot.spec.scheduler = Some(botfleet_operator::crd::SchedulerSpec { replicas: Some(1) });
    assert!(render(&bot).pdbs.is_empty());
}

#[test]
fn the_scheduler_role_is_limited_to_its_lease() {
    let c = render(&common::webhook_postgres());
    let rules = serde_json::to_value(c.role.rules.as_ref().unwrap()).unwrap();
    assert_eq!(
        rules,
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["sales-bot-scheduler"], "verbs": ["get", "update", "patch"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        ])
    );
    let binding = &c.role_binding;
    assert_eq!(binding.role_ref.name, "sales-bot-scheduler");
    let subject = &binding.subjects.as_ref().unwrap()[0];
    assert_eq!(
        (subject.kind.as_str(), subject.name.as_str()),
        ("ServiceAccount", "sales-bot")
    );
    assert_eq!(subject.namespace.as_deref(), Some("bots"));
    for d in deployments(&c) {
        assert_eq!(pod(d).service_account_name.as_deref(), Some("sales-bot"));
    }
}

#[test]
fn the_ingress_routes_the_webhook_path_with_tls_from_cert_manager_or_a_secret() {
    let c = render(&common::webhook_postgres());
    let ingress = c.ingress.as_ref().unwrap();
    assert_eq!(
        ingress.metadata.annotations.as_ref().unwrap()["cert-manager.io/cluster-issuer"],
        "letsencrypt-prod"
    );
    let spec = serde_json::to_value(ingress.spec.as_ref().unwrap()).unwrap();
    assert_eq!(
        spec,
        json!({
            "ingressClassName": "nginx",
            "rules": [{"host": "bots.example.com", "http": {"paths": [{
                "path": "/telegram/sales-bot", "pathType": "Exact",
                "backend": {"service": {"name": "sales-bot", "port": {"name": "http"}}}
            }]}}],
            "tls": [{"hosts": ["bots.example.com"], "secretName": "sales-bot-webhook-tls"}],
        })
    );
    assert_eq!(
        c.service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0]
            .name
            .as_deref(),
        Some("http")
    );
    assert_eq!(
        common::webhook_postgres()
            .spec
            .webhook_url("sales-bot")
            .as_deref(),
        Some("https://bots.example.com/telegram/sales-bot")
    );

    let mut bot = common::webhook_postgres();
    bot.spec.bot.webhook.as_mut().unwrap().tls = Some(botfleet_api::WebhookTls {
        issuer: Some("team-issuer".into()),
        ..Default::default()
    });
    bot.spec.bot.webhook.as_mut().unwrap().path = Some("/hooks/sales".into());
    let ingress = render(&bot).ingress.unwrap();
    let annotations = ingress.metadata.annotations.unwrap();
    assert_eq!(annotations["cert-manager.io/issuer"], "team-issuer");
    assert!(!annotations.contains_key("cert-manager.io/cluster-issuer"));
    let spec = ingress.spec.unwrap();
    assert_eq!(
        spec.rules.unwrap()[0].http.as_ref().unwrap().paths[0]
            .path
            .as_deref(),
        Some("/hooks/sales")
    );

    let mut bot = common::webhook_postgres();
    bot.spec.bot.webhook.as_mut().unwrap().tls = Some(botfleet_api::WebhookTls {
        secret_name: Some("wildcard-example-com".into()),
        ..Default::default()
    });
    let ingress = render(&bot).ingress.unwrap();
    assert!(
        ingress.metadata.annotations.is_none(),
        "no cert-manager for a given Secret"
    );
    assert_eq!(
        ingress.spec.unwrap().tls.unwrap()[0].secret_name.as_deref(),
        Some("wildcard-example-com")
    );
}

#[test]
fn the_dashboard_is_routed_on_its_domain_also_for_a_polling_bot() {
    // Polling, dashboard with its own domain: an Ingress for `<path>/app` only, TLS as for
    // webhooks, the Service's and the pod's `http` port behind it, opened to the Ingress
    // controller by the NetworkPolicy.
    let mut bot = common::polling_sqlite();
    assert!(render(&bot).ingress.is_none());
    bot.spec.bot.dashboard = Some(botfleet_api::DashboardConfig {
        enabled: true,
        domain: Some("dash.example.com".into()),
        max_age: None,
    });
    bot.spec.bot.webhook = Some(botfleet_api::WebhookConfig {
        ingress_class_name: Some("nginx".into()),
        tls: Some(botfleet_api::WebhookTls {
            cluster_issuer: Some("letsencrypt-prod".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let c = render(&bot);
    let ingress = c.ingress.as_ref().expect("an Ingress for the dashboard");
    assert_eq!(
        ingress.metadata.annotations.as_ref().unwrap()["cert-manager.io/cluster-issuer"],
        "letsencrypt-prod"
    );
    assert_eq!(
        serde_json::to_value(ingress.spec.as_ref().unwrap()).unwrap(),
        json!({
            "ingressClassName": "nginx",
            "rules": [{"host": "dash.example.com", "http": {"paths": [{
                "path": "/telegram/hello-bot/app", "pathType": "Prefix",
                "backend": {"service": {"name": "hello-bot", "port": {"name": "http"}}}
            }]}}],
            "tls": [{"hosts": ["dash.example.com"], "secretName": "hello-bot-webhook-tls"}],
        })
    );
    let service_ports: Vec<_> = c
        .service
        .spec
        .as_ref()
        .unwrap()
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| p.name.clone().unwrap_or_default())
        .collect();
    assert!(
        service_ports.contains(&"http".to_owned()),
        "{service_ports:?}"
    );
    let pod_ports: Vec<_> = pod(&c.deployment).containers[0]
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
        .collect();
    assert!(
        pod_ports.contains(&("http".to_owned(), contract::HTTP_CONTAINER_PORT)),
        "{pod_ports:?}"
    );
    let policy = serde_json::to_value(c.network_policy.as_ref().unwrap()).unwrap();
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], "http");

    // Disabled: no Ingress whatever the domain says.
    bot.spec.bot.dashboard.as_mut().unwrap().enabled = false;
    assert!(render(&bot).ingress.is_none());
}

#[test]
fn a_webhook_bots_dashboard_shares_the_webhook_ingress_or_gets_a_host_of_its_own() {
    let mut bot = common::webhook_postgres();
    bot.spec.bot.dashboard = Some(botfleet_api::DashboardConfig {
        enabled: true,
        ..Default::default()
    });
    let ingress = render(&bot).ingress.unwrap();
    let spec = serde_json::to_value(ingress.spec.unwrap()).unwrap();
    assert_eq!(
        spec["rules"],
        json!([{"host": "bots.example.com", "http": {"paths": [
            {"path": "/telegram/sales-bot", "pathType": "Exact",
             "backend": {"service": {"name": "sales-bot", "port": {"name": "http"}}}},
            {"path": "/telegram/sales-bot/app", "pathType": "Prefix",
             "backend": {"service": {"name": "sales-bot", "port": {"name": "http"}}}},
        ]}}])
    );

    bot.spec.bot.dashboard.as_mut().unwrap().domain = Some("dash.example.com".into());
    let spec = serde_json::to_value(render(&bot).ingress.unwrap().spec.unwrap()).unwrap();
    let hosts: Vec<_> = spec["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["host"].clone(), r["http"]["paths"][0]["path"].clone()))
        .collect();
    assert_eq!(
        hosts,
        vec![
            (json!("bots.example.com"), json!("/telegram/sales-bot")),
            (json!("dash.example.com"), json!("/telegram/sales-bot/app")),
        ]
    );
    assert_eq!(
        spec["tls"],
        json!([{"hosts": ["bots.example.com", "dash.example.com"], "secretName": "sales-bot-webhook-tls"}])
    );
}

#[test]
fn the_generated_webhook_secret_template() {
    let bot = common::webhook_postgres();
    assert!(render::needs_generated_webhook_secret(&bot));
    assert!(!render::needs_generated_webhook_secret(
        &common::polling_sqlite()
    ));
    let secret = render::render_webhook_secret(&bot, "c0ffee").unwrap();
    assert_eq!(
        secret.metadata.name.as_deref(),
        Some(names::webhook_secret("sales-bot").as_str())
    );
    assert_eq!(secret.metadata.namespace.as_deref(), Some("bots"));
    assert_eq!(secret.string_data.unwrap()["secretToken"], "c0ffee");
    assert_eq!(
        secret.metadata.owner_references.unwrap()[0].controller,
        Some(true)
    );
    let r = render::webhook_secret_ref(&bot).unwrap();
    assert_eq!(
        (r.name.as_str(), r.key.as_str()),
        ("sales-bot-webhook", "secretToken")
    );
    assert!(render::webhook_secret_ref(&common::polling_sqlite()).is_none());
}

#[test]
fn an_invalid_or_incomplete_bot_is_not_rendered() {
    let mut bot = common::polling_sqlite();
    bot.spec.replicas = 3;
    match render::render_all(&bot, &RenderDefaults::default()) {
        Err(RenderError::Invalid(errors)) => {
            assert!(
                errors.iter().any(|e| e.starts_with("spec.replicas: ")),
                "{errors:?}"
            )
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let mut bot = common::polling_sqlite();
    bot.metadata.uid = None;
    assert_eq!(
        render::render_all(&bot, &RenderDefaults::default()).unwrap_err(),
        RenderError::MissingMetadata("uid")
    );
}

#[test]
fn the_network_policy_opens_the_webhook_to_the_ingress_controller_and_metrics_to_monitoring() {
    let defaults = RenderDefaults {
        network: render::NetworkPeers {
            ingress_namespace: "ingress-nginx".into(),
            monitoring_namespace: "monitoring".into(),
            operator_namespace: "botfleet-system".into(),
        },
        ..RenderDefaults::default()
    };
    let rules_of = |bot: &TelegramBot| -> Vec<(Vec<String>, Vec<String>)> {
        let children = render::render_all(bot, &defaults).unwrap();
        let policy = serde_json::to_value(children.network_policy.expect("on by default")).unwrap();
        assert_eq!(
            policy["metadata"]["name"],
            bot.metadata.name.as_deref().unwrap()
        );
        assert_eq!(
            policy["spec"]["policyTypes"],
            json!(["Ingress"]),
            "egress stays open"
        );
        // Every pod of this bot, handlers and scheduler alike.
        assert_eq!(
            policy["spec"]["podSelector"]["matchLabels"],
            json!({"app.kubernetes.io/name": "botfleet-bot",
                   "app.kubernetes.io/instance": bot.metadata.name.as_deref().unwrap()})
        );
        policy["spec"]["ingress"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rule| {
                let ports = rule["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["port"].as_str().unwrap().to_string())
                    .collect();
                let from = rule["from"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                            .as_str()
                            .unwrap()
                            .to_string()
                    })
                    .collect();
                (ports, from)
            })
            .collect()
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        rules_of(&common::webhook_postgres()),
        vec![
            (s(&["http"]), s(&["ingress-nginx"])),
            (s(&["metrics"]), s(&["monitoring", "botfleet-system"])),
        ]
    );
    // Polling: no webhook port to open at all.
    assert_eq!(
        rules_of(&common::polling_sqlite()),
        vec![(s(&["metrics"]), s(&["monitoring", "botfleet-system"]))]
    );

    let mut off = common::webhook_postgres();
    off.spec.network_policy = Some(botfleet_operator::crd::NetworkPolicySpec { enabled: false });
    assert!(
        render::render_all(&off, &defaults)
            .unwrap()
            .network_policy
            .is_none()
    );
}

#[test]
fn knowledge_config_maps_are_mounted_read_only_and_a_change_rolls_the_pods() {
    let mut bot = common::webhook_postgres();
    bot.spec.bot.knowledge = vec![
        serde_json::from_value(
            json!({"configMapKeyRef": {"name": "acme-prices", "key": "prices.md"}}),
        )
        .unwrap(),
        serde_json::from_value(json!({"configMapKeyRef": {"name": "acme-faq", "key": "faq.pdf"}}))
            .unwrap(),
        serde_json::from_value(
            json!({"configMapKeyRef": {"name": "acme-prices", "key": "terms.md"}}),
        )
        .unwrap(),
        serde_json::from_value(json!({"inline": "We ship to the EU only."})).unwrap(),
    ];
    let children = render(&bot);

    // The bot reads the sources as the spec gives them, at the mount root.
    let config: Value =
        serde_yaml_ng::from_str(&children.config_map.data.as_ref().unwrap()[render::CONFIG_KEY])
            .unwrap();
    assert_eq!(
        config["knowledge"][0],
        json!({"configMapKeyRef": {"name": "acme-prices", "key": "prices.md"}})
    );
    assert_eq!(
        config["knowledge"][3],
        json!({"inline": "We ship to the EU only."})
    );

    for d in deployments(&children) {
        let pod = pod(d);
        let volumes: Vec<(String, String)> = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .filter_map(|v| Some((v.name.clone(), v.config_map.as_ref()?.name.clone())))
            .filter(|(name, _)| name.starts_with("knowledge-"))
            .collect();
        assert_eq!(
            volumes,
            [
                ("knowledge-0".to_owned(), "acme-faq".to_owned()),
                ("knowledge-1".to_owned(), "acme-prices".to_owned())
            ]
        );
        for container in &pod.containers {
            let mounts: Vec<(String, String, Option<bool>)> = container
                .volume_mounts
                .as_ref()
                .unwrap()
                .iter()
                .filter(|m| m.name.starts_with("knowledge-"))
                .map(|m| (m.name.clone(), m.mount_path.clone(), m.read_only))
                .collect();
            assert_eq!(
                mounts,
                [
                    (
                        "knowledge-0".to_owned(),
                        "/etc/botfleet/knowledge/acme-faq".to_owned(),
                        Some(true)
                    ),
                    (
                        "knowledge-1".to_owned(),
                        "/etc/botfleet/knowledge/acme-prices".to_owned(),
                        Some(true)
                    ),
                ]
            );
        }
    }

    // The pods carry a digest of the ConfigMaps' versions: a new version, a new digest.
    let annotation = |c: &Children| -> Vec<Option<String>> {
        deployments(c)
            .iter()
            .map(|d| {
                d.spec
                    .as_ref()
                    .unwrap()
                    .template
                    .metadata
                    .as_ref()
                    .unwrap()
                    .annotations
                    .as_ref()
                    .unwrap()
                    .get(render::KNOWLEDGE_CHECKSUM_ANNOTATION)
                    .cloned()
            })
            .collect()
    };
    let versions = |prices: &str| {
        vec![
            ("acme-faq".to_owned(), "100".to_owned()),
            ("acme-prices".to_owned(), prices.to_owned()),
        ]
    };
    let v1 = children.clone().with_knowledge_versions(&versions("200"));
    let same = render(&bot).with_knowledge_versions(&versions("200"));
    let v2 = children.clone().with_knowledge_versions(&versions("201"));
    let a1 = annotation(&v1);
    assert_eq!(a1.len(), 2);
    assert!(a1.iter().all(|a| a.as_ref().is_some_and(|a| a.len() == 64)));
    assert_eq!(a1[0], a1[1]);
    assert_eq!(a1, annotation(&same));
    assert_ne!(a1, annotation(&v2));
    // Only the pod template annotation differs: the rollout is the whole change.
    let strip = |c: &Children| -> Vec<Value> {
        c.objects()
            .into_iter()
            .map(|mut o| {
                if o["kind"] == "Deployment" {
                    o["spec"]["template"]["metadata"]["annotations"]
                        .as_object_mut()
                        .unwrap()
                        .remove(render::KNOWLEDGE_CHECKSUM_ANNOTATION);
                }
                o
            })
            .collect()
    };
    assert_eq!(strip(&v1), strip(&v2));
    // A bot without knowledge ConfigMaps has neither volumes nor the annotation.
    let plain = render(&common::webhook_postgres());
    assert_eq!(annotation(&plain), [None, None]);
    assert!(
        pod(&plain.deployment)
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .all(|v| !v.name.starts_with("knowledge-"))
    );

    // A path means nothing in a pod: refused with its field named.
    bot.spec
        .bot
        .knowledge
        .push(serde_json::from_value(json!({"path": "/tmp/faq.md"})).unwrap());
    let Err(render::RenderError::Invalid(errors)) =
        render::render_all(&bot, &RenderDefaults::default())
    else {
        panic!("a path source renders")
    };
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("spec.knowledge[4].path")),
        "{errors:?}"
    );
}
