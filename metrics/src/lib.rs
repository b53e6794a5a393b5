//! evbus-metrics: observability for an [`evbus_core::Bus`].
//!
//! - [`Snapshot`]: a plain struct (serde `Serialize` + `Deserialize`) with
//!   the bus totals, one row per subscription (pattern, policy, capacity,
//!   length, high-water mark, delivered, dropped, lagged) and one row per
//!   handler of an `evbus-dispatch` dispatcher.
//! - [`Snapshot::to_prometheus_text`]: Prometheus text format 0.0.4.
//! - Feature `metrics`: `MetricsMirror` mirrors snapshots into the
//!   [`metrics`](https://docs.rs/metrics) facade, each series registered once.
//! - Feature `tracing`: the core emits `tracing` events on subscribe,
//!   unsubscribe, the first drop after a clean period, and shutdown.
//! - Feature `latency`: publish-to-receive latency, sampled 1 event in N,
//!   recorded into per-thread HDR histograms and merged into the snapshot
//!   (p50, p95, p99, p99.9, max per subscription).
//!
//! Every feature is off by default, and off means absent: the core's hot
//! path compiles to the same code as without this crate.
//!
//! # Costs
//!
//! Measured with `benches/callgrind.sh` (instructions per publish, K = 4
//! subscriptions drained in bursts of 64; K = 0 in brackets):
//!
//! | build | instructions per publish |
//! |---|---|
//! | no feature (what CI measures) | 548.5 (31.8), unchanged by this crate |
//! | core `tracing` | 548.6 (31.8): a loss pays one relaxed load, and one event per drop episode |
//! | core `latency`, sampling off | 579.5 (31.8): one `Option` check per push and per pop |
//! | both | 575.7 (34.8) |
//!
//! Latency sampling is therefore two switches: the cargo feature (off =
//! zero cost) and, at run time, [`Bus::set_latency_sampling`] (off by
//! default). A sampled event costs two clock reads, a send-time write next
//! to its slot, and one record into the receiving thread's own histogram;
//! the publisher never touches a histogram.
//!
//! [`Bus::set_latency_sampling`]: https://docs.rs/evbus-core/latest/evbus_core/struct.Bus.html#method.set_latency_sampling
//!
//! # Example
//!
//! ```
//! # use evbus_core::{Bus, Event, EventKind};
//! # #[derive(Debug, Clone, Copy, PartialEq, Eq)]
//! # enum Kind { Ping }
//! # impl EventKind for Kind {
//! #     const ALL: &'static [Self] = &[Kind::Ping];
//! #     fn topic(self) -> &'static str { "net.ping" }
//! #     fn index(self) -> usize { 0 }
//! # }
//! # #[derive(Debug, Clone)]
//! # struct Ping;
//! # impl Event for Ping {
//! #     type Kind = Kind;
//! #     fn kind(&self) -> Kind { Kind::Ping }
//! # }
//! use evbus_metrics::Snapshot;
//!
//! let bus = Bus::<Ping>::new();
//! let mut sub = bus.subscribe("net.*")?;
//! bus.publish(Ping).unwrap();
//! sub.try_recv().unwrap();
//!
//! let text = Snapshot::capture(&bus).to_prometheus_text();
//! assert!(text.contains("evbus_subscription_received_total{subscription=\"net.*\",id=\"1\"} 1\n"));
//! # Ok::<(), evbus_core::SubscribeError>(())
//! ```
#![warn(missing_docs)]
#![deny(unsafe_code)]
#![doc(test(no_crate_inject, attr(deny(warnings))))]

#[cfg(feature = "metrics")]
mod facade;
#[cfg(feature = "latency")]
mod latency;
mod prometheus;
mod series;
mod snapshot;

#[cfg(feature = "metrics")]
pub use crate::facade::MetricsMirror;
#[cfg(feature = "latency")]
pub use crate::latency::LatencyHistograms;
pub use crate::{
    prometheus::CONTENT_TYPE,
    snapshot::{BusTotals, LatencySummary, Policy, Snapshot, SubscriptionSnapshot},
};
