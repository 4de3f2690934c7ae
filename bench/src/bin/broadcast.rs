//! How long a broadcast to many leads takes at Telegram's real rate, and what it costs the
//! database.
//!
//! Seeds `--recipients` opted-in leads and one confirmed broadcast in a fresh database, then
//! starts the process that sends broadcasts (`botfleet-bot serve` with embedded SQLite, the
//! `scheduler` with PostgreSQL, as deployed) against the lean fake Telegram, and times it from
//! the process's start to the last lead's message. The floor is recipients / 30 s (10,000:
//! 5 min 33 s). Database load on PostgreSQL is read from `pg_stat_database` (transactions and
//! rows touched during the run, per recipient, the benchmark's own few queries included);
//! each lead is checked to get the message exactly once.
//!
//! ```text
//! cargo build --release -p botfleet-bot -p botfleet-bench
//! target/release/broadcast --db postgres --recipients 10000
//! ```

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use botfleet_api::contract::{self, env};
use botfleet_bench::bot_process::default_bot_bin;
use botfleet_bench::database::{Database, Kind};
use botfleet_bench::fakes::{llm, telegram::FakeTelegram};
use botfleet_bench::flags::{self, Flag, Flags};
use botfleet_bench::process_stats::RssSampler;
use botfleet_bench::report::{Table, mib, print_header};
use sqlx::Row;

const FLAGS: &[Flag] = &[
    flags::DB,
    flags::DATABASE_URL,
    flags::BOT_BIN,
    Flag::new("recipients", "10000", "leads the broadcast goes to"),
];

const OWNER: i64 = 1;
const FIRST_LEAD: i64 = 1_000_000;

type BoxError = Box<dyn std::error::Error>;

/// PostgreSQL's counters for one database.
#[derive(Default, Clone, Copy)]
struct PgStats {
    commits: i64,
    returned: i64,
    fetched: i64,
    updated: i64,
    inserted: i64,
}

async fn pg_stats(db: &botfleet_bot::db::Db) -> Result<PgStats, sqlx::Error> {
    // A fresh snapshot, not the one cached for this transaction.
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&db.pool)
        .await?;
    let row = sqlx::query(
        "SELECT xact_commit, tup_returned, tup_fetched, tup_updated, tup_inserted
         FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&db.pool)
    .await?;
    Ok(PgStats {
        commits: row.try_get("xact_commit")?,
        returned: row.try_get("tup_returned")?,
        fetched: row.try_get("tup_fetched")?,
        updated: row.try_get("tup_updated")?,
        inserted: row.try_get("tup_inserted")?,
    })
}

async fn seed(db: &botfleet_bot::db::Db, recipients: i64) -> Result<(), sqlx::Error> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut tx = db.pool.begin().await?;
    let mut next = FIRST_LEAD;
    while next < FIRST_LEAD + recipients {
        let end = (next + 500).min(FIRST_LEAD + recipients);
        let values: Vec<String> = (next..end)
            .map(|chat| format!("({chat}, {chat}, 'Lead', {now}, {now})"))
            .collect();
        // Numbers only: no input reaches this SQL.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO leads (chat_id, user_id, first_name, first_seen_at, last_inbound_at) VALUES {}",
            values.join(", ")
        )))
        .execute(&mut *tx)
        .await?;
        next = end;
    }
    sqlx::query(
        "INSERT INTO broadcasts (owner_chat_id, status, text_html, buttons, created_at, confirmed_at)
         VALUES ($1, 'queued', $2, '[]', $3, $3)",
    )
    .bind(OWNER)
    .bind("<b>Big news</b>: 20% off today!")
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

struct Run {
    took: Duration,
    to_first: Duration,
    received: usize,
    duplicates: u64,
    rss_kib: u64,
    pg: Option<PgStats>,
}

