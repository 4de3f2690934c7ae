//! What the bot and the operator share about being observed and stopped: structured logs, the
//! `/metrics` response, and shutdown on SIGTERM/SIGINT.

use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Logs to stderr: one JSON object per line with `format = "json"` (pods), compact text
/// otherwise. The level comes from `RUST_LOG` (default `info`, quieter for noisy crates).
/// A second call keeps the first subscriber (tests start several apps in one process).
pub fn init_logging(format: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn,reqwest=warn,kube=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}

/// A token cancelled on the first SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            () = terminate => tracing::info!("SIGTERM: shutting down"),
        }
        trigger.cancel();
    });
    token
}

/// An empty registry whose metrics are named `botfleet_…`, as the bot's and the operator's
/// all are.
pub fn metrics_registry() -> Registry {
    Registry::with_prefix("botfleet")
}

/// OpenMetrics text, as prometheus-client writes it.
pub fn encode_openmetrics(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
}

/// Prometheus text format 0.0.4.
pub fn encode_prometheus(registry: &Registry) -> String {
    openmetrics_to_prometheus(&encode_openmetrics(registry))
}

/// The `/metrics` response: OpenMetrics when the scraper asks for it (`Accept:
/// application/openmetrics-text`), the Prometheus text format otherwise.
pub fn metrics_response(registry: &Registry, request_headers: &HeaderMap) -> Response {
    let wants_openmetrics = request_headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    if wants_openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            encode_openmetrics(registry),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            encode_prometheus(registry),
        )
            .into_response()
    }
}

/// OpenMetrics names a counter family without `_total` (its samples carry the suffix); the
/// Prometheus text format names the family as its samples are named, and has no `# UNIT` or
/// `# EOF`. Served as OpenMetrics to a text-format scraper, counters would read as untyped
/// series without help.
pub fn openmetrics_to_prometheus(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 64);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::gauge::Gauge;

    #[test]
    fn counters_keep_their_total_suffix_in_prometheus_text() {
        let mut registry = metrics_registry();
        let sent = Counter::<u64>::default();
        let pending = Gauge::<i64>::default();
        registry.register("messages_sent", "Messages sent", sent.clone());
        registry.register("inbox_pending", "Backlog", pending.clone());
        sent.inc();
        let text = encode_prometheus(&registry);
        assert!(
            text.contains("# TYPE botfleet_messages_sent_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP botfleet_messages_sent_total Messages sent.\n"),
            "{text}"
        );
        assert!(text.contains("botfleet_messages_sent_total 1\n"), "{text}");
        assert!(
            text.contains("# TYPE botfleet_inbox_pending gauge\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
        assert!(encode_openmetrics(&registry).ends_with("# EOF\n"));
    }

    #[test]
    fn the_scraper_chooses_the_format() {
        let registry = Registry::default();
        let mut headers = HeaderMap::new();
        let plain = metrics_response(&registry, &headers);
        assert!(
            plain.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        headers.insert(
            header::ACCEPT,
            "application/openmetrics-text; version=1.0.0"
                .parse()
                .unwrap(),
        );
        let open = metrics_response(&registry, &headers);
        assert!(
            open.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
    }
}
