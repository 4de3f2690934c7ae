//! A fake Anthropic Messages API on 127.0.0.1: answers from a script (status, headers, body,
//! delay), by default with `"reply: <last user text>"` and a usage block; records requests.
//! A request with `stream: true` gets the same answer as real-shaped server-sent events, word
//! by word at a fixed rate (`set_token_every`), optionally broken off (`Scripted::cut_after`).
//! The same fake answers the OpenAI flavour at `/v1/chat/completions` (same script; scripted
//! bodies there are OpenAI-shaped, see [`openai_message`]), and both flavours can script a
//! tool call ([`Scripted::tool_use`], [`Scripted::openai_tool_call`]), streamed or not.

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
    /// Streamed: the connection is aborted after this many text events.
    pub cut_after: Option<usize>,
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
            cut_after: None,
        }
    }
    pub fn text(text: &str) -> Self {
        Self {
            status: 200,
            headers: vec![],
            body: Some(message(text, "scripted")),
            delay: Duration::ZERO,
            cut_after: None,
        }
    }
    pub fn default_after(delay: Duration) -> Self {
        Self {
            status: 200,
            headers: vec![],
            body: None,
            delay,
            cut_after: None,
        }
    }
    /// An Anthropic answer that calls the tool `name` with `{"reason": reason}`.
    pub fn tool_use(name: &str, reason: &str) -> Self {
        Self::tool_use_with(name, json!({"reason": reason}))
    }
    /// An Anthropic answer that calls the tool `name` with `input`.
    pub fn tool_use_with(name: &str, input: Value) -> Self {
        let mut body = message("", "scripted");
        body["content"] =
            json!([{"type": "tool_use", "id": "toolu_1", "name": name, "input": input}]);
        body["stop_reason"] = json!("tool_use");
        Self::text("").with_body(body)
    }
    /// An OpenAI answer with `text`.
    pub fn openai_text(text: &str) -> Self {
        Self::text("").with_body(openai_message(text, "scripted", None))
    }
    /// An OpenAI answer that calls the function `name` with `{"reason": reason}`.
    pub fn openai_tool_call(name: &str, reason: &str) -> Self {
        Self::openai_tool_call_with(name, json!({"reason": reason}))
    }
    /// An OpenAI answer that calls the function `name` with `arguments`.
    pub fn openai_tool_call_with(name: &str, arguments: Value) -> Self {
        let call = json!({"id": "call_1", "type": "function", "function": {
            "name": name, "arguments": arguments.to_string()}});
        Self::text("").with_body(openai_message("", "scripted", Some(call)))
    }
    fn with_body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    /// When streamed, break the connection off after `text_events` pieces of text.
    pub fn cut_after(mut self, text_events: usize) -> Self {
        self.cut_after = Some(text_events);
        self
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

/// An OpenAI chat completion with `text` (null content when empty) and an optional tool call.
pub fn openai_message(text: &str, model: &str, tool_call: Option<Value>) -> Value {
    let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
    if let Some(call) = tool_call {
        message["tool_calls"] = json!([call]);
    }
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    })
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Scripted>,
    requests: Vec<Value>,
    /// Delay for every default answer.
    default_delay: Duration,
    /// Streamed answers: the pause before each piece of text.
    token_every: Duration,
    /// When set, default answers report the input usage this model of Anthropic's prompt
    /// cache computes (cache reads when the same prefix comes back) instead of a fixed 100.
    prompt_cache: Option<super::prompt_cache::PromptCache>,
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
            .route("/v1/chat/completions", post(handle_openai))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, inner }
    }

    pub fn script(&self, responses: impl IntoIterator<Item = Scripted>) {
        self.inner.lock().unwrap().script.extend(responses);
    }

    /// The model's writing speed in streamed answers: one word every `every`.
    pub fn set_token_every(&self, every: Duration) {
        self.inner.lock().unwrap().token_every = every;
    }

    /// Default answers report usage from a model of the prompt cache (see `prompt_cache`);
    /// prefixes under `min_tokens` are not cached.
    pub fn model_prompt_cache(&self, min_tokens: u64) {
        self.inner.lock().unwrap().prompt_cache =
            Some(super::prompt_cache::PromptCache::new(min_tokens));
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
    let (scripted, default_delay, token_every, cache_usage) = {
        let mut inner = inner.lock().unwrap();
        inner.requests.push(request.clone());
        let scripted = inner.script.pop_front();
        let cache_usage = match (&scripted, inner.prompt_cache.as_mut()) {
            (None, Some(cache)) => Some(cache.usage(&request)),
            _ => None,
        };
        (
            scripted,
            inner.default_delay,
            inner.token_every,
            cache_usage,
        )
    };
    let scripted = scripted.unwrap_or_else(|| Scripted::default_after(default_delay));
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
        let mut answer = message(
            &format!("reply: {text}"),
            request["model"].as_str().unwrap_or_default(),
        );
        if let Some(usage) = cache_usage {
            answer["usage"] = usage.json(20);
        }
        answer
    });
    let streamed = request["stream"] == json!(true) && (200..300).contains(&scripted.status);
    let mut response = if streamed {
        let events = anthropic_events(&body);
        Response::builder()
            .status(scripted.status)
            .header("content-type", "text/event-stream")
            .body(axum::body::Body::from_stream(paced(
                events,
                token_every,
                scripted.cut_after,
            )))
            .unwrap()
    } else {
        (
            StatusCode::from_u16(scripted.status).unwrap(),
            axum::Json(body),
        )
            .into_response()
    };
    for (name, value) in scripted.headers {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_str(&value).unwrap());
    }
    response
}

