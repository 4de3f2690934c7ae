//! Runs confirmed broadcasts. It runs inside the scheduler, so while there is a leader only
//! the leader sends; correctness does not rest on that: every recipient row is claimed in the
//! database before it is sent, so two senders never send the same row.
//!
//! A run: start the broadcast (write its recipients) → claim a small batch → send each row
//! through the outbound limiter at `Priority::Bulk` → record each row as it finishes → repeat.
//! A crash leaves the batch's rows claimed: a restarted process takes its own back at once
//! (embedded SQLite: all of them; PostgreSQL: those of its `POD_NAME`), any other sender after
//! [`CLAIM_TTL`]. Only the row in flight at the crash can go out twice (accepted by Telegram,
//! not yet recorded), as for replies.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::content::{self, Content};
use super::progress::{Progress, Stage};
use super::store::{self, Claimed, Outcome};
use super::{BroadcastError, Settings};
use crate::context::Context;
use crate::db::Dialect;
use crate::metrics::OutcomeLabels;
use crate::telegram::{Priority, TelegramError};

/// Rows claimed at once: under a second of sending, so a cancel or a lost lease stops the
/// run within about a second, and a crash leaves few rows to take back.
pub const BATCH: i64 = 20;
/// More rows are claimed when fewer than this are left to start.
const CLAIM_AHEAD: usize = 10;
/// Sends in flight at once: the limiter paces them; more than one keeps the pace when a
/// send and its database write take longer than a slot (1/30 s).
const CONCURRENCY: usize = 4;
/// How long a claim keeps other senders off a row: a batch with Telegram's longest
/// `retry_after` waits fits well within it.
pub const CLAIM_TTL: Duration = Duration::from_secs(5 * 60);
/// How often an idle sender looks for due broadcasts.
const POLL: Duration = Duration::from_secs(1);
/// Backoff of a transient failure: 2 s, 4 s, 8 s, … up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Runs broadcasts while `leading` is true, until `stop`. `identity` names this sender in
/// claims (the pod name, or this process's id).
pub async fn run(
    ctx: Context,
    settings: Settings,
    identity: String,
    mut leading: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    take_back_own_claims(&ctx).await;
    loop {
        if stop.is_cancelled() {
            break;
        }
        if !*leading.borrow_and_update() {
            tokio::select! {
                () = stop.cancelled() => break,
                changed = leading.changed() => if changed.is_err() { break },
            }
            continue;
        }
        let due = store::next_due(&ctx.db, Utc::now().timestamp_millis()).await;
        match due {
            Ok(Some(id)) => {
                let token = format!("{identity}/{:08x}", rand::random::<u32>());
                ctx.metrics.broadcasts_running.set(1);
                let run = Run {
                    ctx: &ctx,
                    settings: &settings,
                    id,
                    token: &token,
                    leading: &leading,
                    stop: &stop,
                };
                if let Err(e) = run.run().await {
                    ctx.db
                        .log_failure(&e, "broadcast run interrupted; it resumes where it stopped");
                    if let Err(e) = give_back(&ctx.db, &token).await {
                        tracing::warn!(broadcast = id, error = %e, "could not give claimed recipients back; their claims expire");
                    }
                    sleep_or_stop(&stop, POLL).await;
                }
                ctx.metrics.broadcasts_running.set(0);
            }
            Ok(None) => sleep_or_stop(&stop, POLL).await,
            Err(e) => {
                ctx.db.log_failure(&e, "looking for broadcasts failed");
                sleep_or_stop(&stop, POLL).await;
            }
        }
    }
}

async fn sleep_or_stop(stop: &CancellationToken, pause: Duration) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(pause) => {}
    }
}

/// Rows a previous process of ours left claimed cannot be in flight any more: with embedded
/// SQLite there is one process, so all of them; with PostgreSQL those of this pod (a
/// restarted container keeps `POD_NAME`); other pods' claims expire.
async fn take_back_own_claims(ctx: &Context) {
    let prefix = match ctx.db.dialect {
        Dialect::Sqlite => Some(String::new()),
        Dialect::Postgres => std::env::var(crate::config::env::POD_NAME)
            .ok()
            .filter(|pod| !pod.is_empty()),
    };
    let Some(prefix) = prefix else { return };
    match store::release(&ctx.db, &prefix, true).await {
        Ok(0) => {}
        Ok(rows) => tracing::info!(
            rows,
            "took back broadcast recipients a previous process left claimed"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not take back old broadcast claims; they expire")
        }
    }
}

