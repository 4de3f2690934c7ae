//! LLM client (work in progress). See `usage` for the normalised token counts.

pub mod usage;
pub use usage::Usage;
