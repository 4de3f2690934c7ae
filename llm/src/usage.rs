//! Token usage normalised at the client boundary into the classes that are priced differently.

use serde::{Deserialize, Serialize};

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
