//! What one completion can cost at most, before it is made: the sizes and counts a caller
//! needs to reserve its worst-case cost, and the hook that lets it reserve each retry.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use botfleet_api::PromptCacheTtl;

/// The limits of one completion of a request, as this client would send it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallBounds {
    /// Bytes of the largest request body an attempt sends (JSON, as serialised).
    pub body_bytes: usize,
    /// Tools are offered: the provider adds a hidden tool-use preamble to the prompt.
    pub has_tools: bool,
    /// The reply's token limit sent with every attempt.
    pub max_output_tokens: u32,
    /// The TTL of the prompt-cache breakpoints written (`None`: the provider writes none).
    pub cache_ttl: Option<PromptCacheTtl>,
    /// How long one attempt may take (`llm.timeout`).
    pub attempt_timeout: Duration,
}

/// Asked before each attempt after the first (a retry, or the fallback model): `true` lets it
/// be made, `false` ends the completion with the last failure. The first attempt is the
/// caller's to allow before it calls.
pub trait RetryGate: Send + Sync {
    fn allow<'a>(&'a self, model: &'a str) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
}
