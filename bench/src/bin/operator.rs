//! The operator's reconciler over many `TelegramBot`s against the in-memory Kubernetes API
//! server (`botfleet_operator::fixtures`, which records every request) and a fake Telegram Bot
//! API: the first pass creates every bot's children, the next passes find nothing to change.
//!
//! Each pass lists the bots once (as the controller's watch cache would hold them; the list is
//! not counted) and then calls the public `botfleet_operator::controller::reconcile` for each,
//! `--concurrency` at a time, as the controller does. Half the bots (`--webhook-percent`) are
//! webhook bots on PostgreSQL with monitoring (Ingress, scheduler, Telegram registration), the
//! rest polling bots on SQLite.
//!
//! ```text
//! cargo run --release -p botfleet-bench --bin operator -- --bots 1000
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use botfleet_bench::flags::{Flag, Flags};
use botfleet_bench::process_stats::rss_kib;
use botfleet_bench::report::{Table, mib, ms, print_header};
use botfleet_operator::controller::{Context, ContextConfig, reconcile};
use botfleet_operator::crd::TelegramBot;
use botfleet_operator::fixtures::{FakeApiServer, FakeTelegram, RecordedRequest};
use botfleet_operator::process::metrics::Metrics;
use botfleet_operator::render::RenderDefaults;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

const FLAGS: &[Flag] = &[
    Flag {
        name: "bots",
        env: None,
        default: "1000",
        help: "TelegramBots to reconcile",
    },
    Flag {
        name: "namespaces",
        env: None,
        default: "10",
        help: "namespaces the bots are spread over",
    },
    Flag {
        name: "webhook-percent",
        env: None,
        default: "50",
        help: "share of webhook + PostgreSQL + monitoring bots (the rest: polling + SQLite)",
    },
    Flag {
        name: "concurrency",
        env: None,
        default: "16",
        help: "reconciles in flight at once",
    },
    Flag {
        name: "passes",
        env: None,
        default: "2",
        help: "passes over all bots (pass 1 creates, later ones are steady state)",
    },
];

fn bot_spec(index: usize, webhook: bool) -> Value {
    let name = format!("bot-{index:05}");
    let mut spec = json!({
        "telegram": {"tokenSecretRef": {"name": format!("{name}-telegram"), "key": "token"}},
        "llm": {
            "model": "claude-haiku-4-5",
            "apiKeySecretRef": {"name": format!("{name}-llm"), "key": "apiKey"},
            "systemPrompt": "You are a friendly assistant.",
        },
        "pricing": [{"model": "claude-haiku-4-5", "input": "1.00", "output": "5.00"}],
        "budget": {"daily": "1.00"},
    });
    if webhook {
        let extra = json!({
            "replicas": 2,
            "mode": "webhook",
            "webhook": {"domain": "bots.example.com", "ingressClassName": "nginx", "tls": {"clusterIssuer": "letsencrypt-prod"}, "maxConnections": 40},
            "database": {"urlSecretRef": {"name": format!("{name}-db"), "key": "url"}},
            "scheduler": {"replicas": 2},
            "followUp": {"enabled": true, "after": ["24h", "48h"]},
            "monitoring": {"serviceMonitor": {"enabled": true, "interval": "30s"}, "prometheusRule": {"enabled": true}},
        });
        if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
            spec.extend(extra);
        }
    }
    json!({
        "apiVersion": "botfleet.dev/v1alpha1", "kind": "TelegramBot",
        "metadata": {"name": name},
        "spec": spec,
    })
}

async fn seed(
    server: &FakeApiServer,
    bots: usize,
    namespaces: usize,
    webhook_percent: usize,
) -> usize {
    let client = server.client();
    let mut webhook_bots = 0;
    for i in 0..bots {
        let ns = format!("team-{:03}", i % namespaces.max(1));
        // Spread evenly: in every hundred bots, the first `webhook_percent` are webhook bots.
        let webhook = (i % 100) < webhook_percent;
        webhook_bots += usize::from(webhook);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let name = format!("bot-{i:05}");
        let mut wanted = vec![
            (
                format!("{name}-telegram"),
                "token",
                format!("{}:bench-token-{i}", 100_000 + i),
            ),
            (format!("{name}-llm"), "apiKey", "sk-bench".to_owned()),
        ];
        if webhook {
            wanted.push((format!("{name}-db"), "url", format!("postgres://db/{name}")));
        }
        for (secret, key, value) in wanted {
            let object: Secret = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": secret},
                "stringData": {key: value},
            }))
            .expect("a Secret");
            secrets
                .create(&PostParams::default(), &object)
                .await
                .expect("create Secret");
        }
        let bot: TelegramBot = serde_json::from_value(bot_spec(i, webhook)).expect("a TelegramBot");
        Api::<TelegramBot>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &bot)
            .await
            .expect("create TelegramBot");
    }
    webhook_bots
}

struct Pass {
    elapsed: Duration,
    failures: usize,
    requests: Vec<RecordedRequest>,
    telegram_calls: usize,
    rss_kib: u64,
}

async fn pass(
    server: &FakeApiServer,
    telegram: &FakeTelegram,
    ctx: &Arc<Context>,
    concurrency: usize,
) -> Pass {
    // The controller reconciles from its watch cache; one list stands in for it.
    let bots = Api::<TelegramBot>::all(server.client())
        .list(&ListParams::default())
        .await
        .expect("list TelegramBots")
        .items;
    server.clear_requests();
    let telegram_before = telegram.calls().len();
    let started = Instant::now();
    let failures = futures::stream::iter(bots)
        .map(|bot| reconcile(Arc::new(bot), ctx.clone()))
        .buffer_unordered(concurrency.max(1))
        .filter(|r| futures::future::ready(r.is_err()))
        .count()
        .await;
    let elapsed = started.elapsed();
    Pass {
        elapsed,
        failures,
        requests: server.requests(),
        telegram_calls: telegram.calls().len() - telegram_before,
        rss_kib: rss_kib(std::process::id()).unwrap_or(0),
    }
}

