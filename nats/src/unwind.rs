//! Containing panics of user code (a payload's `Serialize`, `Deserialize`,
//! `Clone`, `Drop`) in the tasks and the thread the bridge owns.

/// The text of a panic's payload (a `&str` or `String` message), or a
/// placeholder.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

/// Drops `value`, containing a panic of its `Drop`: `Err` holds the
/// panic's message. A payload dropped in a task or the thread of the
/// bridge goes through here, so a panicking `Drop` ends neither: the
/// caller reports it and goes on with the next message.
pub(crate) fn drop_contained<T>(value: T) -> Result<(), String> {
    // AssertUnwindSafe: the closure owns the value it drops and touches
    // nothing else; a half-dropped value is gone either way.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(value)))
        .map_err(|panic| panic_message(&*panic))
}
