#![doc = include_str!("../../README.md")]
#![warn(missing_docs)]
#![doc(test(no_crate_inject, attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(inline)]
pub use evbus_core::*;

/// `#[derive(Event)]`: writes the kind enum of an event type and checks its
/// topics at compile time. Feature `derive` (default).
#[cfg(feature = "derive")]
#[cfg_attr(docsrs, doc(cfg(feature = "derive")))]
pub use evbus_derive::Event;

#[doc(inline)]
pub use evbus_dispatch as dispatch;

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
#[doc(inline)]
pub use evbus_metrics as metrics;

#[cfg(feature = "journal")]
#[cfg_attr(docsrs, doc(cfg(feature = "journal")))]
#[doc(inline)]
pub use evbus_journal as journal;

#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
#[doc(inline)]
pub use evbus_webhook as webhook;

#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
#[doc(inline)]
pub use evbus_nats as nats;
