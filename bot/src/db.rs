//! The database: embedded SQLite by default, PostgreSQL when `DATABASE_URL` says so.
//!
//! One `sqlx::AnyPool` serves both; SQL is written once in the subset both dialects speak
//! (`$1` placeholders, `ON CONFLICT`, `RETURNING`, BIGINT unix-millisecond timestamps, BIGINT
//! nano-USD). Where the dialects must differ, branch on [`Db::dialect`]. Migrations live in
//! `migrations/{sqlite,postgres}/`, are embedded in the binary, and run under sqlx's migration
//! lock (a PostgreSQL advisory lock), so replicas that start together migrate once.

pub mod health;

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// Where the embedded database lives when `DATABASE_URL` is not set.
pub const DEFAULT_SQLITE_URL: &str = "sqlite://botfleet.db?mode=rwc";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL: unsupported scheme in {0:?} (use sqlite:// or postgres://)")]
    UnsupportedUrl(String),
    #[error("DATABASE_URL: cannot connect to the {dialect:?} database: {source}")]
    Connect {
        dialect: Dialect,
        #[source]
        source: sqlx::Error,
    },
    #[error("applying migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// A database error with what we were doing when it happened.
#[derive(Debug, thiserror::Error)]
#[error("database error while {action}: {source}")]
pub struct SqlError {
    pub action: &'static str,
    #[source]
    pub source: sqlx::Error,
}

/// Adds what we were doing to a database error: `query.await.ctx("counting leads")?`.
pub trait SqlContext<T> {
    fn ctx(self, action: &'static str) -> Result<T, SqlError>;
}

impl<T> SqlContext<T> for Result<T, sqlx::Error> {
    fn ctx(self, action: &'static str) -> Result<T, SqlError> {
        self.map_err(|source| SqlError { action, source })
    }
}

/// A statement with its arguments bound, ready to run on either dialect.
pub type AnyQuery = sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments>;

/// A handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub dialect: Dialect,
    /// Whether the database answers; shared by every clone.
    pub health: Arc<health::Health>,
}

impl Db {
    /// Connects without touching the schema. Fails with the URL's scheme named, never with the
    /// URL itself (it may hold a password).
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else {
            let scheme = url.split(':').next().unwrap_or_default().to_owned();
            return Err(DbError::UnsupportedUrl(scheme));
        };
        let url = match dialect {
            Dialect::Sqlite => with_create_if_missing(url),
            Dialect::Postgres => url.to_owned(),
        };
        let options: AnyConnectOptions = url
            .parse::<AnyConnectOptions>()
            .map_err(|source| DbError::Connect { dialect, source })?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let max_connections = match dialect {
            // One writer at a time anyway; a few readers help the HTTP side.
            Dialect::Sqlite => 4,
            Dialect::Postgres => 16,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            // Through an outage every acquire is slow; the outage is logged once (`health`).
            .acquire_slow_level(tracing::log::LevelFilter::Info)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // WAL lets readers run beside the writer; the busy timeout turns
                        // writer contention into a short wait instead of an error.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|source| DbError::Connect { dialect, source })?;
        Ok(Self {
            pool,
            dialect,
            health: Arc::default(),
        })
    }

    fn migrator(&self) -> &'static Migrator {
        match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies pending migrations (idempotent, safe to run from several processes at once).
    ///
    /// PostgreSQL serialises migrators with an advisory lock. sqlx takes no lock on SQLite, so
    /// two processes can race for the same migration there; the loser's transaction rolls back
    /// and a retry finds the migration applied.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let attempts = match self.dialect {
            Dialect::Sqlite => 10,
            Dialect::Postgres => 1,
        };
        let mut delay = Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.migrator().run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < attempts => {
                    tracing::debug!(attempt, error = %e, "migration raced another process; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// True when the database answers and every embedded migration has been applied.
    pub async fn is_ready(&self) -> bool {
        let latest = self.migrator().iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Result<Option<i64>, _> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = $1")
                .bind(true)
                .fetch_one(&self.pool)
                .await;
        matches!(applied, Ok(Some(v)) if v >= latest)
    }

    /// Notes a failed operation with the database's health: true when it failed because the
    /// database is unreachable (logged once for the process; the caller logs at debug).
    pub fn unreachable(&self, e: &SqlError) -> bool {
        self.health.observe(&e.source, &self.pool)
    }

    /// [`Db::unreachable`] for any error that may wrap a database error (a feature's error):
    /// true when a database error in its chain of sources says the database is unreachable.
    pub fn unreachable_within(&self, e: &(dyn std::error::Error + 'static)) -> bool {
        let mut next = Some(e);
        while let Some(e) = next {
            if let Some(sql) = e.downcast_ref::<sqlx::Error>() {
                return self.health.observe(sql, &self.pool);
            }
            next = e.source();
        }
        false
    }

    /// Logs a failed step of a loop that tries again later: at debug while the database is
    /// unreachable (the outage is logged once), else as a warning.
    pub fn log_failure(&self, e: &(dyn std::error::Error + 'static), what: &'static str) {
        if self.unreachable_within(e) {
            tracing::debug!(error = %e, what, "failed: the database is unreachable");
        } else {
            tracing::warn!(error = %e, "{what}");
        }
    }

    /// Records what a send already did (a reply sent, a broadcast row delivered): retried
    /// through any outage and never given up, and written before workers claim anything
    /// when the database is back, so the send is not made again.
    pub async fn record_send<T, F, Fut>(&self, action: &'static str, write: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SqlError>>,
    {
        match retry(self, action, None, write).await {
            Ok(value) => value,
            Err(_) => unreachable!("a retry without a deadline ends only when the write lands"),
        }
    }
}

/// The first pause of [`retry`]; each next one doubles, up to [`RETRY_MAX_PAUSE`].
pub const RETRY_FIRST_PAUSE: Duration = Duration::from_millis(100);
pub const RETRY_MAX_PAUSE: Duration = Duration::from_secs(2);

/// The one retry policy for transient database errors (a database restarting, a dropped
/// connection), for writes that must land because what they record already happened (a sent
/// message, an update's outcome):
///
/// - `write` is tried at once, then after 100 ms, doubling to at most 2 s between tries (and
///   at once when the database answers again after an outage);
/// - it is given up when the next try would start after `within` (`None`: never, for a record
///   whose loss would repeat a message and whose caller can wait), returning the last error;
///   such a record is pending while it waits: the database's return writes it before the
///   workers claim again (see [`health`]);
/// - an outage is logged once for the process (by [`health`]), its retries at debug; any other
///   first failure is logged once as a warning naming `action`; the caller logs giving up.
///
/// Every SQL error is retried: a write that can never succeed (a bug) shows in the warning.
pub async fn retry<T, F, Fut>(
    db: &Db,
    action: &'static str,
    within: Option<Duration>,
    mut write: F,
) -> Result<T, SqlError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SqlError>>,
{
    let deadline = within.and_then(|w| tokio::time::Instant::now().checked_add(w));
    let mut pause = RETRY_FIRST_PAUSE;
    let mut pending = None;
    let mut warned = false;
    loop {
        match write().await {
            Ok(value) => {
                if warned {
                    tracing::info!(action, "the database answered after all");
                }
                return Ok(value);
            }
            Err(e) if deadline.is_some_and(|d| tokio::time::Instant::now() + pause > d) => {
                return Err(e);
            }
            Err(e) => {
                if db.unreachable(&e) {
                    tracing::debug!(action, error = %e, "database write failed; retrying when it answers");
                } else if !warned {
                    tracing::warn!(action, error = %e, "database write failed; retrying until it answers");
                    warned = true;
                }
                if within.is_none() && pending.is_none() {
                    pending = Some(db.health.pending());
                }
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = answered_again(db) => {}
                }
                pause = (pause * 2).min(RETRY_MAX_PAUSE);
            }
        }
    }
}

/// Resolves when a database that is down answers again (never while it is not down).
async fn answered_again(db: &Db) {
    if db.health.state() != health::State::Down {
        return std::future::pending().await;
    }
    db.health.reachable().await
}

/// The embedded database is created on first start (a fresh volume has no file yet): a SQLite
/// URL that names no `mode` gets `mode=rwc`.
fn with_create_if_missing(url: &str) -> String {
    let has_mode = url
        .split_once('?')
        .is_some_and(|(_, query)| query.split('&').any(|kv| kv.starts_with("mode=")));
    match (has_mode, url.contains('?')) {
        (true, _) => url.to_owned(),
        (false, true) => format!("{url}&mode=rwc"),
        (false, false) => format!("{url}?mode=rwc"),
    }
}

/// Milliseconds since the Unix epoch: the one time format stored in the database.
pub fn to_millis(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_millis(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_the_file_unless_told_otherwise() {
        assert_eq!(
            with_create_if_missing("sqlite:///data/botfleet.db"),
            "sqlite:///data/botfleet.db?mode=rwc"
        );
        assert_eq!(
            with_create_if_missing("sqlite://x.db?cache=shared"),
            "sqlite://x.db?cache=shared&mode=rwc"
        );
        assert_eq!(
            with_create_if_missing("sqlite://x.db?mode=ro"),
            "sqlite://x.db?mode=ro"
        );
    }

    /// The URL the operator gives pods on embedded SQLite, on an empty volume.
    #[tokio::test]
    async fn a_fresh_volume_gets_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("botfleet.db");
        let db = Db::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        db.migrate().await.unwrap();
        assert!(db.is_ready().await);
        assert!(path.exists());
    }
}
