//! Test helpers shared by the bot's integration tests: a fresh database per test (SQLite in a
//! temp dir, or a new PostgreSQL database from `TEST_DATABASE_URL`), and a fake Telegram Bot API.
//!
//! Use from a test file with `#[macro_use] mod common;`, then `for_each_db!(my_case);` where
//! `async fn my_case(t: TestDb)` runs the case on both databases.

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
    /// PostgreSQL: the maintenance URL and the database to drop when the test ends.
    drop_on_exit: Option<(String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((maintenance, name)) = self.drop_on_exit.take() else {
            return;
        };
        // Drop runs inside the test's runtime: do the async cleanup on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let db = Db::connect(&maintenance).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&db.pool)
                .await?;
                db.pool.close().await;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop a test database: {e}");
        }
    }
}

impl TestDb {
    /// A database the test created itself (e.g. on its own server); nothing is dropped.
    pub async fn existing(url: &str) -> TestDb {
        let db = Db::connect(url).await.expect("connecting to the database");
        TestDb {
            db,
            url: url.to_owned(),
            _dir: None,
            drop_on_exit: None,
        }
    }

    /// A new pool on the same database, as a restarted process would open.
    pub async fn reconnect(&self) -> Db {
        Db::connect(&self.url)
            .await
            .expect("reconnecting to the test database")
    }
}

/// A fresh SQLite database file in a temp dir, migrated.
/// A fresh SQLite database, migrated.
pub async fn sqlite() -> TestDb {
    sqlite_fresh(true).await
}

pub async fn sqlite_fresh(migrate: bool) -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("botfleet.db").display()
    );
    let db = Db::connect(&url).await.expect("opening SQLite");
    if migrate {
        db.migrate().await.expect("migrating SQLite");
    }
    TestDb {
        db,
        url,
        _dir: Some(dir),
        drop_on_exit: None,
    }
}

/// A fresh PostgreSQL database (created under `TEST_DATABASE_URL`'s server), migrated. `None`
/// (with a printed line) when `TEST_DATABASE_URL` is unset; panics instead when `CI=true`.
/// A fresh PostgreSQL database under `TEST_DATABASE_URL`, migrated; `None` to skip.
pub async fn postgres() -> Option<TestDb> {
    postgres_fresh(true).await
}

pub async fn postgres_fresh(migrate: bool) -> Option<TestDb> {
    let url = fresh_postgres_url().await?;
    let db = Db::connect(&url)
        .await
        .expect("connecting to the fresh database");
    if migrate {
        db.migrate().await.expect("migrating PostgreSQL");
    }
    let maintenance = std::env::var("TEST_DATABASE_URL").ok()?;
    let name = url.rsplit('/').next()?.split('?').next()?.to_owned();
    Some(TestDb {
        db,
        url,
        _dir: None,
        drop_on_exit: Some((maintenance, name)),
    })
}

/// `(Db, TempDir)`: a fresh migrated SQLite database; keep the `TempDir` alive.
pub async fn sqlite_db() -> (Db, TempDir) {
    let mut t = sqlite().await;
    let dir = t
        ._dir
        .take()
        .expect("SQLite test databases live in a temp dir");
    (t.db.clone(), dir)
}

/// A fresh migrated PostgreSQL database, or `None` to skip (see [`postgres`]). Unlike
/// [`postgres`], the database is left behind when the test ends (nothing owns it).
pub async fn postgres_db() -> Option<Db> {
    let url = fresh_postgres_url().await?;
    let db = Db::connect(&url)
        .await
        .expect("connecting to the fresh database");
    db.migrate().await.expect("migrating PostgreSQL");
    Some(db)
}

/// Creates an empty database with a unique name on `TEST_DATABASE_URL`'s server and returns
/// its URL, so that tests running in parallel never share tables.
pub async fn fresh_postgres_url() -> Option<String> {
    let Ok(base) = std::env::var("TEST_DATABASE_URL") else {
        super::skip_outside_ci(
            "TEST_DATABASE_URL is not set",
            "the PostgreSQL variant of this test",
        );
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
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case($crate::support::db::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::support::db::postgres().await {
                    super::$case(db).await;
                }
            }
        }
    )+};
}
