//! A fake Telegram Bot API on 127.0.0.1: records every call, answers like Telegram does, and
//! can be told to fail (429 with retry_after, 500) or to hand out updates to a long poll.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub body: Value,
    /// When the fake received the call.
    pub at: Instant,
}

/// The bot token the fake expects in tests that build a client themselves.
pub const TOKEN: &str = "123456:TEST-token_for-e2e";

/// One `sendMessage` Telegram accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    pub chat_id: i64,
    pub text: String,
    pub parse_mode: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Failure {
    /// HTTP 429 with `parameters.retry_after` seconds.
    RetryAfter(u64),
    /// HTTP 500.
    ServerError,
    /// HTTP 403 "Forbidden: bot was blocked by the user".
    Blocked,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    /// Failures for the next sendMessage calls, in order.
    send_failures: VecDeque<Failure>,
    /// Updates handed to getUpdates.
    updates: Vec<Value>,
    /// While set, every sendMessage fails with 500.
    failing: bool,
    /// sendMessage calls refused while failing.
    rejected: u32,
    /// While set, every sendMessageDraft is answered with this status and description.
    draft_failure: Option<(u16, String)>,
    /// Files served by `getFile` and `/file/bot<token>/<path>`: file_id → (file_path, bytes).
    files: std::collections::HashMap<String, (String, Vec<u8>)>,
    /// File paths downloaded, in order.
    downloads: Vec<String>,
    /// Chats whose user blocked the bot: every send to them gets a 403.
    blocked_chats: std::collections::HashSet<i64>,
    /// Failures for the next sendMessage calls to one chat, in order.
    chat_failures: std::collections::HashMap<i64, VecDeque<Failure>>,
    /// `(group, user)` pairs `getChatMember` answers as members.
    members: std::collections::HashSet<(i64, i64)>,
    /// How long an accepted sendMessage waits before it is answered (the message counts as
    /// sent at once: a reply in flight).
    answer_delay: Duration,
}

