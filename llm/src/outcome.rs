//! What a completion produced: the answer, and a record of every HTTP call it took.

use std::fmt;
use std::time::Duration;

use crate::error::LlmError;
use crate::usage::Usage;

/// How one HTTP call ended; the `outcome` label of `botfleet_llm_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// 2xx with a readable answer.
    Ok,
    /// 429 that is not about money: retried after `retry-after` or a backoff.
    RateLimited,
    /// 529 or an `overloaded_error`: retried.
    Overloaded,
    /// Other 5xx, an unreadable 2xx body, or the API unreachable (no status): retried.
    ServerError,
    /// No answer within `llm.timeout` (or 408): retried.
    Timeout,
    /// 400, 401, 403, 404 and other 4xx: the request itself is wrong, never retried.
    ClientError,
    /// Quota, credit balance or spend limit exhausted: never retried, no fallback.
    SpendLimit,
    /// A streamed answer broke off after some text (connection lost, timeout, an `error`
    /// event): retried from the start, or used as it is, as `llm.onStreamCut` says. Its
    /// usage is what the stream reported, with what it could not report estimated.
    StreamCut,
}

impl Outcome {
    /// All outcomes, e.g. to pre-register metric label values.
    pub const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::RateLimited,
        Outcome::Overloaded,
        Outcome::ServerError,
        Outcome::Timeout,
        Outcome::ClientError,
        Outcome::SpendLimit,
        Outcome::StreamCut,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::RateLimited => "rate_limited",
            Outcome::Overloaded => "overloaded",
            Outcome::ServerError => "server_error",
            Outcome::Timeout => "timeout",
            Outcome::ClientError => "client_error",
            Outcome::SpendLimit => "spend_limit",
            Outcome::StreamCut => "stream_cut",
        }
    }

    /// Whether the same request may succeed if sent again later.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Outcome::RateLimited
                | Outcome::Overloaded
                | Outcome::ServerError
                | Outcome::Timeout
                | Outcome::StreamCut
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One HTTP call to the API, successful or not. The bot writes one ledger row and one
/// `botfleet_llm_requests_total{outcome}` increment per attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The model asked for (the configured name, which the pricing list is keyed on).
    pub model: String,
    pub outcome: Outcome,
    /// Tokens the provider reported; zero when it reported none (errors).
    pub usage: Usage,
    /// From sending the request to having read the whole response (or giving up).
    pub latency: Duration,
    /// HTTP status, `None` when no response arrived (timeout, connection error).
    pub status: Option<u16>,
}

/// A successful completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The answer: the response's text blocks joined. May be empty if the model said nothing.
    pub text: String,
    /// The model that answered, as configured (primary or fallback).
    pub model: String,
    /// Usage of the successful call only; failed attempts are in `CompletionOutcome::attempts`.
    pub usage: Usage,
    /// True when the primary model failed and the fallback model answered.
    pub used_fallback: bool,
    /// True when a streamed answer broke off and `llm.onStreamCut: complete` made the text
    /// that arrived the answer.
    pub cut: bool,
    /// The tools the model called (only when the request offered tools), in order.
    pub tool_calls: Vec<crate::ToolCall>,
}

/// The result of `LlmClient::complete` together with every HTTP call made for it.
#[derive(Debug)]
pub struct CompletionOutcome {
    /// The answer, or the error of the last attempt.
    pub result: Result<Completion, LlmError>,
    /// Every HTTP call in order; empty only when the request was rejected before sending.
    pub attempts: Vec<Attempt>,
}
