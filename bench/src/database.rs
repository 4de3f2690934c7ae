//! A fresh database per run: a SQLite file in a scratch directory, or a new PostgreSQL database
//! created next to the one `admin_url` names (dropped again by [`Database::drop_now`]).

use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "SQLite",
            Kind::Postgres => "PostgreSQL",
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Kind::Sqlite),
            "postgres" | "postgresql" | "pg" => Ok(Kind::Postgres),
            other => Err(format!("unknown database {other:?} (sqlite, postgres)")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("scratch directory {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("PostgreSQL at the admin URL: {0}")]
    Postgres(#[from] sqlx::Error),
}

/// A throwaway database and the scratch directory the run keeps its files in.
pub struct Database {
    pub kind: Kind,
    pub url: String,
    pub dir: PathBuf,
    admin_url: Option<String>,
    pg_name: Option<String>,
}

/// A scratch directory unique to this process and call.
pub fn scratch_dir(label: &str) -> Result<PathBuf, DatabaseError> {
    let path = std::env::temp_dir().join(format!(
        "botfleet-bench-{label}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&path).map_err(|source| DatabaseError::Dir {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

impl Database {
    pub async fn fresh(kind: Kind, admin_url: &str) -> Result<Self, DatabaseError> {
        let dir = scratch_dir(&kind.name().to_ascii_lowercase())?;
        match kind {
            Kind::Sqlite => Ok(Self {
                kind,
                url: format!("sqlite://{}?mode=rwc", dir.join("bot.db").display()),
                dir,
                admin_url: None,
                pg_name: None,
            }),
            Kind::Postgres => {
                let name = format!("botfleet_bench_{:016x}", rand::random::<u64>());
                sqlx::any::install_default_drivers();
                let mut admin =
                    <sqlx::AnyConnection as sqlx::Connection>::connect(admin_url).await?;
                // The name is ours (hex digits), not input.
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await?;
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(base, _)| base)
                    .unwrap_or(admin_url);
                Ok(Self {
                    kind,
                    url: format!("{base}/{name}"),
                    dir,
                    admin_url: Some(admin_url.to_owned()),
                    pg_name: Some(name),
                })
            }
        }
    }

    /// A fresh database with the bot's schema and the bot's own handle on it, for benchmarks
    /// that call the bot's queries directly. Panics with what failed: a benchmark cannot go on.
    pub async fn fresh_migrated(kind: Kind, admin_url: &str) -> (Self, botfleet_bot::db::Db) {
        let scratch = Self::fresh(kind, admin_url)
            .await
            .expect("creating the bench database");
        let db = botfleet_bot::db::Db::connect(&scratch.url)
            .await
            .expect("connecting to the bench database");
        db.migrate().await.expect("migrating");
        (scratch, db)
    }

    /// `ALTER DATABASE <this> SET plan_cache_mode = <mode>` (PostgreSQL only; a diagnostic: the
    /// bot's sessions then plan its prepared statements that way). Empty: leave the default.
    pub async fn set_plan_cache_mode(&self, mode: &str) -> Result<(), sqlx::Error> {
        let (Some(admin_url), Some(name)) = (&self.admin_url, &self.pg_name) else {
            return Ok(());
        };
        if mode.is_empty() {
            return Ok(());
        }
        if !matches!(mode, "auto" | "force_custom_plan" | "force_generic_plan") {
            return Err(sqlx::Error::Configuration(
                format!("plan_cache_mode {mode:?}: auto, force_custom_plan or force_generic_plan")
                    .into(),
            ));
        }
        let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(admin_url).await?;
        // Both the name (hex digits) and the mode (checked above) are ours, not input.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {name} SET plan_cache_mode = {mode}"
        )))
        .execute(&mut admin)
        .await?;
        Ok(())
    }

    /// Updates acknowledged but not yet answered (rows of the bot's inbox not done).
    pub async fn pending_updates(&self) -> Result<i64, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.url).await?;
        sqlx::query_scalar("SELECT COUNT(*) FROM inbox WHERE done_at IS NULL")
            .fetch_one(&mut conn)
            .await
    }

    /// Removes the scratch directory and drops the PostgreSQL database (after the bot exited).
    pub async fn drop_now(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let (Some(admin_url), Some(name)) = (&self.admin_url, &self.pg_name) {
            let dropped = async {
                let mut admin =
                    <sqlx::AnyConnection as sqlx::Connection>::connect(admin_url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                Ok::<_, sqlx::Error>(())
            }
            .await;
            if let Err(e) = dropped {
                eprintln!("warning: could not drop database {name}: {e}");
            }
        }
    }
}

/// A fresh, migrated PostgreSQL database next to `admin_url` for a query benchmark, seeded
/// with `insert` (an `INSERT … SELECT` over the ids `$1..=$2`, `$3`: now in milliseconds, then
/// `extra` as `$4`, …) for every id of `ids`, 100,000 at a time, then `finish` (statistics,
/// rollups: what the server would have soon after a bulk load). Prints progress (`what`:
/// "leads", "ledger rows"). Returns the database, its pool, and the `now` the rows are
/// relative to.
pub async fn seeded_postgres(
    admin_url: &str,
    what: &str,
    ids: std::ops::RangeInclusive<i64>,
    insert: &'static str,
    extra: &[i64],
    finish: &[&'static str],
) -> (
    Database,
    botfleet_bot::db::Db,
    chrono::DateTime<chrono::Utc>,
) {
    const BATCH: i64 = 100_000;
    let (scratch, db) = Database::fresh_migrated(Kind::Postgres, admin_url).await;
    let now = chrono::Utc::now();
    let total = ids.end() - ids.start() + 1;
    eprintln!("seeding {total} {what} …");
    let started = std::time::Instant::now();
    let mut from = *ids.start();
    while from <= *ids.end() {
        let to = (from + BATCH - 1).min(*ids.end());
        let mut query = sqlx::query(insert)
            .bind(from)
            .bind(to)
            .bind(now.timestamp_millis());
        for value in extra {
            query = query.bind(*value);
        }
        query.execute(&db.pool).await.expect("seeding");
        eprintln!(
            "  {:>9} / {total} {what} ({:.1} s)",
            to - ids.start() + 1,
            started.elapsed().as_secs_f64()
        );
        from = to + 1;
    }
    for statement in finish {
        sqlx::raw_sql(*statement)
            .execute(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    (scratch, db, now)
}
