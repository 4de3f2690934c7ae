//! LLM client of the botfleet bot, for the Anthropic Messages API and any OpenAI-compatible
//! chat completions API.
//!
//! One [`LlmClient::complete`] call tries the primary model with retries (exponential backoff
//! with full jitter, honouring `retry-after`), then the fallback model, and reports every HTTP
//! call it made as an [`Attempt`] with its [`Outcome`] and normalised [`Usage`], so that the
//! caller can meter and bill each one. [`LlmClient::stream`] does the same with server-sent
//! events, handing the text to the caller as the model writes it.

mod bounds;
mod classify;
mod client;
mod completion;
mod error;
mod outcome;
mod provider;
mod request;
mod retry;
mod stream;
pub mod usage;

pub use bounds::{CallBounds, RetryGate};
pub use client::LlmClient;
pub use completion::{Attempt, Completion, CompletionOutcome};
pub use error::LlmError;
pub use outcome::Outcome;
pub use request::{ChatMessage, CompletionRequest, Role, Tool, ToolCall, estimate_tokens};
pub use retry::Backoff;
pub use stream::StreamEvent;
pub use usage::Usage;
