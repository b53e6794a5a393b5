//! Typed events and their closed kind enums.

use std::fmt::Debug;

/// A closed set of event kinds, each published on its own topic.
///
/// Implement it for a field-less enum. `ALL` lists every kind once, and
/// `index` returns the kind's position in `ALL` (for a field-less enum,
/// `self as usize`). [`Bus::try_new`](crate::Bus::try_new) checks both, and
/// that every topic is valid and distinct.
///
/// ```
/// use evbus::EventKind;
///
/// #[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// enum OrderKind { Placed, Cancelled }
///
/// impl EventKind for OrderKind {
///     const ALL: &'static [Self] = &[OrderKind::Placed, OrderKind::Cancelled];
///     fn topic(self) -> &'static str {
///         match self {
///             OrderKind::Placed => "orders.placed",
///             OrderKind::Cancelled => "orders.cancelled",
///         }
///     }
///     fn index(self) -> usize { self as usize }
/// }
/// assert_eq!(OrderKind::ALL.len(), 2);
/// ```
pub trait EventKind: Copy + Eq + Debug + Send + Sync + 'static {
    /// Every kind, each once, in `index` order.
    const ALL: &'static [Self];

    /// The topic events of this kind are published on.
    fn topic(self) -> &'static str;

    /// This kind's position in [`ALL`](EventKind::ALL).
    fn index(self) -> usize;
}

/// An event type that a [`Bus`](crate::Bus) carries.
///
/// Fan-out clones the event once per matching subscriber (the last one gets
/// the original). For large payloads, wrap them in `Arc<T>` so a clone is a
/// reference-count increment.
pub trait Event: Clone + Send + 'static {
    /// The kind enum.
    type Kind: EventKind;

    /// The kind of this event, which decides its topic in
    /// [`Bus::publish`](crate::Bus::publish).
    fn kind(&self) -> Self::Kind;

    /// The replay mark, if a replay published this event rather than its
    /// first publisher. `None` unless the event carries one, as an
    /// [`Envelope`](crate::Envelope) does; handlers read it to skip outbound
    /// effects in a dry run.
    #[inline]
    fn replay_mark(&self) -> Option<crate::ReplayMark> {
        None
    }
}

/// The topic id of `event`'s kind: its `index()`, checked against the kind
/// table. One compare on the publish path, against a constant; `None` for a
/// kind missing from `ALL` (or an index past it), which would otherwise
/// alias another interned topic, or, truncated to 32 bits, kind 0.
#[inline(always)]
pub(crate) fn kind_id<E: Event>(event: &E) -> Option<u32> {
    let index = event.kind().index();
    // `Bus::try_new` interned `ALL` first, as ids `0..ALL.len()`.
    (index < E::Kind::ALL.len()).then_some(index as u32)
}
