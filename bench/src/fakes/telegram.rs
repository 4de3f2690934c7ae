//! A fake Telegram Bot API: `sendMessage` answers a message and is counted (and, per chat, the
//! time of the first reply is kept, as is that of the first `sendMessageDraft`);
//! `sendChatAction` and anything else answer `true`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::Served;

pub const TOKEN: &str = "123456:BENCH-token_for-load";

#[derive(Default)]
struct Inner {
    messages: AtomicU64,
    chat_actions: AtomicU64,
    other: AtomicU64,
    /// First reply per chat id.
    replied: Mutex<HashMap<i64, Instant>>,
    /// First draft per chat id.
    drafted: Mutex<HashMap<i64, Instant>>,
}

pub struct FakeTelegram {
    pub url: String,
    served: Served<Inner>,
}

impl FakeTelegram {
    pub async fn start() -> Self {
        let routes = axum::Router::new().route("/{bot}/{method}", post(handle));
        let served = Served::start(Inner::default(), routes).await;
        Self {
            url: served.url.clone(),
            served,
        }
    }

    /// Successful `sendMessage` calls so far.
    pub fn messages(&self) -> u64 {
        self.served.state.messages.load(Ordering::Relaxed)
    }

    pub fn chat_actions(&self) -> u64 {
        self.served.state.chat_actions.load(Ordering::Relaxed)
    }

    pub fn other_calls(&self) -> u64 {
        self.served.state.other.load(Ordering::Relaxed)
    }

    /// When each chat got its first reply.
    pub fn first_replies(&self) -> HashMap<i64, Instant> {
        self.served
            .state
            .replied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// When each chat was shown its first draft.
    pub fn first_drafts(&self) -> HashMap<i64, Instant> {
        self.served
            .state
            .drafted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn replied_chats(&self) -> usize {
        self.served
            .state
            .replied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    Path((_bot, method)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    // Telegram matches method names case-insensitively (teloxide sends `SendMessage`).
    if method.eq_ignore_ascii_case("sendMessage") {
        let now = Instant::now();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let chat_id = body["chat_id"].as_i64().unwrap_or_default();
        let n = inner.messages.fetch_add(1, Ordering::Relaxed) + 1;
        inner
            .replied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(chat_id)
            .or_insert(now);
        axum::Json(json!({"ok": true, "result": {
            "message_id": n, "date": 1_700_000_000,
            "chat": {"id": chat_id, "type": "private", "first_name": "Lead"},
            "from": {"id": 1, "is_bot": true, "first_name": "Bot", "username": "bench_bot"},
            "text": body["text"],
        }}))
        .into_response()
    } else if method.eq_ignore_ascii_case("sendMessageDraft") {
        let now = Instant::now();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let chat_id = body["chat_id"].as_i64().unwrap_or_default();
        inner
            .drafted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(chat_id)
            .or_insert(now);
        axum::Json(json!({"ok": true, "result": true})).into_response()
    } else if method.eq_ignore_ascii_case("sendChatAction") {
        inner.chat_actions.fetch_add(1, Ordering::Relaxed);
        axum::Json(json!({"ok": true, "result": true})).into_response()
    } else if method.eq_ignore_ascii_case("getMe") {
        inner.other.fetch_add(1, Ordering::Relaxed);
        axum::Json(json!({"ok": true, "result": {
            "id": 1, "is_bot": true, "first_name": "Bot", "username": "bench_bot",
        }}))
        .into_response()
    } else {
        inner.other.fetch_add(1, Ordering::Relaxed);
        axum::Json(json!({"ok": true, "result": true})).into_response()
    }
}

/// A text message update, shaped like the ones Telegram posts to a webhook: from a private chat
/// (a positive `chat_id`, the user's own id) or a group (a negative one).
pub fn text_update(update_id: i64, chat_id: i64, text: &str) -> Vec<u8> {
    let chat = if chat_id > 0 {
        json!({"id": chat_id, "type": "private", "first_name": "Lead", "last_name": "Example", "username": "lead_example"})
    } else {
        json!({"id": chat_id, "type": "group", "title": "Leads"})
    };
    serde_json::to_vec(&json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": chat,
            "from": {"id": chat_id.abs(), "is_bot": false, "first_name": "Lead", "last_name": "Example", "username": "lead_example", "language_code": "en"},
            "text": text,
        }
    }))
    .expect("JSON of a JSON value")
}
