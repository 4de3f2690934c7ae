//! Token usage normalised at the client boundary into the classes that are priced differently.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Tokens of one API call, by price class. Providers report these differently; the client
/// normalises them so that the classes never overlap and their sum is every token billed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens read neither from nor into the prompt cache.
    pub input_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache with a 5-minute lifetime.
    pub cache_write_5m_tokens: u64,
    /// Input tokens written to the prompt cache with a 1-hour lifetime.
    pub cache_write_1h_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

impl Usage {
    /// Usage of an Anthropic Messages response. Takes the whole response body or its `usage`
    /// object; missing fields count as zero.
    ///
    /// Anthropic's `input_tokens` already excludes cached tokens. `cache_creation_input_tokens`
    /// is split by the `cache_creation.ephemeral_5m/1h_input_tokens` breakdown; tokens the
    /// breakdown does not account for (or all of them, when it is absent, as in older API
    /// versions) are counted as 5-minute writes, the default cache lifetime.
    pub fn from_anthropic(body: &Value) -> Usage {
        let usage = usage_object(body);
        let total_write = field(usage, "cache_creation_input_tokens");
        let breakdown = usage.get("cache_creation");
        let write_1h = breakdown
            .map(|b| field(b, "ephemeral_1h_input_tokens"))
            .unwrap_or(0);
        let write_5m_reported = breakdown
            .map(|b| field(b, "ephemeral_5m_input_tokens"))
            .unwrap_or(0);
        Usage {
            input_tokens: field(usage, "input_tokens"),
            cache_read_tokens: field(usage, "cache_read_input_tokens"),
            cache_write_5m_tokens: write_5m_reported.max(total_write.saturating_sub(write_1h)),
            cache_write_1h_tokens: write_1h,
            output_tokens: field(usage, "output_tokens"),
        }
    }

    /// Usage of an OpenAI-compatible chat completion. Takes the whole response body or its
    /// `usage` object; missing fields count as zero.
    ///
    /// `prompt_tokens` includes cached tokens, so uncached input is `prompt_tokens` minus
    /// `prompt_tokens_details.cached_tokens` (DeepSeek-style `prompt_cache_hit_tokens` is read
    /// when the details are absent). These APIs bill no separate cache writes.
    pub fn from_openai(body: &Value) -> Usage {
        let usage = usage_object(body);
        let prompt = field(usage, "prompt_tokens");
        let cached = usage
            .get("prompt_tokens_details")
            .map(|d| field(d, "cached_tokens"))
            .unwrap_or_else(|| field(usage, "prompt_cache_hit_tokens"))
            .min(prompt);
        Usage {
            input_tokens: prompt - cached,
            cache_read_tokens: cached,
            cache_write_5m_tokens: 0,
            cache_write_1h_tokens: 0,
            output_tokens: field(usage, "completion_tokens"),
        }
    }

    /// All input tokens, cached or not.
    pub fn total_input_tokens(&self) -> u64 {
        self.input_tokens
            + self.cache_read_tokens
            + self.cache_write_5m_tokens
            + self.cache_write_1h_tokens
    }

    /// True when the provider reported no tokens at all.
    pub fn is_zero(&self) -> bool {
        *self == Usage::default()
    }
}

/// The `usage` member of a response body, or the value itself when it is already one.
fn usage_object(body: &Value) -> &Value {
    match body.get("usage") {
        Some(usage) if usage.is_object() => usage,
        _ => body,
    }
}

fn field(object: &Value, key: &str) -> u64 {
    object.get(key).and_then(Value::as_u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn anthropic_breakdown_that_does_not_cover_the_total_counts_the_rest_as_5m() {
        let usage = Usage::from_anthropic(&json!({
            "input_tokens": 3,
            "cache_creation_input_tokens": 100,
            "cache_creation": {"ephemeral_1h_input_tokens": 40}
        }));
        assert_eq!(usage.cache_write_5m_tokens, 60);
        assert_eq!(usage.cache_write_1h_tokens, 40);
        assert_eq!(usage.total_input_tokens(), 103);
    }

    #[test]
    fn openai_cached_tokens_never_exceed_prompt_tokens() {
        let usage = Usage::from_openai(&json!({
            "prompt_tokens": 10,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 50}
        }));
        assert_eq!(usage.input_tokens, 0);
        assert_eq!(usage.cache_read_tokens, 10);
    }

    #[test]
    fn deepseek_style_cache_hits_are_cache_reads() {
        let usage = Usage::from_openai(&json!({"usage": {
            "prompt_tokens": 500, "completion_tokens": 7,
            "prompt_cache_hit_tokens": 384, "prompt_cache_miss_tokens": 116
        }}));
        assert_eq!(usage.input_tokens, 116);
        assert_eq!(usage.cache_read_tokens, 384);
        assert_eq!(usage.output_tokens, 7);
    }

    #[test]
    fn a_body_without_usage_is_zero() {
        assert!(Usage::from_anthropic(&json!({"content": []})).is_zero());
        assert!(Usage::from_openai(&json!({"choices": []})).is_zero());
    }
}
