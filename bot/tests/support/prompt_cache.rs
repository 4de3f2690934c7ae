//! A model of Anthropic's prompt cache for the fake LLMs (tests and benchmarks): a request's
//! blocks (system blocks, then each message's content blocks) are hashed prefix by prefix; a
//! `cache_control` breakpoint stores its prefix; the next request reads the longest stored
//! prefix it starts with and writes what lies between that and its last breakpoint. Tokens
//! are estimated at four characters each. Entries never expire here (a run is minutes long);
//! prefixes shorter than `min_tokens` are not cached, as with the real API (1,024 for Sonnet).

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Value, json};

/// Input tokens of one request by price class, as Anthropic reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheUsage {
    pub input: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
}

impl CacheUsage {
    /// The `usage` object of a response with `output` tokens.
    pub fn json(&self, output: u64) -> Value {
        json!({
            "input_tokens": self.input,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation_input_tokens": self.cache_write_5m + self.cache_write_1h,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_write_5m,
                "ephemeral_1h_input_tokens": self.cache_write_1h,
            },
            "output_tokens": output,
        })
    }
}

#[derive(Default)]
pub struct PromptCache {
    entries: HashSet<u64>,
    pub min_tokens: u64,
}

struct Block {
    tokens: u64,
    /// `Some(one_hour)` when the block ends with a breakpoint.
    breakpoint: Option<bool>,
    /// Hash of everything up to and including this block.
    prefix: u64,
}

fn tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

fn blocks(body: &Value) -> Vec<Block> {
    let mut hasher = DefaultHasher::new();
    body["model"].as_str().unwrap_or_default().hash(&mut hasher);
    let mut out = Vec::new();
    let mut push = |role: &str, block: &Value, hasher: &mut DefaultHasher| {
        let text = block["text"].as_str().unwrap_or_default();
        role.hash(hasher);
        text.hash(hasher);
        let breakpoint = block
            .get("cache_control")
            .map(|c| c.get("ttl").and_then(Value::as_str) == Some("1h"));
        out.push(Block {
            tokens: tokens(text),
            breakpoint,
            prefix: hasher.finish(),
        });
    };
    match &body["system"] {
        Value::String(s) => push("system", &json!({"text": s}), &mut hasher),
        Value::Array(blocks) => {
            for b in blocks {
                push("system", b, &mut hasher);
            }
        }
        _ => {}
    }
    for m in body["messages"].as_array().into_iter().flatten() {
        let role = m["role"].as_str().unwrap_or_default();
        match &m["content"] {
            Value::String(s) => push(role, &json!({"text": s}), &mut hasher),
            Value::Array(blocks) => {
                for b in blocks {
                    push(role, b, &mut hasher);
                }
            }
            _ => {}
        }
    }
    out
}

impl PromptCache {
    pub fn new(min_tokens: u64) -> Self {
        Self {
            entries: HashSet::new(),
            min_tokens,
        }
    }

    /// The input usage of an Anthropic request body, updating the cache.
    pub fn usage(&mut self, body: &Value) -> CacheUsage {
        let blocks = blocks(body);
        let total: u64 = blocks.iter().map(|b| b.tokens).sum();
        let Some(last_breakpoint) = blocks.iter().rposition(|b| b.breakpoint.is_some()) else {
            return CacheUsage {
                input: total,
                ..Default::default()
            };
        };
        // The longest cached prefix that ends at or before the last breakpoint.
        let hit = (0..=last_breakpoint)
            .rev()
            .find(|&i| self.entries.contains(&blocks[i].prefix));
        let mut usage = CacheUsage::default();
        let mut start = 0; // the first block not read from the cache
        if let Some(i) = hit {
            usage.cache_read = blocks[..=i].iter().map(|b| b.tokens).sum();
            start = i + 1;
        }
        let mut prefix_tokens = usage.cache_read;
        let mut pending = 0; // tokens since the last stored prefix
        for block in &blocks[start..=last_breakpoint] {
            pending += block.tokens;
            prefix_tokens += block.tokens;
            if let Some(one_hour) = block.breakpoint
                && prefix_tokens >= self.min_tokens
            {
                self.entries.insert(block.prefix);
                if one_hour {
                    usage.cache_write_1h += pending;
                } else {
                    usage.cache_write_5m += pending;
                }
                pending = 0;
            }
        }
        let accounted = usage.cache_read + usage.cache_write_5m + usage.cache_write_1h;
        usage.input = total - accounted;
        usage
    }
}
