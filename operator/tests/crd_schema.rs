//! The TelegramBot CRD: the checked-in file is what the code generates, `kubectl` sees what a
//! person needs (names, columns, descriptions), and bad specs are rejected with a reason — by
//! the schema (patterns, enums, list keys), by its CEL rules (evaluated here with kube's CEL
//! implementation) and by `validate_spec` (the same rules in code, for clusters without CEL).

mod common;

use botfleet_operator::crd::{self, SPEC_CEL_RULES, TelegramBot, validate_spec};
use kube::core::cel::{Validator, compile_schema};
use serde_json::{Value, json};

fn crd_json() -> Value {
    serde_json::to_value(crd::crd()).unwrap()
}

/// The API server knows no integer or number formats (schemars writes `uint32`, `int64`, ...)
/// and warns "unrecognized format" at every apply of the CRD.
#[test]
fn no_number_has_a_format_the_api_server_would_warn_about() {
    fn walk(path: &str, schema: &Value, found: &mut Vec<String>) {
        match schema {
            Value::Object(map) => {
                if matches!(
                    map.get("type").and_then(Value::as_str),
                    Some("integer" | "number")
                ) && let Some(format) = map.get("format")
                {
                    found.push(format!("{path}: {format}"));
                }
                for (k, v) in map {
                    walk(&format!("{path}.{k}"), v, found);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(&format!("{path}[{i}]"), v, found);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk("", &object_schema(), &mut found);
    assert_eq!(found, Vec::<String>::new());
    // The file the chart installs is the same.
    let file =
        std::fs::read_to_string(common::repo_root().join("crds/telegrambots.botfleet.dev.yaml"))
            .unwrap();
    assert!(
        !file.contains("format: uint") && !file.contains("format: int"),
        "regenerate crds/"
    );
}

fn object_schema() -> Value {
    crd_json()["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn as_object(bot: &TelegramBot) -> Value {
    serde_json::to_value(bot).unwrap()
}

/// CEL errors for an object, as "message" strings.
fn cel_errors(object: &Value) -> Vec<String> {
    match Validator::new().validate(&object_schema(), object, None) {
        Ok(()) => vec![],
        Err(errors) => errors.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

/// Structural-schema errors (patterns, enums, required, types) of an object, via JSON Schema.
fn schema_errors(object: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(&object_schema()).unwrap();
    validator
        .iter_errors(object)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect()
}

#[test]
fn the_checked_in_crd_is_what_the_code_generates() {
    let path = common::repo_root().join("crds/telegrambots.botfleet.dev.yaml");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == crd::crd_yaml(),
        "{} is out of date with operator/src/crd.rs; regenerate it with\n    \
         cargo run -p botfleet-operator -- crd > crds/telegrambots.botfleet.dev.yaml",
        path.display()
    );
}

#[test]
fn names_scope_columns_and_status_subresource() {
    let crd = crd_json();
    assert_eq!(crd["metadata"]["name"], crd::CRD_NAME);
    let spec = &crd["spec"];
    assert_eq!(spec["group"], "botfleet.dev");
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["kind"], "TelegramBot");
    assert_eq!(spec["names"]["plural"], "telegrambots");
    assert_eq!(spec["names"]["shortNames"], json!(["tgbot"]));
    let version = &spec["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(version["served"], true);
    assert_eq!(version["storage"], true);
    assert_eq!(version["subresources"]["status"], json!({}));
    let columns: Vec<(&str, &str)> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["jsonPath"].as_str().unwrap()))
        .collect();
    assert_eq!(
        columns,
        vec![
            ("Mode", ".spec.mode"),
            ("Ready", ".status.conditions[?(@.type==\"Ready\")].status"),
            ("Webhook URL", ".status.webhookUrl"),
            ("Age", ".metadata.creationTimestamp"),
        ]
    );
}

/// `kubectl explain` teaches every field: each property under spec and status has a description.
#[test]
fn every_field_is_described() {
    fn walk(path: &str, schema: &Value, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, prop) in props {
                let here = format!("{path}.{name}");
                if prop
                    .get("description")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    missing.push(here.clone());
                }
                walk(&here, prop, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    let schema = object_schema();
    let mut missing = Vec::new();
    walk("spec", &schema["properties"]["spec"], &mut missing);
    walk("status", &schema["properties"]["status"], &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
}

#[test]
fn enums_defaults_and_patterns_are_in_the_schema() {
    let spec = &object_schema()["properties"]["spec"]["properties"];
    assert_eq!(spec["mode"]["enum"], json!(["polling", "webhook"]));
    assert_eq!(spec["mode"]["default"], "polling");
    assert_eq!(spec["replicas"]["default"], 1);
    assert_eq!(
        spec["llm"]["properties"]["provider"]["enum"],
        json!(["anthropic", "openai"])
    );
    assert_eq!(
        spec["pricing"]["items"]["properties"]["input"]["pattern"],
        botfleet_api::PRICE_PATTERN
    );
    assert_eq!(
        spec["budget"]["properties"]["daily"]["pattern"],
        botfleet_api::DECIMAL_PATTERN
    );
    assert_eq!(
        spec["followUp"]["properties"]["after"]["items"]["pattern"],
        botfleet_api::DURATION_PATTERN
    );
    assert_eq!(
        spec["rateLimit"]["properties"]["per"]["pattern"],
        botfleet_api::DURATION_PATTERN
    );
    // Prices are a map keyed by model: the API server itself refuses a model priced twice.
    assert_eq!(spec["pricing"]["x-kubernetes-list-type"], "map");
    assert_eq!(
        spec["pricing"]["x-kubernetes-list-map-keys"],
        json!(["model"])
    );
    assert_eq!(spec["owners"]["x-kubernetes-list-type"], "set");
}

#[test]
fn the_cel_rules_are_on_the_spec_compile_and_fit_the_cost_budget() {
    let spec_schema = object_schema()["properties"]["spec"].clone();
    let rules: Vec<(String, String)> = spec_schema["x-kubernetes-validations"]
        .as_array()
        .expect("spec has x-kubernetes-validations")
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().into(),
                r["message"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = SPEC_CEL_RULES
        .iter()
        .map(|r| (r.rule.into(), r.message.into()))
        .collect();
    assert_eq!(rules, expected);

    let compiled = compile_schema(&object_schema());
    assert!(
        !compiled.has_errors(),
        "{:?}",
        compiled.compilation_errors()
    );
    let spec_compiled = compile_schema(&spec_schema);
    for rule in SPEC_CEL_RULES {
        let warnings = kube::core::cel::estimate_rule_cost(rule.rule, &spec_compiled);
        assert!(warnings.is_empty(), "{}: {warnings:?}", rule.rule);
    }
}

#[test]
fn good_bots_pass_schema_cel_and_validate_spec() {
    for bot in [common::polling_sqlite(), common::webhook_postgres()] {
        let object = as_object(&bot);
        assert_eq!(schema_errors(&object), Vec::<String>::new());
        assert_eq!(cel_errors(&object), Vec::<String>::new());
        validate_spec(&bot).unwrap();
    }
}

/// A bad spec, the CEL message the API server answers with, and the field `validate_spec` names.
struct Bad {
    what: &'static str,
    base: fn() -> TelegramBot,
    edit: fn(&mut Value),
    cel_message: &'static str,
    field: &'static str,
}

const CROSS_FIELD: &[Bad] = &[
    Bad {
        what: "no LLM API key",
        base: common::polling_sqlite,
        edit: |o| {
            o["spec"]["llm"]
                .as_object_mut()
                .unwrap()
                .remove("apiKeySecretRef");
        },
        cel_message: crd::LLM_KEY_REQUIRED.message,
        field: "spec.llm.apiKeySecretRef",
    },
    Bad {
        what: "webhook mode without a domain",
        base: common::webhook_postgres,
        edit: |o| {
            o["spec"]["webhook"]
                .as_object_mut()
                .unwrap()
                .remove("domain");
        },
        cel_message: "webhook mode needs webhook.domain",
        field: "spec.webhook.domain",
    },
    Bad {
        what: "webhook mode without a webhook section",
        base: common::polling_sqlite,
        edit: |o| o["spec"]["mode"] = json!("webhook"),
        cel_message: "webhook mode needs webhook.domain",
        field: "spec.webhook.domain",
    },
    Bad {
        what: "polling with two replicas (PostgreSQL)",
        base: common::webhook_postgres,
        edit: |o| o["spec"]["mode"] = json!("polling"),
        cel_message: crd::POLLING_ONE_REPLICA.message,
        field: "spec.replicas",
    },
    Bad {
        what: "embedded SQLite with two replicas (webhook)",
        base: common::webhook_postgres,
        edit: |o| {
            o["spec"].as_object_mut().unwrap().remove("database");
        },
        cel_message: crd::SQLITE_ONE_REPLICA.message,
        field: "spec.replicas",
    },
    Bad {
        what: "two TLS sources",
        base: common::webhook_postgres,
        edit: |o| o["spec"]["webhook"]["tls"]["secretName"] = json!("my-cert"),
        cel_message: crd::TLS_EXACTLY_ONE.message,
        field: "spec.webhook.tls",
    },
    Bad {
        what: "an empty TLS section",
        base: common::webhook_postgres,
        edit: |o| o["spec"]["webhook"]["tls"] = json!({}),
        cel_message: crd::TLS_EXACTLY_ONE.message,
        field: "spec.webhook.tls",
    },
];

#[test]
fn cross_field_rules_reject_with_the_same_reason_in_cel_and_in_code() {
    for bad in CROSS_FIELD {
        let mut object = as_object(&(bad.base)());
        (bad.edit)(&mut object);
        let cel = cel_errors(&object);
        assert!(
            cel.iter().any(|m| m == bad.cel_message),
            "{}: CEL said {cel:?}, expected {:?}",
            bad.what,
            bad.cel_message
        );
        let bot: TelegramBot = serde_json::from_value(object).unwrap();
        let errors = validate_spec(&bot).expect_err(bad.what);
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(bad.field) && e.contains(bad.cel_message)),
            "{}: validate_spec said {errors:?}",
            bad.what
        );
    }
}

#[test]
fn polling_on_sqlite_with_one_replica_or_none_is_fine() {
    for replicas in [0, 1] {
        let mut object = as_object(&common::polling_sqlite());
        object["spec"]["replicas"] = json!(replicas);
        assert_eq!(cel_errors(&object), Vec::<String>::new());
        validate_spec(&serde_json::from_value(object).unwrap()).unwrap();
    }
}

#[test]
fn the_schema_rejects_malformed_fields_with_their_path() {
    type Case = (&'static str, fn(&mut Value), &'static str);
    let cases: &[Case] = &[
        (
            "price with a comma",
            |o| o["spec"]["pricing"][0]["input"] = json!("3,00"),
            "/spec/pricing/0/input",
        ),
        (
            "price finer than a nano-USD per token",
            |o| o["spec"]["pricing"][0]["cacheRead"] = json!("0.0375"),
            "/spec/pricing/0/cacheRead",
        ),
        (
            "follow-up delay in words",
            |o| o["spec"]["followUp"]["after"] = json!(["24h", "2 days"]),
            "/spec/followUp/after/1",
        ),
        (
            "unknown mode",
            |o| o["spec"]["mode"] = json!("push"),
            "/spec/mode",
        ),
        (
            "unknown provider",
            |o| o["spec"]["llm"]["provider"] = json!("llama"),
            "/spec/llm/provider",
        ),
        (
            "budget in words",
            |o| o["spec"]["budget"]["daily"] = json!("five"),
            "/spec/budget/daily",
        ),
        (
            "quiet hours at 25:00",
            |o| o["spec"]["followUp"]["quietHours"]["start"] = json!("25:00"),
            "/spec/followUp/quietHours/start",
        ),
        (
            "negative replicas",
            |o| o["spec"]["replicas"] = json!(-1),
            "/spec/replicas",
        ),
        (
            "token ref without key",
            |o| {
                o["spec"]["telegram"]["tokenSecretRef"]
                    .as_object_mut()
                    .unwrap()
                    .remove("key");
            },
            "/spec/telegram/tokenSecretRef",
        ),
        (
            "no llm",
            |o| {
                o["spec"].as_object_mut().unwrap().remove("llm");
            },
            "/spec",
        ),
        (
            "domain with a scheme",
            |o| o["spec"]["webhook"]["domain"] = json!("https://bots.example.com"),
            "/spec/webhook/domain",
        ),
        (
            "scrape interval in words",
            |o| o["spec"]["monitoring"]["serviceMonitor"]["interval"] = json!("half a minute"),
            "/spec/monitoring/serviceMonitor/interval",
        ),
    ];
    for (what, edit, path) in cases {
        let mut object = as_object(&common::webhook_postgres());
        edit(&mut object);
        let errors = schema_errors(&object);
        assert!(
            errors.iter().any(|e| e.starts_with(&format!("{path}:"))),
            "{what}: expected an error at {path}, got {errors:?}"
        );
    }
}

#[test]
fn validate_spec_reports_every_problem_with_its_field() {
    let mut bot = common::webhook_postgres();
    bot.spec.bot.pricing.push(bot.spec.bot.pricing[0].clone());
    bot.spec.bot.webhook.as_mut().unwrap().domain = None;
    bot.spec.bot.llm.timeout = Some("0s".parse().unwrap());
    let errors = validate_spec(&bot).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("spec.pricing[1].model: ") && e.contains("priced twice")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("spec.webhook.domain: ")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("spec.llm.timeout: ")),
        "{errors:?}"
    );

    // Rules the schema cannot say, from botfleet_api::validate of the rendered config.
    let mut bot = common::polling_sqlite();
    bot.spec.bot.rate_limit = Some(botfleet_api::RateLimitConfig {
        messages: None,
        per: Some("0s".parse().unwrap()),
    });
    let errors = validate_spec(&bot).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("spec.rateLimit.per: "), "{errors:?}");

    let mut bot = common::polling_sqlite();
    bot.spec.bot.follow_up = Some(botfleet_api::FollowUpConfig {
        enabled: true,
        after: vec![],
        ..Default::default()
    });
    let errors = validate_spec(&bot).unwrap_err();
    assert!(errors[0].starts_with("spec.followUp.after: "), "{errors:?}");
}
