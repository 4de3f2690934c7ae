//! Test helpers shared by the bot's integration tests: a fresh database per test (SQLite in a
//! temp dir, or a new PostgreSQL database from `TEST_DATABASE_URL`), and a fake Telegram Bot API.
//!
//! Use from a test file with `#[macro_use] mod common;`, then `for_each_db!(my_case);` where
//! `async fn my_case(t: TestDb)` runs the case on both databases.
#![allow(dead_code, unused_macros)]

pub mod fake_telegram;

use std::sync::atomic::{AtomicU32, Ordering};

use botfleet_bot::db::Db;
use tempfile::TempDir;

/// A migrated, empty database of one test. Keep it alive for the whole test (it owns the
/// SQLite temp dir).
pub struct TestDb {
    pub db: Db,
    /// Connects to the same database again (e.g. to simulate a restart).
    pub url: String,
    _dir: Option<TempDir>,
}

impl TestDb {
    /// A new pool on the same database, as a restarted process would open.
    pub async fn reconnect(&self) -> Db {
        Db::connect(&self.url)
            .await
            .expect("reconnecting to the test database")
    }
}

/// A fresh SQLite database file in a temp dir, migrated.
pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("botfleet.db").display()
    );
    let db = Db::connect(&url).await.expect("opening SQLite");
    db.migrate().await.expect("migrating SQLite");
    TestDb {
        db,
        url,
        _dir: Some(dir),
    }
}

/// A fresh PostgreSQL database (created under `TEST_DATABASE_URL`'s server), migrated. `None`
/// (with a printed line) when `TEST_DATABASE_URL` is unset; panics instead when `CI=true`.
pub async fn postgres() -> Option<TestDb> {
    let url = fresh_postgres_url().await?;
    let db = Db::connect(&url)
        .await
        .expect("connecting to the fresh database");
    db.migrate().await.expect("migrating PostgreSQL");
    Some(TestDb {
        db,
        url,
        _dir: None,
    })
}

/// `(Db, TempDir)`: a fresh migrated SQLite database; keep the `TempDir` alive.
pub async fn sqlite_db() -> (Db, TempDir) {
    let t = sqlite().await;
    (
        t.db,
        t._dir.expect("SQLite test databases live in a temp dir"),
    )
}

/// A fresh migrated PostgreSQL database, or `None` to skip (see [`postgres`]).
pub async fn postgres_db() -> Option<Db> {
    postgres().await.map(|t| t.db)
}

/// Creates an empty database with a unique name on `TEST_DATABASE_URL`'s server and returns
/// its URL, so that tests running in parallel never share tables.
pub async fn fresh_postgres_url() -> Option<String> {
    let Ok(base) = std::env::var("TEST_DATABASE_URL") else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "TEST_DATABASE_URL must be set in CI: the PostgreSQL half of the tests cannot be skipped"
            );
        }
        eprintln!("TEST_DATABASE_URL is not set: skipping the PostgreSQL variant of this test");
        return None;
    };
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let name = format!(
        "botfleet_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let maintenance = Db::connect(&base)
        .await
        .expect("connecting to TEST_DATABASE_URL");
    // The simple query protocol: CREATE DATABASE may not run in a transaction block.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&maintenance.pool)
        .await
        .expect("creating a test database");
    maintenance.pool.close().await;
    let mut url = reqwest::Url::parse(&base).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

/// Runs each named `async fn(TestDb)` as two tests, `<name>::sqlite` and `<name>::postgres`.
#[macro_export]
macro_rules! for_each_db {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn sqlite() {
                super::$case($crate::common::sqlite().await).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(db) = $crate::common::postgres().await {
                    super::$case(db).await;
                }
            }
        }
    )+};
}
