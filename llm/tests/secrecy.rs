//! The API key never shows: not in `Debug` of the client, not in any error, even when the
//! API echoes it back.

mod fake_llm;

use std::time::Duration;

use botfleet_api::{LlmConfig, LlmProvider};
use botfleet_llm::{ChatMessage, CompletionRequest, LlmClient, LlmError};
use fake_llm::{FakeLlm, Reply, anthropic_error, config};
use serde_json::json;

const KEY: &str = "sk-ant-api03-SECRET-do-not-print-42";

fn request() -> CompletionRequest {
    CompletionRequest {
        system: None,
        context: Vec::new(),
        messages: vec![ChatMessage::user("hi")],
        max_output_tokens: 16,
    }
}

fn assert_no_key(text: &str) {
    assert!(!text.contains(KEY), "the API key leaked: {text}");
    assert!(
        !text.contains("SECRET-do-not-print"),
        "part of the API key leaked: {text}"
    );
}

#[tokio::test]
async fn debug_of_the_client_hides_the_key() {
    for provider in [LlmProvider::Anthropic, LlmProvider::Openai] {
        let client = LlmClient::new(
            &config(provider, "http://127.0.0.1:9", "m", Some("f")),
            KEY.to_owned(),
        )
        .unwrap();
        let debug = format!("{client:?} {:#?}", client.clone());
        assert_no_key(&debug);
        assert!(debug.contains("redacted"), "{debug}");
    }
}

#[tokio::test]
async fn errors_echoing_the_key_are_scrubbed() {
    let fake = FakeLlm::start(vec![
        anthropic_error(
            401,
            "authentication_error",
            &format!("invalid x-api-key: {KEY}"),
        ),
        Reply::json(
            403,
            json!({"error": {"message": format!("Incorrect API key provided: {KEY}."),
                             "type": "invalid_request_error", "code": KEY}}),
        ),
        Reply::raw(500, &format!("proxy saw key {KEY}")),
    ])
    .await;
    for provider in [
        LlmProvider::Anthropic,
        LlmProvider::Openai,
        LlmProvider::Anthropic,
    ] {
        let mut config = config(provider, &fake.base_url, "m", None);
        config.max_retries = Some(0);
        let client = LlmClient::new(&config, format!("  {KEY}\n")).unwrap();
        let outcome = client.complete(&request()).await;
        let error = outcome.result.as_ref().unwrap_err();
        assert_no_key(&error.to_string());
        assert_no_key(&format!("{error:?} {outcome:?}"));
    }
    // The key was sent (trimmed) all the same.
    let sent = fake.requests();
    assert_eq!(sent[0].header("x-api-key"), Some(KEY));
    assert_eq!(
        sent[1].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
}

#[tokio::test]
async fn connection_and_timeout_errors_do_not_carry_the_key() {
    let fake = FakeLlm::start(vec![Reply::raw(200, "{}").delayed(Duration::from_secs(2))]).await;
    let mut slow = config(LlmProvider::Openai, &fake.base_url, "m", None);
    slow.timeout = Some("100ms".parse().unwrap());
    slow.max_retries = Some(0);
    let outcome = LlmClient::new(&slow, KEY.to_owned())
        .unwrap()
        .complete(&request())
        .await;
    assert_no_key(&format!(
        "{} {outcome:?}",
        outcome.result.as_ref().unwrap_err()
    ));

    let mut unreachable = config(LlmProvider::Openai, "http://127.0.0.1:9", "m", None);
    unreachable.max_retries = Some(0);
    let outcome = LlmClient::new(&unreachable, KEY.to_owned())
        .unwrap()
        .complete(&request())
        .await;
    assert_no_key(&format!(
        "{} {outcome:?}",
        outcome.result.as_ref().unwrap_err()
    ));
}

#[test]
fn invalid_settings_name_their_field_and_not_the_key() {
    let valid = LlmConfig {
        model: "claude-sonnet-4-5".into(),
        ..LlmConfig::default()
    };
    let cases = [
        (
            "llm.model",
            LlmConfig {
                model: " ".into(),
                ..valid.clone()
            },
            KEY.to_owned(),
        ),
        (
            "llm.timeout",
            LlmConfig {
                timeout: Some("0s".parse().unwrap()),
                ..valid.clone()
            },
            KEY.to_owned(),
        ),
        (
            "llm.baseUrl",
            LlmConfig {
                base_url: Some("not a url".into()),
                ..valid.clone()
            },
            KEY.to_owned(),
        ),
        (
            "llm.baseUrl",
            LlmConfig {
                base_url: Some("ftp://example.com".into()),
                ..valid.clone()
            },
            KEY.to_owned(),
        ),
        ("LLM_API_KEY", valid.clone(), format!("{KEY}\u{7f}x")),
    ];
    for (field, config, key) in cases {
        match LlmClient::new(&config, key) {
            Err(error @ LlmError::Config { field: named, .. }) => {
                assert_eq!(named, field, "{error}");
                assert!(error.to_string().contains(field));
                assert_no_key(&format!("{error} {error:?}"));
            }
            other => panic!("{field}: expected a config error, got {other:?}"),
        }
    }
    let client = LlmClient::new(&valid, KEY.to_owned()).unwrap();
    assert_eq!(client.model(), "claude-sonnet-4-5");
    assert_eq!(client.fallback_model(), None);
}
