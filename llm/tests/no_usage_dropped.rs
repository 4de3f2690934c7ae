//! Whatever a response says it used is in its attempt's usage: a streamed request answered
//! with a plain JSON body (LiteLLM's mocks, some OpenAI-compatible servers) is the complete
//! answer, and a response the client cannot use still reports what the provider billed.

mod fake_llm;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use botfleet_api::LlmProvider;
use botfleet_llm::{CompletionOutcome, LlmClient, Outcome, StreamEvent, Usage};
use fake_llm::{FakeLlm, Reply, config, request};
use serde_json::{Value, json};

const ANSWER: &str = "Pro costs $20 a month.";

/// What the server billed in the trial: 2,095 tokens in, 503 out.
const BILLED: Usage = Usage {
    input_tokens: 2_095,
    cache_read_tokens: 0,
    cache_write_5m_tokens: 0,
    cache_write_1h_tokens: 0,
    output_tokens: 503,
};

/// A client of `provider` at the fake, no fallback, retrying at once.
fn client(fake: &FakeLlm, provider: LlmProvider) -> LlmClient {
    let config = config(provider, &fake.base_url, "model-under-test", None);
    let client = LlmClient::new(&config, "sk-test".into()).unwrap();
    client.with_backoff(Duration::from_millis(1), Duration::from_millis(10))
}

/// A complete, non-streamed answer body of `provider`.
fn whole_body(provider: LlmProvider, text: &str) -> Value {
    match provider {
        LlmProvider::Anthropic => json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-primary",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 2095, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": 503}
        }),
        LlmProvider::Openai => json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-primary",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 2095, "completion_tokens": 503, "total_tokens": 2598}
        }),
    }
}

/// A 2xx body that reports its usage but holds no answer the client can read.
fn unusable_body(provider: LlmProvider) -> Value {
    let mut body = whole_body(provider, "");
    let object = body.as_object_mut().unwrap();
    object.remove("content");
    object.remove("choices");
    body
}

/// Streams `request()` and returns the outcome with the text the caller was handed.
async fn stream(client: &LlmClient) -> (CompletionOutcome, Vec<String>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let outcome = client
        .stream(&request(), move |event| match event {
            StreamEvent::Text(text) => sink.lock().unwrap().push(text.to_owned()),
            StreamEvent::Restart => sink.lock().unwrap().push("<restart>".to_owned()),
        })
        .await;
    let seen = seen.lock().unwrap().clone();
    (outcome, seen)
}

async fn streamed_request_answered_with_plain_json(provider: LlmProvider, content_type: &str) {
    let reply = Reply::json(200, whole_body(provider, ANSWER)).header("content-type", content_type);
    let fake = FakeLlm::start(vec![reply]).await;
    let (outcome, seen) = stream(&client(&fake, provider)).await;

    let completion = outcome.result.expect("the JSON body is the answer");
    assert_eq!(completion.text, ANSWER);
    assert_eq!(completion.usage, BILLED);
    assert!(!completion.cut);
    assert_eq!(
        seen,
        [ANSWER],
        "the caller is handed the whole text at once"
    );
    assert_eq!(outcome.attempts.len(), 1, "{:?}", outcome.attempts);
    assert_eq!(outcome.attempts[0].outcome, Outcome::Ok);
    assert_eq!(outcome.attempts[0].usage, BILLED);
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "no retry");
    assert_eq!(
        requests[0].body["stream"], true,
        "it was a streamed request"
    );
}

#[tokio::test]
async fn anthropic_streamed_request_answered_with_plain_json_is_the_answer() {
    streamed_request_answered_with_plain_json(LlmProvider::Anthropic, "application/json").await;
}

#[tokio::test]
async fn openai_streamed_request_answered_with_plain_json_is_the_answer() {
    streamed_request_answered_with_plain_json(
        LlmProvider::Openai,
        "application/json; charset=utf-8",
    )
    .await;
}

/// The first response reports usage but no usable content: that attempt fails (and is
/// retried) with the billed usage on it.
async fn unusable_answer_keeps_its_usage(provider: LlmProvider, streamed: bool) {
    let fake = FakeLlm::start(vec![
        Reply::json(200, unusable_body(provider)),
        Reply::json(200, whole_body(provider, ANSWER)),
    ])
    .await;
    let client = client(&fake, provider);
    let outcome = if streamed {
        stream(&client).await.0
    } else {
        client.complete(&request()).await
    };

    assert_eq!(outcome.result.expect("the retry answers").text, ANSWER);
    let attempts: Vec<_> = outcome
        .attempts
        .iter()
        .map(|a| (a.outcome, a.usage))
        .collect();
    assert_eq!(
        attempts,
        [(Outcome::ServerError, BILLED), (Outcome::Ok, BILLED)],
        "{provider:?}, streamed: {streamed}"
    );
}

#[tokio::test]
async fn an_unusable_answer_keeps_its_usage_on_the_failed_attempt() {
    for provider in [LlmProvider::Anthropic, LlmProvider::Openai] {
        for streamed in [false, true] {
            unusable_answer_keeps_its_usage(provider, streamed).await;
        }
    }
}

#[tokio::test]
async fn an_error_response_that_reports_usage_keeps_it() {
    let mut error = json!({"type": "error",
                           "error": {"type": "api_error", "message": "upstream failed"}});
    error["usage"] = json!({"input_tokens": 2095, "output_tokens": 503});
    let fake = FakeLlm::start(vec![
        Reply::json(500, error),
        Reply::json(200, whole_body(LlmProvider::Anthropic, ANSWER)),
    ])
    .await;
    let outcome = client(&fake, LlmProvider::Anthropic)
        .complete(&request())
        .await;
    assert_eq!(outcome.result.unwrap().text, ANSWER);
    assert_eq!(outcome.attempts[0].outcome, Outcome::ServerError);
    assert_eq!(outcome.attempts[0].usage, BILLED);
}
