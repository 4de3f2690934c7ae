//! Every TelegramBot in `examples/` is a valid resource for the operator's own types, renders
//! without error, and finds every Secret it references in its own file (so the file applies as
//! it is).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use botfleet_operator::crd::{TelegramBot, validate_spec};
use botfleet_operator::render::{self, RenderDefaults};
use serde::Deserialize;
use serde_json::Value;

/// The documents of every YAML file in examples/, by file name.
fn examples() -> BTreeMap<String, Vec<Value>> {
    let dir = common::repo_root().join("examples");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let docs = serde_yaml_ng::Deserializer::from_str(&text)
            .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
            .collect();
        out.insert(
            path.file_name().unwrap().to_string_lossy().into_owned(),
            docs,
        );
    }
    out
}

#[test]
fn every_example_bot_parses_validates_and_renders() {
    let examples = examples();
    assert!(examples.contains_key("polling-sqlite.yaml"));
    assert!(examples.contains_key("webhook-postgres.yaml"));
    let mut bots = 0;
    for (file, docs) in &examples {
        // (namespace, name) -> keys of the Secrets the file defines.
        let mut secrets: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for doc in docs.iter().filter(|d| d["kind"] == "Secret") {
            let keys = doc["stringData"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            let ns = doc["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned();
            secrets.insert(
                (ns, doc["metadata"]["name"].as_str().unwrap().to_owned()),
                keys,
            );
        }
        for doc in docs.iter().filter(|d| d["kind"] == "TelegramBot") {
            bots += 1;
            let mut bot: TelegramBot = serde_json::from_value(doc.clone())
                .unwrap_or_else(|e| panic!("{file}: not a TelegramBot: {e}"));
            validate_spec(&bot).unwrap_or_else(|e| panic!("{file}: {e:?}"));
            bot.metadata
                .namespace
                .get_or_insert_with(|| "default".into());
            bot.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
            let ns = bot.metadata.namespace.clone().unwrap();
            let children = render::render_all(&bot, &RenderDefaults::default())
                .unwrap_or_else(|e| panic!("{file}: {e}"));

            // Every Secret the pods read is in the file, except the one the operator generates.
            let generated = render::webhook_secret_ref(&bot)
                .filter(|_| render::needs_generated_webhook_secret(&bot))
                .map(|r| r.name);
            let pods = std::iter::once(&children.deployment).chain(&children.scheduler_deployment);
            for d in pods {
                let spec = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
                for c in spec
                    .containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
                {
                    for env in c.env.iter().flatten() {
                        let Some(r) = env
                            .value_from
                            .as_ref()
                            .and_then(|v| v.secret_key_ref.as_ref())
                        else {
                            continue;
                        };
                        if Some(&r.name) == generated.as_ref() {
                            continue;
                        }
                        let keys = secrets.get(&(ns.clone(), r.name.clone())).unwrap_or_else(
                            || {
                                panic!(
                                    "{file}: {} reads Secret {}/{} which the file does not define",
                                    env.name, ns, r.name
                                )
                            },
                        );
                        assert!(
                            keys.contains(&r.key),
                            "{file}: Secret {} has no key {}",
                            r.name,
                            r.key
                        );
                    }
                }
            }
        }
    }
    assert!(bots >= 2);
}

#[test]
fn the_webhook_example_is_the_production_shape() {
    let docs = &examples()["webhook-postgres.yaml"];
    let doc = docs.iter().find(|d| d["kind"] == "TelegramBot").unwrap();
    let mut bot: TelegramBot = serde_json::from_value(doc.clone()).unwrap();
    bot.metadata.uid = Some("00000000-0000-0000-0000-000000000002".into());
    let c = render::render_all(&bot, &RenderDefaults::default()).unwrap();
    let ingress = c.ingress.expect("an Ingress");
    assert_eq!(
        ingress.spec.as_ref().unwrap().ingress_class_name.as_deref(),
        Some("nginx")
    );
    assert!(
        ingress
            .metadata
            .annotations
            .unwrap()
            .contains_key("cert-manager.io/cluster-issuer")
    );
    assert_eq!(
        c.scheduler_deployment.unwrap().spec.unwrap().replicas,
        Some(2)
    );
    assert!(c.service_monitor.is_some() && c.prometheus_rule.is_some());
    assert!(c.pvc.is_none());
}
