//! Operations endpoints on the metrics port: liveness, readiness, Prometheus metrics and the
//! JSON usage summary the operator and dashboards read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use botfleet_api::contract;

use crate::db::Db;
use crate::metrics::Metrics;
use crate::money::Money;

#[derive(Clone)]
pub struct OpsState {
    pub db: Db,
    pub metrics: Arc<Metrics>,
    pub money: Arc<Money>,
    /// False once shutdown began: readiness fails so traffic moves to other replicas.
    pub accepting: Arc<AtomicBool>,
}

pub fn router(state: OpsState) -> axum::Router {
    axum::Router::new()
        .route(contract::LIVENESS_PATH, get(|| async { "ok" }))
        .route(contract::READINESS_PATH, get(readyz))
        .route(contract::METRICS_PATH, get(metrics))
        .route(contract::USAGE_PATH, get(usage))
        .with_state(state)
}

async fn readyz(State(state): State<OpsState>) -> (StatusCode, &'static str) {
    if !state.accepting.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    // Bounded: a probe that hangs on a dead database is as bad as one that lies.
    let ready = tokio::time::timeout(std::time::Duration::from_secs(2), state.db.is_ready()).await;
    if !matches!(ready, Ok(true)) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "database unreachable or not migrated",
        );
    }
    (StatusCode::OK, "ready")
}

async fn metrics(State(state): State<OpsState>, headers: axum::http::HeaderMap) -> Response {
    botfleet_telemetry::metrics_response(state.metrics.registry(), &headers)
}

async fn usage(State(state): State<OpsState>) -> Response {
    match state
        .money
        .usage_summary(&state.db, chrono::Utc::now())
        .await
    {
        Ok(summary) => axum::Json(summary).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "usage summary failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "usage unavailable: database error",
            )
                .into_response()
        }
    }
}
