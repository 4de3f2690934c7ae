//! A fake Anthropic Messages API that models the prompt cache (the same model the bot's tests
//! use: `bot/tests/support/prompt_cache.rs`): usage reports cache writes at each new
//! breakpoint prefix and cache reads when a stored prefix comes back. Answers are a fixed
//! text of about `answer_tokens` tokens, so the conversation grows as a real one would.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use serde_json::{Value, json};

use super::Served;

#[path = "../../../bot/tests/support/prompt_cache.rs"]
mod prompt_cache;

pub use prompt_cache::CacheUsage;

struct Inner {
    cache: prompt_cache::PromptCache,
    answer: String,
    requests: u64,
}

pub struct CachingLlm {
    pub url: String,
    served: Served<Mutex<Inner>>,
}

impl CachingLlm {
    /// Prefixes shorter than `min_tokens` are not cached (Anthropic: 1,024 for Sonnet).
    pub async fn start(min_tokens: u64, answer_tokens: usize) -> Self {
        let answer = vec!["Our plan includes that feature"; answer_tokens.div_ceil(7)].join(", ");
        let inner = Mutex::new(Inner {
            cache: prompt_cache::PromptCache::new(min_tokens),
            answer,
            requests: 0,
        });
        let served = Served::messages_api(inner, handle).await;
        Self {
            url: served.url.clone(),
            served,
        }
    }

    pub fn requests(&self) -> u64 {
        self.served
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .requests
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    body: axum::body::Bytes,
) -> axum::Json<Value> {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
    inner.requests += 1;
    let usage = inner.cache.usage(&request);
    let output = (inner.answer.len() as u64).div_ceil(4);
    axum::Json(json!({
        "id": "msg_bench", "type": "message", "role": "assistant",
        "model": request["model"],
        "content": [{"type": "text", "text": inner.answer}],
        "stop_reason": "end_turn",
        "usage": usage.json(output),
    }))
}