/// One event on the wire, and whether it carries text.
type WireEvent = (String, bool);

fn sse(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// The answer of `message` as Anthropic streams it: `message_start` with the input usage,
/// one `content_block_delta` per word, `message_delta` with the output usage, `message_stop`.
pub fn anthropic_events(message: &Value) -> Vec<WireEvent> {
    let text: String = message["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["text"].as_str())
        .collect();
    let mut start_usage = message["usage"].clone();
    start_usage["output_tokens"] = json!(1);
    let mut events = vec![
        (
            sse(
                "message_start",
                json!({"type": "message_start", "message": {
                    "id": message["id"], "type": "message", "role": "assistant",
                    "model": message["model"], "content": [], "stop_reason": null,
                    "stop_sequence": null, "usage": start_usage}}),
            ),
            false,
        ),
        (
            sse(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "text", "text": ""}}),
            ),
            false,
        ),
        (sse("ping", json!({"type": "ping"})), false),
    ];
    for piece in words(&text) {
        events.push((
            sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": piece}}),
            ),
            true,
        ));
    }
    events.push((
        sse(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        false,
    ));
    let tools = message["content"].as_array().into_iter().flatten();
    for (i, tool) in tools.filter(|b| b["type"] == "tool_use").enumerate() {
        let index = i + 1;
        let start = json!({"type": "content_block_start", "index": index, "content_block": {
            "type": "tool_use", "id": tool["id"], "name": tool["name"], "input": {}}});
        events.push((sse("content_block_start", start), false));
        let input = tool["input"].to_string();
        let (head, tail) = input.split_at(input.len() / 2);
        for part in [head, tail] {
            let delta = json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": part}});
            events.push((sse("content_block_delta", delta), false));
        }
        let stop = json!({"type": "content_block_stop", "index": index});
        events.push((sse("content_block_stop", stop), false));
    }
    events.push((
        sse(
            "message_delta",
            json!({"type": "message_delta",
                   "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"output_tokens": message["usage"]["output_tokens"]}}),
        ),
        false,
    ));
    events.push((sse("message_stop", json!({"type": "message_stop"})), false));
    events
}

/// The text in word-sized pieces, each with its leading space.
pub fn words(text: &str) -> Vec<String> {
    text.split(' ')
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_owned()
            } else {
                format!(" {w}")
            }
        })
        .filter(|p| !p.is_empty())
        .collect()
}

/// The events paced (a pause before each text event), cut after `cut_after` text events.
fn paced(
    events: Vec<WireEvent>,
    every: Duration,
    cut_after: Option<usize>,
) -> impl futures::Stream<Item = Result<axum::body::Bytes, std::io::Error>> {
    futures::stream::unfold(
        (events.into_iter(), 0usize),
        move |(mut events, texts)| async move {
            if cut_after == Some(texts) && texts > 0 {
                // Let what was written reach the bot before the connection breaks.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fake cut");
                return Some((Err(cut), (Vec::new().into_iter(), usize::MAX)));
            }
            let (event, carries_text) = events.next()?;
            if carries_text {
                tokio::time::sleep(every).await;
            }
            let texts = texts + usize::from(carries_text);
            Some((Ok(axum::body::Bytes::from(event)), (events, texts)))
        },
    )
}

/// The OpenAI flavour: `Authorization: Bearer`, OpenAI-shaped bodies, the same script.
async fn handle_openai(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!(
        headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some("Bearer test-llm-key")
    );
    let (scripted, default_delay) = {
        let mut inner = inner.lock().unwrap();
        inner.requests.push(request.clone());
        (inner.script.pop_front(), inner.default_delay)
    };
    let scripted = scripted.unwrap_or_else(|| Scripted::default_after(default_delay));
    tokio::time::sleep(scripted.delay).await;
    let body = scripted.body.unwrap_or_else(|| {
        let last = request["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_owned();
        openai_message(
            &format!("reply: {last}"),
            request["model"].as_str().unwrap_or_default(),
            None,
        )
    });
    if request["stream"] == json!(true) && (200..300).contains(&scripted.status) {
        let text = openai_events(&body).concat();
        return Response::builder()
            .status(200)
            .header("content-type", "text/event-stream")
            .body(axum::body::Body::from(text))
            .unwrap();
    }
    (
        StatusCode::from_u16(scripted.status).unwrap(),
        axum::Json(body),
    )
        .into_response()
}

/// An OpenAI completion as chunks: the role, one chunk per word, the tool calls with their
/// arguments in two pieces, the finish, the usage chunk, `[DONE]`.
pub fn openai_events(completion: &Value) -> Vec<String> {
    let chunk = |delta: Value| {
        format!(
            "data: {}\n\n",
            json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": null}], "usage": null})
        )
    };
    let message = &completion["choices"][0]["message"];
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}))];
    for piece in words(message["content"].as_str().unwrap_or_default()) {
        events.push(chunk(json!({"content": piece})));
    }
    for (index, call) in message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let arguments = call["function"]["arguments"].as_str().unwrap_or_default();
        let (head, tail) = arguments.split_at(arguments.len() / 2);
        events.push(chunk(
            json!({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
            "function": {"name": call["function"]["name"], "arguments": head}}]}),
        ));
        events.push(chunk(
            json!({"tool_calls": [{"index": index, "function": {"arguments": tail}}]}),
        ));
    }
    events.push(format!(
        "data: {}\n\n",
        json!({"object": "chat.completion.chunk", "choices": [], "usage": completion["usage"]})
    ));
    events.push("data: [DONE]\n\n".to_owned());
    events
}
