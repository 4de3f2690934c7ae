//! The operator's own metrics: `botfleet_reconcile_total{result}`,
//! `botfleet_reconcile_duration_seconds`, `botfleet_managed_bots`.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `result` label values of `botfleet_reconcile_total`.
pub const RESULT_SUCCESS: &str = "success";
pub const RESULT_ERROR: &str = "error";

pub struct Metrics {
    registry: Registry,
    reconcile_total: Family<Vec<(&'static str, &'static str)>, Counter>,
    reconcile_duration: Histogram,
    managed_bots: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("botfleet");
        let reconcile_total = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        // Both results exist from the start, so rate() works before the first error.
        for result in [RESULT_SUCCESS, RESULT_ERROR] {
            let _ = reconcile_total.get_or_create(&vec![("result", result)]);
        }
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let managed_bots = Gauge::default();
        registry.register(
            "reconcile",
            "Reconciliations of TelegramBot resources by result (success, error)",
            reconcile_total.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconciliation of a TelegramBot took",
            reconcile_duration.clone(),
        );
        registry.register(
            "managed_bots",
            "TelegramBot resources this operator currently manages",
            managed_bots.clone(),
        );
        Self {
            registry,
            reconcile_total,
            reconcile_duration,
            managed_bots,
        }
    }

    pub fn record_reconcile(&self, success: bool, elapsed: Duration) {
        let result = if success {
            RESULT_SUCCESS
        } else {
            RESULT_ERROR
        };
        self.reconcile_total
            .get_or_create(&vec![("result", result)])
            .inc();
        self.reconcile_duration.observe(elapsed.as_secs_f64());
    }

    pub fn set_managed_bots(&self, count: usize) {
        self.managed_bots.set(count as i64);
    }

    /// The OpenMetrics text exposition.
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Prometheus text format 0.0.4, for scrapers that do not ask for OpenMetrics.
    pub fn encode(&self) -> String {
        openmetrics_to_prometheus(&self.encode_openmetrics())
    }
}

/// OpenMetrics names a counter family without `_total` (its samples carry the suffix); the
/// Prometheus text format names the family as its samples are named, has no `# UNIT` and no
/// `# EOF`. (The bot does the same rewrite for its own `/metrics`.)
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

    #[test]
    fn exposes_the_documented_names() {
        let metrics = Metrics::new();
        metrics.record_reconcile(true, Duration::from_millis(20));
        metrics.record_reconcile(false, Duration::from_millis(20));
        metrics.record_reconcile(true, Duration::from_millis(20));
        metrics.set_managed_bots(3);
        let text = metrics.encode();
        assert!(
            text.contains("botfleet_reconcile_total{result=\"success\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("botfleet_reconcile_total{result=\"error\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("botfleet_reconcile_duration_seconds_count 3"),
            "{text}"
        );
        assert!(text.contains("botfleet_managed_bots 3"), "{text}");
        assert!(
            text.contains("# TYPE botfleet_reconcile_total counter"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        assert!(metrics.encode_openmetrics().ends_with("# EOF\n"));
    }

    /// `promtool check metrics` on the exposition (skipped without promtool unless CI=true).
    #[test]
    fn promtool_accepts_the_exposition() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let metrics = Metrics::new();
        metrics.record_reconcile(true, Duration::from_millis(20));
        metrics.set_managed_bots(1);
        let child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(_) if std::env::var("CI").as_deref() != Ok("true") => {
                println!("skipped: promtool not installed");
                return;
            }
            Err(e) => panic!("promtool is required under CI: {e}"),
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(metrics.encode().as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
