//! The operator process over many `TelegramBot`s: the real `botfleet-operator run` binary, in a
//! process of its own, against the in-memory Kubernetes API server (`botfleet_operator::fixtures`,
//! which records every request) served over HTTP by this process, and a fake Telegram Bot API.
//!
//! It measures the time until every bot's status observes its generation (the first pass
//! creates every child), the API requests per bot of that first pass and of a steady-state
//! window in which every bot is reconciled again (`--resync-seconds`), reads and writes apart,
//! and the operator process's RSS (only the operator: the fake API server lives here). Half the
//! bots (`--webhook-percent`) are webhook bots on PostgreSQL with monitoring (Ingress, scheduler,
//! Telegram registration), the rest polling bots on SQLite.
//!
//! ```text
//! cargo build --release -p botfleet-operator -p botfleet-bench
//! target/release/operator --bots 1000
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use botfleet_bench::bot_process::free_port;
use botfleet_bench::flags::{Flag, Flags};
use botfleet_bench::process_stats::{peak_rss_kib, rss_kib};
use botfleet_bench::report::{Table, mib, print_header};
use botfleet_operator::crd::TelegramBot;
use botfleet_operator::fixtures::{FakeApiServer, FakeTelegram, Loopback, RecordedRequest};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
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
        name: "resync-seconds",
        env: None,
        default: "20",
        help: "the operator's --resync-seconds: the steady-state window is one resync and a bit",
    },
    Flag {
        name: "timeout-seconds",
        env: None,
        default: "3600",
        help: "give up waiting for the first pass after this long (the table says how far it got)",
    },
    Flag {
        name: "operator-binary",
        env: Some("BOTFLEET_OPERATOR_BINARY"),
        default: "",
        help: "the botfleet-operator binary (default: beside this one)",
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

/// Serves the in-memory API server over HTTP on loopback, so that another process can use it.
async fn serve_api(server: &FakeApiServer) -> Loopback {
    let client = server.client();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let client = client.clone();
        async move {
            let (parts, body) = request.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let request =
                axum::http::Request::from_parts(parts, kube::client::Body::from(bytes.to_vec()));
            match client.send(request).await {
                Ok(response) => response.map(axum::body::Body::new),
                Err(e) => axum::http::Response::builder()
                    .status(502)
                    .body(axum::body::Body::from(e.to_string()))
                    .expect("a response"),
            }
        }
    });
    Loopback::serve(app).await
}

/// Bots whose status observes their generation. Counted in place under the server's lock
/// (no copies), since the server is busy with the operator meanwhile.
fn converged(server: &FakeApiServer) -> usize {
    server.count_objects("/apis/botfleet.dev/v1alpha1", "telegrambots", |b| {
        b["metadata"]["generation"].as_i64().is_some()
            && b["status"]["observedGeneration"] == b["metadata"]["generation"]
    })
}

