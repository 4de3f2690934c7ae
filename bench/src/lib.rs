//! Shared parts of the benchmarks: flags, Markdown tables, `/proc` footprints, percentiles,
//! lean fakes of Telegram and the LLM, a fresh database per run, the real bot process (and the
//! rig of all three a run starts), an open-loop webhook load generator and a closed-loop one
//! for saturation.

pub mod bot_process;
pub mod closed_loop;
pub mod database;
pub mod fakes;
pub mod flags;
pub mod latency;
pub mod load;
pub mod process_stats;
pub mod report;
pub mod rig;
