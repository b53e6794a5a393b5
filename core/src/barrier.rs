//! Asymmetric barriers for the single-producer protocol (`ring/solo.rs`),
//! the `Block` handshake (`ring/park.rs`, step 6) and the fold of lane drops
//! (`ring/lanes.rs`, step 8).
//!
//! Their handshakes are store-buffering (Dekker) pairs: each side stores,
//! fences, then loads what the other stored. One side runs on every
//! single-producer publish, on every pop of a `Block` ring and on every drop
//! a publisher counts in its lane; the other only when a receiver or a
//! `Block` producer parks, or a subscription closes or leaves the registry. So
//! the frequent side takes a [`light`] barrier and the rare side a [`heavy`] one:
//!
//! - With Linux `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` available,
//!   `light` is only a compiler fence and `heavy` is the system call, which
//!   makes every running thread of the process pass a full memory barrier
//!   before it returns: together they order like two `fence(SeqCst)`. This
//!   is the scheme of userspace RCU and folly's `asymmetricHeavyBarrier`.
//! - Elsewhere (other systems, a kernel or sandbox without the call, Miri,
//!   loom), both are `fence(SeqCst)`.
//!
//! Which one holds is settled by [`init`], before any bus can use them
//! (`Bus::single_producer` and the creation of a `Block` ring call it). It changes once at most: if the
//! system call fails after registration succeeded (a seccomp filter
//! installed later, or a child of `fork()`, whose new address space is not
//! registered), [`heavy`] switches the process to full fences on both sides,
//! takes a full fence itself, and says so once (a `tracing` error with the
//! feature `tracing`, else a line on stderr).
//!
//! What the switch does not cover: a single-producer publish, a `Block` pop
//! or a lane drop that is running on another thread at the moment of the
//! first failure, with only a compiler fence, pairs with that one failed
//! heavy barrier through a full fence on one side only. A parked `Block`
//! producer bounds the cost (it sleeps in slices and re-checks); a lane drop
//! racing that very unsubscribe may be missed by the bus totals (the ring's
//! own counter still has it). In a `fork()` child no such publish exists
//! (only the forking thread is copied); do not `fork()` while a
//! single-producer publish is in flight on the forking thread itself (from a
//! signal handler), and install seccomp filters that deny `membarrier`
//! before the first subscription.

// Straight from std, not the `sync` shim: a process-wide static that exists
// only where loom is off (under loom both barriers are shim fences).
#[cfg(all(target_os = "linux", not(miri), not(evbus_loom)))]
use std::sync::atomic::{AtomicU8, compiler_fence};

use crate::sync::atomic::{Ordering, fence};

#[cfg(all(target_os = "linux", not(miri), not(evbus_loom)))]
mod imp {
    use super::*;

    const UNKNOWN: u8 = 0;
    const ASYMMETRIC: u8 = 1;
    const SYMMETRIC: u8 = 2;

    // The `membarrier(2)` commands (linux/membarrier.h).
    const CMD_QUERY: libc::c_long = 0;
    const CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    /// Process-wide; written by `init` only, before the first barrier.
    static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

    fn membarrier(cmd: libc::c_long) -> libc::c_long {
        // SAFETY: `membarrier` takes two integers (and an unused cpu id) and
        // touches no memory of ours; any failure comes back as -1.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                cmd,
                0 as libc::c_long,
                0 as libc::c_long,
            )
        }
    }

    pub(crate) fn init() {
        // Relaxed: `init` runs before any barrier of a bus whose protocol
        // depends on the mode (the bus is built after it returns, and shared
        // with other threads by a handle that carries happens-before).
        if MODE.load(Ordering::Relaxed) != UNKNOWN {
            return;
        }
        let supported = membarrier(CMD_QUERY);
        let mode = if supported >= 0
            && supported & CMD_PRIVATE_EXPEDITED != 0
            && membarrier(CMD_REGISTER_PRIVATE_EXPEDITED) == 0
        {
            ASYMMETRIC
        } else {
            SYMMETRIC
        };
        // Relaxed: see above. Two racing `init`s compute the same mode.
        MODE.store(mode, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn light() {
        // Relaxed: settled by `init` before any use (see the module docs).
        if MODE.load(Ordering::Relaxed) == ASYMMETRIC {
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }

    #[cold]
    pub(crate) fn heavy() {
        // Relaxed: as in `light`.
        if MODE.load(Ordering::Relaxed) == ASYMMETRIC && membarrier(CMD_PRIVATE_EXPEDITED) == 0 {
            return;
        }
        if MODE.load(Ordering::Relaxed) == ASYMMETRIC {
            // The call failed after registration succeeded: a seccomp filter
            // installed since, or a child of `fork()` (registration belongs
            // to the parent's address space). From now on both sides take
            // full fences. SeqCst: the store and the fence below come
            // before this side's next load in the single total order, and
            // every publish that starts after it sees it (its `light` loads
            // the mode after the epoch store that the closer or parker
            // reads).
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            // Only the first failure switches and reports: the swap elects
            // one reporter.
            if MODE.swap(SYMMETRIC, Ordering::SeqCst) == ASYMMETRIC {
                report_degraded(errno);
            }
        }
        fence(Ordering::SeqCst);
    }
}

/// Says once that the barriers fell back to full fences: a `tracing` error
/// with the feature, else a line on stderr (the process keeps working, but
/// an operator should know that a seccomp filter or a `fork()` took the
/// fast barriers away).
#[cfg(all(target_os = "linux", not(miri), not(evbus_loom)))]
#[cold]
fn report_degraded(errno: i32) {
    #[cfg(feature = "tracing")]
    crate::trace::barrier_degraded(errno);
    #[cfg(not(feature = "tracing"))]
    eprintln!(
        "evbus: membarrier failed (errno {errno}): falling back to full fences; a wake-up \
         racing this moment may be late by up to one 100 ms sleep slice"
    );
}

#[cfg(not(all(target_os = "linux", not(miri), not(evbus_loom))))]
mod imp {
    use super::*;

    pub(crate) fn init() {}

    #[inline]
    pub(crate) fn light() {
        fence(Ordering::SeqCst);
    }

    #[inline]
    pub(crate) fn heavy() {
        fence(Ordering::SeqCst);
    }
}

/// Settles which barriers this process uses; call before building anything
/// that uses [`light`] or [`heavy`].
pub(crate) fn init() {
    imp::init();
}

/// The frequent side of a barrier pair: orders like `fence(SeqCst)` against
/// a [`heavy`] on another thread.
#[inline]
pub(crate) fn light() {
    imp::light();
}

/// The rare side of a barrier pair (see [`light`]).
pub(crate) fn heavy() {
    imp::heavy();
}
