//! The client: one completion = the primary model with retries, then the fallback model.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use botfleet_api::{LlmConfig, PromptCacheTtl, StreamCutPolicy};
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::bounds::{CallBounds, RetryGate};
use crate::classify::classify;
use crate::completion::{Attempt, Completion, CompletionOutcome};
use crate::error::LlmError;
use crate::outcome::Outcome;
use crate::provider::{Answer, OutputLimit, Provider};
use crate::request::{CompletionRequest, Tool};
use crate::retry::{Backoff, retry_after};
use crate::stream::{SseDecoder, Step, StreamEvent, StreamReader};
use crate::usage::Usage;

/// Provider messages are cut to this many characters in errors.
const MAX_MESSAGE_CHARS: usize = 300;
/// A `retry-after` longer than this is not waited for: the model is given up (the fallback is
/// tried), since a chat user will not wait minutes for an answer.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Client of an Anthropic Messages or OpenAI-compatible chat completions API.
/// Cheap to clone; the API key never appears in its `Debug` output or in its errors.
#[derive(Clone)]
pub struct LlmClient {
    inner: Arc<Inner>,
    backoff: Backoff,
}

struct Inner {
    provider: Provider,
    http: reqwest::Client,
    endpoint: String,
    /// Authentication (sensitive) and version headers.
    headers: HeaderMap,
    /// Kept only to scrub it from error messages that might echo it.
    api_key: String,
    model: String,
    fallback_model: Option<String>,
    default_max_output_tokens: u32,
    max_tokens_field: botfleet_api::MaxTokensField,
    timeout: Duration,
    max_retries: u32,
    on_stream_cut: StreamCutPolicy,
    prompt_cache_ttl: PromptCacheTtl,
}

/// Why one HTTP call failed, and how long the server asked us to wait.
struct Failure {
    error: LlmError,
    retry_after: Option<Duration>,
    /// The text a stream delivered before it broke off.
    partial: Option<String>,
}

impl Failure {
    fn new(error: LlmError, retry_after: Option<Duration>) -> Self {
        Failure {
            error,
            retry_after,
            partial: None,
        }
    }
}

/// The receiver of a streamed call's events; tracks whether it holds text that a restart
/// must void.
struct Sink<'a> {
    on_event: &'a mut (dyn for<'e> FnMut(StreamEvent<'e>) + Send),
    holds_text: bool,
}

impl Sink<'_> {
    fn text(&mut self, text: &str) {
        (self.on_event)(StreamEvent::Text(text));
        self.holds_text = true;
    }

    /// Before an attempt: text of an earlier attempt is void.
    fn restart(&mut self) {
        if self.holds_text {
            (self.on_event)(StreamEvent::Restart);
            self.holds_text = false;
        }
    }
}

impl LlmClient {
    /// A client for the `llm` config section with the API key (`LLM_API_KEY`). Surrounding
    /// whitespace of the key (a trailing newline in a Secret) is ignored.
    pub fn new(config: &LlmConfig, api_key: String) -> Result<Self, LlmError> {
        let provider = Provider::from(config.provider);
        let invalid = |field: &'static str, reason: String| LlmError::Config { field, reason };

        let model = config.model.trim().to_owned();
        if model.is_empty() {
            return Err(invalid("llm.model", "must not be empty".into()));
        }
        let fallback_model = config
            .fallback_model
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty() && *f != model)
            .map(str::to_owned);

        let base = config
            .base_url
            .as_deref()
            .unwrap_or(config.default_base_url())
            .trim()
            .trim_end_matches('/');
        let url = reqwest::Url::parse(base)
            .map_err(|e| invalid("llm.baseUrl", format!("{base:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(
                "llm.baseUrl",
                format!("{base:?}: scheme must be http or https"),
            ));
        }

        let timeout = config.timeout();
        if timeout.is_zero() {
            return Err(invalid("llm.timeout", "must be more than zero".into()));
        }