/// `GET`, `LIST`, `PATCH (apply)`, `PATCH (merge)`, `POST`, ... with the resource, for the breakdown.
fn request_kind(r: &RecordedRequest) -> String {
    let mut verb = r.method.to_string();
    if r.method.as_str() == "PATCH" {
        let ct = r.content_type.as_deref().unwrap_or_default();
        verb = if ct.starts_with("application/apply-patch") {
            "PATCH (apply)".into()
        } else if ct.starts_with("application/merge-patch") {
            "PATCH (merge)".into()
        } else if ct.starts_with("application/json-patch") {
            "PATCH (json)".into()
        } else {
            format!("PATCH ({ct})")
        };
    }
    let segments: Vec<&str> = r.path.split('/').filter(|s| !s.is_empty()).collect();
    // .../namespaces/<ns>/<plural>[/<name>[/<sub>]]
    let resource = match segments.iter().position(|s| *s == "namespaces") {
        Some(i) if segments.len() > i + 2 => {
            let plural = segments[i + 2];
            if segments.len() == i + 3 && verb == "GET" {
                // A collection: a list (watches are not made by a reconcile).
                verb = "LIST".into();
            }
            match segments.get(i + 4) {
                Some(sub) => format!("{plural}/{sub}"),
                None => plural.to_string(),
            }
        }
        _ => segments.last().copied().unwrap_or("/").to_string(),
    };
    format!("{verb} {resource}")
}

#[tokio::main]
async fn main() {
    let flags = Flags::parse(
        "Reconcile of many TelegramBots against the in-memory API server",
        FLAGS,
    );
    let bots: usize = flags.get("bots");
    let namespaces: usize = flags.get("namespaces");
    let webhook_percent: usize = flags.get::<usize>("webhook-percent").min(100);
    let concurrency: usize = flags.get("concurrency");
    let passes: usize = flags.get::<usize>("passes").max(1);

    let rss_start = rss_kib(std::process::id()).unwrap_or(0);
    let server = FakeApiServer::new();
    let telegram = FakeTelegram::start().await;
    let ctx = Arc::new(Context::new(
        server.client(),
        ContextConfig {
            defaults: RenderDefaults {
                telegram_api_url: telegram.url.clone(),
                ..RenderDefaults::default()
            },
            ..ContextConfig::default()
        },
        Arc::new(Metrics::new()),
    ));
    eprintln!("seeding {bots} bots");
    let webhook_bots = seed(&server, bots, namespaces, webhook_percent).await;
    let rss_seeded = rss_kib(std::process::id()).unwrap_or(0);

    let mut results = Vec::new();
    for n in 1..=passes {
        eprintln!("pass {n}");
        results.push(pass(&server, &telegram, &ctx, concurrency).await);
    }
    let objects = server.paths().len();

    print_header(
        "Operator: reconcile of many TelegramBots (in-memory API server)",
        &[
            (
                "bots",
                format!(
                    "{bots} in {namespaces} namespaces: {webhook_bots} webhook + PostgreSQL + monitoring, {} polling + SQLite",
                    bots - webhook_bots
                ),
            ),
            ("reconciles in flight", concurrency.to_string()),
            (
                "objects in the API server after the passes",
                objects.to_string(),
            ),
        ],
    );
    let mut table = Table::new([
        "pass",
        "total time",
        "per bot",
        "failed",
        "API requests",
        "per bot",
        "writes",
        "writes per bot",
        "Telegram calls",
        "process RSS",
    ]);
    for (i, p) in results.iter().enumerate() {
        let writes = p.requests.iter().filter(|r| r.is_write()).count();
        table.row([
            if i == 0 {
                "1 (create)".to_owned()
            } else {
                format!("{} (steady)", i + 1)
            },
            format!("{:.2} s", p.elapsed.as_secs_f64()),
            ms(p.elapsed / bots.max(1) as u32),
            p.failures.to_string(),
            p.requests.len().to_string(),
            format!("{:.1}", p.requests.len() as f64 / bots.max(1) as f64),
            writes.to_string(),
            format!("{:.2}", writes as f64 / bots.max(1) as f64),
            p.telegram_calls.to_string(),
            mib(p.rss_kib),
        ]);
    }
    println!("{}", table.render());

    let mut breakdown = Table::new(
        std::iter::once("request".to_owned()).chain((1..=passes).map(|n| format!("pass {n}"))),
    );
    let mut counts: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, p) in results.iter().enumerate() {
        for r in &p.requests {
            counts
                .entry(request_kind(r))
                .or_insert_with(|| vec![0; passes])[i] += 1;
        }
    }
    for (kind, per_pass) in counts {
        breakdown.row(std::iter::once(kind).chain(per_pass.iter().map(|c| c.to_string())));
    }
    println!("### API requests by kind\n\n{}", breakdown.render());
    println!(
        "process RSS: {} at start, {} with the bots seeded, {} after the passes (one process holds the reconciler, the in-memory API server with every object, its request log, and the fake Telegram).",
        mib(rss_start),
        mib(rss_seeded),
        mib(results.last().map_or(0, |p| p.rss_kib)),
    );
}
