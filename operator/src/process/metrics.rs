//! The operator's own metrics: `botfleet_reconcile_total{result}`,
//! `botfleet_reconcile_duration_seconds`, `botfleet_managed_bots`.

use std::time::Duration;

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
        let mut registry = botfleet_telemetry::metrics_registry();
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
}

impl Metrics {
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

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Prometheus text format 0.0.4.
    pub fn encode(&self) -> String {
        botfleet_telemetry::encode_prometheus(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_documented_names() {
        let metrics = Metrics::default();
        metrics.record_reconcile(true, Duration::from_millis(20));
        metrics.record_reconcile(false, Duration::from_millis(20));
        metrics.record_reconcile(true, Duration::from_millis(20));
        metrics.set_managed_bots(3);
        let text = metrics.encode();
        for expected in [
            "botfleet_reconcile_total{result=\"success\"} 2",
            "botfleet_reconcile_total{result=\"error\"} 1",
            "botfleet_reconcile_duration_seconds_count 3",
            "botfleet_managed_bots 3",
            "# TYPE botfleet_reconcile_total counter",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from {text}");
        }
        assert!(!text.contains("# EOF"), "{text}");
        assert!(botfleet_telemetry::encode_openmetrics(metrics.registry()).ends_with("# EOF\n"));
    }

    /// `promtool check metrics` on the exposition (skipped without promtool unless CI=true).
    #[test]
    fn promtool_accepts_the_exposition() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let metrics = Metrics::default();
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
