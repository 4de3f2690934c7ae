//! Streamed completions against a fake LLM that writes real-shaped server-sent events of both
//! providers at a fixed token rate: text as it arrives, usage equal to the plain call's,
//! broken streams retried or completed as configured, every attempt reported.

mod fake_llm;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use botfleet_api::{LlmProvider, MaxTokensField, StreamCutPolicy};
use botfleet_llm::{CompletionOutcome, LlmClient, Outcome, StreamEvent, Usage, estimate_tokens};
use fake_llm::{FakeLlm, Reply, config, fixture, pieces, request};
use serde_json::json;

const TOKEN_EVERY: Duration = Duration::from_millis(20);

fn client(fake: &FakeLlm, provider: LlmProvider, policy: Option<StreamCutPolicy>) -> LlmClient {
    let (model, fallback) = match provider {
        LlmProvider::Anthropic => ("claude-primary", "claude-fallback"),
        LlmProvider::Openai => ("gpt-primary", "gpt-fallback"),
    };
    let mut config = config(provider, &fake.base_url, model, Some(fallback));
    config.on_stream_cut = policy;
    LlmClient::new(&config, "sk-test-key".to_owned())
        .unwrap()
        .with_backoff(Duration::from_millis(1), Duration::from_millis(10))
}

/// What the caller saw: each event with the time it arrived.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    Text(String),
    Restart,
}

async fn stream(client: &LlmClient) -> (CompletionOutcome, Vec<(Seen, Instant)>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let outcome = client
        .stream(&request(), move |event| {
            let seen = match event {
                StreamEvent::Text(text) => Seen::Text(text.to_owned()),
                StreamEvent::Restart => Seen::Restart,
            };
            sink.lock().unwrap().push((seen, Instant::now()));
        })
        .await;
    let seen = seen.lock().unwrap().clone();
    (outcome, seen)
}

fn texts(seen: &[(Seen, Instant)]) -> Vec<Seen> {
    seen.iter().map(|(s, _)| s.clone()).collect()
}

fn as_text(pieces: &[String]) -> Vec<Seen> {
    pieces.iter().cloned().map(Seen::Text).collect()
}

/// The same answer plain and streamed: same text, same usage, every piece delivered as the
/// model wrote it.
async fn streamed_equals_plain(provider: LlmProvider, fixture_name: &str, text: &str) {
    let answer = fixture(fixture_name);
    let fake = FakeLlm::start(vec![
        Reply::json(200, answer.clone()),
        Reply::streamed(provider, &answer, TOKEN_EVERY),
    ])
    .await;
    let client = client(&fake, provider, None);
    let plain = client.complete(&request()).await;
    let (streamed, seen) = stream(&client).await;

    let plain = plain.result.unwrap();
    let completion = streamed.result.unwrap();
    assert_eq!(completion.text, text);
    assert_eq!(completion.text, plain.text);
    assert_eq!(completion.usage, plain.usage);
    assert!(!completion.cut);
    assert_eq!(streamed.attempts.len(), 1);
    assert_eq!(streamed.attempts[0].outcome, Outcome::Ok);
    assert_eq!(streamed.attempts[0].usage, plain.usage);

    let pieces = pieces(text);
    assert_eq!(texts(&seen), as_text(&pieces));
    // The pieces arrived as they were written, not at once at the end.
    let spread = seen.last().unwrap().1 - seen[0].1;
    let written = TOKEN_EVERY * (pieces.len() as u32 - 1);
    assert!(spread >= written * 3 / 4, "{spread:?} for {written:?}");

    let sent = fake.requests();
    assert_eq!(sent[0].body.get("stream"), None);
    assert_eq!(sent[1].body["stream"], true);
    assert_eq!(sent[1].body["messages"], sent[0].body["messages"]);
}

#[tokio::test]
async fn anthropic_stream_has_the_plain_calls_text_and_usage() {
    streamed_equals_plain(
        LlmProvider::Anthropic,
        "anthropic_cache_write_breakdown.json",
        "Our Pro plan costs $49 per month and includes priority support.",
    )
    .await;
}

#[tokio::test]
async fn anthropic_stream_with_cache_reads() {
    streamed_equals_plain(
        LlmProvider::Anthropic,
        "anthropic_cache_read.json",
        "Yes, we ship to Germany. Delivery takes 3-5 business days.",
    )
    .await;
}

#[tokio::test]
async fn openai_stream_has_the_plain_calls_text_and_usage_including_cached_tokens() {
    streamed_equals_plain(
        LlmProvider::Openai,
        "openai_cached_tokens.json",
        "Sure! Our store opens at 9am on weekdays.",
    )
    .await;
    let fake = FakeLlm::start(vec![Reply::streamed(
        LlmProvider::Openai,
        &fixture("openai_cached_tokens.json"),
        Duration::ZERO,
    )])
    .await;
    let (outcome, _) = stream(&client(&fake, LlmProvider::Openai, None)).await;
    assert_eq!(
        outcome.result.unwrap().usage,
        Usage {
            input_tokens: 93,
            cache_read_tokens: 1024,
            output_tokens: 46,
            ..Usage::default()
        }
    );
    let body = &fake.requests()[0].body;
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    // A server other than api.openai.com gets the classic field unless told otherwise.
    assert_eq!(body["max_tokens"], 300);
}

