//! Shared parts of the benchmarks: flags, Markdown tables, `/proc` footprints, percentiles,
//! lean fakes of Telegram and the LLM, a fresh database per run, the real bot process (and the
//! rig of all three a run starts), and an open-loop webhook load generator.

pub mod bot_process;
pub mod database;
pub mod fakes;
pub mod flags;
pub mod latency;
pub mod load;
pub mod process_stats;
pub mod report;
pub mod rig;
