//! Signed webhooks for evbus.
//!
//! The [`sign`] module signs and verifies requests per the Standard
//! Webhooks specification.
#![warn(missing_docs)]
#![deny(unsafe_code)]
#![doc(test(no_crate_inject, attr(deny(warnings))))]

mod breaker;
mod clock;
mod deliver;
mod endpoint;
mod error;
mod receiver;
pub mod record;
pub mod sign;
mod stats;
mod sync;
mod window;

pub use crate::{
    breaker::{BreakerPolicy, BreakerState},
    deliver::{SendReport, Webhooks, WebhooksBuilder, per_second, webhook_id},
    endpoint::{
        Endpoint, EndpointBuilder, EndpointError, EventFilter, MAX_ENDPOINT_NAME, RateLimit,
        default_retry,
    },
    error::Error,
    receiver::{Received, Receiver},
    record::{Attempt, AttemptQuery, DeadLetter, read_attempts, read_dead_letters},
    sign::{Secret, SecretError, Verifier, VerifyError},
    stats::{
        ALERT_CONSECUTIVE_FAILURES, ALERT_FAILURE_RATE, ALERT_MIN_ATTEMPTS, ALERT_WINDOW, Alert,
        CONTENT_TYPE, EndpointStats, Stats,
    },
};
/// The dispatcher's retry policy and clocks, which endpoints use.
pub use evbus_dispatch::{Clock, ManualClock, RetryPolicy, SystemClock};