#[tokio::test]
async fn openai_max_completion_tokens_when_configured() {
    let fake = FakeLlm::start(vec![
        Reply::json(200, fixture("openai_no_details.json")),
        Reply::streamed(
            LlmProvider::Openai,
            &fixture("openai_no_details.json"),
            Duration::ZERO,
        ),
    ])
    .await;
    let mut config = config(LlmProvider::Openai, &fake.base_url, "gpt-5", None);
    config.max_tokens_field = Some(MaxTokensField::MaxCompletionTokens);
    let client = LlmClient::new(&config, String::new()).unwrap();
    client.complete(&request()).await.result.unwrap();
    client.stream(&request(), |_| {}).await.result.unwrap();
    for sent in fake.requests() {
        assert_eq!(sent.body["max_completion_tokens"], 300);
        assert_eq!(sent.body.get("max_tokens"), None);
    }
}

/// A stream broken off after three pieces, then (for `retry`) the whole stream.
async fn cut_stream(provider: LlmProvider, policy: StreamCutPolicy) {
    let (fixture_name, text) = match provider {
        LlmProvider::Anthropic => (
            "anthropic_cache_write_breakdown.json",
            "Our Pro plan costs $49 per month and includes priority support.",
        ),
        LlmProvider::Openai => (
            "openai_cached_tokens.json",
            "Sure! Our store opens at 9am on weekdays.",
        ),
    };
    let answer = fixture(fixture_name);
    let fake = FakeLlm::start(vec![
        Reply::streamed(provider, &answer, TOKEN_EVERY).cut_after_text(3),
        Reply::streamed(provider, &answer, TOKEN_EVERY),
    ])
    .await;
    let plain_usage = match provider {
        LlmProvider::Anthropic => Usage::from_anthropic(&answer),
        LlmProvider::Openai => Usage::from_openai(&answer),
    };
    let (outcome, seen) = stream(&client(&fake, provider, Some(policy))).await;
    let pieces = pieces(text);
    let partial: String = pieces[..3].concat();

    let cut = &outcome.attempts[0];
    assert_eq!(cut.outcome, Outcome::StreamCut);
    assert_eq!(cut.status, Some(200));
    // Never free: what the stream reported, the rest estimated on the high side.
    assert_eq!(
        cut.usage.output_tokens,
        u64::from(estimate_tokens(&partial)).max(match provider {
            LlmProvider::Anthropic => 1, // message_start's count
            LlmProvider::Openai => 0,
        })
    );
    match provider {
        // Anthropic reported the input at the start: kept as it is.
        LlmProvider::Anthropic => {
            assert_eq!(
                cut.usage.total_input_tokens(),
                plain_usage.total_input_tokens()
            );
            assert_eq!(
                cut.usage.cache_write_1h_tokens,
                plain_usage.cache_write_1h_tokens
            );
        }
        // OpenAI reports usage only at the end: the prompt is estimated.
        LlmProvider::Openai => assert!(cut.usage.input_tokens > 0),
    }

    let completion = outcome.result.as_ref().unwrap();
    match policy {
        StreamCutPolicy::Retry => {
            assert_eq!(completion.text, text);
            assert!(!completion.cut);
            assert_eq!(completion.usage, plain_usage);
            let outcomes: Vec<_> = outcome.attempts.iter().map(|a| a.outcome).collect();
            assert_eq!(outcomes, [Outcome::StreamCut, Outcome::Ok]);
            assert_eq!(outcome.attempts[1].usage, plain_usage);
            let mut expected = as_text(&pieces[..3]);
            expected.push(Seen::Restart);
            expected.extend(as_text(&pieces));
            assert_eq!(texts(&seen), expected);
            assert_eq!(fake.requests().len(), 2);
        }
        StreamCutPolicy::Complete => {
            assert_eq!(completion.text, partial);
            assert!(completion.cut);
            assert_eq!(completion.usage, cut.usage);
            assert_eq!(outcome.attempts.len(), 1);
            assert_eq!(texts(&seen), as_text(&pieces[..3]));
            assert_eq!(fake.requests().len(), 1);
        }
    }
}

#[tokio::test]
async fn anthropic_cut_stream_is_retried_from_the_start() {
    cut_stream(LlmProvider::Anthropic, StreamCutPolicy::Retry).await;
}

#[tokio::test]
async fn anthropic_cut_stream_completes_with_what_arrived() {
    cut_stream(LlmProvider::Anthropic, StreamCutPolicy::Complete).await;
}

#[tokio::test]
async fn openai_cut_stream_is_retried_from_the_start() {
    cut_stream(LlmProvider::Openai, StreamCutPolicy::Retry).await;
}

