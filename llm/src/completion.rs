//! What a completion produced: the answer, and a record of every HTTP call it took.

use std::time::Duration;

use crate::error::LlmError;
use crate::outcome::Outcome;
use crate::request::ToolCall;
use crate::usage::Usage;

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
    pub tool_calls: Vec<ToolCall>,
}

/// The result of `LlmClient::complete` together with every HTTP call made for it.
#[derive(Debug)]
pub struct CompletionOutcome {
    /// The answer, or the error of the last attempt.
    pub result: Result<Completion, LlmError>,
    /// Every HTTP call in order; empty only when the request was rejected before sending.
    pub attempts: Vec<Attempt>,
}
