//! Workers: take rows from the inbox, hand each to the conversation pipeline, mark it done.
//!
//! A claim is a lease kept alive by a heartbeat while the work runs; at shutdown the workers
//! stop taking rows, finish what they hold within the grace period, and give back the rest.
//!
//! Through a database outage longer than a claim: the process never claims an update it holds
//! in memory ([`Held`]); when the database is back it re-asserts the claims it holds before any
//! worker claims again (the gate of [`crate::db::health`]); and for one claim length after
//! that it takes over no other process's expired claim, so a replica that lost the database
//! meanwhile re-asserts its own first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::context::Context;
use crate::conversation::{Pipeline, TelegramTransport};
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

/// The updates this process's workers hold: update id → the worker's claim name.
#[derive(Clone, Default)]
struct Held(Arc<Mutex<HashMap<i64, String>>>);

impl Held {
    fn contains(&self, update_id: i64) -> bool {
        self.0.lock().unwrap().contains_key(&update_id)
    }

    /// Holds `update_id` until the guard is dropped.
    fn hold(&self, update_id: i64, worker: &str) -> HeldGuard {
        self.0.lock().unwrap().insert(update_id, worker.to_owned());
        HeldGuard(self.clone(), update_id)
    }

    /// Extends every held claim: the database is back after an outage that may have outlived
    /// them. A claim another process took meanwhile is left to the heartbeat to notice.
    async fn reassert(&self, db: &crate::db::Db, claim_for: Duration) {
        let held: Vec<(i64, String)> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(id, w)| (*id, w.clone()))
            .collect();
        let until = chrono::Utc::now().timestamp_millis() + claim_for.as_millis() as i64;
        for (update_id, worker) in held {
            match inbox::extend_claim(db, update_id, &worker, until).await {
                Ok(true) => {}
                Ok(false) => tracing::info!(update_id, "a claim held through the outage was taken"),
                Err(e) => tracing::debug!(update_id, error = %e, "could not re-assert a claim"),
            }
        }
    }
}

struct HeldGuard(Held, i64);

impl Drop for HeldGuard {
    fn drop(&mut self) {
        self.0.0.lock().unwrap().remove(&self.1);
    }
}

impl Workers {
    /// Runs `count` workers until `stop` fires, then waits up to `grace` for in-flight work and
    /// gives back whatever is still unfinished.
    pub async fn run(self, count: usize, stop: CancellationToken, grace: Duration) {
        let held = Held::default();
        let db = self.ctx.db.clone();
        let claim_for = self.ctx.settings.inbox_claim_timeout;
        self.ctx.db.health.on_return({
            let held = held.clone();
            move || {
                let (held, db) = (held.clone(), db.clone());
                async move { held.reassert(&db, claim_for).await }
            }
        });
        let this = Arc::new(self);
        let mut set = JoinSet::new();
        for n in 0..count {
            let this = this.clone();
            let stop = stop.clone();
            let held = held.clone();
            set.spawn(async move { this.work(n, &held, stop).await });
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

    async fn work(&self, n: usize, held: &Held, stop: CancellationToken) {
        let worker = format!("{}-{n}", self.id);
        let db = &self.ctx.db;
        while !stop.is_cancelled() {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = db.health.open() => {}
            }
            let now = chrono::Utc::now().timestamp_millis();
            let claim_for = self.ctx.settings.inbox_claim_timeout;
            let claimable = inbox::Claimable {
                expired_before: self.expired_before(now),
                held: &|id| held.contains(id),
            };
            match inbox::claim_next(db, &worker, claim_for, now, claimable).await {
                Ok(Some(row)) => {
                    let _held = held.hold(row.update_id, &worker);
                    self.handle(&worker, row).await
                }
                Ok(None) => {
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                    }
                }
                Err(e) if db.unreachable(&e) => {
                    tracing::debug!(error = %e, "claiming from the inbox failed");
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

    /// Claims that ran out before this may be taken over: any, except for one claim length
    /// after the database came back from an outage (their holders re-assert them meanwhile).
    fn expired_before(&self, now_ms: i64) -> i64 {
        let claim_for = self.ctx.settings.inbox_claim_timeout;
        let in_grace = self
            .ctx
            .db
            .health
            .back_at()
            .is_some_and(|back| back.elapsed() < claim_for);
        if in_grace { i64::MIN } else { now_ms }
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
            // Recorded through any database outage; the update stays held meanwhile.
            let action = "recording an update's outcome";
            match result {
                Ok(()) => db.record_send(action, || inbox::complete(db, row.update_id, now, None)).await,
                Err(e) if e.chat_unreachable() => {
                    tracing::info!(error = %e, "the reply was refused: the chat is unreachable");
                    let error = e.to_string();
                    db.record_send(action, || inbox::complete(db, row.update_id, now, Some(&error))).await
                }
                Err(e) if e.is_transient() && row.attempts < inbox::MAX_ATTEMPTS => {
                    if db.unreachable_within(&e) {
                        tracing::debug!(error = %e, "update failed: the database is unreachable; it will be retried");
                    } else {
                        tracing::warn!(error = %e, "update failed; it will be retried");
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                    let error = e.to_string();
                    db.record_send(action, || inbox::release(db, row.update_id, worker, &error)).await
                }
                Err(e) => {
                    tracing::error!(error = %e, attempts = row.attempts, "update parked: it failed for good");
                    let error = e.to_string();
                    db.record_send(action, || inbox::complete(db, row.update_id, now, Some(&error))).await
                }
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
                Err(e) if self.ctx.db.unreachable(&e) => {
                    tracing::debug!(error = %e, "could not extend the claim")
                }
                Err(e) => tracing::warn!(error = %e, "could not extend the claim"),
            }
        }
    }
}
