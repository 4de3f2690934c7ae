//! List prices of current Anthropic and OpenAI models: what a model costs when the config's
//! `pricing` does not name it. `pricing` always wins; a model in neither stays unpriced.
//!
//! Matching is exact: a model is found by its name or by one of the dated snapshot names
//! listed with it (`claude-sonnet-4-5-20250929`), never by stripping a date from an unknown
//! name. A snapshot may cost something else than its alias (OpenAI's `gpt-4o-2024-05-13` costs
//! twice `gpt-4o`), so guessing would under-price it; an unlisted snapshot stays unpriced and
//! is counted and alerted on, and its owner prices it in `pricing`.
//!
//! Rates are nano-USD per token, which is USD per million tokens × 1000 (`$3 / MTok` is
//! `3_000`). Each entry carries the day its price was checked against the source named above
//! it. A model whose price could not be confirmed is left out.

use botfleet_api::LlmProvider;
use botfleet_api::LlmProvider::{Anthropic, Openai};

use super::rates::{LongPromptRates, ModelRates, Rates};

/// One model's list price.
#[derive(Debug)]
pub struct ListPrice {
    pub provider: LlmProvider,
    /// The model's API name first, then its dated snapshot names; all matched exactly.
    pub names: &'static [&'static str],
    /// The day the price was checked against its source (ISO 8601).
    pub checked: &'static str,
    pub rates: ModelRates,
}

/// Anthropic rates: input, 5-minute cache write, 1-hour cache write, cache read, output.
const fn anthropic(input: i64, write_5m: i64, write_1h: i64, read: i64, output: i64) -> Rates {
    Rates {
        input,
        cache_read: read,
        cache_write_5m: write_5m,
        cache_write_1h: write_1h,
        output,
    }
}

/// OpenAI rates: input, cached input, output. OpenAI bills no cache writes (the client
/// reports none); they are set to the input rate, as a config price without them is.
const fn openai(input: i64, cached: i64, output: i64) -> Rates {
    Rates {
        input,
        cache_read: cached,
        cache_write_5m: input,
        cache_write_1h: input,
        output,
    }
}

const fn base(rates: Rates) -> ModelRates {
    ModelRates {
        base: rates,
        long_prompt: None,
    }
}

const CHECKED: &str = "2026-12-08";

// Source (Anthropic): https://platform.claude.com/docs/en/about-claude/pricing ("Model
// pricing"; "Long context pricing" for the tier above 200K prompt tokens of Sonnet 4 and 4.5)
// and the model overview pages https://platform.claude.com/docs/en/models/<model>/overview
// for the model IDs.
const OPUS_4_5_TO_4_8: Rates = anthropic(5_000, 6_250, 10_000, 500, 25_000);
const OPUS_4_0_AND_4_1: Rates = anthropic(15_000, 18_750, 30_000, 1_500, 75_000);
const SONNET_4: Rates = anthropic(3_000, 3_750, 6_000, 300, 15_000);
const SONNET_4_LONG_PROMPT: LongPromptRates = LongPromptRates {
    above_input_tokens: 200_000,
    rates: anthropic(6_000, 7_500, 12_000, 600, 22_500),
};
const SONNET_4_WITH_LONG_PROMPT: ModelRates = ModelRates {
    base: SONNET_4,
    long_prompt: Some(SONNET_4_LONG_PROMPT),
};
const HAIKU_4_5: Rates = anthropic(1_000, 1_250, 2_000, 100, 5_000);

// Source (OpenAI): https://developers.openai.com/api/docs/pricing and the model pages
// https://developers.openai.com/api/docs/models/<model> ("Text tokens", "Snapshots").
// Only models served by Chat Completions, the API the bot calls (the `-pro` models are
// Responses-only).
const GPT_5_AND_5_1: Rates = openai(1_250, 125, 10_000);
const GPT_5_MINI: Rates = openai(250, 25, 2_000);
const GPT_5_NANO: Rates = openai(50, 5, 400);
const GPT_4_1: Rates = openai(2_000, 500, 8_000);
const GPT_4_1_MINI: Rates = openai(400, 100, 1_600);
const GPT_4_1_NANO: Rates = openai(100, 25, 400);
const GPT_4O: Rates = openai(2_500, 1_250, 10_000);
const GPT_4O_MINI: Rates = openai(150, 75, 600);
const O1: Rates = openai(15_000, 7_500, 60_000);
const O4_MINI: Rates = openai(1_100, 275, 4_400);

