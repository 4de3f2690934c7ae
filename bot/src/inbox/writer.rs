//! Group commit: concurrent callers hand their row to one writer task and await their own
//! outcome. The writer takes everything already waiting (up to [`MAX_BATCH`] rows), stores it
//! in one transaction ([`batch::insert`]) and answers each caller. It never waits for a batch
//! to fill: a lone row is written at once, and rows that arrive meanwhile form the next batch.
//! An outcome is only given after the commit, so a caller that answers Telegram 200 on
//! [`Enqueued::New`] or [`Enqueued::Duplicate`] never acknowledges an update the inbox could
//! lose; a failed batch fails only its own callers.

use std::sync::Arc;

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, SqlError};
use crate::inbox::batch::{self, Enqueued, MAX_BATCH, NewUpdate};

/// Rows waiting for the writer beyond the batch in progress; senders past it wait their turn.
const QUEUE: usize = 4 * MAX_BATCH;

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The batch this row was in was not stored (the writer logged why, once per batch).
    #[error(transparent)]
    Batch(Arc<SqlError>),
    #[error("the inbox writer has stopped")]
    Stopped,
}

/// The handle callers store rows through; cheap to clone. The writer task ends when the last
/// handle is dropped, after answering what it holds.
#[derive(Clone, Debug)]
pub struct Writer {
    requests: mpsc::Sender<Request>,
}

#[derive(Debug)]
struct Request {
    row: NewUpdate,
    answer: oneshot::Sender<Result<Enqueued, WriteError>>,
}

impl Writer {
    /// Starts the writer task of `db`; `batch_rows` observes the size of each batch.
    pub fn spawn(db: Db, batch_rows: Histogram) -> Self {
        let (requests, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, queue, batch_rows));
        Self { requests }
    }

    /// Stores `row` with whatever else is waiting; returns once it is committed (or not).
    pub async fn store(&self, row: NewUpdate) -> Result<Enqueued, WriteError> {
        let (answer, outcome) = oneshot::channel();
        self.requests
            .send(Request { row, answer })
            .await
            .map_err(|_| WriteError::Stopped)?;
        outcome.await.map_err(|_| WriteError::Stopped)?
    }
}

async fn run(db: Db, mut queue: mpsc::Receiver<Request>, batch_rows: Histogram) {
    let mut waiting = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut waiting, MAX_BATCH).await > 0 {
        batch_rows.observe(waiting.len() as f64);
        let (rows, answers): (Vec<NewUpdate>, Vec<_>) =
            waiting.drain(..).map(|r| (r.row, r.answer)).unzip();
        let stored = batch::insert(&db, &rows).await;
        answer(&db, &rows, answers, stored);
    }
}

/// Gives each caller its row's outcome. A caller that went away (its client hung up) is
/// skipped: its row is stored all the same, and a repeat delivery is acknowledged as such.
fn answer(
    db: &Db,
    rows: &[NewUpdate],
    answers: Vec<oneshot::Sender<Result<Enqueued, WriteError>>>,
    stored: Result<Vec<Enqueued>, SqlError>,
) {
    match stored {
        Ok(outcomes) => {
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                let _ = answer.send(Ok(outcome));
            }
        }
        Err(e) if db.unreachable(&e) => {
            tracing::debug!(rows = rows.len(), error = %e, "could not store a batch of updates: the database is unreachable; each is refused and delivered again");
            refuse(answers, e);
        }
        Err(e) => {
            tracing::error!(
                rows = rows.len(),
                first_update_id = rows.first().map(|r| r.update_id),
                error = %e,
                "could not store a batch of updates; each is refused and delivered again"
            );
            refuse(answers, e);
        }
    }
}

fn refuse(answers: Vec<oneshot::Sender<Result<Enqueued, WriteError>>>, e: SqlError) {
    let e = Arc::new(e);
    for answer in answers {
        let _ = answer.send(Err(WriteError::Batch(e.clone())));
    }
}
