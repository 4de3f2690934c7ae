//! Pricing: exact nano-USD per call, per token class, tier and model (pure, no database).

use botfleet_api::{LongPromptPrice, ModelPrice, format_usd};
use botfleet_bot::money::{Cost, PriceTable, Rates};
use botfleet_llm::Usage;

fn price(model: &str, input: &str, output: &str, cache: [Option<&str>; 3]) -> ModelPrice {
    let [read, write_5m, write_1h] = cache.map(|c| c.map(|p| p.parse().unwrap()));
    ModelPrice {
        model: model.into(),
        input: input.parse().unwrap(),
        output: output.parse().unwrap(),
        cache_read: read,
        cache_write5m: write_5m,
        cache_write1h: write_1h,
        long_prompt: None,
    }
}

/// List prices (USD per million tokens) of the models in the fixtures.
fn table() -> PriceTable {
    let mut sonnet_45 = price(
        "claude-sonnet-4-5",
        "3.00",
        "15.00",
        [Some("0.30"), Some("3.75"), Some("6.00")],
    );
    sonnet_45.long_prompt = Some(LongPromptPrice {
        above_input_tokens: 200_000,
        input: "6.00".parse().unwrap(),
        output: "22.50".parse().unwrap(),
        cache_read: Some("0.60".parse().unwrap()),
        cache_write5m: Some("7.50".parse().unwrap()),
        cache_write1h: Some("12.00".parse().unwrap()),
    });
    PriceTable::new(&[
        sonnet_45,
        price(
            "claude-haiku-4-5",
            "1.00",
            "5.00",
            [Some("0.10"), Some("1.25"), Some("2.00")],
        ),
        price(
            "claude-3-5-sonnet",
            "3",
            "15",
            [Some("0.3"), Some("3.75"), Some("6")],
        ),
        // No cache write prices: those default to the input price.
        price("gpt-4o", "2.50", "10.00", [Some("1.25"), None, None]),
        price("flat", "0.30", "0.30", [None, None, None]),
    ])
    .expect("valid prices")
}

fn usage(input: u64, read: u64, write_5m: u64, write_1h: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        cache_read_tokens: read,
        cache_write_5m_tokens: write_5m,
        cache_write_1h_tokens: write_1h,
        output_tokens: output,
    }
}

fn nanos(model: &str, u: Usage) -> i64 {
    match table().cost(model, &u).unwrap() {
        Cost::Priced { cost_nanos, .. } => cost_nanos,
        Cost::Unpriced => panic!("{model} should be priced"),
    }
}

#[test]
fn each_token_class_is_charged_at_its_own_rate() {
    // (model, usage, expected nano-USD), computed by hand from the list prices above.
    let cases = [
        ("claude-sonnet-4-5", usage(1, 0, 0, 0, 0), 3_000),
        ("claude-sonnet-4-5", usage(0, 1, 0, 0, 0), 300),
        ("claude-sonnet-4-5", usage(0, 0, 1, 0, 0), 3_750),
        ("claude-sonnet-4-5", usage(0, 0, 0, 1, 0), 6_000),
        ("claude-sonnet-4-5", usage(0, 0, 0, 0, 1), 15_000),
        (
            "claude-sonnet-4-5",
            usage(1_000, 2_000, 3_000, 4_000, 500),
            3_000_000 + 600_000 + 11_250_000 + 24_000_000 + 7_500_000,
        ),
        // Missing cache prices fall back to the input price; cache read keeps its own.
        ("gpt-4o", usage(0, 0, 1, 0, 0), 2_500),
        ("gpt-4o", usage(0, 0, 0, 1, 0), 2_500),
        ("gpt-4o", usage(0, 1, 0, 0, 0), 1_250),
        ("flat", usage(1, 1, 1, 1, 1), 1_500),
        ("claude-haiku-4-5", usage(0, 0, 0, 0, 0), 0),
    ];
    for (model, u, expected) in cases {
        assert_eq!(nanos(model, u), expected, "{model} {u:?}");
    }
}

#[test]
fn the_long_prompt_tier_applies_to_the_whole_request_above_the_threshold() {
    // Prompt of exactly 200,000 tokens: base prices.
    assert_eq!(
        nanos("claude-sonnet-4-5", usage(150_000, 50_000, 0, 0, 1_000)),
        150_000 * 3_000 + 50_000 * 300 + 1_000 * 15_000
    );
    // One more prompt token: every token, output included, at the long-prompt prices.
    assert_eq!(
        nanos("claude-sonnet-4-5", usage(150_000, 50_001, 0, 0, 1_000)),
        952_500_600 // 150,000 × 6,000 + 50,001 × 600 + 1,000 × 22,500
    );
    // Cache writes count toward the prompt size, and are charged at the tier's write prices.
    let cost = table()
        .cost("claude-sonnet-4-5", &usage(100_000, 0, 0, 100_001, 10))
        .unwrap();
    let Cost::Priced {
        cost_nanos,
        rates,
        long_prompt,
    } = cost
    else {
        panic!("priced")
    };
    assert!(long_prompt);
    assert_eq!(
        rates,
        Rates {
            input: 6_000,
            cache_read: 600,
            cache_write_5m: 7_500,
            cache_write_1h: 12_000,
            output: 22_500
        }
    );
    assert_eq!(cost_nanos, 100_000 * 6_000 + 100_001 * 12_000 + 10 * 22_500);
}

