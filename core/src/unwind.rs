//! Running user code (an event's `Drop`, a task waker) where a panic must
//! not leave the bus half-updated: each call is contained, the rest still
//! run, and the first panic is raised again once the bus's own work is done.
//!
//! This is tokio's rule for task polls and crossbeam's for wakers: user code
//! runs outside every lock and every counted critical section, and its panic
//! reaches the caller only after the state it could have broken is settled.

use std::{
    any::Any,
    panic::{self, AssertUnwindSafe},
    thread,
};

/// The first panic of a series of contained calls.
#[derive(Default)]
pub(crate) struct FirstPanic(Option<Box<dyn Any + Send>>);

impl FirstPanic {
    pub(crate) fn new() -> Self {
        Self(None)
    }

    /// Runs `f`, keeping its panic if it is the first.
    pub(crate) fn run(&mut self, f: impl FnOnce()) {
        // AssertUnwindSafe: what `f` touches is user data (the value it
        // drops, the waker it wakes) or bus state that is consistent before
        // and after every such call.
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(f)) {
            self.0.get_or_insert(payload);
        }
    }

    /// Drops `value`, containing a panic of its `Drop`.
    pub(crate) fn drop<T>(&mut self, value: T) {
        self.run(move || drop(value));
    }

    /// Raises the first panic again, if there was one, unless this thread is
    /// already unwinding (a second panic would abort the process; the first
    /// one is on its way to the caller).
    pub(crate) fn resume(self) {
        if let Some(payload) = self.0 {
            if !thread::panicking() {
                panic::resume_unwind(payload);
            }
        }
    }
}

impl std::fmt::Debug for FirstPanic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FirstPanic")
            .field(&self.0.is_some())
            .finish()
    }
}
