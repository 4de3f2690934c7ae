//! The operator ↔ bot contract as the operator renders it: the shared names of
//! [`botfleet_api::contract`] (environment variables, ports, paths, file locations), plus what
//! only the pod spec needs (port names, the user the bot runs as).

pub use botfleet_api::contract::command::{MIGRATE, SCHEDULER, SERVE};
pub use botfleet_api::contract::*;

/// Container and Service port numbers (Kubernetes takes `i32`).
pub const HTTP_CONTAINER_PORT: i32 = HTTP_PORT as i32;
pub const METRICS_CONTAINER_PORT: i32 = METRICS_PORT as i32;
/// Port names of the containers and Services.
pub const HTTP_PORT_NAME: &str = "http";
pub const METRICS_PORT_NAME: &str = "metrics";

/// The non-root user and group the bot runs as (distroless `nonroot`).
pub const RUN_AS_USER: i64 = 65532;
