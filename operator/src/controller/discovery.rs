//! Whether the cluster serves the prometheus-operator kinds, asked by discovery and cached so
//! every reconcile does not ask again; the cache expires so installing the CRDs later is noticed.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::Client;

pub const MONITORING_GROUP_VERSION: &str = "monitoring.coreos.com/v1";

pub struct MonitoringDiscovery {
    ttl: Duration,
    cached: Mutex<Option<(Instant, bool)>>,
}

impl MonitoringDiscovery {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cached: Mutex::new(None),
        }
    }

    /// Whether `ServiceMonitor` and `PrometheusRule` of `monitoring.coreos.com/v1` are served.
    pub async fn served(&self, client: &Client) -> Result<bool, kube::Error> {
        if let Some((at, served)) = *self.cached.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < self.ttl
        {
            return Ok(served);
        }
        let served = match client
            .list_api_group_resources(MONITORING_GROUP_VERSION)
            .await
        {
            Ok(list) => ["servicemonitors", "prometheusrules"]
                .iter()
                .all(|plural| list.resources.iter().any(|r| r.name == *plural)),
            Err(kube::Error::Api(status)) if status.code == 404 => false,
            Err(e) => return Err(e),
        };
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), served));
        Ok(served)
    }
}
