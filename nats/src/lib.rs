//! A bridge between an evbus bus and NATS JetStream: one bus across
//! processes and machines.
//!
//! A [`Bridge`] connects a local `Bus<Envelope<T>>` to a JetStream stream:
//!
//! - **Export.** It subscribes to local patterns (lossless by default, see
//!   [`ExportMode`]) and publishes each envelope on the subject
//!   `<prefix>.<topic>` with the envelope id as `Nats-Msg-Id`, so the
//!   server drops a retried publish as a duplicate. At most
//!   [`max_in_flight`](BridgeConfig::max_in_flight) publishes wait for
//!   their acknowledgements; one that times out is sent again.
//! - **Import.** A durable pull consumer per [`ImportSpec`] feeds the
//!   local bus. A message is acknowledged only after the local publish
//!   returned (at-least-once); a redelivery of an envelope id delivered
//!   within the dedupe window is acknowledged and dropped; a local publish
//!   that blocks on a lossless subscriber stops the pulls instead of
//!   dropping.
//! - **No loops.** Every message carries its bridge's origin in the
//!   `Evbus-Origin` header; an importer skips its own, and the exporter
//!   never exports an envelope its bridge imported. Two processes that
//!   bridge the same patterns both ways see each event once.
//! - **Setup.** [`ensure_stream`] creates the stream or checks it, with a
//!   [`SetupError::Conflict`] that lists every field that disagrees.
//! - **State.** [`Bridge::state`], [`Bridge::watch_state`] and
//!   [`Bridge::stats`] report connected / reconnecting / lagging and the
//!   counters ([`BridgeStats`], serde; Prometheus text with
//!   [`BridgeStats::to_prometheus_text`]).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use evbus::{Bus, Envelope};
//! use evbus::nats::{Bridge, BridgeConfig};
//! # use evbus::{Event, EventKind};
//! # #[derive(Debug, Clone, Copy, PartialEq, Eq)]
//! # enum Kind { Placed }
//! # impl EventKind for Kind {
//! #     const ALL: &'static [Self] = &[Kind::Placed];
//! #     fn topic(self) -> &'static str { "orders.placed" }
//! #     fn index(self) -> usize { 0 }
//! # }
//! # impl Event for Placed { type Kind = Kind; fn kind(&self) -> Kind { Kind::Placed } }
//!
//! #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
//! struct Placed { order: u64 }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = Bus::<Envelope<Placed>>::new();
//! let config = BridgeConfig::new("EVBUS")
//!     .export("orders.>")
//!     .import("billing-service", "orders.>");
//! let bridge = Bridge::connect("nats://127.0.0.1:4222", &bus, config).await?;
//! bus.publish(Envelope::new(Placed { order: 7 }))?;
//! bridge.flush(Duration::from_secs(5)).await?;
//! println!("{:?}", bridge.stats());
//! Ok(())
//! }
//! ```
//!
//! # Delivery guarantee
//!
//! At-least-once from a local publish to JetStream (for a lossless export,
//! while the bridge runs: events in the export ring die with the process;
//! those given up when the bridge is dropped, or its shutdown times out,
//! are counted in [`ExportStats::abandoned`]), and at-least-once from JetStream to the importing bus. Within
//! the server's duplicate window, a republished envelope id is stored once;
//! within the importer's dedupe window, a redelivered one is published
//! locally once. A redelivery to a *new* process (the importer crashed
//! between the local publish and the acknowledgement) is delivered again:
//! make such handlers idempotent by envelope id.
//!
//! Ordering: the events of one publisher on one bridge reach the stream in
//! publish order unless a publish is retried (a retry can land after
//! publishes that were in flight with it; `max_in_flight(1)` removes that).
//!
//! # Payloads that fail
//!
//! A payload whose `Serialize` returns an error or panics is not exported:
//! it counts in [`ExportStats::failed`] and is reported as
//! [`ExportError::Encode`]; the export goes on with the next event. On the
//! importing side, a `Deserialize` that fails or panics rejects the message
//! ([`ImportError::Decode`]), and a local publish that panics (the
//! payload's `Clone`, when the bus clones for several subscribers) is
//! reported as [`ImportError::Panicked`]; both count in
//! [`ImportStats::rejected`] and terminate the message on the server (a
//! redelivery would fail again). A payload whose `Drop` panics where the
//! bridge drops it (the export task, after encoding or skipping an event;
//! the importer, for a duplicate, a topic mismatch, or an event left over
//! when the bus or the bridge closes) is reported as
//! [`ExportError::DropPanicked`] or [`ImportError::DropPanicked`] and
//! counted in [`ExportStats::drop_panics`] or [`ImportStats::drop_panics`];
//! the event is handled as it would be otherwise, and the export and
//! import go on. Panics are contained with `catch_unwind`; the process's
//! panic hook still runs (by default it prints them), as for a panicking
//! tokio task: the bridge neither installs nor swaps a hook, which is the
//! application's to set. A `Clone` that panics on the
//! exporting side panics in the local publisher, as the bus documents.
//!
//! # Wire format
//!
//! The message body is the envelope as JSON (its serde form: one flat
//! record with `id`, `time`, `topic`, ..., `payload`): self-describing,
//! readable with the `nats` tool, and decodable by non-Rust consumers. The
//! headers are `Nats-Msg-Id: <envelope id>` and `Evbus-Origin: <origin>`.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![doc(test(no_crate_inject, attr(deny(warnings))))]

mod bridge;
mod config;
mod dedupe;
mod error;
mod export;
mod import;
#[doc(hidden)]
pub mod peer;
mod prometheus;
pub mod server;
mod setup;
mod state;
pub mod subject;
mod sync;
mod unwind;

pub use crate::{
    bridge::Bridge,
    config::{BridgeConfig, ExportMode, ImportSpec, Retention, Storage, StreamSpec},
    error::{
        BridgeError, ExportError, FlushTimeout, ImportError, Mismatch, SetupError, StartError,
        SubjectError,
    },
    export::{MSG_ID_HEADER, ORIGIN_HEADER},
    prometheus::CONTENT_TYPE,
    setup::ensure_stream,
    state::{BridgeState, BridgeStats, ExportStats, ImportStats, StatsHandle},
};
/// The NATS client crate the bridge uses, for connection options and raw
/// access.
pub use async_nats;