        let api_key = api_key.trim().to_owned();
        let headers = provider
            .headers(&api_key)
            .map_err(|reason| invalid("LLM_API_KEY", reason.into()))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("botfleet/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid("llm", format!("cannot build the HTTP client: {e}")))?;

        let max_tokens_field = provider.max_tokens_field(config.max_tokens_field, &url);
        Ok(LlmClient {
            inner: Arc::new(Inner {
                provider,
                max_tokens_field,
                on_stream_cut: config.on_stream_cut.unwrap_or_default(),
                prompt_cache_ttl: config.prompt_cache_ttl.unwrap_or_default(),
                http,
                endpoint: provider.endpoint(base),
                headers,
                api_key,
                model,
                fallback_model,
                default_max_output_tokens: config
                    .max_output_tokens
                    .filter(|n| *n > 0)
                    .unwrap_or(LlmConfig::DEFAULT_MAX_OUTPUT_TOKENS),
                timeout,
                max_retries: config.max_retries.unwrap_or(LlmConfig::DEFAULT_MAX_RETRIES),
            }),
            backoff: Backoff::default(),
        })
    }

    /// Base and cap of the exponential backoff between retries (default 500 ms, 20 s).
    /// A `retry-after` from the server is honoured regardless.
    pub fn with_backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.backoff = Backoff {
            base,
            cap: cap.max(base),
        };
        self
    }

    /// The primary model's configured name.
    pub fn model(&self) -> &str {
        &self.inner.model
    }

    /// The fallback model's configured name, if one is set (and differs from the primary).
    pub fn fallback_model(&self) -> Option<&str> {
        self.inner.fallback_model.as_deref()
    }

    /// One completion: the primary model with retries, then the fallback model (same policy)
    /// when the primary kept failing in a way another model might not (429, 529, 5xx,
    /// timeouts, unreachable, 404). Never panics; every HTTP call is in `attempts`.
    pub async fn complete(&self, request: &CompletionRequest) -> CompletionOutcome {
        self.run(request, &[], None, None).await
    }

    /// [`LlmClient::complete`] offering `tools`: the calls the model makes are in
    /// `Completion::tool_calls`.
    pub async fn complete_with_tools(
        &self,
        request: &CompletionRequest,
        tools: &[Tool],
    ) -> CompletionOutcome {
        self.run(request, tools, None, None).await
    }

    /// [`LlmClient::complete_with_tools`] asking `gate` before each retry and the fallback.
    pub async fn complete_gated(
        &self,
        request: &CompletionRequest,
        tools: &[Tool],
        gate: &dyn RetryGate,
    ) -> CompletionOutcome {
        self.run(request, tools, None, Some(gate)).await
    }

    /// The limits of `request` with `tools` as this client would send it: what a caller needs
    /// to bound its cost before it is made.
    pub fn bounds(&self, request: &CompletionRequest, tools: &[Tool]) -> CallBounds {
        let inner = &self.inner;
        let limit = self.output_limit(request);
        let body_bytes = std::iter::once(inner.model.as_str())
            .chain(inner.fallback_model.as_deref())
            .map(|model| {
                let body =
                    inner
                        .provider
                        .body(model, request, tools, limit, true, inner.prompt_cache_ttl);
                serde_json::to_vec(&body).map_or(0, |bytes| bytes.len())
            })
            .max()
            .unwrap_or(0);
        CallBounds {
            body_bytes,
            has_tools: !tools.is_empty(),
            max_output_tokens: limit.tokens,
            cache_ttl: (inner.provider == Provider::Anthropic).then_some(inner.prompt_cache_ttl),
            attempt_timeout: inner.timeout,
        }
    }

    fn output_limit(&self, request: &CompletionRequest) -> OutputLimit {
        OutputLimit {
            tokens: match request.max_output_tokens {
                0 => self.inner.default_max_output_tokens,
                n => n,
            },
            field: self.inner.max_tokens_field,
        }
    }

    /// One completion streamed: like [`LlmClient::complete`] (same retries, fallback, timeout
    /// and attempts), but each attempt asks for server-sent events and `on_event` receives
    /// the text as it arrives. When an attempt starts over after text was delivered,
    /// `on_event` first receives [`StreamEvent::Restart`]. A stream that breaks off after
    /// some text is retried from the start or, with `llm.onStreamCut: complete`, becomes
    /// the answer (`Completion::cut`); either way that attempt's outcome is `stream_cut`.
    /// Usage comes from the stream's own usage events, so it equals the plain call's.
    pub async fn stream<F>(&self, request: &CompletionRequest, on_event: F) -> CompletionOutcome
    where
        F: for<'e> FnMut(StreamEvent<'e>) + Send,
    {
        self.stream_with_tools(request, &[], on_event).await
    }

    /// [`LlmClient::stream`] offering `tools`; only text reaches `on_event`, the calls the
    /// model makes are in `Completion::tool_calls`.
    pub async fn stream_with_tools<F>(
        &self,
        request: &CompletionRequest,
        tools: &[Tool],
        on_event: F,
    ) -> CompletionOutcome
    where
        F: for<'e> FnMut(StreamEvent<'e>) + Send,
    {
        self.streamed(request, tools, None, on_event).await
    }

    /// [`LlmClient::stream_with_tools`] asking `gate` before each retry and the fallback.
    pub async fn stream_gated<F>(
        &self,
        request: &CompletionRequest,
        tools: &[Tool],
        gate: &dyn RetryGate,
        on_event: F,
    ) -> CompletionOutcome
    where
        F: for<'e> FnMut(StreamEvent<'e>) + Send,
    {
        self.streamed(request, tools, Some(gate), on_event).await
    }

    async fn streamed<F>(
        &self,
        request: &CompletionRequest,
        tools: &[Tool],
        gate: Option<&dyn RetryGate>,
        mut on_event: F,
    ) -> CompletionOutcome
    where
        F: for<'e> FnMut(StreamEvent<'e>) + Send,
    {
        let mut sink = Sink {
            on_event: &mut on_event,
            holds_text: false,
        };
        self.run(request, tools, Some(&mut sink), gate).await
    }

    async fn run(
        &self,
        request: &CompletionRequest,
        tools: &[Tool],
        mut sink: Option<&mut Sink<'_>>,
        gate: Option<&dyn RetryGate>,
    ) -> CompletionOutcome {
        let mut attempts = Vec::new();
        if request.messages.iter().all(|m| m.text.trim().is_empty()) {
            return CompletionOutcome {
                result: Err(LlmError::InvalidRequest("no message with text to answer")),
                attempts,
            };
        }
        let inner = &self.inner;
        let primary = self
            .complete_with(
                &inner.model,
                request,
                tools,
                &mut attempts,
                sink.as_deref_mut(),
                gate,
            )
            .await;
        let result = match (primary, &inner.fallback_model) {
            (Err(error), Some(fallback))
                if worth_a_fallback(&error) && allowed(gate, fallback).await =>
            {
                tracing::warn!(
                    model = %inner.model,
                    fallback = %fallback,
                    outcome = %error.outcome(),
                    "primary model failed, trying the fallback model"
                );
                self.complete_with(fallback, request, tools, &mut attempts, sink, gate)
                    .await
                    .map(|completion| Completion {
                        used_fallback: true,
                        ..completion
                    })
            }
            (result, _) => result,
        };
        if let Err(error) = &result {
            tracing::warn!(attempts = attempts.len(), error = %error, "LLM completion failed");
        }
        CompletionOutcome { result, attempts }
    }

    /// One model: the first try and up to `max_retries` retries.
    async fn complete_with(
        &self,
        model: &str,
        request: &CompletionRequest,
        tools: &[Tool],
        attempts: &mut Vec<Attempt>,
        mut sink: Option<&mut Sink<'_>>,
        gate: Option<&dyn RetryGate>,
    ) -> Result<Completion, LlmError> {
        let inner = &self.inner;
        let limit = self.output_limit(request);
        let body = inner.provider.body(
            model,
            request,
            tools,
            limit,
            sink.is_some(),
            inner.prompt_cache_ttl,
        );
        let mut retry = 0;
        loop {
            let (attempt, result) = match sink.as_deref_mut() {
                None => self.send(model, &body).await,
                Some(sink) => {
                    sink.restart();
                    self.send_streamed(model, &body, request, sink).await
                }
            };
            let usage = attempt.usage;
            attempts.push(attempt);
            let answer = |answer: Answer, cut| Completion {
                text: answer.text,
                model: model.to_owned(),
                usage,
                used_fallback: false,
                cut,
                tool_calls: answer.tool_calls,
            };
            let failure = match result {
                Ok((text, _)) => return Ok(answer(text, false)),
                Err(Failure {
                    partial: Some(text),
                    error,
                    ..
                }) if inner.on_stream_cut == StreamCutPolicy::Complete => {
                    tracing::warn!(%model, error = %error, "stream broke off; answering with the text that arrived (llm.onStreamCut: complete)");
                    let partial = Answer {
                        text,
                        tool_calls: vec![],
                    };
                    return Ok(answer(partial, true));
                }
                Err(failure) => failure,
            };
            let outcome = failure.error.outcome();
            if !outcome.is_retryable() || retry >= inner.max_retries {
                return Err(failure.error);
            }
            let delay = match failure.retry_after {
                Some(wait) if wait > MAX_RETRY_AFTER => {
                    tracing::warn!(%model, %outcome, retry_after_s = wait.as_secs(), "retry-after too long, giving up on this model");
                    return Err(failure.error);
                }
                Some(wait) => wait,
                None => self.backoff.delay(retry),
            };
            tracing::info!(%model, %outcome, retry = retry + 1, delay_ms = delay.as_millis() as u64, "retrying LLM request");
            tokio::time::sleep(delay).await;
            if !allowed(gate, model).await {
                tracing::info!(%model, %outcome, "retry not allowed by the caller (budget); giving up");
                return Err(failure.error);
            }
            retry += 1;
        }
    }

    /// The provider's endpoint with this client's headers and `body`: plain and streamed
    /// calls differ only in how they read the answer.
    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        let inner = &self.inner;
        inner
            .http
            .post(&inner.endpoint)
            .headers(inner.headers.clone())
            .json(body)
    }

    /// One HTTP call.
    async fn send(&self, model: &str, body: &Value) -> (Attempt, Result<(Answer, Usage), Failure>) {
        let started = Instant::now();
        let sent = self.post(body).send().await;
        let (status, headers, bytes) = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                match response.bytes().await {
                    Ok(bytes) => (status, headers, bytes),
                    Err(e) => return self.transport_failure(model, started, Some(status), &e),
                }
            }
            Err(e) => return self.transport_failure(model, started, None, &e),
        };
        if !(200..300).contains(&status) {
            return self.error_response(model, started, status, &headers, &bytes);
        }
        self.whole_answer(model, started, status, &bytes)
    }

    /// A 2xx body holding the whole answer (a plain call's, or a streamed call's that the
    /// server answered with plain JSON). Its usage is kept even when its content is
    /// unusable: the provider billed it.
    fn whole_answer(
        &self,
        model: &str,
        started: Instant,
        status: u16,
        bytes: &[u8],
    ) -> (Attempt, Result<(Answer, Usage), Failure>) {
        let inner = &self.inner;
        let latency = started.elapsed();
        let attempt = |outcome, usage| attempt_record(model, latency, Some(status), outcome, usage);
        let parsed = serde_json::from_slice::<Value>(bytes)
            .map_err(|_| ("body is not JSON", Usage::default()))
            .and_then(|json| {
                let usage = inner.provider.usage(&json);
                inner
                    .provider
                    .parse_answer(&json)
                    .map_err(|reason| (reason, usage))
            });
        match parsed {
            Ok((text, usage)) => {
                tracing::debug!(%model, status, latency_ms = latency.as_millis() as u64, "LLM request ok");
                (attempt(Outcome::Ok, usage), Ok((text, usage)))
            }
            Err((reason, usage)) => {
                let error = LlmError::InvalidResponse {
                    provider: inner.provider.name(),
                    model: model.to_owned(),
                    status,
                    reason: reason.to_owned(),
                };
                (
                    attempt(Outcome::ServerError, usage),
                    Err(Failure::new(error, None)),
                )
            }
        }
    }

    /// One streamed HTTP call: text goes to `sink` as it arrives. An error status is read
    /// as in [`Self::send`]; a stream that breaks off is a failure whose `partial` holds the
    /// text that arrived (outcome `stream_cut`), or, before any text, an ordinary failure.
    async fn send_streamed(
        &self,
        model: &str,
        body: &Value,
        request: &CompletionRequest,
        sink: &mut Sink<'_>,
    ) -> (Attempt, Result<(Answer, Usage), Failure>) {
        let inner = &self.inner;
        let started = Instant::now();
        let sent = self.post(body).send().await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => return self.transport_failure(model, started, None, &e),
        };
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let headers = response.headers().clone();
            return match response.bytes().await {
                Ok(bytes) => self.error_response(model, started, status, &headers, &bytes),
                Err(e) => self.transport_failure(model, started, Some(status), &e),
            };
        }
        if is_json(response.headers()) {
            // Some servers (LiteLLM's mocks, some OpenAI-compatible ones) ignore `stream`.
            tracing::debug!(%model, status, "streamed request answered with a whole JSON body");
            return match response.bytes().await {
                Ok(bytes) => {
                    let (attempt, result) = self.whole_answer(model, started, status, &bytes);
                    if let Ok((answer, _)) = &result
                        && !answer.text.is_empty()
                    {
                        sink.text(&answer.text);
                    }
                    (attempt, result)
                }
                Err(e) => self.transport_failure(model, started, Some(status), &e),
            };
        }

        let mut decoder = SseDecoder::default();
        let mut reader = StreamReader::new(inner.provider);
        let mut events = Vec::new();
        let broke: Option<LlmError> = 'read: loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break None,
                Err(e) => break Some(self.transport_error(model, &e).1),
            };
            decoder.push(&chunk, &mut events);
            for event in events.drain(..) {
                match reader.read(&event) {
                    Step::Text(text) => sink.text(&text),
                    Step::Nothing => {}
                    Step::Error(read) => {
                        break 'read Some(LlmError::Api {
                            provider: inner.provider.name(),
                            model: model.to_owned(),
                            status,
                            outcome: read.outcome,
                            error_type: read.error_type.map(|t| self.scrub(&t)),
                            message: self.scrub(&format!("in the stream: {}", read.message)),
                        });
                    }
                }
            }
            if reader.ended() {
                break None;
            }
        };
        let latency = started.elapsed();
        let attempt = |outcome, usage| attempt_record(model, latency, Some(status), outcome, usage);

        if broke.is_none() && reader.is_complete() {
            let usage = reader.usage();
            tracing::debug!(%model, status, latency_ms = latency.as_millis() as u64, "LLM stream ok");
            return (
                attempt(Outcome::Ok, usage),
                Ok((reader.into_answer(), usage)),
            );
        }
        let error = broke.unwrap_or_else(|| LlmError::InvalidResponse {
            provider: inner.provider.name(),
            model: model.to_owned(),
            status,
            reason: "the stream ended before the answer did".to_owned(),
        });
        if reader.text().is_empty() {
            tracing::debug!(%model, status, outcome = %error.outcome(), "LLM stream failed before any text");
            return (
                attempt(error.outcome(), reader.usage()),
                Err(Failure::new(error, None)),
            );
        }
        let usage = reader.usage_of_cut(request);
        let cut = LlmError::StreamCut {
            provider: inner.provider.name(),
            model: model.to_owned(),
            chars: reader.text().chars().count(),
            reason: error.to_string(),
        };
        tracing::debug!(%model, status, error = %cut, "LLM stream broke off");
        let failure = Failure {
            error: cut,
            retry_after: None,
            partial: Some(reader.into_text()),
        };
        (attempt(Outcome::StreamCut, usage), Err(failure))
    }

    /// An error status: read the provider's error body.
    fn error_response(
        &self,
        model: &str,
        started: Instant,
        status: u16,
        headers: &HeaderMap,
        bytes: &[u8],
    ) -> (Attempt, Result<(Answer, Usage), Failure>) {
        let inner = &self.inner;
        let latency = started.elapsed();
        let read = classify(status, bytes);
        tracing::debug!(%model, status, outcome = %read.outcome, latency_ms = latency.as_millis() as u64, "LLM request failed");
        let error = LlmError::Api {
            provider: inner.provider.name(),
            model: model.to_owned(),
            status,
            outcome: read.outcome,
            error_type: read.error_type.map(|t| self.scrub(&t)),
            message: self.scrub(&read.message),
        };
        let usage = reported_usage(inner.provider, bytes);
        let attempt = attempt_record(model, latency, Some(status), read.outcome, usage);
        let failure = Failure::new(error, retry_after(headers, SystemTime::now()));
        (attempt, Err(failure))
    }

    /// A timeout or a connection/body error, as an outcome and an error.
    fn transport_error(&self, model: &str, error: &reqwest::Error) -> (Outcome, LlmError) {
        let inner = &self.inner;
        if error.is_timeout() {
            let error = LlmError::Timeout {
                provider: inner.provider.name(),
                model: model.to_owned(),
                timeout: inner.timeout,
            };
            (Outcome::Timeout, error)
        } else {
            let error = LlmError::Connection {
                provider: inner.provider.name(),
                model: model.to_owned(),
                reason: self.scrub(&error_chain(error)),
            };
            (Outcome::ServerError, error)
        }
    }

    /// No (complete) response: a timeout or a connection/body error.
    fn transport_failure(
        &self,
        model: &str,
        started: Instant,
        status: Option<u16>,
        error: &reqwest::Error,
    ) -> (Attempt, Result<(Answer, Usage), Failure>) {
        let (outcome, error) = self.transport_error(model, error);
        tracing::debug!(%model, %outcome, "LLM request got no response");
        let attempt = attempt_record(model, started.elapsed(), status, outcome, Usage::default());
        (attempt, Err(Failure::new(error, None)))
    }

    /// A provider text made safe for an error message: truncated, without the API key.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        if !self.inner.api_key.is_empty() {
            text = text.replace(&self.inner.api_key, "[redacted]");
        }
        match text.char_indices().nth(MAX_MESSAGE_CHARS) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text,
        }
    }
}

