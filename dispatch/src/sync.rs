//! The atomics this crate uses, from one place (as in evbus-core). The
//! dispatcher's protocols are built from mutexes, condition variables and a
//! per-handler state machine; loom models cover the core rings beneath it.

pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
