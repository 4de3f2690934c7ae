//! The operator ↔ bot contract, checked from both sides: for every example TelegramBot, the
//! ConfigMap the operator renders is loaded by the bot's own loader, and the environment the
//! operator puts in each pod resolves with the bot's own settings code to the ports, paths and
//! endpoints that the operator's Service, probes and Ingress point at.

use std::collections::BTreeMap;
use std::path::PathBuf;

use botfleet_bot::config::{self as bot_config, Needs, Settings};
use botfleet_operator::crd::TelegramBot;
use botfleet_operator::render::{self, RenderDefaults, contract};
use serde::Deserialize;
use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every TelegramBot in examples/, with the metadata the API server would add.
fn example_bots() -> Vec<(String, TelegramBot)> {
    let mut bots = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap();
            if value["kind"] != "TelegramBot" {
                continue;
            }
            let mut bot: TelegramBot = serde_json::from_value(value).unwrap();
            bot.metadata
                .namespace
                .get_or_insert_with(|| "default".into());
            bot.metadata.uid = Some("00000000-0000-0000-0000-00000000c0de".into());
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            bots.push((file, bot));
        }
    }
    assert!(bots.len() >= 2, "the examples hold at least two bots");
    bots
}

/// A plausible value for a variable the pod gets from a Secret or the downward API.
fn stand_in(name: &str) -> String {
    match name {
        "TELEGRAM_BOT_TOKEN" => "123456:abc".into(),
        "LLM_API_KEY" => "sk-test".into(),
        "DATABASE_URL" => "postgres://bot:pw@db:5432/bot".into(),
        "WEBHOOK_SECRET_TOKEN" => "s3cr3t_token-ABC".into(),
        "POD_NAME" => "bot-0".into(),
        "POD_NAMESPACE" => "bots".into(),
        other => panic!("no stand-in for {other}: a new variable needs a contract decision"),
    }
}

/// The environment a container would see: literal values as they are, references resolved.
fn container_env(container: &Value) -> BTreeMap<String, String> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_owned();
            let value = match e["value"].as_str() {
                Some(v) => v.to_owned(),
                None => stand_in(&name),
            };
            (name, value)
        })
        .collect()
}

fn port_named(container: &Value, name: &str) -> Option<u16> {
    container["ports"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| p["containerPort"].as_u64().unwrap() as u16)
}

#[test]
fn the_bot_loads_the_config_map_the_operator_renders() {
    for (file, bot) in example_bots() {
        let children = render::render_all(&bot, &RenderDefaults::default()).unwrap();
        let text = &children.config_map.data.as_ref().unwrap()[render::CONFIG_KEY];
        let loaded = bot_config::load_config_str(text)
            .unwrap_or_else(|e| panic!("{file}: the bot refuses the operator's config: {e}"));
        assert_eq!(loaded, render::render_bot_config(&bot), "{file}");
        // All of `llm` but the key's Secret reference, which only the operator reads.
        assert_eq!(loaded.llm.api_key_secret_ref, None, "{file}");
        let llm = botfleet_api::LlmConfig {
            api_key_secret_ref: None,
            ..bot.spec.bot.llm.clone()
        };
        assert_eq!(loaded.llm, llm, "{file}");
        assert_eq!(loaded.pricing, bot.spec.bot.pricing, "{file}");
        assert_eq!(loaded.mode, bot.spec.bot.mode, "{file}");
    }
}

#[test]
fn the_operator_sets_only_variables_of_the_contract() {
    // Both sides name the variables through botfleet_api::contract::env; a variable the operator
    // renders that the contract does not list is one the bot may not read.
    for (file, bot) in example_bots() {
        let children = render::render_all(&bot, &RenderDefaults::default()).unwrap();
        for object in children
            .objects()
            .iter()
            .filter(|o| o["kind"] == "Deployment")
        {
            let pod = &object["spec"]["template"]["spec"];
            for c in pod["containers"]
                .as_array()
                .unwrap()
                .iter()
                .chain(pod["initContainers"].as_array().unwrap())
            {
                for name in container_env(c).keys() {
                    assert!(
                        contract::env::SET_BY_OPERATOR.contains(&name.as_str()),
                        "{file}: {name} is not in the contract"
                    );
                }
            }
        }
    }
}