#[tokio::test]
async fn openai_cut_stream_completes_with_what_arrived() {
    cut_stream(LlmProvider::Openai, StreamCutPolicy::Complete).await;
}

#[tokio::test]
async fn an_error_event_before_any_text_is_retried_like_its_status() {
    let answer = fixture("anthropic_cache_read.json");
    let overloaded = json!({"type": "error",
                            "error": {"type": "overloaded_error", "message": "Overloaded"}});
    let fake = FakeLlm::start(vec![
        Reply::streamed(LlmProvider::Anthropic, &answer, Duration::ZERO)
            .error_event_after_text(0, overloaded),
        Reply::streamed(LlmProvider::Anthropic, &answer, Duration::ZERO),
    ])
    .await;
    let (outcome, seen) = stream(&client(&fake, LlmProvider::Anthropic, None)).await;
    let outcomes: Vec<_> = outcome.attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, [Outcome::Overloaded, Outcome::Ok]);
    // Nothing was shown before the error, so there is nothing to take back.
    assert!(!texts(&seen).contains(&Seen::Restart));
    assert_eq!(
        outcome.result.unwrap().text,
        "Yes, we ship to Germany. Delivery takes 3-5 business days."
    );
}

#[tokio::test]
async fn an_error_event_after_text_is_a_cut() {
    let answer = fixture("anthropic_cache_read.json");
    let api_error = json!({"type": "error",
                           "error": {"type": "api_error", "message": "Internal server error"}});
    let fake = FakeLlm::start(vec![
        Reply::streamed(LlmProvider::Anthropic, &answer, Duration::ZERO)
            .error_event_after_text(2, api_error),
    ])
    .await;
    let (outcome, _) = stream(&client(
        &fake,
        LlmProvider::Anthropic,
        Some(StreamCutPolicy::Complete),
    ))
    .await;
    assert_eq!(outcome.attempts[0].outcome, Outcome::StreamCut);
    let completion = outcome.result.unwrap();
    assert!(completion.cut);
    assert_eq!(completion.text, "Yes, we");
}

#[tokio::test]
async fn error_statuses_retries_and_the_fallback_work_as_for_a_plain_call() {
    let answer = fixture("anthropic_cache_read.json");
    let cut = || Reply::streamed(LlmProvider::Anthropic, &answer, Duration::ZERO).cut_after_text(1);
    let fake = FakeLlm::start(vec![
        fake_llm::anthropic_error(429, "rate_limit_error", "slow down"),
        cut(),
        cut(),
        Reply::streamed(LlmProvider::Anthropic, &answer, Duration::ZERO),
    ])
    .await;
    let (outcome, seen) = stream(&client(&fake, LlmProvider::Anthropic, None)).await;
    // maxRetries 2: three tries of the primary, then the fallback.
    assert_eq!(
        fake.models(),
        [
            "claude-primary",
            "claude-primary",
            "claude-primary",
            "claude-fallback"
        ]
    );
    let outcomes: Vec<_> = outcome
        .attempts
        .iter()
        .map(|a| (a.model.as_str(), a.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("claude-primary", Outcome::RateLimited),
            ("claude-primary", Outcome::StreamCut),
            ("claude-primary", Outcome::StreamCut),
            ("claude-fallback", Outcome::Ok),
        ]
    );
    let completion = outcome.result.unwrap();
    assert!(completion.used_fallback);
    // Each cut's text was taken back before the next attempt wrote again.
    let restarts = texts(&seen).iter().filter(|s| **s == Seen::Restart).count();
    assert_eq!(restarts, 2);
    let after_last_restart: String = texts(&seen)
        .into_iter()
        .rev()
        .take_while(|s| *s != Seen::Restart)
        .filter_map(|s| match s {
            Seen::Text(t) => Some(t),
            Seen::Restart => None,
        })
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert_eq!(after_last_restart, completion.text);
}

#[tokio::test]
async fn a_stream_that_outlives_the_timeout_is_a_timeout() {
    let answer = fixture("anthropic_cache_read.json");
    let fake = FakeLlm::start(vec![Reply::streamed(
        LlmProvider::Anthropic,
        &answer,
        Duration::from_millis(400),
    )])
    .await;
    let mut config = config(
        LlmProvider::Anthropic,
        &fake.base_url,
        "claude-primary",
        None,
    );
    config.timeout = Some("1s".parse().unwrap());
    config.max_retries = Some(0);
    config.on_stream_cut = Some(StreamCutPolicy::Retry);
    let client = LlmClient::new(&config, String::new()).unwrap();
    let (outcome, seen) = stream(&client).await;
    // Two pieces arrived within the second, then the client gave up on the whole call.
    assert!(!seen.is_empty());
    assert_eq!(outcome.attempts.len(), 1);
    assert_eq!(outcome.attempts[0].outcome, Outcome::StreamCut);
    let error = outcome.result.unwrap_err();
    assert_eq!(error.outcome(), Outcome::StreamCut);
    assert!(error.to_string().contains("no answer within"), "{error}");
}
