//! The state a journal's writer shares with the readers, tailers, queries
//! and recorders of its process: the committed position and the active
//! segment's index.

use std::{
    path::PathBuf,
    sync::{Condvar, Mutex, MutexGuard},
    time::Instant,
};

#[cfg(doc)]
use crate::index;
use crate::{codec::Codec, format::Position, index::ActiveIndex};

/// The writer's published progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Committed {
    /// The sequence number the next record gets; records below it (and
    /// not lost to a repair) are readable.
    pub(crate) next_seq: u64,
    /// The end of the last written frame.
    pub(crate) end: Position,
    /// Records below this sequence number are durable under the policy.
    pub(crate) durable_seq: u64,
    /// The writer is gone.
    pub(crate) closed: bool,
}

/// State shared by the writer and in-process readers and tailers.
///
/// # Synchronization protocol
///
/// The writer replaces the whole [`Committed`] under the mutex after each
/// write, then notifies the condition variable if a waiter registered
/// (under the same mutex) in `waiters`; a waiter checks its condition and
/// registers under the mutex before it sleeps, so no wake-up is lost, and
/// the writer makes no `futex` call when nobody waits.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) codec: Codec,
    /// The active segment's index (see [`index`]).
    pub(crate) index: ActiveIndex,
    state: Mutex<Published>,
    changed: Condvar,
}

#[derive(Debug)]
struct Published {
    committed: Committed,
    /// Threads sleeping in `wait_for_seq`.
    waiters: usize,
}

impl Shared {
    pub(crate) fn new(
        dir: PathBuf,
        codec: Codec,
        index: ActiveIndex,
        committed: Committed,
    ) -> Self {
        Shared {
            dir,
            codec,
            index,
            state: Mutex::new(Published {
                committed,
                waiters: 0,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Published> {
        // A panic elsewhere never leaves the state half-written (fields are
        // assigned whole), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The committed position now.
    pub(crate) fn committed(&self) -> Committed {
        self.lock().committed
    }

    pub(crate) fn publish(&self, c: Committed) {
        let mut s = self.lock();
        s.committed = c;
        let wake = s.waiters > 0;
        drop(s);
        if wake {
            self.changed.notify_all();
        }
    }

    /// Waits until a record with sequence number `seq` or later has been
    /// committed, the writer closed, or `deadline` passed (no spinning:
    /// the writer notifies a condition variable). Returns the committed
    /// state then.
    #[allow(dead_code)] // For the tailer.
    pub(crate) fn wait_for_seq(&self, seq: u64, deadline: Option<Instant>) -> Committed {
        let mut s = self.lock();
        while s.committed.next_seq <= seq && !s.committed.closed {
            let timeout = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => break,
                },
            };
            s.waiters += 1;
            s = match timeout {
                None => self.changed.wait(s).unwrap_or_else(|e| e.into_inner()),
                Some(left) => {
                    self.changed
                        .wait_timeout(s, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
            s.waiters -= 1;
        }
        s.committed
    }
}
