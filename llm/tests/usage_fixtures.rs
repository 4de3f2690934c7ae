//! Usage normalisation against real-shaped response bodies.

use botfleet_llm::Usage;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn anthropic_cache_write_split_by_its_breakdown() {
    let body = fixture("anthropic_cache_write_breakdown.json");
    let expected = Usage {
        input_tokens: 21,
        cache_read_tokens: 0,
        cache_write_5m_tokens: 1536,
        cache_write_1h_tokens: 652,
        output_tokens: 393,
    };
    assert_eq!(Usage::from_anthropic(&body), expected);
    // The `usage` object alone reads the same.
    assert_eq!(Usage::from_anthropic(&body["usage"]), expected);
}

#[test]
fn anthropic_cache_write_without_breakdown_counts_as_5m() {
    let usage = Usage::from_anthropic(&fixture("anthropic_cache_write_no_breakdown.json"));
    assert_eq!(
        usage,
        Usage {
            input_tokens: 12,
            cache_read_tokens: 0,
            cache_write_5m_tokens: 1842,
            cache_write_1h_tokens: 0,
            output_tokens: 11,
        }
    );
}

#[test]
fn anthropic_cache_read_is_apart_from_uncached_input() {
    let usage = Usage::from_anthropic(&fixture("anthropic_cache_read.json"));
    assert_eq!(
        usage,
        Usage {
            input_tokens: 57,
            cache_read_tokens: 2188,
            cache_write_5m_tokens: 0,
            cache_write_1h_tokens: 0,
            output_tokens: 24,
        }
    );
    assert_eq!(usage.total_input_tokens(), 57 + 2188);
}

#[test]
fn openai_cached_tokens_are_taken_out_of_prompt_tokens() {
    let body = fixture("openai_cached_tokens.json");
    let usage = Usage::from_openai(&body);
    assert_eq!(
        usage,
        Usage {
            input_tokens: 1117 - 1024,
            cache_read_tokens: 1024,
            cache_write_5m_tokens: 0,
            cache_write_1h_tokens: 0,
            output_tokens: 46,
        }
    );
    // Nothing billed is lost or counted twice.
    assert_eq!(
        usage.total_input_tokens(),
        body["usage"]["prompt_tokens"].as_u64().unwrap()
    );
}

#[test]
fn openai_without_details_is_all_uncached_input() {
    let usage = Usage::from_openai(&fixture("openai_no_details.json"));
    assert_eq!(
        usage,
        Usage {
            input_tokens: 42,
            cache_read_tokens: 0,
            cache_write_5m_tokens: 0,
            cache_write_1h_tokens: 0,
            output_tokens: 10,
        }
    );
}
