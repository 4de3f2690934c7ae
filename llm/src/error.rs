//! Errors of the LLM client. None of them ever contains the API key.

use std::time::Duration;

use crate::outcome::Outcome;

/// Why a completion failed. Provider messages are truncated and scrubbed of the API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The `llm` config section cannot be used.
    #[error("invalid llm config: {field}: {reason}")]
    Config { field: &'static str, reason: String },
    /// The request cannot be sent as it is (e.g. no messages).
    #[error("invalid completion request: {0}")]
    InvalidRequest(&'static str),
    /// The API answered with an error status.
    #[error(
        "{provider} API: model {model}: HTTP {status} ({outcome}){}: {message}",
        error_type.as_deref().map(|t| format!(" {t}")).unwrap_or_default()
    )]
    Api {
        provider: &'static str,
        model: String,
        status: u16,
        outcome: Outcome,
        /// The provider's error type or code, e.g. `rate_limit_error`, `insufficient_quota`.
        error_type: Option<String>,
        message: String,
    },
    /// No complete answer within the configured timeout.
    #[error("{provider} API: model {model}: no answer within {timeout:?}")]
    Timeout {
        provider: &'static str,
        model: String,
        timeout: Duration,
    },
    /// The API could not be reached.
    #[error("{provider} API: model {model}: request failed: {reason}")]
    Connection {
        provider: &'static str,
        model: String,
        reason: String,
    },
    /// A streamed answer broke off after some text.
    #[error(
        "{provider} API: model {model}: the stream broke off after {chars} characters: {reason}"
    )]
    StreamCut {
        provider: &'static str,
        model: String,
        chars: usize,
        reason: String,
    },
    /// A 2xx response whose body is not the expected JSON.
    #[error("{provider} API: model {model}: unreadable response (HTTP {status}): {reason}")]
    InvalidResponse {
        provider: &'static str,
        model: String,
        status: u16,
        reason: String,
    },
}

impl LlmError {
    /// The metric outcome this error stands for.
    pub fn outcome(&self) -> Outcome {
        match self {
            LlmError::Config { .. } | LlmError::InvalidRequest(_) => Outcome::ClientError,
            LlmError::Api { outcome, .. } => *outcome,
            LlmError::Timeout { .. } => Outcome::Timeout,
            LlmError::StreamCut { .. } => Outcome::StreamCut,
            LlmError::Connection { .. } | LlmError::InvalidResponse { .. } => Outcome::ServerError,
        }
    }

    /// HTTP status of the response, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            LlmError::Api { status, .. } | LlmError::InvalidResponse { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}
