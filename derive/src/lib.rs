//! `#[derive(Event)]` for evbus: writes the kind enum of an event type, its
//! table of kinds and their topics, and checks every topic at compile time.
//!
//! Use it through the facade, `evbus::Event` (feature `derive`, on by
//! default), the way serde's derives come with `serde`: the derive macro and
//! the [`Event`](https://docs.rs/evbus/latest/evbus/trait.Event.html) trait
//! share the name, so one `use evbus::Event;` brings both.
//!
//! # Example
//!
//! ```
//! use evbus::{Bus, Event, EventKind};
//!
//! #[derive(Debug, Clone, PartialEq, Event)]
//! enum Order {
//!     #[event(topic = "orders.placed")]
//!     Placed { id: u64 },
//!     #[event(topic = "orders.paid")]
//!     Paid { id: u64, cents: u64 },
//!     #[event(topic = "payments.failed")]
//!     PaymentFailed { id: u64, reason: String },
//! }
//!
//! // The derive wrote `OrderKind`, one kind per variant, in order:
//! assert_eq!(OrderKind::ALL, [OrderKind::Placed, OrderKind::Paid, OrderKind::PaymentFailed]);
//! assert_eq!(OrderKind::Paid.topic(), "orders.paid");
//! assert_eq!(OrderKind::PaymentFailed.index(), 2);
//! assert_eq!(Order::Paid { id: 7, cents: 250 }.kind(), OrderKind::Paid);
//! let failed = Order::PaymentFailed { id: 7, reason: "card declined".into() };
//! assert_eq!(failed.kind().topic(), "payments.failed");
//!
//! let bus = Bus::<Order>::new();
//! let mut orders = bus.subscribe("orders.*")?;
//! bus.publish(Order::Placed { id: 7 }).unwrap();
//! assert_eq!(orders.try_recv(), Ok(Order::Placed { id: 7 }));
//! # Ok::<(), evbus::SubscribeError>(())
//! ```
//!
//! The attributes, what the derive generates and what it checks are
//! described on the [`Event`](derive@Event) derive macro itself, so that
//! they show in the facade's documentation too.
#![warn(missing_docs)]
#![doc(test(no_crate_inject, attr(deny(warnings))))]

mod attrs;
mod expand;
mod naming;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives `Event` for a struct or an enum, and writes its kind enum.
///
/// See the [`evbus_derive` crate documentation](crate) for a first example.
///
/// # What it generates
///
/// For a type `T`, the derive writes:
///
/// - `TKind`, a field-less enum with one variant per variant of `T` (named
///   the same, in the same order), deriving `Debug, Clone, Copy, PartialEq,
///   Eq, Hash`, with the visibility of `T` and each variant documented with
///   its topic;
/// - `impl EventKind for TKind`: `ALL` lists every kind in declaration
///   order, `topic` returns the kind's topic and `index` its position in
///   `ALL`;
/// - `impl Event for T`, whose `kind` maps each variant to its kind. A
///   generic `T` keeps its parameters and bounds; `TKind` is never generic.
///
/// Because the derive writes `ALL` from the variants, no kind can be left out
/// of it, and `Bus::new` cannot reject the table.
///
/// # Attributes
///
/// On the type:
///
/// - `#[event(topic = "a.b")]` (struct only): the topic of the struct's one
///   kind. Its kind enum has one variant, named like the struct.
/// - `#[event(prefix = "plan")]`: a variant without a `topic` of its own is
///   published on the prefix, a dot and the variant's name in snake case
///   (`PhaseChanged` → `plan.phase_changed`, `HTTPRequest` →
///   `plan.http_request`). On a struct, the struct's name is used the same
///   way.
/// - `#[event(kind = "Name")]`: the name of the kind enum instead of `TKind`.
/// - `#[event(crate = "path")]`: the path of the runtime crate, `::evbus` by
///   default. Code that depends on `evbus-core` alone writes
///   `#[event(crate = "evbus_core")]`.
///
/// On a variant: `#[event(topic = "a.b")]`, which overrides the prefix.
///
/// ```
/// use evbus::{Event, EventKind};
///
/// #[derive(Debug, Clone, PartialEq, Event)]
/// #[event(prefix = "plan")]
/// pub enum Plan {
///     Created { id: u64 },
///     PhaseChanged { id: u64, phase: u8 },
///     #[event(topic = "audit.plan_cancelled")]
///     Cancelled { id: u64 },
/// }
/// let events = [
///     Plan::Created { id: 1 },
///     Plan::PhaseChanged { id: 1, phase: 2 },
///     Plan::Cancelled { id: 1 },
/// ];
/// let topics: Vec<&str> = events.iter().map(|event| event.kind().topic()).collect();
/// assert_eq!(topics, ["plan.created", "plan.phase_changed", "audit.plan_cancelled"]);
///
/// /// One kind, one topic.
/// #[derive(Debug, Clone, PartialEq, Event)]
/// #[event(topic = "system.heartbeat")]
/// pub struct Heartbeat {
///     pub seq: u64,
/// }
/// assert_eq!(HeartbeatKind::ALL, [HeartbeatKind::Heartbeat]);
/// assert_eq!(Heartbeat { seq: 1 }.kind().topic(), "system.heartbeat");
/// ```
///
/// # Compile-time checks
///
/// Every topic is checked with the topic rules of `evbus::topic` (the same
/// code as at run time), and a broken rule is a compile error with the
/// message `Bus::try_new` would give, pointing at the attribute:
///
/// ```text
/// error: kind topic "orders..paid" is invalid: topic segment 1 is empty
///  --> src/main.rs:5:21
///   |
/// 5 |     #[event(topic = "orders..paid")]
///   |                     ^^^^^^^^^^^^^^
/// ```
///
/// Two kinds with one topic, a variant with neither a topic nor a prefix,
/// an unknown attribute key, an empty enum and a union are compile errors
/// too.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