const fn entry(
    provider: LlmProvider,
    names: &'static [&'static str],
    rates: ModelRates,
) -> ListPrice {
    ListPrice {
        provider,
        names,
        checked: CHECKED,
        rates,
    }
}

/// Every built-in list price.
pub const LIST_PRICES: &[ListPrice] = &[
    entry(Anthropic, &["claude-opus-4-8"], base(OPUS_4_5_TO_4_8)),
    entry(Anthropic, &["claude-opus-4-7"], base(OPUS_4_5_TO_4_8)),
    entry(Anthropic, &["claude-opus-4-6"], base(OPUS_4_5_TO_4_8)),
    entry(
        Anthropic,
        &["claude-opus-4-5", "claude-opus-4-5-20251101"],
        base(OPUS_4_5_TO_4_8),
    ),
    entry(
        Anthropic,
        &["claude-opus-4-1", "claude-opus-4-1-20250805"],
        base(OPUS_4_0_AND_4_1),
    ),
    entry(
        Anthropic,
        &["claude-opus-4-0", "claude-opus-4-20250514"],
        base(OPUS_4_0_AND_4_1),
    ),
    entry(Anthropic, &["claude-sonnet-4-6"], base(SONNET_4)),
    entry(
        Anthropic,
        &["claude-sonnet-4-5", "claude-sonnet-4-5-20250929"],
        SONNET_4_WITH_LONG_PROMPT,
    ),
    entry(
        Anthropic,
        &["claude-sonnet-4-0", "claude-sonnet-4-20250514"],
        SONNET_4_WITH_LONG_PROMPT,
    ),
    entry(
        Anthropic,
        &["claude-haiku-4-5", "claude-haiku-4-5-20251001"],
        base(HAIKU_4_5),
    ),
    entry(
        Openai,
        &["gpt-5.1", "gpt-5.1-2025-11-13"],
        base(GPT_5_AND_5_1),
    ),
    entry(Openai, &["gpt-5", "gpt-5-2025-08-07"], base(GPT_5_AND_5_1)),
    entry(
        Openai,
        &["gpt-5-mini", "gpt-5-mini-2025-08-07"],
        base(GPT_5_MINI),
    ),
    entry(
        Openai,
        &["gpt-5-nano", "gpt-5-nano-2025-08-07"],
        base(GPT_5_NANO),
    ),
    entry(Openai, &["gpt-4.1", "gpt-4.1-2025-04-14"], base(GPT_4_1)),
    entry(
        Openai,
        &["gpt-4.1-mini", "gpt-4.1-mini-2025-04-14"],
        base(GPT_4_1_MINI),
    ),
    entry(
        Openai,
        &["gpt-4.1-nano", "gpt-4.1-nano-2025-04-14"],
        base(GPT_4_1_NANO),
    ),
    entry(
        Openai,
        &["gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-2024-11-20"],
        base(GPT_4O),
    ),
    entry(
        Openai,
        &["gpt-4o-mini", "gpt-4o-mini-2024-07-18"],
        base(GPT_4O_MINI),
    ),
    entry(Openai, &["o1", "o1-2024-12-17"], base(O1)),
    entry(Openai, &["o4-mini", "o4-mini-2025-04-16"], base(O4_MINI)),
];

/// The list price of `model`, matched exactly against each entry's names.
pub fn find(model: &str) -> Option<&'static ListPrice> {
    LIST_PRICES.iter().find(|p| p.names.contains(&model))
}

/// Every tier's rates of the list prices of `provider`.
pub(crate) fn tiers_of(provider: LlmProvider) -> impl Iterator<Item = Rates> {
    LIST_PRICES
        .iter()
        .filter(move |p| p.provider == provider)
        .flat_map(|p| p.rates.tiers())
}
