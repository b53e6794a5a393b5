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
