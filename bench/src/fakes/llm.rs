//! A fake Anthropic Messages API that answers every request after a fixed latency with a short
//! text and a usage block.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use serde_json::json;

use super::Served;

pub const API_KEY: &str = "bench-llm-key";
pub const MODEL: &str = "claude-bench";

struct Inner {
    latency: Duration,
    requests: AtomicU64,
}

pub struct FakeLlm {
    pub url: String,
    served: Served<Inner>,
}

impl FakeLlm {
    pub async fn start(latency: Duration) -> Self {
        let inner = Inner {
            latency,
            requests: AtomicU64::new(0),
        };
        let routes = axum::Router::new().route("/v1/messages", post(handle));
        let served = Served::start(inner, routes).await;
        Self {
            url: served.url.clone(),
            served,
        }
    }

    pub fn requests(&self) -> u64 {
        self.served.state.requests.load(Ordering::Relaxed)
    }
}

async fn handle(State(inner): State<Arc<Inner>>) -> axum::Json<serde_json::Value> {
    inner.requests.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(inner.latency).await;
    axum::Json(json!({
        "id": "msg_bench", "type": "message", "role": "assistant", "model": MODEL,
        "content": [{"type": "text", "text": "Thanks for writing! Here is a short answer."}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 120, "output_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    }))
}
