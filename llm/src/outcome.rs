//! How one HTTP call to the API ended.

use std::fmt;

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
