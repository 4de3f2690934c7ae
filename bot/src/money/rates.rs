//! Rates: what a token of each class costs (nano-USD per token), per price tier of a model, and
//! the exact cost of a call's usage at them.

use botfleet_llm::Usage;

/// Nano-USD per token of each token class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    pub input: i64,
    pub cache_read: i64,
    pub cache_write_5m: i64,
    pub cache_write_1h: i64,
    pub output: i64,
}

impl Rates {
    /// The exact cost of `usage` at these rates, `None` if it does not fit in an `i64`.
    pub fn cost_nanos(&self, usage: &Usage) -> Option<i64> {
        let terms = [
            (usage.input_tokens, self.input),
            (usage.cache_read_tokens, self.cache_read),
            (usage.cache_write_5m_tokens, self.cache_write_5m),
            (usage.cache_write_1h_tokens, self.cache_write_1h),
            (usage.output_tokens, self.output),
        ];
        let mut total: i128 = 0;
        for (tokens, rate) in terms {
            total = total.checked_add(i128::from(tokens).checked_mul(i128::from(rate))?)?;
        }
        i64::try_from(total).ok()
    }

    /// Each class at the dearer of the two rates.
    pub(crate) fn max(self, other: Rates) -> Rates {
        Rates {
            input: self.input.max(other.input),
            cache_read: self.cache_read.max(other.cache_read),
            cache_write_5m: self.cache_write_5m.max(other.cache_write_5m),
            cache_write_1h: self.cache_write_1h.max(other.cache_write_1h),
            output: self.output.max(other.output),
        }
    }
}

/// The prices of one model: the base tier and, optionally, the long-prompt tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRates {
    pub base: Rates,
    pub long_prompt: Option<LongPromptRates>,
}

/// Rates that apply to every token of a request whose prompt exceeds `above_input_tokens`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongPromptRates {
    pub above_input_tokens: u64,
    pub rates: Rates,
}

impl ModelRates {
    /// The tier a request falls into. The prompt is every input token, cached or not (input +
    /// cache read + cache writes), as providers define the long-context threshold.
    pub fn rates_for(&self, usage: &Usage) -> (Rates, bool) {
        match self.long_prompt {
            Some(long) if usage.total_input_tokens() > long.above_input_tokens => {
                (long.rates, true)
            }
            _ => (self.base, false),
        }
    }

    /// The base tier and, if any, the long-prompt tier.
    pub fn tiers(&self) -> impl Iterator<Item = Rates> + use<> {
        std::iter::once(self.base).chain(self.long_prompt.map(|long| long.rates))
    }
}
