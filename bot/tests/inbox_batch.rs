//! The inbox's batched insert and its group-commit writer on real SQLite and PostgreSQL.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use botfleet_bot::inbox::{self, Enqueued, MAX_BATCH, NewUpdate, WriteError, Writer};
use botfleet_bot::metrics::Metrics;
use support::TestDb;

fn row(update_id: i64, tag: &str) -> NewUpdate {
    NewUpdate {
        update_id,
        chat_id: Some(update_id % 7),
        kind: "message",
        payload: format!(r#"{{"update_id":{update_id},"tag":"{tag}"}}"#),
        received_at_ms: 1_700_000_000_000,
    }
}

async fn stored(t: &TestDb) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT update_id, payload FROM inbox ORDER BY update_id")
        .fetch_all(&t.db.pool)
        .await
        .unwrap()
}

fn writer(t: &TestDb) -> Writer {
    Writer::spawn(t.db.clone(), Metrics::default().inbox_batch_rows.clone())
}

async fn a_batch_stores_each_update_once(t: TestDb) {
    use Enqueued::{Duplicate, New};
    assert_eq!(
        inbox::batch::insert(&t.db, &[row(3, "earlier")])
            .await
            .unwrap(),
        [New]
    );
    // Seven rows (padded to eight in the statement): 1 twice in the batch, 3 stored before.
    let rows = [
        row(1, "first"),
        row(2, "a"),
        row(1, "second"),
        row(3, "again"),
        row(4, "a"),
        row(5, "a"),
        row(6, "a"),
    ];
    let outcomes = inbox::batch::insert(&t.db, &rows).await.unwrap();
    assert_eq!(outcomes, [New, New, Duplicate, Duplicate, New, New, New]);
    let stored = stored(&t).await;
    let ids: Vec<i64> = stored.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    assert!(stored[0].1.contains("first"), "{:?}", stored[0]);
    assert!(stored[2].1.contains("earlier"), "{:?}", stored[2]);
    assert_eq!(inbox::pending_count(&t.db).await.unwrap(), 6);
}
for_each_db!(a_batch_stores_each_update_once);

async fn a_full_batch_is_one_statement(t: TestDb) {
    let rows: Vec<NewUpdate> = (0..MAX_BATCH as i64)
        .map(|n| row(10_000 + n, "full"))
        .collect();
    let outcomes = inbox::batch::insert(&t.db, &rows).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == Enqueued::New));
    assert_eq!(stored(&t).await.len(), MAX_BATCH);
    // The same rows again: all repeats, nothing added.
    let outcomes = inbox::batch::insert(&t.db, &rows).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == Enqueued::Duplicate));
    assert_eq!(stored(&t).await.len(), MAX_BATCH);
}
for_each_db!(a_full_batch_is_one_statement);

/// 600 callers at once, each update id twice: every id is new to exactly one of its callers.
async fn the_writer_answers_every_caller_once(t: TestDb) {
    let writer = writer(&t);
    let calls = (0..600).map(|n| {
        let writer = writer.clone();
        async move {
            let update_id = 20_000 + n % 300;
            (update_id, writer.store(row(update_id, "w")).await.unwrap())
        }
    });
    let outcomes = futures::future::join_all(calls).await;
    let mut new_per_id: HashMap<i64, usize> = HashMap::new();
    for (update_id, outcome) in outcomes {
        *new_per_id.entry(update_id).or_default() += usize::from(outcome == Enqueued::New);
    }
    assert_eq!(new_per_id.len(), 300);
    assert!(
        new_per_id.values().all(|&n| n == 1),
        "an id was new to more or fewer than one caller: {new_per_id:?}"
    );
    assert_eq!(stored(&t).await.len(), 300);
}
for_each_db!(the_writer_answers_every_caller_once);

/// SQLite locked by another connection for longer than the busy timeout: the batch written
/// meanwhile fails, and only its callers hear so; the rows before and after it are stored,
/// its own rows are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_fails_only_its_callers() {
    let t = support::db::sqlite().await;
    let writer = writer(&t);
    assert_eq!(writer.store(row(1, "before")).await.unwrap(), Enqueued::New);

    let locker = t.reconnect().await;
    let mut lock = locker.pool.acquire().await.unwrap();
    sqlx::raw_sql("BEGIN EXCLUSIVE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let during: Vec<_> = (2..10)
        .map(|n| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.store(row(n, "during")).await })
        })
        .collect();
    for call in during {
        let outcome = tokio::time::timeout(Duration::from_secs(60), call)
            .await
            .expect("the writer answers within its busy timeout")
            .unwrap();
        assert!(
            matches!(outcome, Err(WriteError::Batch(_))),
            "a row written while the database was locked: {outcome:?}"
        );
    }
    sqlx::raw_sql("ROLLBACK").execute(&mut *lock).await.unwrap();
    drop(lock);

    assert_eq!(writer.store(row(10, "after")).await.unwrap(), Enqueued::New);
    let ids: Vec<i64> = stored(&t).await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, [1, 10]);
}