/// `botfleet_reconcile_total` summed over results, from the operator's /metrics.
async fn reconciles(metrics_url: &str) -> u64 {
    let Ok(response) = reqwest::get(metrics_url).await else {
        return 0;
    };
    response
        .text()
        .await
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("botfleet_reconcile_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Reads (GET of an object, LIST, discovery) and writes of a request log; watches apart.
#[derive(Default)]
struct Counts {
    watches: usize,
    reads: usize,
    writes: usize,
    by_kind: BTreeMap<String, usize>,
}

fn count(requests: &[RecordedRequest]) -> Counts {
    let mut c = Counts::default();
    for r in requests {
        if r.query.contains("watch=true") || r.query.contains("watch=1") {
            c.watches += 1;
            continue;
        }
        if r.is_write() {
            c.writes += 1;
        } else {
            c.reads += 1;
        }
        *c.by_kind.entry(request_kind(r)).or_default() += 1;
    }
    c
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
    let resource = match segments.iter().position(|s| *s == "namespaces") {
        Some(i) if segments.len() > i + 2 => {
            let plural = segments[i + 2];
            if segments.len() == i + 3 && verb == "GET" {
                verb = "LIST".into();
            }
            match segments.get(i + 4) {
                Some(sub) => format!("{plural}/{sub}"),
                None => plural.to_string(),
            }
        }
        _ => {
            // /api, /api/v1, /apis, /apis/<group>, /apis/<group>/<version>
            let discovery = match segments.first() {
                Some(&"api") => segments.len() <= 2,
                Some(&"apis") => segments.len() <= 3,
                _ => false,
            };
            if verb == "GET" && discovery {
                "discovery".into()
            } else {
                // A cluster-wide collection (the watches' initial lists).
                verb = "LIST".into();
                segments.last().copied().unwrap_or("/").to_string()
            }
        }
    };
    format!("{verb} {resource}")
}

#[tokio::main]
async fn main() {
    let flags = Flags::parse(
        "The operator process over many TelegramBots against the in-memory API server",
        FLAGS,
    );
    let bots: usize = flags.get("bots");
    let namespaces: usize = flags.get("namespaces");
    let webhook_percent: usize = flags.get::<usize>("webhook-percent").min(100);
    let concurrency: usize = flags.get("concurrency");
    let resync: u64 = flags.get::<u64>("resync-seconds").max(10);
    let timeout: u64 = flags.get("timeout-seconds");
    let binary = match flags.text("operator-binary") {
        b if !b.is_empty() => std::path::PathBuf::from(b),
        _ => std::env::current_exe()
            .expect("this binary")
            .with_file_name("botfleet-operator"),
    };
    assert!(
        binary.exists(),
        "{} not found: cargo build --release -p botfleet-operator",
        binary.display()
    );

    let server = FakeApiServer::new();
    let telegram = FakeTelegram::start().await;
    eprintln!("seeding {bots} bots");
    let webhook_bots = seed(&server, bots, namespaces, webhook_percent).await;
    let api = serve_api(&server).await;
    let api_url = &api.url;
    let dir = std::env::temp_dir().join(format!("botfleet-operator-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"{api_url}\"}}}}]\n\
             users: [{{name: fake, user: {{}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: default}}}}]\n\
             current-context: fake\n"
        ),
    )
    .expect("kubeconfig");
    let metrics_port = free_port();
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");

    server.clear_requests();
    let started = Instant::now();
    let mut operator = std::process::Command::new(&binary)
        .args([
            "run",
            "--disable-leader-election",
            "--log-format=text",
            &format!("--metrics-addr=127.0.0.1:{metrics_port}"),
            &format!("--telegram-api-url={}", telegram.url),
            &format!("--resync-seconds={resync}"),
            &format!("--concurrency={concurrency}"),
            // The fake server is the limit here, not a rate limit.
            "--api-qps=100000",
            "--api-burst=100000",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the operator");
    let pid = operator.id();

    // First pass: until every bot's status observes its generation (or the cap), noting when
    // each quarter of the bots got there (a rate that falls as the fleet grows shows here).
    let cap = Duration::from_secs(timeout);
    let mut quarters: Vec<Duration> = Vec::new();
    let mut last_report = Instant::now();
    let mut done = 0;
    while done < bots && started.elapsed() < cap {
        tokio::time::sleep(Duration::from_millis(200)).await;
        done = converged(&server);
        while quarters.len() < 4 && done * 4 >= bots * (quarters.len() + 1) {
            quarters.push(started.elapsed());
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "{done}/{bots} converged after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    let converge_time = started.elapsed();
    // The events of the operator's own applies come back as (no-op) reconciles; let them pass.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let first = count(&server.requests());
    let rss_first = rss_kib(pid).unwrap_or(0);

    // Steady state: one resync and a bit, in which every bot is reconciled again.
    server.clear_requests();
    let reconciles_before = reconciles(&metrics_url).await;
    tokio::time::sleep(Duration::from_secs(resync + resync / 2 + 5)).await;
    let steady_reconciles = reconciles(&metrics_url).await - reconciles_before;
    let steady = count(&server.requests());
    let rss_steady = rss_kib(pid).unwrap_or(0);
    let peak = peak_rss_kib(pid).unwrap_or(0);
    let _ = operator.kill();
    let _ = operator.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let objects = server.paths().len();
    print_header(
        "Operator: the operator process over many TelegramBots (in-memory API server in another process)",
        &[
            (
                "bots",
                format!(
                    "{bots} in {namespaces} namespaces: {webhook_bots} webhook + PostgreSQL + monitoring, {} polling + SQLite",
                    bots - webhook_bots
                ),
            ),
            ("reconciles in flight", concurrency.to_string()),
            ("objects in the API server", objects.to_string()),
        ],
    );
    let per_bot = |n: usize| format!("{:.2}", n as f64 / bots.max(1) as f64);
    let mut table = Table::new([
        "phase",
        "time",
        "reconciles",
        "reads per bot",
        "writes per bot",
        "watch requests",
        "operator RSS",
    ]);
    table.row([
        "first pass (creates everything)".to_owned(),
        if done >= bots {
            format!("{:.1} s to converge", converge_time.as_secs_f64())
        } else {
            format!(
                "NOT converged: {done} of {bots} after {:.0} s",
                converge_time.as_secs_f64()
            )
        },
        "-".to_owned(),
        per_bot(first.reads),
        per_bot(first.writes),
        first.watches.to_string(),
        mib(rss_first),
    ]);
    table.row([
        "steady state (one resync)".to_owned(),
        format!("{} s window", resync + resync / 2 + 5),
        steady_reconciles.to_string(),
        per_bot(steady.reads),
        per_bot(steady.writes),
        steady.watches.to_string(),
        mib(rss_steady),
    ]);
    println!("{}", table.render());
    let quarters: Vec<String> = quarters
        .iter()
        .zip(["25 %", "50 %", "75 %", "100 %"])
        .map(|(t, q)| format!("{q} at {:.1} s", t.as_secs_f64()))
        .collect();
    println!("converged: {}\n", quarters.join(", "));
    let mut breakdown = Table::new(["request", "first pass", "steady state"]);
    let kinds: std::collections::BTreeSet<&String> =
        first.by_kind.keys().chain(steady.by_kind.keys()).collect();
    for kind in kinds {
        breakdown.row([
            kind.clone(),
            first.by_kind.get(kind).copied().unwrap_or(0).to_string(),
            steady.by_kind.get(kind).copied().unwrap_or(0).to_string(),
        ]);
    }
    println!(
        "### API requests by kind (watches not included)\n\n{}",
        breakdown.render()
    );
    println!(
        "operator RSS: {} after the first pass, {} in steady state, peak {} (the operator process alone; the fake API server and Telegram run in the benchmark process). Telegram calls: {}.",
        mib(rss_first),
        mib(rss_steady),
        mib(peak),
        telegram.calls().len(),
    );
}
