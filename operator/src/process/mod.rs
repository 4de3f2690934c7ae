//! The operator process around the controller: logging, the HTTP endpoints (`/metrics`,
//! `/healthz`, `/readyz`), shutdown on SIGTERM, and leader election.

pub mod http;
pub mod memory;
pub mod metrics;

pub use botfleet_telemetry::{init_logging, shutdown_on_signals};
