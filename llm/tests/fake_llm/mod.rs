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
use serde_json::Value;

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Wait this long before answering (to provoke client timeouts).
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            delay: Duration::ZERO,
        }
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
    let mut response = Response::builder()
        .status(reply.status)
        .header("content-type", "application/json");
    for (name, value) in &reply.headers {
        response = response.header(*name, value);
    }
    response.body(Body::from(reply.body)).unwrap()
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
        timeout: Some("5s".to_owned()),
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
