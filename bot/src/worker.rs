//! Workers: take rows from the inbox, hand each to the conversation pipeline, mark it done.
//!
//! A claim is a lease kept alive by a heartbeat while the work runs; at shutdown the workers
//! stop taking rows, finish what they hold within the grace period, and give back the rest.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::context::Context;
use crate::conversation::{Pipeline, TelegramTransport};
use crate::db::SqlError;
use crate::inbox::{self, Claimed};

/// How often an idle worker looks for rows it was not woken for (other replicas' expired
/// claims, rows released after a failure).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Transient failures are retried after this pause (the row is released for any worker).
const RETRY_PAUSE: Duration = Duration::from_secs(2);

pub struct Workers {
    pub ctx: Context,
    pub pipeline: Arc<Pipeline>,
    pub wake: Arc<Notify>,
    /// Unique to this process: claims are made as `<id>-<n>`.
    pub id: String,
}

impl Workers {
    /// Runs `count` workers until `stop` fires, then waits up to `grace` for in-flight work and
    /// gives back whatever is still unfinished.
    pub async fn run(self, count: usize, stop: CancellationToken, grace: Duration) {
        let this = Arc::new(self);
        let mut set = JoinSet::new();
        for n in 0..count {
            let this = this.clone();
            let stop = stop.clone();
            set.spawn(async move { this.work(n, stop).await });
        }
        stop.cancelled().await;
        let drained =
            tokio::time::timeout(grace, async { while set.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "in-flight work outlived the grace period; leaving it in the inbox"
            );
            set.abort_all();
            while set.join_next().await.is_some() {}
        }
        match inbox::release_all(&this.ctx.db, &this.id).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "gave unfinished updates back to the inbox"),
            Err(e) => {
                tracing::warn!(error = %e, "could not release claims; they expire on their own")
            }
        }
    }

    async fn work(&self, n: usize, stop: CancellationToken) {
        let worker = format!("{}-{n}", self.id);
        while !stop.is_cancelled() {
            let now = chrono::Utc::now().timestamp_millis();
            let claim_for = self.ctx.settings.inbox_claim_timeout;
            match inbox::claim_next(&self.ctx.db, &worker, claim_for, now).await {
                Ok(Some(row)) => self.handle(&worker, row).await,
                Ok(None) => {
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming from the inbox failed");
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::time::sleep(RETRY_PAUSE) => {}
                    }
                }
            }
        }
    }

    async fn handle(&self, worker: &str, row: Claimed) {
        let span = tracing::info_span!(
            "update",
            update_id = row.update_id,
            chat_id = row.chat_id,
            attempt = row.attempts
        );
        async {
            let heartbeat = self.heartbeat(worker, row.update_id);
            let transport = TelegramTransport::new(self.ctx.clone()).arrived_at(row.received_at_ms);
            let result = tokio::select! {
                result = self.pipeline.handle_update(&transport, row.update_id, &row.payload) => result,
                lost = heartbeat => {
                    tracing::warn!(lost, "claim lost while working; another worker has the update");
                    return;
                }
            };
            let now = chrono::Utc::now().timestamp_millis();
            let db = &self.ctx.db;
            // Through a short database outage: an outcome not recorded waits out its claim.
            let within = self.ctx.settings.inbox_claim_timeout;
            let outcome = match result {
                Ok(()) => retry(within, || inbox::complete(db, row.update_id, now, None)).await,
                Err(e) if e.chat_unreachable() => {
                    tracing::info!(error = %e, "the reply was refused: the chat is unreachable");
                    let error = e.to_string();
                    retry(within, || inbox::complete(db, row.update_id, now, Some(&error))).await
                }
                Err(e) if e.is_transient() && row.attempts < inbox::MAX_ATTEMPTS => {
                    tracing::warn!(error = %e, "update failed; it will be retried");
                    tokio::time::sleep(RETRY_PAUSE).await;
                    let error = e.to_string();
                    retry(within, || inbox::release(db, row.update_id, worker, &error)).await
                }
                Err(e) => {
                    tracing::error!(error = %e, attempts = row.attempts, "update parked: it failed for good");
                    let error = e.to_string();
                    retry(within, || inbox::complete(db, row.update_id, now, Some(&error))).await
                }
            };
            if let Err(e) = outcome {
                tracing::error!(error = %e, "could not record the update's outcome; its claim will expire and it runs again");
            }
        }
        .instrument(span)
        .await
    }

    /// Keeps the claim alive; returns (true) only if the claim was lost.
    async fn heartbeat(&self, worker: &str, update_id: i64) -> bool {
        let claim_for = self.ctx.settings.inbox_claim_timeout;
        let every = claim_for / 3;
        loop {
            tokio::time::sleep(every).await;
            let until = chrono::Utc::now().timestamp_millis() + claim_for.as_millis() as i64;
            match inbox::extend_claim(&self.ctx.db, update_id, worker, until).await {
                Ok(true) => {}
                Ok(false) => return true,
                Err(e) => tracing::warn!(error = %e, "could not extend the claim"),
            }
        }
    }
}

/// Records an update's outcome through a short database outage (up to `within`, the claim's
/// life); the last error is returned for the caller to log.
async fn retry<F, Fut>(within: Duration, write: F) -> Result<(), SqlError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), SqlError>>,
{
    crate::db::retry("recording an update's outcome", Some(within), write).await
}
