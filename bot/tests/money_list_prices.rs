//! Built-in list prices: a config that names a known model without `pricing` prices its calls
//! exactly; `pricing` wins; names match exactly; an unknown model stays unpriced (pure, no
//! database).

use std::collections::HashSet;

use botfleet_api::LlmProvider;
use botfleet_bot::config::{DEFAULT_CONFIG, load_config_str};
use botfleet_bot::money::list_prices::{LIST_PRICES, find};
use botfleet_bot::money::{Cost, Money, Rates};
use botfleet_llm::Usage;

fn money(yaml: &str) -> Money {
    Money::from_config(&load_config_str(yaml).expect("valid config")).expect("valid prices")
}

/// 1,000 input, 2,000 cache-read, 300 5-minute-write, 400 1-hour-write and 500 output tokens.
fn every_class() -> Usage {
    Usage {
        input_tokens: 1_000,
        cache_read_tokens: 2_000,
        cache_write_5m_tokens: 300,
        cache_write_1h_tokens: 400,
        output_tokens: 500,
    }
}

fn nanos(money: &Money, model: &str, usage: &Usage) -> Option<i64> {
    match money.prices().cost(model, usage).unwrap() {
        Cost::Priced { cost_nanos, .. } => Some(cost_nanos),
        Cost::Unpriced => None,
    }
}

#[test]
fn the_default_config_prices_claude_sonnet_4_5_at_its_list_price() {
    let money = money(DEFAULT_CONFIG);
    // $3 in, $0.30 cache read, $3.75 5m write, $6 1h write, $15 out per million tokens:
    // 1,000 × 3,000 + 2,000 × 300 + 300 × 3,750 + 400 × 6,000 + 500 × 15,000 nano-USD.
    let expected = 3_000_000 + 600_000 + 1_125_000 + 2_400_000 + 7_500_000;
    assert_eq!(
        nanos(&money, "claude-sonnet-4-5", &every_class()),
        Some(expected)
    );
    assert_eq!(expected, 14_625_000, "$0.014625");
    // The dated snapshot the alias points at costs the same.
    assert_eq!(
        nanos(&money, "claude-sonnet-4-5-20250929", &every_class()),
        Some(expected)
    );
}

#[test]
fn a_config_price_wins_over_the_list_price() {
    let money = money(
        r#"
llm: {model: claude-sonnet-4-5}
pricing:
  - {model: claude-sonnet-4-5, input: "2.00", output: "10.00"}
"#,
    );
    // Cache prices default to the configured input price, not the list's.
    let usage = every_class();
    assert_eq!(
        nanos(&money, "claude-sonnet-4-5", &usage),
        Some(3_700 * 2_000 + 500 * 10_000)
    );
    // `pricing` names the alias only: the snapshot keeps its list price (exact names).
    assert_eq!(
        nanos(&money, "claude-sonnet-4-5-20250929", &usage),
        Some(14_625_000)
    );
}

#[test]
fn names_match_exactly_and_unknown_models_stay_unpriced() {
    let money = money("llm: {model: claude-sonnet-4-5}\n");
    let usage = every_class();
    for unknown in [
        "llama-3.1-8b-instruct",
        // A snapshot not in the list is not guessed from its alias…
        "claude-sonnet-4-5-20991231",
        // …because a snapshot may cost something else: this one costs twice `gpt-4o`.
        "gpt-4o-2024-05-13",
        "Claude-Sonnet-4-5",
        " claude-sonnet-4-5",
    ] {
        assert_eq!(nanos(&money, unknown, &usage), None, "{unknown}");
    }
    // The long-prompt tier of the list price applies above 200,000 prompt tokens.
    let long = Usage {
        input_tokens: 200_001,
        output_tokens: 10,
        ..Usage::default()
    };
    assert_eq!(
        nanos(&money, "claude-sonnet-4-5", &long),
        Some(200_001 * 6_000 + 10 * 22_500)
    );
    // OpenAI: cached tokens at the cached-input price (gpt-4o: $2.50, $1.25, $10).
    let openai = Usage {
        input_tokens: 93,
        cache_read_tokens: 1_024,
        output_tokens: 46,
        ..Usage::default()
    };
    assert_eq!(nanos(&money, "gpt-4o", &openai), Some(1_972_500));
}

#[test]
fn the_dearest_known_rate_of_a_provider() {
    let listed = money("llm: {model: claude-sonnet-4-5}\n");
    // Anthropic: Claude Opus 4 and 4.1 ($15 in, $18.75 / $30 writes, $1.50 read, $75 out).
    assert_eq!(
        listed.prices().dearest_rates(LlmProvider::Anthropic),
        Rates {
            input: 15_000,
            cache_read: 1_500,
            cache_write_5m: 18_750,
            cache_write_1h: 30_000,
            output: 75_000,
        }
    );
    // OpenAI: o1 ($15 in, $7.50 cached, $60 out; no separate cache write).
    assert_eq!(
        listed.prices().dearest_rates(LlmProvider::Openai),
        Rates {
            input: 15_000,
            cache_read: 7_500,
            cache_write_5m: 15_000,
            cache_write_1h: 15_000,
            output: 60_000,
        }
    );
    // A dearer configured model raises it.
    let configured = money(
        r#"
llm: {provider: openai, model: house-model}
pricing:
  - {model: house-model, input: "1.00", output: "90.00"}
"#,
    );
    let dearest = configured.prices().dearest_rates(LlmProvider::Openai);
    assert_eq!((dearest.input, dearest.output), (15_000, 90_000));
}

#[test]
fn every_list_price_is_well_formed() {
    let mut names = HashSet::new();
    for price in LIST_PRICES {
        assert!(!price.names.is_empty());
        for name in price.names {
            assert!(names.insert(*name), "{name} is listed twice");
            assert_eq!(find(name).map(|p| p.names), Some(price.names));
            assert_eq!(name.trim(), *name);
        }
        chrono::NaiveDate::parse_from_str(price.checked, "%Y-%m-%d")
            .unwrap_or_else(|e| panic!("{:?}: checked {:?}: {e}", price.names, price.checked));
        for tier in price.rates.tiers() {
            assert!(tier.input > 0 && tier.output > tier.input, "{price:?}");
            assert!(
                tier.cache_read > 0 && tier.cache_read < tier.input,
                "{price:?}"
            );
            assert!(tier.cache_write_5m >= tier.input, "{price:?}");
            assert!(tier.cache_write_1h >= tier.cache_write_5m, "{price:?}");
        }
    }
    // The models the README and docs name are priced out of the box.
    for model in ["claude-sonnet-4-5", "claude-haiku-4-5", "gpt-4o", "gpt-5"] {
        assert!(find(model).is_some(), "{model}");
    }
}
