//! The client against a fake Anthropic Messages API: request shape, retries, fallback, errors.

mod fake_llm;

use std::time::{Duration, Instant};

use botfleet_api::LlmProvider;
use botfleet_llm::{ChatMessage, CompletionRequest, LlmClient, LlmError, Outcome, Usage};
use fake_llm::{FakeLlm, Reply, anthropic_answer, anthropic_error, config};
use serde_json::json;

const KEY: &str = "sk-ant-api03-test-key-0123456789";

fn client(fake: &FakeLlm, fallback: Option<&str>) -> LlmClient {
    let config = config(
        LlmProvider::Anthropic,
        &fake.base_url,
        "claude-primary",
        fallback,
    );
    fast(LlmClient::new(&config, KEY.to_owned()).unwrap())
}

fn fast(client: LlmClient) -> LlmClient {
    client.with_backoff(Duration::from_millis(1), Duration::from_millis(10))
}

fn request() -> CompletionRequest {
    CompletionRequest {
        system: Some("You are the sales assistant of Acme.".to_owned()),
        context: Vec::new(),
        messages: vec![
            ChatMessage::user("Hi, what does Pro cost?"),
            ChatMessage::assistant("Hello! Pro is $49 a month."),
            ChatMessage::user("And do you ship to Germany?"),
        ],
        max_output_tokens: 700,
    }
}

