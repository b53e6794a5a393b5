//! evbus-dispatch: a handler runtime over an [`evbus_core::Bus`].
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod stats;

pub use crate::stats::{HandlerStats, Priority};
