//! A fake Anthropic Messages API on 127.0.0.1: answers from a script (status, headers, body,
//! delay), by default with `"reply: <last user text>"` and a usage block; records requests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// `None`: the default answer.
    pub body: Option<Value>,
    pub delay: Duration,
}

impl Scripted {
    pub fn status(status: u16) -> Self {
        let body =
            json!({"type": "error", "error": {"type": "api_error", "message": "scripted failure"}});
        Self {
            status,
            headers: vec![],
            body: Some(body),
            delay: Duration::ZERO,
        }
    }
    pub fn text(text: &str) -> Self {
        Self {
            status: 200,
            headers: vec![],
            body: Some(message(text, "scripted")),
            delay: Duration::ZERO,
        }
    }
    pub fn default_after(delay: Duration) -> Self {
        Self {
            status: 200,
            headers: vec![],
            body: None,
            delay,
        }
    }
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

pub fn message(text: &str, model: &str) -> Value {
    json!({
        "id": "msg_test", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    })
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Scripted>,
    requests: Vec<Value>,
    /// Delay for every default answer.
    default_delay: Duration,
}

#[derive(Clone)]
pub struct FakeLlm {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeLlm {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .route("/v1/messages", post(handle))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, inner }
    }

    pub fn script(&self, responses: impl IntoIterator<Item = Scripted>) {
        self.inner.lock().unwrap().script.extend(responses);
    }

    pub fn set_default_delay(&self, delay: Duration) {
        self.inner.lock().unwrap().default_delay = delay;
    }

    pub fn requests(&self) -> Vec<Value> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn models_called(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r["model"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!(
        headers.get("x-api-key").and_then(|v| v.to_str().ok()),
        Some("test-llm-key")
    );
    let (scripted, default_delay) = {
        let mut inner = inner.lock().unwrap();
        inner.requests.push(request.clone());
        (inner.script.pop_front(), inner.default_delay)
    };
    let scripted = scripted.unwrap_or(Scripted {
        status: 200,
        headers: vec![],
        body: None,
        delay: default_delay,
    });
    tokio::time::sleep(scripted.delay).await;
    let body = scripted.body.unwrap_or_else(|| {
        let last = request["messages"]
            .as_array()
            .and_then(|m| m.last())
            .cloned()
            .unwrap_or(Value::Null);
        let text = match &last["content"] {
            Value::String(s) => s.clone(),
            Value::Array(blocks) => blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        };
        message(
            &format!("reply: {text}"),
            request["model"].as_str().unwrap_or_default(),
        )
    });
    let mut response = (
        StatusCode::from_u16(scripted.status).unwrap(),
        axum::Json(body),
    )
        .into_response();
    for (name, value) in scripted.headers {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_str(&value).unwrap());
    }
    response
}
