#![doc = include_str!("../../README.md")]
#![warn(missing_docs)]

pub use evbus_core::*;

/// The handler runtime: see [`evbus_dispatch`].
pub use evbus_dispatch as dispatch;
