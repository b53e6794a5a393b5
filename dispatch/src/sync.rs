//! The synchronization primitives this crate uses, from one place (as in
//! evbus-core): atomics, and a `Mutex` and `Condvar` that do not poison.
//!
//! The dispatcher never runs user code while it holds one of its own locks
//! with data a panic could corrupt (a handler's body lock is held across its
//! callback, but the callback is `catch_unwind`-contained and the body is
//! consistent at every unwind point). So a poisoned lock carries no
//! information here, and the wrappers below take the guard out of the
//! poison error, as tokio's `loom/std/mutex.rs` does.
//!
//! There is no `evbus_loom` version: the dispatcher's protocols (the run
//! queue's state machine, the timer, shutdown) are not modelled; the loom
//! models cover the core rings beneath it.

use std::{fmt, time::Duration};

pub(crate) use std::sync::{
    MutexGuard,
    atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering},
};

/// A mutex whose `lock` ignores poisoning.
pub(crate) struct Mutex<T: ?Sized>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::sync::Mutex::new(value))
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, blocking while another thread holds the lock.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A condition variable whose waits ignore poisoning.
#[derive(Debug)]
pub(crate) struct Condvar(std::sync::Condvar);

impl Condvar {
    pub(crate) const fn new() -> Self {
        Self(std::sync::Condvar::new())
    }

    /// Waits for a notification (or a spurious wake-up).
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(guard).unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a notification, a spurious wake-up or `timeout`.
    pub(crate) fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> MutexGuard<'a, T> {
        self.0
            .wait_timeout(guard, timeout)
            .unwrap_or_else(|p| p.into_inner())
            .0
    }

    pub(crate) fn notify_one(&self) {
        self.0.notify_one();
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}
