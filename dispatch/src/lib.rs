//! evbus-dispatch: a handler runtime over an [`evbus_core::Bus`].
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod clock;
mod dispatcher;
mod handler;
mod retry;
mod runtime;
mod scheduler;
mod signal;
mod stats;
mod sync;
mod timer;
mod watchdog;

pub use crate::{
    clock::{Clock, ManualClock, SystemClock},
    dispatcher::{
        BuildError, DEFAULT_SHUTDOWN_GRACE, DispatchReport, Dispatcher, DispatcherBuilder,
        RegisterError,
    },
    handler::{HandlerOptions, HandlerResult},
    retry::{RetryPolicy, RetryPolicyBuilder, RetryPolicyError},
    runtime::HandlerFailure,
    signal::{DeadLetter, DepthAlarm, Failure, Signal, SignalKind, StallAlarm},
    stats::{HandlerStats, Priority},
};
