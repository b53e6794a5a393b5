//! evbus-metrics: observability for an evbus [`Bus`](evbus_core::Bus).
//!
//! Most users reach this crate as `evbus::metrics`, with the `evbus`
//! feature `metrics`; the examples here are written that way.
//!
//! - [`Snapshot`]: a plain struct (serde `Serialize` + `Deserialize`) with
//!   the bus totals, one row per subscription (filter, overflow policy,
//!   capacity, queued, high-water mark, delivered, dropped, lagged) and,
//!   with feature `dispatch`, one row per handler of an `evbus-dispatch`
//!   dispatcher.
//! - [`Snapshot::to_prometheus_text`]: Prometheus text format 0.0.4.
//! - Feature `dispatch`: handler rows (`Snapshot::with_handlers`). Without
//!   it this crate does not depend on the handler runtime. The `evbus`
//!   facade always turns it on.
//! - Feature `metrics-facade`: `MetricsMirror` mirrors snapshots into the
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
//! What `tracing` and `latency` add to a publish, in callgrind instructions,
//! is measured in the repository's [`BENCHMARKS.md`], "Cost of the
//! observability features"; that file is the one source for these figures.
//! In short: with the cargo feature off there is nothing to pay, and
//! latency sampling is two switches, the cargo feature and, at run time,
//! [`Bus::set_latency_sampling`] (off by default). A sampled event costs two
//! clock reads, a send-time write next to its slot, and one record into the
//! receiving thread's own histogram; the publisher never touches a
//! histogram.
//!
//! [`BENCHMARKS.md`]: https://github.com/evbus/evbus/blob/main/BENCHMARKS.md#cost-of-the-observability-features
//! [`Bus::set_latency_sampling`]: https://docs.rs/evbus/latest/evbus/struct.Bus.html#method.set_latency_sampling
//!
//! # Example
//!
//! ```
//! # use evbus::{Bus, Event, EventKind};
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
//! use evbus::metrics::Snapshot;
//!
//! let bus = Bus::<Ping>::new();
//! let mut sub = bus.subscribe("net.*")?;
//! bus.publish(Ping).unwrap();
//! sub.try_recv().unwrap();
//!
//! let text = Snapshot::capture(&bus).to_prometheus_text();
//! assert!(text.contains("evbus_subscription_received_total{subscription=\"net.*\",id=\"1\"} 1\n"));
//! # Ok::<(), evbus::SubscribeError>(())
//! ```
#![warn(missing_docs)]
#![deny(unsafe_code)]
#![doc(test(no_crate_inject, attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "metrics-facade")]
mod facade;
#[cfg(feature = "latency")]
mod latency;
mod prometheus;
mod series;
mod snapshot;

#[cfg(feature = "metrics-facade")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics-facade")))]
pub use crate::facade::MetricsMirror;
#[cfg(feature = "latency")]
#[cfg_attr(docsrs, doc(cfg(feature = "latency")))]
pub use crate::latency::LatencyHistograms;
pub use crate::{
    prometheus::CONTENT_TYPE,
    snapshot::{BusTotals, LatencySummary, Policy, Snapshot, SubscriptionSnapshot},
};
