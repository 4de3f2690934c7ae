//! What an error response means: retry it, give up, or stop spending.

use serde_json::Value;

use crate::outcome::Outcome;

/// An error response, read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ErrorResponse {
    pub outcome: Outcome,
    /// The provider's error code or type, e.g. `insufficient_quota`, `overloaded_error`.
    pub error_type: Option<String>,
    /// The provider's message (or the raw body), not yet truncated or scrubbed.
    pub message: String,
}

/// Words of quota, credit and spend-limit errors. Anthropic reports an empty credit balance
/// or a reached workspace spend limit as 400 with a message; OpenAI as 429
/// `insufficient_quota`. Retrying these only burns time, and the fallback model is billed
/// to the same account.
const SPEND_LIMIT_WORDS: [&str; 7] = [
    "insufficient_quota",
    "exceeded your current quota",
    "spend limit",
    "spending limit",
    "usage limits",
    "billing",
    "credit balance",
];

pub(crate) fn classify(status: u16, body: &[u8]) -> ErrorResponse {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let error = json.as_ref().and_then(|j| j.get("error"));
    let text_of = |key: &str| {
        error
            .and_then(|e| e.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    // OpenAI puts the precise reason in `code` (`type` is often just "requests");
    // Anthropic has only `type`.
    let error_type = text_of("code").or_else(|| text_of("type"));
    let message = text_of("message")
        .or_else(|| error.and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());

    let lowercase = format!("{} {}", error_type.as_deref().unwrap_or(""), message).to_lowercase();
    let speaks_of_spend = SPEND_LIMIT_WORDS.iter().any(|w| lowercase.contains(w))
        || text_of("type").as_deref() == Some("billing_error");
    let overloaded = text_of("type").as_deref() == Some("overloaded_error");

    let outcome = match status {
        402 => Outcome::SpendLimit,
        400..=499 if speaks_of_spend => Outcome::SpendLimit,
        429 => Outcome::RateLimited,
        408 => Outcome::Timeout,
        529 => Outcome::Overloaded,
        500..=599 if overloaded => Outcome::Overloaded,
        500..=599 => Outcome::ServerError,
        _ => Outcome::ClientError,
    };
    ErrorResponse {
        outcome,
        error_type,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: u16, body: &str) -> Outcome {
        classify(status, body.as_bytes()).outcome
    }

    #[test]
    fn openai_insufficient_quota_is_a_spend_limit_not_a_rate_limit() {
        let body = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        let read = classify(429, body.as_bytes());
        assert_eq!(read.outcome, Outcome::SpendLimit);
        assert_eq!(read.error_type.as_deref(), Some("insufficient_quota"));
    }

    #[test]
    fn anthropic_credit_balance_400_is_a_spend_limit() {
        let body = r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}"#;
        assert_eq!(outcome(400, body), Outcome::SpendLimit);
    }

    #[test]
    fn ordinary_rate_limit_and_overload() {
        let rate = r#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed your organization's rate limit of 50,000 input tokens per minute."}}"#;
        assert_eq!(outcome(429, rate), Outcome::RateLimited);
        let openai_rate = r#"{"error":{"message":"Rate limit reached for gpt-4o on requests per min (RPM): Limit 500, Used 500, Requested 1.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(outcome(429, openai_rate), Outcome::RateLimited);
        let overloaded =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(outcome(529, overloaded), Outcome::Overloaded);
        assert_eq!(outcome(503, overloaded), Outcome::Overloaded);
    }

    #[test]
    fn other_statuses() {
        assert_eq!(outcome(500, "internal error"), Outcome::ServerError);
        assert_eq!(
            outcome(502, "<html>bad gateway</html>"),
            Outcome::ServerError
        );
        assert_eq!(outcome(408, ""), Outcome::Timeout);
        assert_eq!(
            outcome(
                401,
                r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#
            ),
            Outcome::ClientError
        );
        assert_eq!(
            outcome(
                404,
                r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-nope"}}"#
            ),
            Outcome::ClientError
        );
        assert_eq!(outcome(402, ""), Outcome::SpendLimit);
    }

    #[test]
    fn a_non_json_body_is_the_message() {
        let read = classify(502, b"  upstream connect error ");
        assert_eq!(read.message, "upstream connect error");
        assert_eq!(read.error_type, None);
    }
}