#[tokio::test]
async fn success_returns_text_and_usage_and_sends_the_documented_request() {
    let fake = FakeLlm::start(vec![Reply::fixture("anthropic_cache_read.json")]).await;
    let outcome = client(&fake, Some("claude-fallback"))
        .complete(&request())
        .await;

    let completion = outcome.result.expect("completion");
    assert_eq!(
        completion.text,
        "Yes, we ship to Germany. Delivery takes 3-5 business days."
    );
    assert_eq!(completion.model, "claude-primary");
    assert!(!completion.used_fallback);
    let usage = Usage {
        input_tokens: 57,
        cache_read_tokens: 2188,
        cache_write_5m_tokens: 0,
        cache_write_1h_tokens: 0,
        output_tokens: 24,
    };
    assert_eq!(completion.usage, usage);
    assert_eq!(outcome.attempts.len(), 1);
    assert_eq!(outcome.attempts[0].outcome, Outcome::Ok);
    assert_eq!(outcome.attempts[0].status, Some(200));
    assert_eq!(outcome.attempts[0].usage, usage);
    assert_eq!(outcome.attempts[0].model, "claude-primary");

    let sent = fake.requests();
    assert_eq!(sent.len(), 1);
    let sent = &sent[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some(KEY));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(
        sent.body,
        json!({
            "model": "claude-primary",
            "max_tokens": 700,
            "system": [{"type": "text", "text": "You are the sales assistant of Acme.",
                        "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "Hi, what does Pro cost?"},
                {"role": "assistant", "content": [{"type": "text", "text": "Hello! Pro is $49 a month.",
                                                   "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": "And do you ship to Germany?"},
            ],
        })
    );
}

#[tokio::test]
async fn no_system_prompt_and_default_max_tokens() {
    let fake = FakeLlm::start(vec![anthropic_answer("ok")]).await;
    let mut config = config(
        LlmProvider::Anthropic,
        &fake.base_url,
        "claude-primary",
        None,
    );
    config.max_output_tokens = Some(333);
    let client = LlmClient::new(&config, KEY.to_owned()).unwrap();
    let request = CompletionRequest {
        system: None,
        context: Vec::new(),
        messages: vec![ChatMessage::user("hello")],
        max_output_tokens: 0,
    };
    assert_eq!(client.complete(&request).await.result.unwrap().text, "ok");
    let body = &fake.requests()[0].body;
    assert_eq!(body.get("system"), None);
    assert_eq!(body["max_tokens"], 333);
}

#[tokio::test]
async fn rate_limited_with_retry_after_waits_then_succeeds() {
    let fake = FakeLlm::start(vec![
        anthropic_error(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        )
        .header("retry-after", "1"),
        anthropic_answer("after the wait"),
    ])
    .await;
    let started = Instant::now();
    let outcome = client(&fake, None).complete(&request()).await;

    assert_eq!(outcome.result.unwrap().text, "after the wait");
    // The backoff is 1-10 ms, so only the server's retry-after explains a 1 s wait.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    let sent = fake.requests();
    assert!(sent[1].at - sent[0].at >= Duration::from_millis(950));
    let outcomes: Vec<_> = outcome
        .attempts
        .iter()
        .map(|a| (a.outcome, a.status))
        .collect();
    assert_eq!(
        outcomes,
        [(Outcome::RateLimited, Some(429)), (Outcome::Ok, Some(200))]
    );
    assert_eq!(outcome.attempts[0].usage, Usage::default());
}

#[tokio::test]
async fn retry_after_ms_is_honoured() {
    let fake = FakeLlm::start(vec![
        anthropic_error(429, "rate_limit_error", "slow down").header("retry-after-ms", "300"),
        anthropic_answer("ok"),
    ])
    .await;
    let outcome = client(&fake, None).complete(&request()).await;
    assert!(outcome.result.is_ok());
    let sent = fake.requests();
    assert!(sent[1].at - sent[0].at >= Duration::from_millis(280));
}

#[tokio::test]
async fn overloaded_529_is_retried() {
    let fake = FakeLlm::start(vec![
        anthropic_error(529, "overloaded_error", "Overloaded"),
        anthropic_answer("fine now"),
    ])
    .await;
    let outcome = client(&fake, Some("claude-fallback"))
        .complete(&request())
        .await;

    let completion = outcome.result.unwrap();
    assert_eq!(completion.text, "fine now");
    assert!(!completion.used_fallback);
    let outcomes: Vec<_> = outcome.attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, [Outcome::Overloaded, Outcome::Ok]);
    assert_eq!(fake.models(), ["claude-primary", "claude-primary"]);
}

#[tokio::test]
async fn primary_down_then_the_fallback_model_answers() {
    let down = || anthropic_error(500, "api_error", "Internal server error");
    let fake = FakeLlm::start(vec![
        down(),
        down(),
        down(),
        Reply::fixture("anthropic_cache_write_breakdown.json"),
    ])
    .await;
    let outcome = client(&fake, Some("claude-fallback"))
        .complete(&request())
        .await;

    let completion = outcome.result.unwrap();
    assert!(completion.used_fallback);
    assert_eq!(completion.model, "claude-fallback");
    assert_eq!(
        completion.text,
        "Our Pro plan costs $49 per month and includes priority support."
    );
    assert_eq!(completion.usage.cache_write_1h_tokens, 652);
    // maxRetries 2: three calls to the primary, then the fallback.
    assert_eq!(
        fake.models(),
        [
            "claude-primary",
            "claude-primary",
            "claude-primary",
            "claude-fallback"
        ]
    );
    let attempts: Vec<_> = outcome
        .attempts
        .iter()
        .map(|a| (a.model.as_str(), a.outcome))
        .collect();
    assert_eq!(
        attempts,
        [
            ("claude-primary", Outcome::ServerError),
            ("claude-primary", Outcome::ServerError),
            ("claude-primary", Outcome::ServerError),
            ("claude-fallback", Outcome::Ok),
        ]
    );
    // The fallback gets the same conversation.
    let sent = fake.requests();
    assert_eq!(sent[3].body["messages"], sent[0].body["messages"]);
}

#[tokio::test]
async fn unknown_primary_model_goes_straight_to_the_fallback() {
    let fake = FakeLlm::start(vec![
        anthropic_error(404, "not_found_error", "model: claude-primary"),
        anthropic_answer("from the fallback"),
    ])
    .await;
    let outcome = client(&fake, Some("claude-fallback"))
        .complete(&request())
        .await;
    assert_eq!(outcome.result.unwrap().text, "from the fallback");
    assert_eq!(fake.models(), ["claude-primary", "claude-fallback"]);
}

#[tokio::test]
async fn all_attempts_failing_is_an_error_listing_every_attempt() {
    let fake = FakeLlm::start(
        (0..6)
            .map(|_| anthropic_error(503, "api_error", "upstream unavailable"))
            .collect(),
    )
    .await;
    let outcome = client(&fake, Some("claude-fallback"))
        .complete(&request())
        .await;

    let error = outcome.result.unwrap_err();
    assert_eq!(error.outcome(), Outcome::ServerError);
    let message = error.to_string();
    assert!(message.contains("claude-fallback"), "{message}");
    assert!(message.contains("503"), "{message}");
    assert!(message.contains("upstream unavailable"), "{message}");
    assert_eq!(fake.requests().len(), 6);
    let attempts: Vec<_> = outcome
        .attempts
        .iter()
        .map(|a| (a.model.as_str(), a.outcome, a.status))
        .collect();
    let primary = ("claude-primary", Outcome::ServerError, Some(503));
    let fallback = ("claude-fallback", Outcome::ServerError, Some(503));
    assert_eq!(
        attempts,
        [primary, primary, primary, fallback, fallback, fallback]
    );
}

#[tokio::test]
async fn spend_limit_is_neither_retried_nor_sent_to_the_fallback() {
    let fake = FakeLlm::start(vec![anthropic_error(
        400,
        "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
    )])
    .await;
    let outcome = client(&fake, Some("claude-fallback"))
        .complete(&request())
        .await;

    assert_eq!(fake.requests().len(), 1);
    assert_eq!(outcome.attempts.len(), 1);
    assert_eq!(outcome.attempts[0].outcome, Outcome::SpendLimit);
    let error = outcome.result.unwrap_err();
    assert_eq!(error.outcome(), Outcome::SpendLimit);
    assert!(error.to_string().contains("credit balance"), "{error}");
}

#[tokio::test]
async fn spend_limit_429_is_not_retried() {
    let fake = FakeLlm::start(vec![
        anthropic_error(
            429,
            "rate_limit_error",
            "You have reached your specified workspace spend limit.",
        )
        .header("retry-after", "1"),
    ])
    .await;
    let outcome = client(&fake, Some("claude-fallback"))
        .complete(&request())
        .await;
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(outcome.result.unwrap_err().outcome(), Outcome::SpendLimit);
}

#[tokio::test]
async fn unauthorized_is_one_request_and_a_client_error() {
    let fake = FakeLlm::start(vec![anthropic_error(
        401,
        "authentication_error",
        "invalid x-api-key",
    )])
    .await;
    let outcome = client(&fake, Some("claude-fallback"))
        .complete(&request())
        .await;

    assert_eq!(fake.requests().len(), 1);
    assert_eq!(outcome.attempts.len(), 1);
    assert_eq!(outcome.attempts[0].outcome, Outcome::ClientError);
    assert_eq!(outcome.attempts[0].status, Some(401));
    match outcome.result.unwrap_err() {
        LlmError::Api {
            status, error_type, ..
        } => {
            assert_eq!(status, 401);
            assert_eq!(error_type.as_deref(), Some("authentication_error"));
        }
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_slow_api_times_out_and_is_retried() {
    let slow = || anthropic_answer("too late").delayed(Duration::from_secs(3));
    let fake = FakeLlm::start(vec![slow(), slow()]).await;
    let mut config = config(
        LlmProvider::Anthropic,
        &fake.base_url,
        "claude-primary",
        None,
    );
    config.timeout = Some("300ms".parse().unwrap());
    config.max_retries = Some(1);
    let client = fast(LlmClient::new(&config, KEY.to_owned()).unwrap());
    let outcome = client.complete(&request()).await;

    assert_eq!(fake.requests().len(), 2);
    let attempts: Vec<_> = outcome
        .attempts
        .iter()
        .map(|a| (a.outcome, a.status))
        .collect();
    assert_eq!(
        attempts,
        [(Outcome::Timeout, None), (Outcome::Timeout, None)]
    );
    assert!(
        outcome
            .attempts
            .iter()
            .all(|a| a.latency >= Duration::from_millis(290))
    );
    let error = outcome.result.unwrap_err();
    assert!(matches!(error, LlmError::Timeout { .. }), "{error:?}");
    assert!(error.to_string().contains("300ms"), "{error}");
}

#[tokio::test]
async fn an_unreachable_api_is_a_retried_server_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = config(
        LlmProvider::Anthropic,
        &format!("http://127.0.0.1:{port}"),
        "claude-primary",
        Some("claude-fallback"),
    );
    let client = fast(LlmClient::new(&config, KEY.to_owned()).unwrap());
    let outcome = client.complete(&request()).await;

    assert_eq!(outcome.attempts.len(), 6);
    assert!(
        outcome
            .attempts
            .iter()
            .all(|a| a.outcome == Outcome::ServerError && a.status.is_none())
    );
    let error = outcome.result.unwrap_err();
    assert!(matches!(error, LlmError::Connection { .. }), "{error:?}");
}

#[tokio::test]
async fn an_unreadable_success_body_is_retried() {
    let fake = FakeLlm::start(vec![
        Reply::raw(200, "<html>proxy error</html>"),
        anthropic_answer("real answer"),
    ])
    .await;
    let outcome = client(&fake, None).complete(&request()).await;
    assert_eq!(outcome.result.unwrap().text, "real answer");
    let outcomes: Vec<_> = outcome.attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, [Outcome::ServerError, Outcome::Ok]);
}

#[tokio::test]
async fn a_request_without_text_is_refused_without_a_call() {
    let fake = FakeLlm::start(vec![]).await;
    let request = CompletionRequest {
        system: Some("sys".into()),
        context: Vec::new(),
        messages: vec![ChatMessage::user("  ")],
        max_output_tokens: 10,
    };
    let outcome = client(&fake, None).complete(&request).await;
    assert!(matches!(outcome.result, Err(LlmError::InvalidRequest(_))));
    assert!(outcome.attempts.is_empty());
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_retry_after_of_minutes_gives_up_on_the_model_instead_of_waiting() {
    let fake = FakeLlm::start(vec![
        anthropic_error(429, "rate_limit_error", "rate limited").header("retry-after", "600"),
        anthropic_answer("fallback answered at once"),
    ])
    .await;
    let started = Instant::now();
    let outcome = client(&fake, Some("claude-fallback"))
        .complete(&request())
        .await;
    assert_eq!(outcome.result.unwrap().text, "fallback answered at once");
    assert_eq!(fake.models(), ["claude-primary", "claude-fallback"]);
    assert!(started.elapsed() < Duration::from_secs(60));
}
