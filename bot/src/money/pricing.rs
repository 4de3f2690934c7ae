//! Prices per model as exact integers (nano-USD per token) and the cost of one call.
//!
//! A call's cost is the exact sum of tokens × rate per class, computed in `i128` with checked
//! arithmetic and never rounded: rounding happens only when money is displayed.

use std::collections::HashMap;

use botfleet_api::{ConfigError, LlmProvider, LongPromptPrice, ModelPrice, UsdPerMtok};
use botfleet_llm::Usage;

use super::list_prices;
use super::rates::{LongPromptRates, ModelRates, Rates};

/// What one call cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    Priced {
        cost_nanos: i64,
        /// The rates it was charged at (kept in the ledger row).
        rates: Rates,
        /// True when the long-prompt tier applied.
        long_prompt: bool,
    },
    /// The model has no configured price: the cost is unknown, never assumed to be zero.
    Unpriced,
}

impl Cost {
    /// The cost in nano-USD, 0 when unpriced (callers count unpriced calls separately).
    pub fn nanos(&self) -> i64 {
        match self {
            Cost::Priced { cost_nanos, .. } => *cost_nanos,
            Cost::Unpriced => 0,
        }
    }

    /// What the prompt cache saved on this call: its cache-read tokens at the input rate
    /// minus what they cost at the cache-read rate, both of the tier the call was charged at.
    /// 0 when unpriced; `None` if it does not fit in an `i64`.
    pub fn cache_saved_nanos(&self, usage: &Usage) -> Option<i64> {
        match self {
            Cost::Priced { rates, .. } => {
                let per_token = i128::from(rates.input) - i128::from(rates.cache_read);
                i64::try_from(i128::from(usage.cache_read_tokens).checked_mul(per_token)?).ok()
            }
            Cost::Unpriced => Some(0),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cost of a call to {model:?} does not fit in 64 bits of nano-USD")]
pub struct CostOverflow {
    pub model: String,
}

/// Prices of every model: the config's `pricing`, keyed by the model name the API is called
/// with, over the built-in list prices ([`list_prices`]). `pricing` always wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriceTable {
    models: HashMap<String, ModelRates>,
}

impl PriceTable {
    /// Builds the table from the config's `pricing` list. Errors name the offending field
    /// (`pricing[2].cacheRead`). Missing cache prices default to the same tier's input price:
    /// that is what a provider without separate cache pricing charges for those tokens.
    pub fn new(pricing: &[ModelPrice]) -> Result<Self, ConfigError> {
        let mut models = HashMap::new();
        for (i, price) in pricing.iter().enumerate() {
            let field = |name: &str| format!("pricing[{i}].{name}");
            if price.model.trim().is_empty() {
                return Err(ConfigError::new(field("model"), "must not be empty"));
            }
            let base = tier_rates(
                &price.input,
                &price.output,
                [
                    &price.cache_read,
                    &price.cache_write5m,
                    &price.cache_write1h,
                ],
            );
            let long_prompt = price
                .long_prompt
                .as_ref()
                .map(|long| long_prompt_rates(&field, long))
                .transpose()?;
            let rates = ModelRates { base, long_prompt };
            if models.insert(price.model.clone(), rates).is_some() {
                return Err(ConfigError::new(
                    field("model"),
                    format!("{:?} is priced twice", price.model),
                ));
            }
        }
        Ok(Self { models })
    }

    /// The prices of `model`: the config's, else its list price, else none (unpriced).
    /// Names are matched exactly.
    pub fn model(&self, model: &str) -> Option<&ModelRates> {
        self.models
            .get(model)
            .or_else(|| list_prices::find(model).map(|listed| &listed.rates))
    }

    /// The dearest known rate of each token class for a model of `provider`: the highest of
    /// its list prices and of every configured price (in any tier). A reservation made before
    /// a call of an unpriced model takes these rates, so that under a hard stop an unknown
    /// model is reserved at its provider's dearest known rate rather than let through
    /// unbounded (its settled cost stays unpriced, counted and alerted on).
    pub fn dearest_rates(&self, provider: LlmProvider) -> Rates {
        let configured = self.models.values().flat_map(ModelRates::tiers);
        list_prices::tiers_of(provider)
            .chain(configured)
            .fold(Rates::default(), Rates::max)
    }

    /// The exact cost of one call, or [`Cost::Unpriced`] when the model has no price.
    pub fn cost(&self, model: &str, usage: &Usage) -> Result<Cost, CostOverflow> {
        let Some(model_rates) = self.model(model) else {
            return Ok(Cost::Unpriced);
        };
        let (rates, long_prompt) = model_rates.rates_for(usage);
        let cost_nanos = rates.cost_nanos(usage).ok_or_else(|| CostOverflow {
            model: model.to_owned(),
        })?;
        Ok(Cost::Priced {
            cost_nanos,
            rates,
            long_prompt,
        })
    }
}

fn long_prompt_rates(
    field: &dyn Fn(&str) -> String,
    long: &LongPromptPrice,
) -> Result<LongPromptRates, ConfigError> {
    if long.above_input_tokens == 0 {
        return Err(ConfigError::new(
            field("longPrompt.aboveInputTokens"),
            "must be at least 1",
        ));
    }
    let rates = tier_rates(
        &long.input,
        &long.output,
        [&long.cache_read, &long.cache_write5m, &long.cache_write1h],
    );
    Ok(LongPromptRates {
        above_input_tokens: long.above_input_tokens,
        rates,
    })
}

/// One tier's rates; `cache` is `[cacheRead, cacheWrite5m, cacheWrite1h]`, each defaulting to
/// the tier's input price.
fn tier_rates(input: &UsdPerMtok, output: &UsdPerMtok, cache: [&Option<UsdPerMtok>; 3]) -> Rates {
    let input = input.nanos_per_token();
    let or_input =
        |price: &Option<UsdPerMtok>| price.as_ref().map_or(input, UsdPerMtok::nanos_per_token);
    let [read, write_5m, write_1h] = cache;
    Rates {
        input,
        output: output.nanos_per_token(),
        cache_read: or_input(read),
        cache_write_5m: or_input(write_5m),
        cache_write_1h: or_input(write_1h),
    }
}
