//! A fake LLM API for the tests: an HTTP server on 127.0.0.1 that answers each request with
//! the next scripted reply and records what it was sent.

#![allow(dead_code)] // each test file uses a different part

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Response, Uri};
use botfleet_api::{LlmConfig, LlmProvider};
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Wait this long before answering (to provoke client timeouts).
    pub delay: Duration,
    /// Server-sent events sent one by one instead of `body`.
    pub sse: Option<Sse>,
}

/// A streamed answer: events written at a fixed rate, optionally broken off.
#[derive(Clone, Debug)]
pub struct Sse {
    /// Each event as written on the wire (`event: …\ndata: …\n\n`).
    pub events: Vec<String>,
    /// Pause before each event that carries text (the model's token rate).
    pub every: Duration,
    /// Which events carry text (indexes into `events`).
    pub text_events: Vec<usize>,
    /// After this many events the connection is aborted mid-body.
    pub cut_after: Option<usize>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            delay: Duration::ZERO,
            sse: None,
        }
    }

    /// The streamed form of an answer body (Anthropic Messages or OpenAI chat completion):
    /// the same text, word by word, one event every `every`, and the same usage, in the
    /// events each provider reports it in.
    pub fn streamed(provider: LlmProvider, answer: &Value, every: Duration) -> Self {
        let (events, text_events) = match provider {
            LlmProvider::Anthropic => anthropic_events(answer),
            LlmProvider::Openai => openai_events(answer),
        };
        Reply {
            headers: vec![("content-type", "text/event-stream".to_owned())],
            sse: Some(Sse {
                events,
                every,
                text_events,
                cut_after: None,
            }),
            ..Reply::json(200, Value::Null)
        }
    }

    /// Breaks the stream off (the connection is aborted) after `text_events` events that
    /// carry text.
    pub fn cut_after_text(mut self, text_events: usize) -> Self {
        let sse = self.sse.as_mut().expect("a streamed reply");
        sse.cut_after = Some(sse.text_events[text_events - 1] + 1);
        self
    }

    /// Replaces everything after `text_events` text events with one SSE `error` event.
    pub fn error_event_after_text(mut self, text_events: usize, error: Value) -> Self {
        let sse = self.sse.as_mut().expect("a streamed reply");
        let keep = if text_events == 0 {
            sse.text_events[0]
        } else {
            sse.text_events[text_events - 1] + 1
        };
        sse.events.truncate(keep);
        sse.events.push(sse_event(Some("error"), &error));
        sse.text_events.retain(|i| *i < keep);
        self
    }

    pub fn raw(status: u16, body: &str) -> Self {
        Reply {
            body: body.to_owned(),
            ..Reply::json(status, Value::Null)
        }
    }

    /// A fixture file of `tests/fixtures/` as a 200 response.
    pub fn fixture(name: &str) -> Self {
        Reply::json(200, fixture(name))
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A request the fake received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Shared {
    script: VecDeque<Reply>,
    received: Vec<Recorded>,
}

pub struct FakeLlm {
    pub base_url: String,
    shared: Arc<Mutex<Shared>>,
}

impl FakeLlm {
    /// Starts the server; requests beyond the script get a 500 "unscripted" answer.
    pub async fn start(script: Vec<Reply>) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            script: script.into(),
            received: Vec::new(),
        }));
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeLlm {
            base_url: format!("http://{address}"),
            shared,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().unwrap().received.clone()
    }

    /// The `model` of each request, in order.
    pub fn models(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r.body["model"].as_str().unwrap_or("?").to_owned())
            .collect()
    }
}

async fn answer(
    State(shared): State<Arc<Mutex<Shared>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let reply = {
        let mut shared = shared.lock().unwrap();
        shared.received.push(Recorded {
            path: uri.path().to_owned(),
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            at: Instant::now(),
        });
        shared.script.pop_front()
    };
    let reply = reply.unwrap_or_else(|| Reply::raw(500, "fake LLM: no scripted reply left"));
    tokio::time::sleep(reply.delay).await;
    let mut response = Response::builder().status(reply.status);
    if !reply
        .headers
        .iter()
        .any(|(name, _)| *name == "content-type")
    {
        response = response.header("content-type", "application/json");
    }
    for (name, value) in &reply.headers {
        response = response.header(*name, value);
    }
    let body = match reply.sse {
        None => Body::from(reply.body),
        Some(sse) => Body::from_stream(sse_body(sse)),
    };
    response.body(body).unwrap()
}

