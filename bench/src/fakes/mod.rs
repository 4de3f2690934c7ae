//! Lean fakes of the network edges the bot talks to, on 127.0.0.1: they answer fast and count,
//! and record nothing they are not asked to (a load generator must not become the bottleneck).

pub mod llm;
pub mod telegram;
