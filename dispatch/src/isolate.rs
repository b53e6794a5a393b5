//! The boundary around user code on the dispatcher's threads.
//!
//! A worker runs more user code than the handler call: the event's `Drop`
//! once it is handled, skipped or abandoned, its `Clone` when a dead letter
//! fans out on the signal bus, the wakers of signal subscribers, the error
//! hook, and the `Drop` of a handler's captured state. A panic in any of
//! them would unwind through the worker loop and end the thread, so every
//! such call goes through [`contain`], as tokio wraps each task poll in
//! `catch_unwind` (`runtime/task/harness.rs`). No dispatcher lock is held
//! around these calls, so user code may call back into the dispatcher.
//!
//! A panic payload is a `Box<dyn Any + Send>` whose `Drop` is user code too:
//! it is dropped inside a guard of its own, and a payload raised by that
//! drop is leaked rather than dropped (tokio's `panic_result_to_join_error`
//! has the same problem and the same answer).

use std::{
    any::Any,
    mem,
    panic::{AssertUnwindSafe, catch_unwind},
};

/// A caught panic's payload.
pub(crate) type Payload = Box<dyn Any + Send>;

/// Runs `f`, catching a panic.
///
/// `AssertUnwindSafe`: after a panic the dispatcher only counts it and
/// carries on; the state `f` touches is either the user's own, or
/// consistent at every point where user code can unwind (see `sync`).
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Payload> {
    catch_unwind(AssertUnwindSafe(f))
}

/// Drops a caught panic's payload, containing a panic raised by its `Drop`
/// (whose own payload is leaked).
pub(crate) fn drop_payload(payload: Payload) {
    if let Err(again) = catch(move || drop(payload)) {
        mem::forget(again);
    }
}

/// Runs `f`, containing a panic; `true` if it panicked.
pub(crate) fn contain(f: impl FnOnce()) -> bool {
    match catch(f) {
        Ok(()) => false,
        Err(payload) => {
            drop_payload(payload);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use std::panic;

    use super::*;

    struct Grenade;

    impl Drop for Grenade {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("payload drop");
            }
        }
    }

    #[test]
    fn contains_a_panic_and_a_payload_that_panics_on_drop() {
        assert!(!contain(|| {}));
        assert!(contain(|| panic!("plain")));
        assert!(contain(|| panic::panic_any(Grenade)));
        assert_eq!(catch(|| 7).ok(), Some(7));
    }
}