struct Run<'a> {
    ctx: &'a Context,
    settings: &'a Settings,
    id: i64,
    token: &'a str,
    leading: &'a watch::Receiver<bool>,
    stop: &'a CancellationToken,
}

impl Run<'_> {
    fn may_go_on(&self) -> bool {
        !self.stop.is_cancelled() && *self.leading.borrow()
    }

    async fn run(&self) -> Result<(), BroadcastError> {
        let (ctx, id) = (self.ctx, self.id);
        let now = Utc::now().timestamp_millis();
        if store::start(&ctx.db, id, now).await? {
            tracing::info!(broadcast = id, "broadcast started");
        }
        let Some(b) = store::load(&ctx.db, id).await? else {
            return Ok(());
        };
        if b.status != "running" {
            return Ok(());
        }
        let Some(content) = b.content.clone() else {
            tracing::warn!(
                broadcast = id,
                "a running broadcast without a message; cancelling it"
            );
            store::cancel(&ctx.db, id, now).await?;
            return Ok(());
        };
        let mut progress = Progress::open(ctx, id, b.owner_chat_id, b.progress_message_id).await;
        loop {
            if !self.may_go_on() {
                return Ok(());
            }
            let (failure, waiting) = self.send_until_halt(&content, &mut progress).await;
            if let Some(e) = failure {
                return Err(e);
            }
            if waiting {
                // Nothing to claim: finished, cancelled, or rows to wait for.
                match self.idle(&mut progress).await? {
                    Idle::Over => return Ok(()),
                    Idle::Wait(pause) => sleep_or_stop(self.stop, pause).await,
                }
            }
        }
    }

    /// Claims and sends until there is nothing to claim (returns `waiting`), or the run must
    /// halt: cancelled, stopping, no longer leading, or a database error (returned). Rows are
    /// claimed ahead while sends are in flight, so the limiter's slots never wait for a claim;
    /// claimed rows not yet started when it halts are given back. A send already started is
    /// never dropped: it finishes and is recorded.
    async fn send_until_halt(
        &self,
        content: &Content,
        progress: &mut Progress,
    ) -> (Option<BroadcastError>, bool) {
        let (ctx, id) = (self.ctx, self.id);
        let ttl = i64::try_from(CLAIM_TTL.as_millis()).unwrap_or(i64::MAX);
        let mut queue: VecDeque<Claimed> = VecDeque::new();
        let mut inflight = FuturesUnordered::new();
        let (mut halted, mut drained) = (false, false);
        let mut failure: Option<BroadcastError> = None;
        loop {
            if !halted && !drained && queue.len() < CLAIM_AHEAD {
                let now = Utc::now().timestamp_millis();
                match store::claim(&ctx.db, id, self.token, now, now + ttl, BATCH).await {
                    Ok(rows) => {
                        drained = rows.is_empty();
                        queue.extend(rows);
                    }
                    Err(e) => {
                        halted = true;
                        failure.get_or_insert(e.into());
                    }
                }
            }
            while !halted && inflight.len() < CONCURRENCY {
                let Some(row) = queue.pop_front() else { break };
                inflight.push(self.send_and_record(content, row));
            }
            let Some(done) = inflight.next().await else {
                break;
            };
            match done {
                Ok(()) => progress.done_this_run += 1,
                Err(e) => {
                    halted = true;
                    failure.get_or_insert(e);
                }
            }
            if halted {
                continue;
            }
            if !self.may_go_on() {
                halted = true;
            } else if progress.due() {
                let checked = async {
                    let counts = store::counts(&ctx.db, id).await?;
                    let state = store::status(&ctx.db, id).await?;
                    if state.as_deref() == Some("running") {
                        progress.show(ctx, Stage::Sending, &counts).await?;
                        Ok(true)
                    } else {
                        Ok::<_, BroadcastError>(false)
                    }
                };
                match checked.await {
                    Ok(true) => {}
                    Ok(false) => halted = true,
                    Err(e) => {
                        halted = true;
                        failure.get_or_insert(e);
                    }
                }
            }
        }
        drop(inflight);
        if !queue.is_empty()
            && let Err(e) = give_back(&ctx.db, self.token).await
        {
            failure.get_or_insert(e.into());
        }
        (failure, !halted)
    }

    /// Sends one claimed row and records it.
    async fn send_and_record(&self, content: &Content, row: Claimed) -> Result<(), BroadcastError> {
        let outcome = self.send_one(content, row).await;
        self.record(row, &outcome).await
    }

    /// Nothing to claim: finished, cancelled, or waiting (retries, another sender's claims).
    async fn idle(&self, progress: &mut Progress) -> Result<Idle, BroadcastError> {
        let (ctx, id) = (self.ctx, self.id);
        let now = Utc::now().timestamp_millis();
        let state = store::status(&ctx.db, id).await?.unwrap_or_default();
        if state == "cancelled" {
            let counts = store::counts(&ctx.db, id).await?;
            progress.show(ctx, Stage::Cancelled, &counts).await?;
            tracing::info!(
                broadcast = id,
                sent = counts.sent,
                not_sent = counts.remaining(),
                "broadcast cancelled"
            );
            return Ok(Idle::Over);
        }
        if state != "running" {
            return Ok(Idle::Over);
        }
        if store::release_expired(&ctx.db, id, now).await? > 0 {
            return Ok(Idle::Wait(Duration::ZERO));
        }
        let counts = store::counts(&ctx.db, id).await?;
        if counts.remaining() == 0 {
            store::mark_done(&ctx.db, id, now).await?;
            progress.show(ctx, Stage::Done, &counts).await?;
            tracing::info!(
                broadcast = id,
                sent = counts.sent,
                failed = counts.failed,
                blocked = counts.blocked,
                "broadcast finished"
            );
            return Ok(Idle::Over);
        }
        if progress.due() {
            progress.show(ctx, Stage::Sending, &counts).await?;
        }
        // Retries not yet due, or rows another sender holds.
        let next = store::next_retry_at(&ctx.db, id).await?;
        let wait = next
            .map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or(0)))
            .unwrap_or(POLL)
            .min(POLL);
        Ok(Idle::Wait(wait))
    }

    async fn send_one(&self, content: &Content, row: Claimed) -> Outcome {
        let ctx = self.ctx;
        let sent = content::send(
            &ctx.delivery,
            row.chat_id,
            content,
            self.settings.opt_out_line.as_deref(),
            Priority::Bulk,
        )
        .await;
        let now = Utc::now().timestamp_millis();
        let outcome = match sent {
            Ok(_) => Outcome::Sent,
            Err(e) => self.failed(row, e, now).await,
        };
        let label = match &outcome {
            Outcome::Sent => "sent",
            Outcome::Blocked(_) => "blocked",
            Outcome::Failed(_) => "failed",
            Outcome::RetryAt(..) => "retried",
        };
        ctx.metrics
            .broadcast_messages
            .get_or_create(&OutcomeLabels {
                outcome: label.to_owned(),
            })
            .inc();
        outcome
    }

    async fn failed(&self, row: Claimed, e: TelegramError, now: i64) -> Outcome {
        if let Some(why) = e.unreachable() {
            // Delivery opted the lead out, as for any refused message: no follow-ups, no
            // broadcasts.
            return Outcome::Blocked(why.to_string());
        }
        if !e.is_transient() || row.attempt >= self.settings.max_attempts {
            tracing::info!(broadcast = self.id, chat_id = row.chat_id, attempt = row.attempt, error = %e, "broadcast message failed for good");
            return Outcome::Failed(e.to_string());
        }
        let backoff = match &e {
            // Flood control outlasted the limiter's own waits: wait as long as Telegram asked.
            TelegramError::RetryAfter(wait) => *wait,
            _ => (Duration::from_secs(1) * 2u32.saturating_pow(row.attempt)).min(MAX_BACKOFF),
        };
        tracing::debug!(broadcast = self.id, chat_id = row.chat_id, attempt = row.attempt, error = %e, "broadcast message failed; retrying later");
        let at = now + i64::try_from(backoff.as_millis()).unwrap_or(i64::MAX);
        Outcome::RetryAt(at, e.to_string())
    }

    /// Records a finished row. Telegram took the message (or refused it for good): like a sent
    /// reply, this is retried until the database answers, or the row would go out again.
    async fn record(&self, row: Claimed, outcome: &Outcome) -> Result<(), BroadcastError> {
        self.ctx
            .db
            .record_send("recording a broadcast send", || {
                let now = Utc::now().timestamp_millis();
                store::finish_row(&self.ctx.db, self.id, row.chat_id, self.token, outcome, now)
            })
            .await;
        Ok(())
    }
}

/// Gives back the rows `token` claimed and did not start, through a database outage of up to
/// their claim's life (after that they are free anyway).
async fn give_back(db: &crate::db::Db, token: &str) -> Result<u64, crate::db::SqlError> {
    crate::db::retry(
        db,
        "giving claimed recipients back",
        Some(CLAIM_TTL),
        || store::release(db, token, false),
    )
    .await
}

enum Idle {
    Over,
    Wait(Duration),
}