/// Whether another model might succeed where this one failed: transient failures and an
/// unknown model; not a bad request, bad credentials or an exhausted account.
fn worth_a_fallback(error: &LlmError) -> bool {
    error.outcome().is_retryable() || error.status() == Some(404)
}

/// Whether a response's `Content-Type` is JSON (`application/json`, `…+json`, any parameters).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(reqwest::header::CONTENT_TYPE) else {
        return false;
    };
    let essence = value.to_str().unwrap_or_default();
    let essence = essence.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json")
}

/// The usage an error body reports, if it has a `usage` object (some proxies bill a request
/// they then fail); zero otherwise.
fn reported_usage(provider: Provider, body: &[u8]) -> Usage {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|json| json.get("usage").filter(|u| u.is_object()).cloned())
        .map(|usage| provider.usage(&usage))
        .unwrap_or_default()
}

/// The record of one HTTP call once its outcome is known: what the ledger and the metrics
/// count.
fn attempt_record(
    model: &str,
    latency: Duration,
    status: Option<u16>,
    outcome: Outcome,
    usage: Usage,
) -> Attempt {
    Attempt {
        model: model.to_owned(),
        outcome,
        usage,
        latency,
        status,
    }
}

/// The error and its causes on one line (reqwest's own message hides the cause).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("LlmClient")
            .field("provider", &inner.provider.name())
            .field("endpoint", &inner.endpoint)
            .field("model", &inner.model)
            .field("fallback_model", &inner.fallback_model)
            .field("timeout", &inner.timeout)
            .field("max_retries", &inner.max_retries)
            .field("backoff", &self.backoff)
            .field("api_key", &"[redacted]")
            .finish()
    }
}

/// Whether `gate` (if any) lets the next attempt on `model` be made.
async fn allowed(gate: Option<&dyn RetryGate>, model: &str) -> bool {
    match gate {
        None => true,
        Some(gate) => gate.allow(model).await,
    }
}
