//! The std/loom synchronization shim.
//!
//! Every atomic, lock, cell and snapshot in this crate comes from here, never
//! straight from `std::sync`. Under `--cfg evbus_loom` the same names resolve
//! to loom's model-checked versions, so the loom models in `loom-tests/` see
//! every synchronizing operation the real code performs.
//!
//! Two dependencies are invisible to loom and are swapped for stand-ins under
//! the cfg:
//! - `arc_swap::ArcSwap` becomes a `Mutex<Arc<T>>` ([`SnapshotCell`]), the
//!   same strategy arc-swap's own `RwLock` test strategy uses;
//! - `arc_swap::Cache` becomes a cache that always reloads ([`SnapshotCache`]).
//!
//! Miri gets the same snapshot stand-ins: arc-swap's hybrid strategy casts
//! integers to pointers on a contended path, which Miri cannot check under
//! `-Zmiri-strict-provenance` (it stops with "unsupported operation" when a
//! test happens to take that path). Miri's job here is evbus's own unsafe
//! code, in the rings, which it still runs with strict provenance.
//!
//! Known gaps under loom: `Condvar::wait_timeout` never times out (loom does
//! not model time), so the models exercise only the notified path of a timed
//! wait.

/// For immutable data that is part of no protocol (names, patterns): always
/// std's `Arc`, so it works as a map key and loom does not track it.
pub(crate) use std::sync::Arc as StdArc;
#[cfg(not(evbus_loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(evbus_loom))]
pub(crate) mod atomic {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
}

#[cfg(evbus_loom)]
pub(crate) use loom::sync::Arc;
#[cfg(evbus_loom)]
pub(crate) mod atomic {
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
}

pub(crate) use self::{
    cell::UnsafeCell,
    lock::{Condvar, Mutex, MutexGuard},
    snapshot::{SnapshotCache, SnapshotCell},
};

#[cfg(not(evbus_loom))]
mod cell {
    /// `std::cell::UnsafeCell` with loom's closure-based API.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        /// Gives `f` a shared raw pointer to the contents.
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Gives `f` a unique raw pointer to the contents.
        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(evbus_loom)]
mod cell {
    pub(crate) use loom::cell::UnsafeCell;
}

mod lock {
    use std::time::Duration;

    #[cfg(not(evbus_loom))]
    use std::sync as imp;

    #[cfg(evbus_loom)]
    use loom::sync as imp;

    pub(crate) use imp::MutexGuard;

    /// A mutex that does not poison: evbus never holds a lock across user
    /// code, so a panic cannot leave the protected data half-updated.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(imp::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(imp::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
    }

    /// A condition variable paired with [`Mutex`], also non-poisoning.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(imp::Condvar);

    impl Condvar {
        /// Waits for a notification, or at most `timeout` when one is given.
        ///
        /// Spurious wake-ups are possible; callers re-check their condition.
        pub(crate) fn wait<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            timeout: Option<Duration>,
        ) -> MutexGuard<'a, T> {
            match timeout {
                None => self.0.wait(guard).unwrap_or_else(|p| p.into_inner()),
                Some(dur) => {
                    self.0
                        .wait_timeout(guard, dur)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            }
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

#[cfg(not(any(evbus_loom, miri)))]
mod snapshot {
    use std::{fmt, sync::Arc};

    use arc_swap::ArcSwap;

    /// An atomically replaceable `Arc<T>`: lock-free reads, RCU updates.
    ///
    /// Replaced snapshots are *retired*, not dropped: the cell keeps them
    /// until only it holds them, and frees them on a later update. So the
    /// last reference to a snapshot is always released by a writer, never
    /// by a publisher's cache: freeing memory that another thread allocated
    /// can block on that thread's allocator arena, which showed up as 50 µs
    /// publish stalls while another thread subscribed in a loop.
    pub(crate) struct SnapshotCell<T> {
        current: Arc<ArcSwap<T>>,
        retired: super::Mutex<Vec<Arc<T>>>,
    }

    impl<T> SnapshotCell<T> {
        pub(crate) fn new(value: Arc<T>) -> Self {
            Self {
                current: Arc::new(ArcSwap::new(value)),
                retired: super::Mutex::new(Vec::new()),
            }
        }

        /// Loads the current snapshot: an arc-swap `load`, which borrows a
        /// debt slot instead of touching the shared reference count.
        pub(crate) fn load(&self) -> arc_swap::Guard<Arc<T>> {
            self.current.load()
        }

        /// Read-copy-update: `f` maps the current snapshot to its successor
        /// and is re-run if another update won the race, so no update is
        /// lost. Returns the snapshot `f` was applied to last.
        pub(crate) fn rcu(&self, f: impl FnMut(&Arc<T>) -> Arc<T>) -> Arc<T> {
            let old = self.current.rcu(f);
            self.retire(&old);
            old
        }

        /// Keeps `old` until only this cell holds it, and frees the
        /// snapshots that reached that point. A writer-side lock: publishers
        /// never take it.
        ///
        /// The freed snapshots are dropped after the lock is released: a
        /// snapshot's drop can drop a ring and its buffered events, whose
        /// `Drop` is user code that may update this same registry (a
        /// re-entrant update would deadlock on the lock) or panic (which
        /// is raised again only after every freed snapshot is dropped).
        fn retire(&self, old: &Arc<T>) {
            let mut freed = Vec::new();
            {
                let mut retired = self.retired.lock();
                // After the swap, arc-swap has turned every reader's debt on
                // a replaced snapshot into a counted reference, so a count of
                // one means no reader can reach it any more.
                retired.retain(|a| {
                    let keep = Arc::strong_count(a) > 1;
                    if !keep {
                        freed.push(Arc::clone(a));
                    }
                    keep
                });
                if !retired.iter().any(|a| Arc::ptr_eq(a, old)) {
                    retired.push(Arc::clone(old));
                }
            }
            let mut panic = crate::unwind::FirstPanic::new();
            for snapshot in freed {
                panic.drop(snapshot);
            }
            panic.resume();
        }

        pub(crate) fn cache(&self) -> SnapshotCache<T> {
            SnapshotCache(arc_swap::Cache::new(Arc::clone(&self.current)))
        }
    }

    impl<T> fmt::Debug for SnapshotCell<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.pad("SnapshotCell { .. }")
        }
    }

    /// A per-owner cache of a [`SnapshotCell`]: a hit costs one relaxed
    /// pointer compare instead of an arc-swap load.
    pub(crate) struct SnapshotCache<T>(arc_swap::Cache<Arc<ArcSwap<T>>, Arc<T>>);

    impl<T> SnapshotCache<T> {
        #[inline]
        pub(crate) fn load(&mut self) -> &Arc<T> {
            self.0.load()
        }
    }

    impl<T> Clone for SnapshotCache<T> {
        fn clone(&self) -> Self {
            Self(self.0.clone())
        }
    }

    impl<T> fmt::Debug for SnapshotCache<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.pad("SnapshotCache { .. }")
        }
    }
}

