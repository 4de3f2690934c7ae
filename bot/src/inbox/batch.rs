//! Storing updates: one statement, one transaction, for a whole batch of rows.
//!
//! `INSERT … VALUES (…), (…) ON CONFLICT (update_id) DO NOTHING RETURNING update_id` on both
//! dialects: every row is committed together or none is, a row whose `update_id` is already in
//! the inbox (or earlier in the same batch) is skipped, and `RETURNING` names the rows that were
//! new. The statement is prepared once per connection for each of a few sizes (powers of two up
//! to [`MAX_BATCH`]); a batch is padded to the next size by repeating its last row, which the
//! conflict clause skips.

use std::collections::HashSet;
use std::sync::LazyLock;

use crate::db::{Db, SqlContext, SqlError};
use crate::telegram::updates::UpdateHeader;

/// Rows per statement: 5 bind variables each, far under SQLite's and PostgreSQL's limits
/// (32,766 and 65,535), and enough to carry a 2-core machine's intake in a few batches per
/// millisecond.
pub const MAX_BATCH: usize = 256;
const COLUMNS: usize = 5;

/// One update to store: everything the inbox row needs, owned, so a batch can gather rows from
/// any number of callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpdate {
    pub update_id: i64,
    pub chat_id: Option<i64>,
    pub kind: &'static str,
    /// The update's JSON as Telegram sent it.
    pub payload: String,
    /// When it arrived (Unix milliseconds).
    pub received_at_ms: i64,
}

impl NewUpdate {
    /// The inbox row of an update whose header was read, with its JSON as received.
    pub fn from_header(header: &UpdateHeader, payload: String, received_at_ms: i64) -> Self {
        Self {
            update_id: header.update_id,
            chat_id: header.chat_id,
            kind: header.kind,
            payload,
            received_at_ms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    New,
    /// The update id was already in the inbox, or earlier in the same batch: acknowledge it,
    /// don't process it again.
    Duplicate,
}

/// Stores `rows` in one transaction; the outcome of each row, in order. Of rows sharing an
/// `update_id`, at most the first is [`Enqueued::New`]. Takes at most [`MAX_BATCH`] rows.
pub async fn insert(db: &Db, rows: &[NewUpdate]) -> Result<Vec<Enqueued>, SqlError> {
    assert!(
        rows.len() <= MAX_BATCH,
        "a batch of {} rows is over MAX_BATCH",
        rows.len()
    );
    let Some(last) = rows.last() else {
        return Ok(Vec::new());
    };
    let size = rows.len().next_power_of_two();
    let padding = std::iter::repeat_n(last, size - rows.len());
    let mut query = sqlx::query_scalar::<_, i64>(statement(size));
    for row in rows.iter().chain(padding) {
        query = query
            .bind(row.update_id)
            .bind(row.chat_id)
            .bind(row.kind)
            .bind(row.payload.as_str())
            .bind(row.received_at_ms);
    }
    let inserted: HashSet<i64> = query
        .fetch_all(&db.pool)
        .await
        .ctx("storing updates in the inbox")?
        .into_iter()
        .collect();
    Ok(outcomes(rows, inserted))
}

/// Each row's outcome: the first row of an inserted id is new, everything else a repeat.
fn outcomes(rows: &[NewUpdate], mut inserted: HashSet<i64>) -> Vec<Enqueued> {
    rows.iter()
        .map(|row| {
            if inserted.remove(&row.update_id) {
                Enqueued::New
            } else {
                Enqueued::Duplicate
            }
        })
        .collect()
}

/// The statement for `size` rows (a power of two up to [`MAX_BATCH`]).
fn statement(size: usize) -> &'static str {
    static STATEMENTS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
        (0..=MAX_BATCH.trailing_zeros())
            .map(|exp| build_statement(1 << exp).leak() as &'static str)
            .collect()
    });
    STATEMENTS[size.trailing_zeros() as usize]
}

fn build_statement(size: usize) -> String {
    let values: Vec<String> = (0..size)
        .map(|row| {
            let first = row * COLUMNS + 1;
            let placeholders: Vec<String> =
                (first..first + COLUMNS).map(|n| format!("${n}")).collect();
            format!("({})", placeholders.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO inbox (update_id, chat_id, kind, payload, received_at) VALUES {}
         ON CONFLICT (update_id) DO NOTHING RETURNING update_id",
        values.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_number_their_placeholders_row_by_row() {
        assert_eq!(
            statement(2),
            "INSERT INTO inbox (update_id, chat_id, kind, payload, received_at) VALUES ($1, $2, $3, $4, $5), ($6, $7, $8, $9, $10)
         ON CONFLICT (update_id) DO NOTHING RETURNING update_id"
        );
        assert!(statement(MAX_BATCH).contains(&format!("${})", MAX_BATCH * COLUMNS)));
    }

    #[test]
    fn only_the_first_row_of_an_inserted_id_is_new() {
        let row = |update_id| NewUpdate {
            update_id,
            chat_id: None,
            kind: "message",
            payload: "{}".into(),
            received_at_ms: 0,
        };
        let rows = [row(1), row(2), row(1), row(3)];
        assert_eq!(
            outcomes(&rows, HashSet::from([1, 3])),
            [
                Enqueued::New,
                Enqueued::Duplicate,
                Enqueued::Duplicate,
                Enqueued::New
            ]
        );
    }
}