#[test]
fn a_model_without_a_price_is_unpriced_not_free() {
    let cost = table()
        .cost("llama-3.1-8b-instruct", &usage(42, 0, 0, 0, 10))
        .unwrap();
    assert_eq!(cost, Cost::Unpriced);
}

#[test]
fn one_million_one_token_calls_at_thirty_cents_per_million_cost_exactly_thirty_cents() {
    let prices = table();
    let one_token = usage(1, 0, 0, 0, 0);
    let mut total: i64 = 0;
    for _ in 0..1_000_000 {
        let Cost::Priced { cost_nanos, .. } = prices.cost("flat", &one_token).unwrap() else {
            panic!("priced")
        };
        total += cost_nanos;
    }
    assert_eq!(total, 300_000_000);
    assert_eq!(format_usd(total, 2), "$0.30");
}

fn fixture(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/../llm/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn real_response_bodies_are_priced_to_the_nano() {
    let cases = [
        // 21 in × 3,000 + 1,536 5m-writes × 3,750 + 652 1h-writes × 6,000 + 393 out × 15,000
        (
            "anthropic_cache_write_breakdown.json",
            true,
            "claude-sonnet-4-5",
            15_630_000,
        ),
        // 57 in × 1,000 + 2,188 reads × 100 + 24 out × 5,000
        (
            "anthropic_cache_read.json",
            true,
            "claude-haiku-4-5",
            395_800,
        ),
        // no breakdown: 1,842 writes at the 5-minute rate: 12 × 3,000 + 1,842 × 3,750 + 11 × 15,000
        (
            "anthropic_cache_write_no_breakdown.json",
            true,
            "claude-3-5-sonnet",
            7_108_500,
        ),
        // (1,117 − 1,024) in × 2,500 + 1,024 cached × 1,250 + 46 out × 10,000
        ("openai_cached_tokens.json", false, "gpt-4o", 1_972_500),
    ];
    for (file, anthropic, model, expected) in cases {
        let body = fixture(file);
        let u = if anthropic {
            Usage::from_anthropic(&body)
        } else {
            Usage::from_openai(&body)
        };
        assert_eq!(nanos(model, u), expected, "{file}");
    }
    let llama = Usage::from_openai(&fixture("openai_no_details.json"));
    assert_eq!(
        table().cost("llama-3.1-8b-instruct", &llama).unwrap(),
        Cost::Unpriced
    );
}

#[test]
fn a_price_that_cannot_be_held_exactly_is_rejected_with_its_field_named() {
    // Prices and limits are parsed where the config is read: the loader names the field.
    let load = |extra: &str| {
        botfleet_bot::config::load_config_str(&format!("llm: {{model: a}}\n{extra}"))
            .unwrap_err()
            .to_string()
    };
    let err = load(
        r#"pricing: [{model: a, input: "1", output: "2"}, {model: b, input: "1", output: "2"}, {model: c, input: "1", output: "2", cacheRead: "0.0375"}]"#,
    );
    assert!(err.starts_with("config: pricing[2].cacheRead: "), "{err}");
    assert!(err.contains("nano-USD per token"), "{err}");
    let err = load(
        r#"pricing: [{model: c, input: "1", output: "2", longPrompt: {aboveInputTokens: 1000, input: "2", output: abc}}]"#,
    );
    assert!(
        err.starts_with("config: pricing[0].longPrompt.output: "),
        "{err}"
    );
    let err = load(r#"budget: {daily: "1.0000000001"}"#);
    assert!(err.starts_with("config: budget.daily: "), "{err}");
    assert!(err.contains("more than 9 decimals"), "{err}");

    let ok = price("a", "1", "2", [None, None, None]);
    assert_eq!(
        PriceTable::new(&[ok.clone(), ok]).unwrap_err().field,
        "pricing[1].model"
    );
}

#[test]
fn the_cache_saves_the_input_price_minus_the_read_price_of_the_tier_charged() {
    let table = table();
    let cost = |model: &str, u: &Usage| table.cost(model, u).unwrap();
    // Base tier: 10,000 read tokens × (3,000 − 300) nano-USD = $0.027.
    let base = usage(500, 10_000, 0, 0, 100);
    let saved = cost("claude-sonnet-4-5", &base)
        .cache_saved_nanos(&base)
        .unwrap();
    assert_eq!(saved, 27_000_000);
    assert_eq!(format_usd(saved, 4), "$0.0270");
    // Long-prompt tier (prompt > 200,000): 190,000 × (6,000 − 600) = $1.026.
    let long = usage(20_000, 190_000, 0, 0, 100);
    assert_eq!(
        cost("claude-sonnet-4-5", &long).cache_saved_nanos(&long),
        Some(1_026_000_000)
    );
    // No separate read price: nothing saved. Unpriced: nothing known, counted as 0.
    assert_eq!(cost("flat", &base).cache_saved_nanos(&base), Some(0));
    assert_eq!(Cost::Unpriced.cache_saved_nanos(&base), Some(0));
}
