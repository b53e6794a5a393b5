//! The atomics this crate uses (all counters, `Relaxed`).

pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
