//! The most one LLM attempt can cost, known before it is made: what a reservation holds.
//!
//! Input tokens are over-estimated as the request body's bytes / 2 (JSON included): the
//! providers' tokenizers give English about 4 bytes a token and other scripts rarely fewer
//! than 2, and the JSON around the text is bytes that are no tokens at all. Offered tools add
//! the provider's hidden tool-use preamble, [`TOOL_PREAMBLE_TOKENS`]. The input is priced at
//! the dearest rate it can be charged: a prompt-cache write where the request writes
//! breakpoints (its TTL's), and the long-prompt tier when the estimate passes its threshold.
//! The output is `maxOutputTokens` at the output rate.

use botfleet_llm::{CallBounds, Usage};

use super::rates::{ModelRates, Rates};
use botfleet_api::PromptCacheTtl;

/// Tokens the providers add to the prompt when tools are offered (Anthropic documents up to
/// ~350 for its tool-use system prompt), with room to spare.
pub const TOOL_PREAMBLE_TOKENS: u64 = 1_000;

/// Input tokens of a request, never fewer than it is charged.
pub fn input_tokens(bounds: &CallBounds) -> u64 {
    let tools = if bounds.has_tools {
        TOOL_PREAMBLE_TOKENS
    } else {
        0
    };
    (bounds.body_bytes as u64).div_ceil(2) + tools
}

/// The worst-case cost of one attempt of `bounds` at `rates`, in nano-USD (saturating).
pub fn attempt_nanos(rates: &ModelRates, bounds: &CallBounds) -> i64 {
    let input = input_tokens(bounds);
    let (tier, _) = rates.rates_for(&Usage {
        input_tokens: input,
        ..Usage::default()
    });
    let total = i128::from(input) * i128::from(input_rate(&tier, bounds.cache_ttl))
        + i128::from(bounds.max_output_tokens) * i128::from(tier.output);
    i64::try_from(total).unwrap_or(i64::MAX)
}

/// The dearest rate an input token of the request can be charged.
fn input_rate(tier: &Rates, cache_ttl: Option<PromptCacheTtl>) -> i64 {
    match cache_ttl {
        None => tier.input,
        // The conversation's breakpoint is always a 5-minute one; the system blocks' use the TTL.
        Some(PromptCacheTtl::FiveMinutes) => tier.input.max(tier.cache_write_5m),
        Some(PromptCacheTtl::OneHour) => {
            tier.input.max(tier.cache_write_5m).max(tier.cache_write_1h)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::LongPromptRates;
    use std::time::Duration;

    fn rates(input: i64, write_5m: i64, output: i64) -> Rates {
        Rates {
            input,
            cache_read: input / 10,
            cache_write_5m: write_5m,
            cache_write_1h: input * 2,
            output,
        }
    }

    fn bounds(body_bytes: usize, cache_ttl: Option<PromptCacheTtl>) -> CallBounds {
        CallBounds {
            body_bytes,
            has_tools: false,
            max_output_tokens: 100,
            cache_ttl,
            attempt_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn input_at_the_dearest_rate_that_can_apply_plus_all_the_output() {
        let model = ModelRates {
            base: rates(3_000, 3_750, 15_000),
            long_prompt: None,
        };
        // 2,000 bytes → 1,000 tokens.
        assert_eq!(
            attempt_nanos(&model, &bounds(2_000, None)),
            1_000 * 3_000 + 100 * 15_000
        );
        assert_eq!(
            attempt_nanos(&model, &bounds(2_000, Some(PromptCacheTtl::FiveMinutes))),
            1_000 * 3_750 + 100 * 15_000
        );
        assert_eq!(
            attempt_nanos(&model, &bounds(2_000, Some(PromptCacheTtl::OneHour))),
            1_000 * 6_000 + 100 * 15_000
        );
        let with_tools = CallBounds {
            has_tools: true,
            ..bounds(2_000, None)
        };
        assert_eq!(input_tokens(&with_tools), 1_000 + TOOL_PREAMBLE_TOKENS);
    }

    #[test]
    fn a_long_prompt_is_reserved_at_the_long_prompt_tier() {
        let model = ModelRates {
            base: rates(3_000, 3_000, 15_000),
            long_prompt: Some(LongPromptRates {
                above_input_tokens: 500,
                rates: rates(6_000, 6_000, 22_500),
            }),
        };
        assert_eq!(
            attempt_nanos(&model, &bounds(2_000, None)),
            1_000 * 6_000 + 100 * 22_500
        );
        assert_eq!(
            attempt_nanos(&model, &bounds(800, None)),
            400 * 3_000 + 100 * 15_000
        );
    }
}