async fn run(kind: Kind, admin_url: &str, bin: &PathBuf, recipients: i64) -> Result<Run, BoxError> {
    let (scratch, db) = Database::fresh_migrated(kind, admin_url).await;
    seed(&db, recipients).await?;
    let telegram = FakeTelegram::start().await;
    let config_path = scratch.dir.join(contract::CONFIG_FILE);
    std::fs::write(
        &config_path,
        format!(
            "mode: webhook\nwebhook:\n  path: /telegram/bench-bot\nllm:\n  provider: anthropic\n  model: {model}\n  baseUrl: http://127.0.0.1:9\npricing:\n  - {{model: {model}, input: \"3.00\", output: \"15.00\"}}\nowners: [{OWNER}]\nbroadcast:\n  optOutLine: \"Send /stop to get no more announcements.\"\n",
            model = llm::MODEL
        ),
    )?;
    let before = match kind {
        Kind::Postgres => {
            // The seeding's statistics are published with a short delay: keep them out.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Some(pg_stats(&db).await?)
        }
        Kind::Sqlite => None,
    };
    // Embedded SQLite: `serve` runs the scheduler (and so the broadcasts) itself; PostgreSQL:
    // the scheduler Deployment's process does.
    let subcommand = match kind {
        Kind::Sqlite => contract::command::SERVE,
        Kind::Postgres => contract::command::SCHEDULER,
    };
    let log_path = scratch.dir.join("bot.log");
    let log = std::fs::File::create(&log_path)?;
    let start = Instant::now();
    let mut child = Command::new(bin)
        .arg(subcommand)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(env::BOTFLEET_CONFIG, &config_path)
        .env(
            env::TELEGRAM_BOT_TOKEN,
            botfleet_bench::fakes::telegram::TOKEN,
        )
        .env(env::TELEGRAM_API_URL, &telegram.url)
        .env(env::LLM_API_KEY, llm::API_KEY)
        .env(env::DATABASE_URL, &scratch.url)
        .env(
            env::WEBHOOK_SECRET_TOKEN,
            "bench-webhook-secret_0123456789abcdef",
        )
        .env(
            env::BOTFLEET_HTTP_ADDR,
            format!("127.0.0.1:{}", free_port()),
        )
        .env(
            env::BOTFLEET_METRICS_ADDR,
            format!("127.0.0.1:{}", free_port()),
        )
        .env(env::BOTFLEET_LOG_FORMAT, "json")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let rss = RssSampler::start(child.id(), Duration::from_millis(500));
    let floor = Duration::from_secs_f64(recipients as f64 / 30.0);
    let give_up = start + floor * 2 + Duration::from_secs(60);
    let mut last_report = Instant::now();
    loop {
        let received = telegram.replied_chats().saturating_sub(1);
        if received as i64 >= recipients {
            break;
        }
        if Instant::now() > give_up {
            let _ = child.kill();
            return Err(format!(
                "only {received} of {recipients} leads got the broadcast in {:?}; see {}",
                start.elapsed(),
                log_path.display()
            )
            .into());
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            eprintln!("  {received} of {recipients} after {:.0?}", start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let firsts = telegram.first_replies();
    let leads = firsts.iter().filter(|(chat, _)| **chat >= FIRST_LEAD);
    let first = leads.clone().map(|(_, at)| *at).min().unwrap_or(start);
    let last = leads.map(|(_, at)| *at).max().unwrap_or(start);
    // Let the last rows be recorded and the final report go out before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_kib = rss.max_kib();
    let _ = child.kill();
    let _ = child.wait();
    let received = firsts.keys().filter(|chat| **chat >= FIRST_LEAD).count();
    // Every sendMessage except the owner's progress message went to a lead.
    let duplicates = telegram.messages().saturating_sub(received as u64 + 1);
    let pg = match (before, kind) {
        (Some(before), Kind::Postgres) => {
            // The statistics collector publishes with a short delay.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = pg_stats(&db).await?;
            // Where the reads went, per table (to stderr: a diagnostic).
            let tables = sqlx::query(
                "SELECT relname::text AS relname, COALESCE(seq_scan, 0) AS seq_scan, COALESCE(seq_tup_read, 0) AS seq_tup_read,
                        COALESCE(idx_scan, 0) AS idx_scan, COALESCE(idx_tup_fetch, 0) AS idx_tup_fetch
                 FROM pg_stat_user_tables ORDER BY relname",
            )
            .fetch_all(&db.pool)
            .await?;
            for t in tables {
                eprintln!(
                    "  {}: {} seq scans reading {} rows, {} index scans fetching {} rows",
                    t.try_get::<String, _>("relname")?,
                    t.try_get::<i64, _>("seq_scan")?,
                    t.try_get::<i64, _>("seq_tup_read")?,
                    t.try_get::<i64, _>("idx_scan")?,
                    t.try_get::<i64, _>("idx_tup_fetch")?,
                );
            }
            Some(PgStats {
                commits: after.commits - before.commits,
                returned: after.returned - before.returned,
                fetched: after.fetched - before.fetched,
                updated: after.updated - before.updated,
                inserted: after.inserted - before.inserted,
            })
        }
        _ => None,
    };
    db.pool.close().await;
    scratch.drop_now().await;
    Ok(Run {
        took: last.duration_since(start),
        to_first: first.duration_since(start),
        received,
        duplicates,
        rss_kib,
        pg,
    })
}

fn clock(d: Duration) -> String {
    let s = d.as_secs_f64();
    format!("{} min {:04.1} s", (s / 60.0).floor(), s % 60.0)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let flags = Flags::parse(
        "A broadcast to many leads at Telegram's 30 messages/s: time and database load",
        FLAGS,
    );
    let bin = match flags.text("bot-bin") {
        b if b.is_empty() => default_bot_bin(),
        b => PathBuf::from(b),
    };
    let recipients: i64 = flags.get("recipients");
    let kinds: Vec<Kind> = flags.list("db");
    print_header(
        "broadcast: one message to many leads at 30 messages/s",
        &[
            ("recipients", recipients.to_string()),
            ("bot", bin.display().to_string()),
        ],
    );
    let floor = Duration::from_secs_f64(recipients as f64 / 30.0);
    let mut table = Table::new([
        "database",
        "recipients",
        "time (process start → last message)",
        "floor (n / 30 s)",
        "rate",
        "first message after",
        "duplicates",
        "sender RSS",
    ]);
    let mut load = Table::new([
        "database",
        "transactions / recipient",
        "rows read / recipient",
        "rows updated / recipient",
        "rows inserted / recipient",
    ]);
    for kind in kinds {
        eprintln!("{}: sending to {recipients} leads…", kind.name());
        let r = run(kind, &flags.text("database-url"), &bin, recipients).await?;
        let sending = r.took.saturating_sub(r.to_first).as_secs_f64();
        table.row([
            kind.name().to_owned(),
            r.received.to_string(),
            clock(r.took),
            clock(floor),
            format!("{:.1}/s", (r.received as f64 - 1.0) / sending),
            format!("{:.1} s", r.to_first.as_secs_f64()),
            r.duplicates.to_string(),
            mib(r.rss_kib),
        ]);
        if let Some(pg) = r.pg {
            let per = |n: i64| format!("{:.2}", n as f64 / r.received as f64);
            load.row([
                kind.name().to_owned(),
                per(pg.commits),
                per(pg.returned + pg.fetched),
                per(pg.updated),
                per(pg.inserted),
            ]);
        }
    }
    println!("{}", table.render());
    println!("{}", load.render());
    Ok(())
}