/// The events of `sse`, paced, then the end of the body or an aborted connection.
fn sse_body(sse: Sse) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold((sse, 0), |(sse, next)| async move {
        if sse.cut_after == Some(next) {
            // Let what was written reach the client before the connection breaks.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fake cut");
            return Some((Err(cut), (sse, usize::MAX)));
        }
        let event = sse.events.get(next)?.clone();
        if sse.text_events.contains(&next) {
            tokio::time::sleep(sse.every).await;
        }
        Some((Ok(Bytes::from(event)), (sse, next + 1)))
    })
}

fn sse_event(name: Option<&str>, data: &Value) -> String {
    match name {
        Some(name) => format!("event: {name}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

/// The text cut into word-sized pieces, each with its leading space, as models stream it.
pub fn pieces(text: &str) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    for (i, word) in text.split(' ').enumerate() {
        if i == 0 {
            pieces.push(word.to_owned());
        } else {
            pieces.push(format!(" {word}"));
        }
    }
    pieces.retain(|p| !p.is_empty());
    pieces
}

fn anthropic_events(answer: &Value) -> (Vec<String>, Vec<usize>) {
    let text: String = answer["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["text"].as_str())
        .collect();
    let usage = &answer["usage"];
    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = json!(1);
    let mut events = vec![
        sse_event(
            Some("message_start"),
            &json!({"type": "message_start", "message": {
                "id": answer["id"], "type": "message", "role": "assistant",
                "model": answer["model"], "content": [], "stop_reason": null,
                "stop_sequence": null, "usage": start_usage}}),
        ),
        sse_event(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
        ),
        sse_event(Some("ping"), &json!({"type": "ping"})),
    ];
    let mut text_events = Vec::new();
    for piece in pieces(&text) {
        text_events.push(events.len());
        events.push(sse_event(
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    events.push(sse_event(
        Some("content_block_stop"),
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(sse_event(
        Some("message_delta"),
        &json!({"type": "message_delta",
                "delta": {"stop_reason": answer["stop_reason"], "stop_sequence": null},
                "usage": {"output_tokens": usage["output_tokens"]}}),
    ));
    events.push(sse_event(
        Some("message_stop"),
        &json!({"type": "message_stop"}),
    ));
    (events, text_events)
}

fn openai_events(answer: &Value) -> (Vec<String>, Vec<usize>) {
    let text = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default();
    let chunk = |delta: Value, finish: Value| {
        sse_event(
            None,
            &json!({"id": answer["id"], "object": "chat.completion.chunk",
                    "created": answer["created"], "model": answer["model"],
                    "choices": [{"index": 0, "delta": delta, "logprobs": null,
                                 "finish_reason": finish}],
                    "usage": null}),
        )
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    let mut text_events = Vec::new();
    for piece in pieces(text) {
        text_events.push(events.len());
        events.push(chunk(json!({"content": piece}), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    events.push(sse_event(
        None,
        &json!({"id": answer["id"], "object": "chat.completion.chunk",
                "created": answer["created"], "model": answer["model"],
                "choices": [], "usage": answer["usage"]}),
    ));
    events.push("data: [DONE]\n\n".to_owned());
    (events, text_events)
}

/// One question to the sales assistant: the request of the streaming tests.
pub fn request() -> botfleet_llm::CompletionRequest {
    botfleet_llm::CompletionRequest {
        system: Some("You are the sales assistant of Acme.".to_owned()),
        context: Vec::new(),
        messages: vec![botfleet_llm::ChatMessage::user("What does Pro cost?")],
        max_output_tokens: 300,
    }
}

/// An `llm` config section pointing at `base_url`.
pub fn config(
    provider: LlmProvider,
    base_url: &str,
    model: &str,
    fallback: Option<&str>,
) -> LlmConfig {
    LlmConfig {
        provider,
        model: model.to_owned(),
        fallback_model: fallback.map(str::to_owned),
        base_url: Some(base_url.to_owned()),
        max_retries: Some(2),
        timeout: Some("5s".parse().unwrap()),
        ..LlmConfig::default()
    }
}

/// A minimal Anthropic success body.
pub fn anthropic_answer(text: &str) -> Reply {
    Reply::json(
        200,
        serde_json::json!({
            "id": "msg_test", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": 5}
        }),
    )
}

/// An Anthropic-style error body.
pub fn anthropic_error(status: u16, kind: &str, message: &str) -> Reply {
    Reply::json(
        status,
        serde_json::json!({"type": "error", "error": {"type": kind, "message": message},
                           "request_id": "req_011CTest"}),
    )
}
