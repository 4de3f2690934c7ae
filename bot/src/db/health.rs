//! Whether the database answers, for the whole process, and what its return must do first.
//!
//! The first operation that finds the database unreachable marks it down (logged once, as a
//! warning) and starts one prober. When the prober gets an answer, the database is
//! *reachable*: writes that record sends already made (pending marks, see [`crate::db::retry`])
//! go through, and the return hooks run (the workers re-assert the claims they hold). Only
//! when the pending marks have landed is it *open* again (logged once, with the outage's
//! length): workers wait for that before they claim anything, so no update this process holds
//! is taken by its own workers, and no reply it sent is sent again.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::watch;
use tokio::time::Instant;

/// How often the prober asks while the database is down.
const PROBE_EVERY: Duration = Duration::from_millis(250);
/// The most the gate waits for pending marks once the database answers: a mark that cannot
/// land (a bug, not the outage) must not keep the workers out for good.
const FLUSH_AT_MOST: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Open,
    Down,
    /// Answering again; pending marks and the return hooks go first.
    Reachable,
}

type Hook = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Shared by every clone of a [`crate::db::Db`].
pub struct Health {
    state: watch::Sender<State>,
    /// Writes recording a send, waiting for the database (each a [`Pending`]).
    pending: AtomicUsize,
    pending_done: tokio::sync::Notify,
    /// When the database last came back after an outage.
    back_at: Mutex<Option<Instant>>,
    on_return: Mutex<Vec<Arc<Hook>>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Default for Health {
    fn default() -> Self {
        Self {
            state: watch::Sender::new(State::Open),
            pending: AtomicUsize::new(0),
            pending_done: tokio::sync::Notify::new(),
            back_at: Mutex::new(None),
            on_return: Mutex::new(Vec::new()),
        }
    }
}

/// True for errors that say the database cannot be reached (as opposed to a statement that
/// failed): I/O, the pool, or PostgreSQL shutting down / refusing connections.
pub fn is_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")),
        _ => false,
    }
}

impl Health {
    pub fn state(&self) -> State {
        *self.state.borrow()
    }

    /// Notes a failed operation: when `e` says the database is unreachable, marks it down
    /// (the first time: logs it and starts the prober) and returns true, and the caller logs
    /// its own failure at debug level only.
    pub fn observe(self: &Arc<Self>, e: &sqlx::Error, pool: &AnyPool) -> bool {
        if !is_unreachable(e) {
            return false;
        }
        let was_open = self.state.send_if_modified(|s| {
            let open = *s == State::Open;
            if open {
                *s = State::Down;
            }
            open
        });
        if was_open {
            tracing::warn!(error = %e, "database unreachable; sends already made are recorded when it is back");
            tokio::spawn(self.clone().probe(pool.clone(), Instant::now()));
        }
        true
    }

    /// Waits until workers may claim work.
    pub async fn open(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| *s == State::Open).await;
    }

    /// Waits until the database answers (open, or reachable for pending marks).
    pub async fn reachable(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| *s != State::Down).await;
    }

    /// When the database last came back, if it ever went away.
    pub fn back_at(&self) -> Option<Instant> {
        *self.back_at.lock().unwrap()
    }

    /// Runs `hook` each time the database answers after an outage, before the gate opens.
    pub fn on_return<F, Fut>(&self, hook: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let hook: Hook = Box::new(move || Box::pin(hook()));
        self.on_return.lock().unwrap().push(Arc::new(hook));
    }

    /// Counts a write recording a send as pending until the guard is dropped.
    pub fn pending(self: &Arc<Self>) -> Pending {
        self.pending.fetch_add(1, Ordering::SeqCst);
        Pending(self.clone())
    }

    async fn probe(self: Arc<Self>, pool: AnyPool, since: Instant) {
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            let answered = sqlx::query("SELECT 1").execute(&pool).await;
            if answered.is_ok() {
                break;
            }
        }
        self.state.send_replace(State::Reachable);
        let hooks: Vec<Arc<Hook>> = self.on_return.lock().unwrap().clone();
        for hook in hooks {
            hook().await;
        }
        let flushed = tokio::time::timeout(FLUSH_AT_MOST, self.flushed()).await;
        if flushed.is_err() {
            tracing::warn!(
                pending = self.pending.load(Ordering::SeqCst),
                "records of sends still not written; letting work go on"
            );
        }
        *self.back_at.lock().unwrap() = Some(Instant::now());
        self.state.send_replace(State::Open);
        tracing::info!(
            outage_ms = since.elapsed().as_millis() as u64,
            "database is back after {:.1} s",
            since.elapsed().as_secs_f64()
        );
    }

    async fn flushed(&self) {
        loop {
            let done = self.pending_done.notified();
            if self.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            done.await;
        }
    }
}

/// A pending write (see [`Health::pending`]).
pub struct Pending(Arc<Health>);

impl Drop for Pending {
    fn drop(&mut self) {
        if self.0.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.pending_done.notify_waiters();
        }
    }
}
