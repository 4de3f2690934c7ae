//! The webhook endpoint Telegram posts updates to.
//!
//! Order of checks: shutting down → 503 (Telegram retries later); secret header (constant-time)
//! → 401; body over the limit → 413; not an update → 400; stored durably in the inbox → 200.
//! Concurrent requests share one transaction through the inbox's group-commit writer, and each
//! gets its 200 only once its own row is committed (a repeat is acknowledged the same way). A
//! storage failure answers 500 so that Telegram delivers the update again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::routing::post;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;

use crate::config::Secret;
use crate::inbox::{Enqueued, NewUpdate, Writer};
use crate::metrics::{KindLabels, Metrics, ReasonLabels};
use crate::telegram::updates::parse_update;

pub const SECRET_HEADER: &str = botfleet_api::contract::WEBHOOK_SECRET_HEADER;
/// Telegram updates are a few KiB; 1 MiB leaves room for anything legitimate.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct IntakeState {
    /// The inbox's group-commit writer.
    pub inbox: Writer,
    pub metrics: Arc<Metrics>,
    pub secret: Secret,
    /// Wakes the workers when a new update lands.
    pub wake: Arc<Notify>,
    /// False once shutdown began.
    pub accepting: Arc<AtomicBool>,
}

pub fn router(path: &str, state: IntakeState) -> axum::Router {
    axum::Router::new()
        .route(path, post(receive))
        .with_state(state)
}

fn reject(state: &IntakeState, reason: &str, status: StatusCode) -> StatusCode {
    state
        .metrics
        .webhook_rejected
        .get_or_create(&ReasonLabels {
            reason: reason.to_owned(),
        })
        .inc();
    status
}

async fn receive(State(state): State<IntakeState>, request: Request) -> StatusCode {
    if !state.accepting.load(Ordering::Relaxed) {
        return reject(&state, "shutting_down", StatusCode::SERVICE_UNAVAILABLE);
    }
    let given = request
        .headers()
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let expected = state.secret.expose().as_bytes();
    if !bool::from(given.ct_eq(expected)) {
        return reject(&state, "bad_secret", StatusCode::UNAUTHORIZED);
    }
    let body = match read_body(request.into_body()).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return reject(&state, "too_large", StatusCode::PAYLOAD_TOO_LARGE);
        }
        Err(BodyError::Broken) => return reject(&state, "malformed", StatusCode::BAD_REQUEST),
    };
    let Some(update) = parse_update(&body) else {
        return reject(&state, "malformed", StatusCode::BAD_REQUEST);
    };
    let row = NewUpdate::from_header(
        &update,
        String::from_utf8_lossy(&body).into_owned(),
        chrono::Utc::now().timestamp_millis(),
    );
    match state.inbox.store(row).await {
        Ok(Enqueued::New) => {
            state
                .metrics
                .telegram_updates
                .get_or_create(&KindLabels {
                    kind: update.kind.to_owned(),
                })
                .inc();
            state.wake.notify_one();
            tracing::debug!(
                update_id = update.update_id,
                chat_id = update.chat_id,
                kind = update.kind,
                "update accepted"
            );
            StatusCode::OK
        }
        Ok(Enqueued::Duplicate) => {
            tracing::info!(
                update_id = update.update_id,
                "repeated update acknowledged and dropped"
            );
            StatusCode::OK
        }
        Err(e) => {
            // The writer logged the batch's failure; this names the update it refused.
            tracing::debug!(update_id = update.update_id, error = %e, "update not stored; Telegram will retry");
            reject(&state, "storage", StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

enum BodyError {
    TooLarge,
    Broken,
}

async fn read_body(body: Body) -> Result<bytes::Bytes, BodyError> {
    match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => Ok(bytes),
        Err(e) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    return Err(BodyError::TooLarge);
                }
                source = err.source();
            }
            Err(BodyError::Broken)
        }
    }
}
