//! A fake Telegram Bot API on 127.0.0.1: records `sendMessage` calls and answers like Telegram,
//! or fails on demand.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use botfleet_bot::telegram::TelegramClient;
use serde_json::{Value, json};

pub const TOKEN: &str = "123456:TEST-token";

/// One `sendMessage` Telegram accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    pub chat_id: i64,
    pub text: String,
    pub parse_mode: Option<String>,
}

#[derive(Default)]
struct Shared {
    sent: Mutex<Vec<SentMessage>>,
    failing: AtomicBool,
    rejected: Mutex<u32>,
}

pub struct FakeTelegram {
    pub url: String,
    shared: Arc<Shared>,
}

impl FakeTelegram {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, shared }
    }

    pub fn client(&self) -> TelegramClient {
        TelegramClient::new(TOKEN, &self.url).unwrap()
    }

    /// Messages accepted so far, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.shared.sent.lock().unwrap().clone()
    }

    /// While failing, every `sendMessage` gets a 500 and is not recorded as sent.
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// How many `sendMessage` calls were refused while failing.
    pub fn rejected(&self) -> u32 {
        *self.shared.rejected.lock().unwrap()
    }
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, body: axum::body::Bytes) -> Response {
    let method = uri
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let params: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if method != "sendmessage" {
        return Json(json!({"ok": true, "result": true})).into_response();
    }
    if shared.failing.load(Ordering::SeqCst) {
        *shared.rejected.lock().unwrap() += 1;
        let body = json!({"ok": false, "error_code": 500, "description": "Internal Server Error"});
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
    }
    let chat_id = params["chat_id"].as_i64().unwrap_or_default();
    let text = params["text"].as_str().unwrap_or_default().to_owned();
    let parse_mode = params["parse_mode"].as_str().map(str::to_owned);
    let message_id = {
        let mut sent = shared.sent.lock().unwrap();
        sent.push(SentMessage {
            chat_id,
            text: text.clone(),
            parse_mode,
        });
        sent.len()
    };
    Json(json!({"ok": true, "result": {
        "message_id": message_id,
        "date": 1_700_000_000,
        "chat": {"id": chat_id, "type": "private", "first_name": "Owner"},
        "text": text
    }}))
    .into_response()
}