#[cfg(any(evbus_loom, miri))]
mod snapshot {
    use std::fmt;

    use super::{Arc, Mutex};

    /// Loom (and Miri) stand-in for `ArcSwap<T>`: a `Mutex<Arc<T>>`. Every
    /// load and update is a modelled lock acquisition, so loom explores the
    /// interleavings of snapshot readers and writers.
    pub(crate) struct SnapshotCell<T>(Arc<Mutex<Arc<T>>>);

    impl<T> SnapshotCell<T> {
        pub(crate) fn new(value: Arc<T>) -> Self {
            Self(Arc::new(Mutex::new(value)))
        }

        pub(crate) fn load(&self) -> Arc<T> {
            Arc::clone(&self.0.lock())
        }

        /// Same contract as arc-swap's `rcu`: `f` runs on a copy of the
        /// current value outside the lock and is re-run if the value changed
        /// meanwhile.
        pub(crate) fn rcu(&self, mut f: impl FnMut(&Arc<T>) -> Arc<T>) -> Arc<T> {
            let mut cur = self.load();
            loop {
                let new = f(&cur);
                let mut guard = self.0.lock();
                if Arc::ptr_eq(&guard, &cur) {
                    return std::mem::replace(&mut *guard, new);
                }
                cur = Arc::clone(&guard);
            }
        }

        pub(crate) fn cache(&self) -> SnapshotCache<T> {
            SnapshotCache {
                cell: SnapshotCell(Arc::clone(&self.0)),
                current: None,
            }
        }
    }

    impl<T> fmt::Debug for SnapshotCell<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.pad("SnapshotCell { .. }")
        }
    }

    /// Loom stand-in for `arc_swap::Cache`: reloads on every call, which is
    /// the most pessimistic cache (it never serves a stale snapshot longer
    /// than the real one may).
    pub(crate) struct SnapshotCache<T> {
        cell: SnapshotCell<T>,
        current: Option<Arc<T>>,
    }

    impl<T> SnapshotCache<T> {
        pub(crate) fn load(&mut self) -> &Arc<T> {
            self.current.insert(self.cell.load())
        }
    }

    impl<T> Clone for SnapshotCache<T> {
        fn clone(&self) -> Self {
            Self {
                cell: SnapshotCell(Arc::clone(&self.cell.0)),
                current: None,
            }
        }
    }

    impl<T> fmt::Debug for SnapshotCache<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.pad("SnapshotCache { .. }")
        }
    }
}

#[cfg(not(evbus_loom))]
pub(crate) use crossbeam_utils::Backoff;

/// Loom stand-in for `crossbeam_utils::Backoff`: every step yields to the
/// model scheduler, so loom can interleave the thread being waited for.
#[cfg(evbus_loom)]
#[derive(Debug, Default)]
pub(crate) struct Backoff(std::cell::Cell<u32>);

#[cfg(evbus_loom)]
impl Backoff {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn spin(&self) {
        self.snooze();
    }

    pub(crate) fn snooze(&self) {
        self.0.set(self.0.get().saturating_add(1));
        loom::thread::yield_now();
    }

    pub(crate) fn is_completed(&self) -> bool {
        self.0.get() > 2
    }
}

/// Lets other threads run: `std::thread::yield_now`, or loom's under the
/// model, so that the model can interleave the thread being waited for.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(not(evbus_loom))]
    std::thread::yield_now();
    #[cfg(evbus_loom)]
    loom::thread::yield_now();
}

/// Declares a thread-local with a `const` initializer: std's
/// `thread_local!`, or loom's under the model (loom runs its threads on one
/// OS thread, so a model needs loom's own thread-locals; loom's macro takes
/// no `const` block, and evaluates the initializer per modelled thread).
#[cfg(not(evbus_loom))]
macro_rules! thread_local_shim {
    ($(#[$attr:meta])* static $name:ident: $t:ty = const $init:block;) => {
        std::thread_local! { $(#[$attr])* static $name: $t = const $init; }
    };
}
#[cfg(evbus_loom)]
macro_rules! thread_local_shim {
    ($(#[$attr:meta])* static $name:ident: $t:ty = const $init:block;) => {
        loom::thread_local! { $(#[$attr])* static $name: $t = $init; }
    };
}
pub(crate) use thread_local_shim as thread_local;
