//! The client against a fake OpenAI-compatible chat completions API.

mod fake_llm;

use std::time::Duration;

use botfleet_api::LlmProvider;
use botfleet_llm::{ChatMessage, CompletionRequest, LlmClient, Outcome, Usage};
use fake_llm::{FakeLlm, Reply, config};
use serde_json::json;

const KEY: &str = "sk-proj-test-key-abcdefghijklmnop";

fn client(fake: &FakeLlm, fallback: Option<&str>) -> LlmClient {
    // Base URLs are taken with or without a trailing slash.
    let base = format!("{}/v1/", fake.base_url);
    LlmClient::new(
        &config(LlmProvider::Openai, &base, "gpt-primary", fallback),
        KEY.to_owned(),
    )
    .unwrap()
    .with_backoff(Duration::from_millis(1), Duration::from_millis(10))
}

fn request() -> CompletionRequest {
    CompletionRequest {
        system: Some("You are the store's assistant.".to_owned()),
        context: Vec::new(),
        messages: vec![ChatMessage::user("When do you open?")],
        max_output_tokens: 256,
    }
}

#[tokio::test]
async fn success_with_cached_tokens() {
    let fake = FakeLlm::start(vec![Reply::fixture("openai_cached_tokens.json")]).await;
    let outcome = client(&fake, None).complete(&request()).await;

    let completion = outcome.result.expect("completion");
    assert_eq!(completion.text, "Sure! Our store opens at 9am on weekdays.");
    assert_eq!(completion.model, "gpt-primary");
    let usage = Usage {
        input_tokens: 93,
        cache_read_tokens: 1024,
        cache_write_5m_tokens: 0,
        cache_write_1h_tokens: 0,
        output_tokens: 46,
    };
    assert_eq!(completion.usage, usage);
    assert_eq!(outcome.attempts.len(), 1);
    assert_eq!(outcome.attempts[0].usage, usage);

    let sent = &fake.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(sent.header("x-api-key"), None);
    assert_eq!(
        sent.body,
        json!({
            "model": "gpt-primary",
            "max_tokens": 256,
            "messages": [
                {"role": "system", "content": "You are the store's assistant."},
                {"role": "user", "content": "When do you open?"},
            ],
        })
    );
}

#[tokio::test]
async fn a_null_content_is_an_empty_answer_with_its_usage() {
    let fake = FakeLlm::start(vec![Reply::json(
        200,
        json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-primary",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                            "refusal": "I can't help with that."}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28}}),
    )])
    .await;
    let completion = client(&fake, None)
        .complete(&request())
        .await
        .result
        .unwrap();
    assert_eq!(completion.text, "");
    assert_eq!(completion.usage.output_tokens, 8);
}

#[tokio::test]
async fn insufficient_quota_is_one_request_and_a_spend_limit() {
    let fake = FakeLlm::start(vec![Reply::json(
        429,
        json!({"error": {
            "message": "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
            "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
    )])
    .await;
    let outcome = client(&fake, Some("gpt-fallback"))
        .complete(&request())
        .await;

    assert_eq!(fake.requests().len(), 1);
    assert_eq!(outcome.attempts.len(), 1);
    assert_eq!(outcome.attempts[0].outcome, Outcome::SpendLimit);
    assert_eq!(outcome.attempts[0].status, Some(429));
    assert_eq!(outcome.result.unwrap_err().outcome(), Outcome::SpendLimit);
}

#[tokio::test]
async fn rate_limit_then_fallback() {
    let limited = || {
        Reply::json(
            429,
            json!({"error": {"message": "Rate limit reached for gpt-primary on requests per min (RPM): Limit 3, Used 3, Requested 1.",
                             "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
        )
        .header("retry-after-ms", "20")
    };
    let fake = FakeLlm::start(vec![
        limited(),
        limited(),
        limited(),
        Reply::fixture("openai_no_details.json"),
    ])
    .await;
    let outcome = client(&fake, Some("gpt-fallback"))
        .complete(&request())
        .await;

    let completion = outcome.result.unwrap();
    assert!(completion.used_fallback);
    assert_eq!(completion.text, "Hi there! What can I do for you?");
    assert_eq!(completion.usage.input_tokens, 42);
    assert_eq!(
        fake.models(),
        ["gpt-primary", "gpt-primary", "gpt-primary", "gpt-fallback"]
    );
    let outcomes: Vec<_> = outcome.attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::RateLimited,
            Outcome::RateLimited,
            Outcome::RateLimited,
            Outcome::Ok
        ]
    );
}
