//! A fake Anthropic Messages API that answers every request after a fixed latency with a short
//! text and a usage block; a request with `"stream": true` gets the same answer as server-sent
//! events, its words spread evenly over the latency (first word at once), with the time of the
//! first word and of the last event kept for the streaming benchmark.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Served;

pub const API_KEY: &str = "bench-llm-key";
pub const MODEL: &str = "claude-bench";
/// The answer every request gets (with `answer_words` it is this text repeated).
const ANSWER: &str = "Thanks for writing! Here is a short answer.";

/// When one streamed answer showed its first word and when its last event was written.
#[derive(Clone, Copy, Debug)]
pub struct StreamTiming {
    pub first_text: Instant,
    pub done: Instant,
}

struct Inner {
    latency: Duration,
    /// Words of a streamed answer (and of the plain one, so both bill the same).
    answer_words: usize,
    requests: AtomicU64,
    streams: Mutex<Vec<StreamTiming>>,
}

pub struct FakeLlm {
    pub url: String,
    served: Served<Inner>,
}

impl FakeLlm {
    pub async fn start(latency: Duration) -> Self {
        Self::with_answer(latency, ANSWER.split(' ').count()).await
    }

    /// Answers of `answer_words` words, which a stream spreads over `latency`.
    pub async fn with_answer(latency: Duration, answer_words: usize) -> Self {
        let inner = Inner {
            latency,
            answer_words: answer_words.max(1),
            requests: AtomicU64::new(0),
            streams: Mutex::new(Vec::new()),
        };
        let served = Served::messages_api(inner, handle).await;
        Self {
            url: served.url.clone(),
            served,
        }
    }

    pub fn requests(&self) -> u64 {
        self.served.state.requests.load(Ordering::Relaxed)
    }

    /// The streamed answers finished so far, in the order they finished.
    pub fn streams(&self) -> Vec<StreamTiming> {
        self.served
            .state
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn answer_text(words: usize) -> String {
    ANSWER
        .split(' ')
        .cycle()
        .take(words)
        .collect::<Vec<_>>()
        .join(" ")
}

fn usage(output_tokens: usize) -> Value {
    json!({"input_tokens": 120, "output_tokens": output_tokens,
           "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
}

async fn handle(State(inner): State<Arc<Inner>>, body: axum::body::Bytes) -> Response {
    inner.requests.fetch_add(1, Ordering::Relaxed);
    let streamed = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b["stream"].as_bool())
        .unwrap_or(false);
    if streamed {
        return stream(inner).into_response();
    }
    tokio::time::sleep(inner.latency).await;
    axum::Json(json!({
        "id": "msg_bench", "type": "message", "role": "assistant", "model": MODEL,
        "content": [{"type": "text", "text": answer_text(inner.answer_words)}],
        "stop_reason": "end_turn",
        "usage": usage(inner.answer_words)
    }))
    .into_response()
}

fn sse(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// Anthropic's event sequence: `message_start`, one `content_block_delta` per word (the first
/// at once, the rest evenly over the latency), `message_delta` with the usage, `message_stop`.
fn stream(inner: Arc<Inner>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::convert::Infallible>>(16);
    tokio::spawn(async move {
        let words = inner.answer_words;
        let gap = inner.latency / words as u32;
        let start_usage = usage(1);
        let head = [
            sse(
                "message_start",
                json!({"type": "message_start", "message": {
                    "id": "msg_bench", "type": "message", "role": "assistant", "model": MODEL,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": start_usage}}),
            ),
            sse(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "text", "text": ""}}),
            ),
        ];
        for event in head {
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        let text = answer_text(words);
        let mut first_text = None;
        for (i, word) in text.split(' ').enumerate() {
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            let piece = if i == 0 {
                word.to_owned()
            } else {
                format!(" {word}")
            };
            let event = sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": piece}}),
            );
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
            first_text.get_or_insert_with(Instant::now);
        }
        let tail = [
            sse(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            sse(
                "message_delta",
                json!({"type": "message_delta",
                       "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                       "usage": {"output_tokens": words}}),
            ),
            sse("message_stop", json!({"type": "message_stop"})),
        ];
        for event in tail {
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        if let Some(first_text) = first_text {
            inner
                .streams
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(StreamTiming {
                    first_text,
                    done: Instant::now(),
                });
        }
    });
    let body = axum::body::Body::from_stream(receiver_stream(rx));
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .expect("a static response")
}

fn receiver_stream<T>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static
where
    T: Send + 'static,
{
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) })
}
