//! The operator process around the controller: its flags ([`args`]), logging, the HTTP
//! endpoints (`/metrics`, `/healthz`, `/readyz`), shutdown on SIGTERM, and the leader loop
//! ([`run`]).
//!
//! [`metrics`] and [`memory`] sit below the controller (its context holds the metrics);
//! [`args`] and [`run`] sit above it and start it.

pub mod args;
pub mod http;
pub mod memory;
pub mod metrics;
pub mod run;

pub use args::RunArgs;
pub use botfleet_telemetry::{init_logging, shutdown_on_signals};
pub use run::{rate_limited_client, run, run_with_client};
