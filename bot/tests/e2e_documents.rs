//! Documents from leads end to end: the real bot downloads them from the fake Bot API
//! (`getFile`, then the file URL), reads PDF and TXT, refuses what it cannot read with a clear
//! reply (and does not retry it), answers questions with the document in the prompt, and
//! forgets it on `/forget`. Both databases.

mod support;

use std::time::Duration;

use botfleet_bot::knowledge::extract::tiny_pdf;
use serde_json::Value;
use support::fake_telegram::{document_update, text_update};
use support::{BotConfigOptions, BotProcess, Harness, TestDb, eventually};

const WAIT: Duration = Duration::from_secs(20);
const CHAT: i64 = 4242;

/// Posts `update` and waits until the chat has `count` replies; returns the last.
async fn reply(h: &Harness, bot: &BotProcess, update: &Value, count: usize) -> String {
    assert_eq!(bot.post_update(update).await, 200);
    eventually(WAIT, "the bot's reply", || {
        h.telegram.sent_texts(CHAT).len() >= count
    })
    .await;
    h.telegram.sent_texts(CHAT)[count - 1].clone()
}

/// The system text of the last LLM request (all system blocks joined).
fn last_system(h: &Harness) -> String {
    let requests = h.llm.requests();
    let last = requests.last().expect("an LLM request");
    last["system"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn request_types(h: &Harness) -> Vec<String> {
    let db = h.db.reconnect().await;
    sqlx::query_scalar("SELECT request_type FROM llm_ledger ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

async fn a_pdf_and_a_txt_are_read_answered_from_and_forgotten(db: TestDb) {
    let h = Harness::new(
        db,
        BotConfigOptions {
            llm_yaml: "  streaming: false\n".into(),
            ..Default::default()
        },
    )
    .await;
    let bot = h.start().await;
    h.telegram.add_file(
        "pdf-1",
        tiny_pdf(&[
            "Offer 17: the Pro plan costs 49 dollars",
            "Delivery within 3 days",
        ]),
    );
    h.telegram.add_file(
        "txt-1",
        b"# Notes\nThe warranty lasts 24 months.\n".to_vec(),
    );

    let pdf = document_update(1, CHAT, "pdf-1", "offer.pdf", "application/pdf", 900);
    assert_eq!(
        reply(&h, &bot, &pdf, 1).await,
        "Got it: offer.pdf, 2 pages. Ask me about it."
    );
    assert_eq!(h.telegram.downloads(), ["documents/pdf-1"]);

    let answer = reply(&h, &bot, &text_update(2, CHAT, "What does Pro cost?"), 2).await;
    assert_eq!(answer, "reply: What does Pro cost?");
    let system = last_system(&h);
    assert!(system.contains("You are a test bot."), "{system}");
    assert!(system.contains("\"offer.pdf\""), "{system}");
    assert!(system.contains("the Pro plan costs 49 dollars"), "{system}");
    assert!(system.contains("Delivery within 3 days"), "{system}");

    // Another document replaces the first.
    let txt = document_update(3, CHAT, "txt-1", "notes.txt", "text/plain", 40);
    assert_eq!(
        reply(&h, &bot, &txt, 3).await,
        "Got it: notes.txt. Ask me about it."
    );
    reply(
        &h,
        &bot,
        &text_update(4, CHAT, "How long is the warranty?"),
        4,
    )
    .await;
    let system = last_system(&h);
    assert!(system.contains("The warranty lasts 24 months."), "{system}");
    assert!(!system.contains("49 dollars"), "{system}");

    assert_eq!(
        reply(&h, &bot, &text_update(5, CHAT, "/forget"), 5).await,
        "Done: I forgot notes.txt."
    );
    reply(&h, &bot, &text_update(6, CHAT, "And now?"), 6).await;
    let system = last_system(&h);
    assert!(!system.contains("warranty"), "{system}");
    assert_eq!(
        reply(&h, &bot, &text_update(7, CHAT, "/forget"), 7).await,
        "There is no document to forget."
    );

    // Calls answered with a document are `document` in the ledger, the others `chat`.
    assert_eq!(request_types(&h).await, ["document", "document", "chat"]);
    let metrics = bot
        .metrics_with(&["botfleet_documents_total{outcome=\"accepted\"} 2"])
        .await;
    assert!(
        metrics.contains("botfleet_documents_total{outcome=\"accepted\"} 2"),
        "{metrics}"
    );
    assert!(
        !bot.log().contains(&h.telegram.token),
        "the token is in the log"
    );
}
for_each_db!(a_pdf_and_a_txt_are_read_answered_from_and_forgotten);

async fn broken_large_and_unsupported_files_get_a_clear_reply_once(db: TestDb) {
    let h = Harness::new(
        db,
        BotConfigOptions {
            extra_yaml: "documents:\n  maxBytes: 5000\n".into(),
            ..Default::default()
        },
    )
    .await;
    let bot = h.start().await;
    let mut broken = tiny_pdf(&["cut short"]);
    broken.truncate(90);
    h.telegram.add_file("bad-1", broken);
    h.telegram.add_file("big-1", vec![b'a'; 6000]);

    let answer = reply(
        &h,
        &bot,
        &document_update(10, CHAT, "bad-1", "broken.pdf", "application/pdf", 90),
        1,
    )
    .await;
    assert!(answer.contains("\"broken.pdf\""), "{answer}");
    assert!(answer.contains("damaged"), "{answer}");

    // The update says it is small, but getFile tells the real size: not downloaded.
    let answer = reply(
        &h,
        &bot,
        &document_update(11, CHAT, "big-1", "big.txt", "text/plain", 100),
        2,
    )
    .await;
    assert!(answer.contains("too large"), "{answer}");

    // Too large by its announced size: not downloaded at all.
    let answer = reply(
        &h,
        &bot,
        &document_update(12, CHAT, "huge", "huge.pdf", "application/pdf", 9_000_000),
        3,
    )
    .await;
    assert!(answer.contains("too large"), "{answer}");

    let answer = reply(
        &h,
        &bot,
        &document_update(
            13,
            CHAT,
            "docx-1",
            "contract.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            100,
        ),
        4,
    )
    .await;
    assert!(answer.contains("PDF, TXT and Markdown"), "{answer}");

    // Each update is done after its one reply: nothing is retried, no LLM call was made.
    let db = h.db.reconnect().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbox WHERE done_at IS NULL")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(pending, 0);
    assert_eq!(h.telegram.sent_texts(CHAT).len(), 4);
    assert_eq!(h.telegram.downloads(), ["documents/bad-1"]);
    assert_eq!(h.telegram.calls("getFile").len(), 2);
    assert!(h.llm.requests().is_empty());
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lead_documents")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    let metrics = bot
        .metrics_with(&["botfleet_documents_total{outcome=\"unsupported\"} 1"])
        .await;
    for line in [
        "botfleet_documents_total{outcome=\"unreadable\"} 1",
        "botfleet_documents_total{outcome=\"too_large\"} 2",
        "botfleet_documents_total{outcome=\"unsupported\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }
    assert!(bot.log().contains("document refused"));
}
for_each_db!(broken_large_and_unsupported_files_get_a_clear_reply_once);
