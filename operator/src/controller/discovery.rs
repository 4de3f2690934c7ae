//! Whether the cluster serves the prometheus-operator kinds, asked by discovery once and then
//! remembered, so that reconciles do not ask again:
//! - "served" is kept until an apply of one of those kinds answers 404 (the CRDs were removed:
//!   [`MonitoringDiscovery::forget`]), so a steady fleet costs no discovery request;
//! - "not served" expires after the TTL, so installing the CRDs later is noticed.
//!
//! Concurrent reconciles that find no answer wait for one request instead of each sending one.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::Client;

pub const MONITORING_GROUP_VERSION: &str = "monitoring.coreos.com/v1";

pub struct MonitoringDiscovery {
    ttl: Duration,
    cached: Mutex<Option<(Instant, bool)>>,
    /// Held while one caller asks the API server.
    asking: tokio::sync::Mutex<()>,
}

impl MonitoringDiscovery {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cached: Mutex::new(None),
            asking: tokio::sync::Mutex::new(()),
        }
    }

    fn remembered(&self) -> Option<bool> {
        match *self.cached.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((_, true)) => Some(true),
            Some((at, false)) if at.elapsed() < self.ttl => Some(false),
            _ => None,
        }
    }

    /// Forgets the answer (an apply of a monitoring kind found it not served).
    pub fn forget(&self) {
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Whether `ServiceMonitor` and `PrometheusRule` of `monitoring.coreos.com/v1` are served.
    pub async fn served(&self, client: &Client) -> Result<bool, kube::Error> {
        if let Some(served) = self.remembered() {
            return Ok(served);
        }
        let _asking = self.asking.lock().await;
        // Another caller may have asked while this one waited.
        if let Some(served) = self.remembered() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::FakeApiServer;

    #[tokio::test]
    async fn served_is_remembered_until_forgotten_and_not_served_is_asked_again() {
        let server = FakeApiServer::new();
        let client = server.client();
        let discovery = MonitoringDiscovery::new(Duration::ZERO);
        let asked = || server.requests().len();

        let answers = futures::future::join_all((0..8).map(|_| discovery.served(&client))).await;
        assert!(answers.into_iter().all(|a| a.unwrap()));
        assert_eq!(asked(), 1, "concurrent callers share one request");
        assert!(discovery.served(&client).await.unwrap());
        assert_eq!(asked(), 1, "served is kept even with a zero TTL");

        server.set_monitoring_served(false);
        discovery.forget();
        assert!(!discovery.served(&client).await.unwrap());
        assert!(!discovery.served(&client).await.unwrap());
        assert_eq!(asked(), 3, "not served expires (here at once)");
        server.set_monitoring_served(true);
        assert!(discovery.served(&client).await.unwrap());
    }
}