#[test]
fn each_pod_resolves_to_the_ports_paths_and_endpoints_the_operator_routes_to() {
    for (file, bot) in example_bots() {
        let children = render::render_all(&bot, &RenderDefaults::default()).unwrap();
        let objects = children.objects();
        let config_text = children.config_map.data.as_ref().unwrap()[render::CONFIG_KEY].clone();
        let config = bot_config::load_config_str(&config_text).unwrap();
        let service = objects.iter().find(|o| o["kind"] == "Service").unwrap();

        for deployment in objects.iter().filter(|o| o["kind"] == "Deployment") {
            let pod = &deployment["spec"]["template"]["spec"];
            let name = deployment["metadata"]["name"].as_str().unwrap();
            let container = &pod["containers"][0];
            let env = container_env(container);
            let what = format!("{file}: {name}/{}", container["name"]);

            // The config file is where BOTFLEET_CONFIG says: the ConfigMap key under its mount.
            let mount = container["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == "config")
                .unwrap();
            let config_volume = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == "config")
                .unwrap();
            assert_eq!(
                config_volume["configMap"]["name"],
                children.config_map.metadata.name.as_deref().unwrap()
            );
            assert_eq!(
                env["BOTFLEET_CONFIG"],
                format!(
                    "{}/{}",
                    mount["mountPath"].as_str().unwrap(),
                    render::CONFIG_KEY
                ),
                "{what}"
            );

            let lookup = |key: &str| env.get(key).cloned();
            let settings = Settings::resolve(config.clone(), &lookup, Needs::TelegramAndLlm)
                .unwrap_or_else(|e| panic!("{what}: the bot refuses its environment: {e}"));

            // Probes and the ServiceMonitor use the port named metrics: the bot serves them there.
            assert_eq!(
                Some(settings.metrics_addr.port()),
                port_named(container, "metrics"),
                "{what}"
            );
            for probe in ["livenessProbe", "readinessProbe"] {
                assert_eq!(container[probe]["httpGet"]["port"], "metrics", "{what}");
            }
            if container["args"][0] == "serve" {
                // The Service's http port (the Ingress backend) reaches the webhook listener.
                assert_eq!(
                    Some(settings.http_addr.port()),
                    port_named(container, "http"),
                    "{what}"
                );
                let http = service["spec"]["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["name"] == "http")
                    .unwrap();
                assert_eq!(http["targetPort"], "http");
            }
            assert_eq!(
                settings.telegram_api_url,
                render::telegram_api_url(&bot, &RenderDefaults::default())
            );
            if bot.spec.uses_postgres() {
                assert!(
                    settings.database_url.expose().starts_with("postgres://"),
                    "{what}"
                );
            } else {
                assert_eq!(
                    settings.database_url.expose(),
                    contract::SQLITE_URL,
                    "{what}"
                );
                let data = container["volumeMounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| m["name"] == "data")
                    .unwrap();
                assert!(
                    contract::SQLITE_URL.contains(data["mountPath"].as_str().unwrap()),
                    "{what}"
                );
            }
            // Telegram posts to the Ingress path; the bot listens on the same path.
            if let Some(ingress) = &children.ingress {
                let path = ingress.spec.as_ref().unwrap().rules.as_ref().unwrap()[0]
                    .http
                    .as_ref()
                    .unwrap()
                    .paths[0]
                    .path
                    .clone()
                    .unwrap();
                assert_eq!(settings.webhook_path(), path, "{what}");
                assert!(settings.webhook_secret.is_some(), "{what}");
            }
        }
    }
}

/// Every bot metric the rendered alert rules query is one the bot exports (an alert on a
/// misspelt metric never fires, and promtool cannot tell).
#[test]
fn the_alert_rules_query_metrics_the_bot_exports() {
    use botfleet_bot::metrics::{
        CostLabels, KindLabels, Metrics, ModelLabels, PeriodLabels, ReasonLabels, RequestLabels,
        TokenLabels,
    };
    // Labelled families appear in the exposition once they have a series.
    let metrics = Metrics::default();
    let (model, request_type) = ("m".to_owned(), "chat".to_owned());
    metrics
        .telegram_updates
        .get_or_create(&KindLabels {
            kind: "message".into(),
        })
        .inc();
    metrics
        .webhook_rejected
        .get_or_create(&ReasonLabels {
            reason: "bad_secret".into(),
        })
        .inc();
    metrics
        .llm_requests
        .get_or_create(&RequestLabels {
            model: model.clone(),
            request_type: request_type.clone(),
            outcome: "ok".into(),
        })
        .inc();
    metrics
        .llm_request_duration
        .get_or_create(&ModelLabels {
            model: model.clone(),
        })
        .observe(1.0);
    metrics
        .llm_tokens
        .get_or_create(&TokenLabels {
            model: model.clone(),
            request_type: request_type.clone(),
            token_type: "input".into(),
        })
        .inc();
    metrics
        .llm_cost_usd
        .get_or_create(&CostLabels {
            model: model.clone(),
            request_type,
        })
        .inc();
    metrics
        .llm_unpriced_calls
        .get_or_create(&ModelLabels { model })
        .inc();
    metrics
        .llm_spend_usd
        .get_or_create(&PeriodLabels {
            period: "day".into(),
        })
        .set(1.0);
    metrics
        .llm_budget_usd
        .get_or_create(&PeriodLabels {
            period: "day".into(),
        })
        .set(1.0);
    let exported = metrics.encode();
    let families: std::collections::BTreeSet<&str> = exported
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let known = |name: &str| {
        families.contains(name)
            || ["_bucket", "_count", "_sum"].iter().any(|s| {
                name.strip_suffix(s)
                    .is_some_and(|base| families.contains(base))
            })
    };
    for (file, bot) in example_bots() {
        let children = render::render_all(&bot, &RenderDefaults::default()).unwrap();
        let Some(rule) = children.prometheus_rule.as_ref() else {
            continue;
        };
        let rules = render::monitoring::prometheus_rules_file(rule);
        let mut queried: Vec<&str> = rules
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("botfleet_") && *w != "botfleet_bot")
            .collect();
        queried.sort_unstable();
        queried.dedup();
        assert!(!queried.is_empty(), "{file}: no bot metric in the rules");
        for name in queried {
            assert!(
                known(name),
                "{file}: the rules query {name}, which the bot does not export; it exports {families:?}"
            );
        }
    }
}
