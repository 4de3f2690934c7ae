//! botfleet-operator: the `TelegramBot` CRD, the pure rendering of a spec into Kubernetes
//! objects, and the reconciler that applies them.

pub mod controller;
pub mod crd;
#[cfg(any(test, feature = "testing"))]
pub mod fixtures;
pub mod process;
pub mod render;
pub mod telegram;
