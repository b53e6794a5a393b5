#![doc = include_str!("../../README.md")]
#![warn(missing_docs)]

pub use evbus_core::*;

/// `#[derive(Event)]`: writes the kind enum of an event type and checks its
/// topics at compile time. Feature `derive` (default).
#[cfg(feature = "derive")]
pub use evbus_derive::Event;

/// The handler runtime: see [`evbus_dispatch`].
pub use evbus_dispatch as dispatch;

/// Observability: snapshots, Prometheus text, the `metrics` facade and
/// latency histograms. See [`evbus_metrics`]. Feature `metrics`.
#[cfg(feature = "metrics")]
pub use evbus_metrics as metrics;