#[derive(Clone)]
pub struct FakeTelegram {
    pub url: String,
    pub token: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeTelegram {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .route("/{bot}/{method}", post(handle))
            .route("/file/{bot}/{*path}", axum::routing::get(download))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url,
            token: TOKEN.into(),
            inner,
        }
    }

    /// A client of the bot's own Telegram module, pointed at this fake.
    pub fn client(&self) -> botfleet_bot::telegram::TelegramClient {
        botfleet_bot::telegram::TelegramClient::new(&self.token, &self.url).unwrap()
    }

    /// The bot's outbound road to this fake, opting leads out in `db`.
    pub fn delivery(&self, db: &botfleet_bot::db::Db) -> botfleet_bot::delivery::Delivery {
        let metrics = std::sync::Arc::new(botfleet_bot::metrics::Metrics::default());
        botfleet_bot::delivery::Delivery::new(self.client(), db.clone(), metrics)
    }

    /// While failing, every `sendMessage` gets a 500 and is not recorded as sent.
    pub fn set_failing(&self, failing: bool) {
        self.inner.lock().unwrap().failing = failing;
    }

    /// Answers each accepted `sendMessage` only after `delay` (it is recorded as sent before).
    pub fn set_answer_delay(&self, delay: Duration) {
        self.inner.lock().unwrap().answer_delay = delay;
    }

    /// How many `sendMessage` calls were refused while failing.
    pub fn rejected(&self) -> u32 {
        self.inner.lock().unwrap().rejected
    }

    /// Messages accepted so far, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.calls("sendMessage.ok")
            .into_iter()
            .map(|c| SentMessage {
                chat_id: c.body["chat_id"].as_i64().unwrap_or_default(),
                text: c.body["text"].as_str().unwrap_or_default().to_owned(),
                parse_mode: c.body["parse_mode"].as_str().map(str::to_owned),
            })
            .collect()
    }

    /// Answers every `sendMessageDraft` with `status` and `description` (e.g. 400, or 404
    /// "Not Found" like a Bot API server that predates drafts); `None` accepts them again.
    pub fn set_draft_failure(&self, failure: Option<(u16, &str)>) {
        self.inner.lock().unwrap().draft_failure = failure.map(|(s, d)| (s, d.to_owned()));
    }

    /// Texts of the drafts Telegram accepted for `chat_id`, in order, with their draft ids.
    pub fn drafts(&self, chat_id: i64) -> Vec<(i64, String)> {
        self.calls("sendMessageDraft.ok")
            .into_iter()
            .filter(|c| c.body["chat_id"].as_i64() == Some(chat_id))
            .map(|c| {
                (
                    c.body["draft_id"].as_i64().unwrap_or_default(),
                    c.body["text"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Serves `bytes` as the file `file_id` (what a document update refers to).
    pub fn add_file(&self, file_id: &str, bytes: Vec<u8>) {
        let path = format!("documents/{file_id}");
        self.inner
            .lock()
            .unwrap()
            .files
            .insert(file_id.to_owned(), (path, bytes));
    }

    /// The file paths the bot downloaded, in order.
    pub fn downloads(&self) -> Vec<String> {
        self.inner.lock().unwrap().downloads.clone()
    }

    pub fn fail_next_sends(&self, failures: impl IntoIterator<Item = Failure>) {
        self.inner.lock().unwrap().send_failures.extend(failures);
    }

    /// `getChatMember` answers that `user_id` is a member of `chat_id` (others have left).
    pub fn add_member(&self, chat_id: i64, user_id: i64) {
        self.inner
            .lock()
            .unwrap()
            .members
            .insert((chat_id, user_id));
    }

    /// Every later send to these chats gets a 403 "bot was blocked by the user".
    pub fn block_chats(&self, chats: impl IntoIterator<Item = i64>) {
        self.inner.lock().unwrap().blocked_chats.extend(chats);
    }

    /// The next sends to `chat_id` fail like this, in order.
    pub fn fail_next_sends_to(&self, chat_id: i64, failures: impl IntoIterator<Item = Failure>) {
        self.inner
            .lock()
            .unwrap()
            .chat_failures
            .entry(chat_id)
            .or_default()
            .extend(failures);
    }

    pub fn push_update(&self, update: Value) {
        self.inner.lock().unwrap().updates.push(update);
    }

    /// The `offset` of every `getUpdates` call, in order.
    pub fn poll_offsets(&self) -> Vec<i64> {
        self.calls("getUpdates")
            .iter()
            .filter_map(|c| c.body["offset"].as_i64())
            .collect()
    }

    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.inner
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// When each `sendMessage` call arrived (accepted or not), in order.
    pub fn send_times(&self) -> Vec<Instant> {
        self.calls("sendMessage").iter().map(|c| c.at).collect()
    }

    /// The inline keyboard of each accepted message to `chat_id`, in order, as button
    /// `(label, callback_data)` rows flattened (empty for a message without one).
    pub fn sent_buttons(&self, chat_id: i64) -> Vec<Vec<(String, String)>> {
        self.calls("sendMessage.ok")
            .into_iter()
            .filter(|c| c.body["chat_id"].as_i64() == Some(chat_id))
            .map(|c| {
                c.body["reply_markup"]["inline_keyboard"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|row| row.as_array().cloned().unwrap_or_default())
                    .map(|b| {
                        (
                            b["text"].as_str().unwrap_or_default().to_owned(),
                            b["callback_data"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .collect()
    }

    /// The `callback_query_id`s answered with answerCallbackQuery, in order.
    pub fn answered_callbacks(&self) -> Vec<String> {
        self.calls("answerCallbackQuery")
            .into_iter()
            .map(|c| {
                c.body["callback_query_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    /// The accepted messages to `chat_id` with the message id the fake gave each, in order.
    pub fn sent_with_ids(&self, chat_id: i64) -> Vec<(i64, String)> {
        let inner = self.inner.lock().unwrap();
        inner
            .calls
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.method == "sendMessage.ok" && c.body["chat_id"].as_i64() == Some(chat_id)
            })
            // The fake answers with the call count right after recording: index + 1.
            .map(|(i, c)| {
                (
                    i as i64 + 1,
                    c.body["text"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Texts of successful sendMessage calls to `chat_id`, in order.
    pub fn sent_texts(&self, chat_id: i64) -> Vec<String> {
        self.calls("sendMessage.ok")
            .into_iter()
            .filter(|c| c.body["chat_id"].as_i64() == Some(chat_id))
            .map(|c| c.body["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((bot, method)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    assert!(bot.starts_with("bot"), "unexpected path /{bot}/{method}");
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // Telegram matches method names case-insensitively (teloxide sends `SendMessage`).
    let method = canonical(&method);
    match method.as_str() {
        "sendMessage" => {
            let failure = {
                let mut inner = inner.lock().unwrap();
                inner.calls.push(Call {
                    method: method.clone(),
                    body: body.clone(),
                    at: Instant::now(),
                });
                if inner.failing {
                    inner.rejected += 1;
                    Some(Failure::ServerError)
                } else if body["chat_id"]
                    .as_i64()
                    .is_some_and(|chat| inner.blocked_chats.contains(&chat))
                {
                    Some(Failure::Blocked)
                } else if let Some(failure) = body["chat_id"]
                    .as_i64()
                    .and_then(|chat| inner.chat_failures.get_mut(&chat)?.pop_front())
                {
                    Some(failure)
                } else {
                    inner.send_failures.pop_front()
                }
            };
            match failure {
                Some(Failure::RetryAfter(secs)) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(json!({"ok": false, "error_code": 429, "description": format!("Too Many Requests: retry after {secs}"), "parameters": {"retry_after": secs}})),
                )
                    .into_response(),
                Some(Failure::Blocked) => (
                    StatusCode::FORBIDDEN,
                    Json(json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})),
                )
                    .into_response(),
                Some(Failure::ServerError) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({"ok": false, "error_code": 500, "description": "Internal Server Error"})),
                )
                    .into_response(),
                None => {
                    let delay = inner.lock().unwrap().answer_delay;
                    let answer = {
                    let mut inner = inner.lock().unwrap();
                    inner.calls.push(Call { method: "sendMessage.ok".into(), body: body.clone(), at: Instant::now() });
                    let id = inner.calls.len();
                    Json(json!({"ok": true, "result": {
                        "message_id": id, "date": 1_700_000_000,
                        "chat": {"id": body["chat_id"], "type": "private", "first_name": "Lead"},
                        "from": {"id": 1, "is_bot": true, "first_name": "Bot", "username": "test_bot"},
                        "text": body["text"],
                        "reply_markup": body["reply_markup"],
                    }}))
                    .into_response()
                    };
                    tokio::time::sleep(delay).await;
                    answer
                }
            }
        }
        "sendMessageDraft" => {
            let mut inner = inner.lock().unwrap();
            inner.calls.push(Call {
                method: method.clone(),
                body: body.clone(),
                at: Instant::now(),
            });
            match inner.draft_failure.clone() {
                Some((status, description)) => (
                    StatusCode::from_u16(status).unwrap(),
                    Json(json!({"ok": false, "error_code": status, "description": description})),
                )
                    .into_response(),
                None => {
                    inner.calls.push(Call {
                        method: "sendMessageDraft.ok".into(),
                        body,
                        at: Instant::now(),
                    });
                    Json(json!({"ok": true, "result": true})).into_response()
                }
            }
        }
        "getChatMember" => {
            let (chat, user) = (body["chat_id"].as_i64(), body["user_id"].as_i64());
            let mut inner = inner.lock().unwrap();
            let member =
                matches!((chat, user), (Some(c), Some(u)) if inner.members.contains(&(c, u)));
            inner.calls.push(Call {
                method,
                body: body.clone(),
                at: Instant::now(),
            });
            Json(json!({"ok": true, "result": {
                "status": if member { "member" } else { "left" },
                "user": {"id": user.unwrap_or_default(), "is_bot": false, "first_name": "Operator"},
            }}))
            .into_response()
        }
        "getFile" => {
            let mut inner = inner.lock().unwrap();
            inner.calls.push(Call {
                method: method.clone(),
                body: body.clone(),
                at: Instant::now(),
            });
            let file_id = body["file_id"].as_str().unwrap_or_default();
            match inner.files.get(file_id) {
                Some((path, bytes)) => Json(json!({"ok": true, "result": {
                    "file_id": file_id, "file_unique_id": format!("u-{file_id}"),
                    "file_size": bytes.len(), "file_path": path,
                }}))
                .into_response(),
                None => (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"ok": false, "error_code": 400, "description": "Bad Request: invalid file_id"})),
                )
                    .into_response(),
            }
        }
        // Calls answered with the message they made or changed (a broadcast's photo or
        // document, the progress message's edits), recorded as `<method>` and `<method>.ok`.
        "sendPhoto" | "sendDocument" | "editMessageText" => {
            let mut inner = inner.lock().unwrap();
            let blocked = body["chat_id"]
                .as_i64()
                .is_some_and(|chat| inner.blocked_chats.contains(&chat));
            for name in [method.clone(), format!("{method}.ok")] {
                if name.ends_with(".ok") && blocked {
                    continue;
                }
                inner.calls.push(Call {
                    method: name,
                    body: body.clone(),
                    at: Instant::now(),
                });
            }
            if blocked {
                return (
                    StatusCode::FORBIDDEN,
                    Json(json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})),
                )
                    .into_response();
            }
            let id = body["message_id"]
                .as_i64()
                .unwrap_or(inner.calls.len() as i64);
            Json(json!({"ok": true, "result": {
                "message_id": id, "date": 1_700_000_000,
                "chat": {"id": body["chat_id"], "type": "private", "first_name": "Lead"},
                "from": {"id": 1, "is_bot": true, "first_name": "Bot", "username": "test_bot"},
                "text": body["text"].as_str().or(body["caption"].as_str()).unwrap_or(""),
                "reply_markup": body["reply_markup"],
            }}))
            .into_response()
        }
        "getUpdates" => {
            inner.lock().unwrap().calls.push(Call {
                method: method.clone(),
                body: body.clone(),
                at: Instant::now(),
            });
            let offset = body["offset"].as_i64().unwrap_or(0);
            // A short long-poll: answer when something is there, or after a second.
            for _ in 0..20 {
                let ready: Vec<Value> = inner
                    .lock()
                    .unwrap()
                    .updates
                    .iter()
                    .filter(|u| u["update_id"].as_i64().unwrap_or(0) >= offset)
                    .cloned()
                    .collect();
                if !ready.is_empty() {
                    return Json(json!({"ok": true, "result": ready})).into_response();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Json(json!({"ok": true, "result": []})).into_response()
        }
        _ => {
            inner.lock().unwrap().calls.push(Call {
                method,
                body,
                at: Instant::now(),
            });
            Json(json!({"ok": true, "result": true})).into_response()
        }
    }
}

/// `GET /file/bot<token>/<path>`: the file's bytes, as the Bot API serves downloads.
async fn download(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((bot, path)): Path<(String, String)>,
) -> Response {
    assert_eq!(bot, format!("bot{TOKEN}"), "download with the wrong token");
    let mut inner = inner.lock().unwrap();
    inner.downloads.push(path.clone());
    match inner.files.values().find(|(p, _)| *p == path) {
        Some((_, bytes)) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn canonical(method: &str) -> String {
    const KNOWN: [&str; 16] = [
        "getFile",
        "sendPhoto",
        "sendDocument",
        "editMessageText",
        "sendMessage",
        "sendMessageDraft",
        "getUpdates",
        "sendChatAction",
        "setWebhook",
        "deleteWebhook",
        "getWebhookInfo",
        "getMe",
        "setMyCommands",
        "setChatMenuButton",
        "getChatMember",
        "answerCallbackQuery",
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(method))
        .map(|k| (*k).to_owned())
        .unwrap_or_else(|| method.to_owned())
}

/// A private text message update, shaped like Telegram's.
pub fn text_update(update_id: i64, chat_id: i64, text: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": {"id": chat_id, "type": "private", "first_name": "Lead"},
            "from": {"id": chat_id, "is_bot": false, "first_name": "Lead", "username": "lead"},
            "text": text,
        }
    })
}

/// A private message with a document (`file_id` as served by [`FakeTelegram::add_file`]).
pub fn document_update(
    update_id: i64,
    chat_id: i64,
    file_id: &str,
    file_name: &str,
    mime_type: &str,
    file_size: u64,
) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": {"id": chat_id, "type": "private", "first_name": "Lead"},
            "from": {"id": chat_id, "is_bot": false, "first_name": "Lead", "username": "lead"},
            "document": {"file_id": file_id, "file_unique_id": format!("u-{file_id}"),
                         "file_name": file_name, "mime_type": mime_type, "file_size": file_size},
        }
    })
}

/// A press on an inline-keyboard button under the bot's message `keyboard_message` (an
/// accepted `sendMessage` body, as [`FakeTelegram::calls`] records it), or under a message
/// Telegram no longer includes (`None`).
pub fn button_press(
    update_id: i64,
    chat_id: i64,
    data: &str,
    keyboard_message: Option<&Value>,
) -> Value {
    let mut query = json!({
        "id": format!("cbq-{update_id}"),
        "from": {"id": chat_id, "is_bot": false, "first_name": "Lead", "username": "lead"},
        "chat_instance": "e2e",
        "data": data,
    });
    if let Some(sent) = keyboard_message {
        query["message"] = json!({
            "message_id": 77,
            "date": 1_700_000_000,
            "chat": {"id": chat_id, "type": "private", "first_name": "Lead"},
            "from": {"id": 1, "is_bot": true, "first_name": "Bot", "username": "test_bot"},
            "text": sent["text"],
            "reply_markup": sent["reply_markup"],
        });
    }
    json!({"update_id": update_id, "callback_query": query})
}

/// A text message from `user_id` in `chat_id` (a private chat when they are equal, else a
/// group) that replies to the bot's message `to_message_id`.
pub fn reply_update(
    update_id: i64,
    chat_id: i64,
    user_id: i64,
    text: &str,
    to_message_id: i64,
) -> Value {
    let chat = if chat_id == user_id {
        json!({"id": chat_id, "type": "private", "first_name": "Owner"})
    } else {
        json!({"id": chat_id, "type": "group", "title": "Operators"})
    };
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": chat,
            "from": {"id": user_id, "is_bot": false, "first_name": "Owner", "username": "owner"},
            "text": text,
            "reply_to_message": {
                "message_id": to_message_id,
                "date": 1_700_000_000,
                "chat": chat,
                "from": {"id": 1, "is_bot": true, "first_name": "Bot", "username": "test_bot"},
                "text": "relayed",
            },
        }
    })
}

/// A text message from `user_id` (an owner) in `chat_id`.
pub fn owner_update(update_id: i64, chat_id: i64, user_id: i64, text: &str) -> Value {
    let mut update = reply_update(update_id, chat_id, user_id, text, 0);
    update["message"]
        .as_object_mut()
        .unwrap()
        .remove("reply_to_message");
    update
}

/// A press on an owner button (`handoff:take:1`) by `user_id` in `chat_id`.
pub fn owner_button(update_id: i64, chat_id: i64, user_id: i64, data: &str) -> Value {
    json!({"update_id": update_id, "callback_query": {
        "id": format!("cbq-{update_id}"),
        "from": {"id": user_id, "is_bot": false, "first_name": "Owner", "username": "owner"},
        "chat_instance": "e2e",
        "data": data,
        "message": {
            "message_id": 5, "date": 1_700_000_000,
            "chat": {"id": chat_id, "type": "private", "first_name": "Owner"},
            "from": {"id": 1, "is_bot": true, "first_name": "Bot", "username": "test_bot"},
            "text": "handoff",
        },
    }})
}

/// The most calls that arrived within any window of `window` (a sliding window).
pub fn most_in_any_window(times: &[Instant], window: Duration) -> usize {
    let mut times = times.to_vec();
    times.sort();
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| t.duration_since(times[i]) < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}
