//! The atomics of this crate, in one place (see `evbus-core`'s `sync`).
//!
//! The bridge's counters are statistics read by snapshots, never part of a
//! synchronization protocol, so every operation on them is `Relaxed`; the
//! hand-offs between tasks go through tokio channels and `std::sync::Mutex`.

pub(crate) use std::sync::{
    Mutex,
    atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering},
};
