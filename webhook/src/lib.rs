//! Signed webhooks for evbus: deliver events to other systems over HTTP,
//! signed per the [Standard Webhooks] specification, with retries, circuit
//! breaking, tenant and tag routing, rate limits, and a journal of every
//! attempt.
//!
//! [Standard Webhooks]: https://www.standardwebhooks.com/
//!
//! - [`Webhooks`] is the deliverer. [`Endpoint`]s are registered at run
//!   time with a URL, signing [`Secret`]s, topic [`Pattern`]s, a tenant and
//!   tag filter, a [`RateLimit`], a timeout, a [`RetryPolicy`] (the
//!   dispatcher's: capped exponential backoff with jitter) and a
//!   [`BreakerPolicy`]. [`Webhooks::send`] (or [`Webhooks::forward`] from a
//!   bus subscription) queues an [`Envelope`] for every endpoint whose
//!   filter it passes.
//! - The [`sign`] module signs (`webhook-id`, `webhook-timestamp`,
//!   `webhook-signature: v1,<base64 HMAC-SHA256>`) and verifies; a
//!   [`Receiver`] wraps a [`Verifier`] for the receiving side, with
//!   deduplication by `webhook-id` and an [`Alert`] hook for rejected
//!   signatures.
//! - Every attempt is an [`Attempt`] record in an evbus journal, and so is
//!   every [`DeadLetter`]; [`Webhooks::attempts`] and [`read_attempts`] query
//!   them, [`Webhooks::replay_dead_letters`] sends dead letters again.
//! - [`Webhooks::stats`] has per-endpoint counters and latency summaries
//!   ([`Stats::to_prometheus_text`] renders them); [`Webhooks::alerts`]
//!   signals failing endpoints.
//!
//! Queue delivery to other systems (rather than HTTP callbacks) goes
//! through the NATS bridge (crate `evbus-nats`), not through this crate.
//!
//! # Hello webhooks
//!
//! ```no_run
//! use evbus_core::{Envelope, Pattern};
//! use evbus_journal::{Journal, JournalOptions};
//! use evbus_webhook::{Endpoint, Secret, Webhooks};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let journal = Journal::create("/var/lib/svc/webhooks", JournalOptions::new())?;
//! let webhooks = Webhooks::builder(journal).build()?;
//! let secret: Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?;
//! webhooks.register(
//!     Endpoint::builder("acme", "https://hooks.acme.example/evbus")
//!         .secret(secret)
//!         .topic(Pattern::parse("plugins.>")?)
//!         .tenant("acme")
//!         .build()?,
//! )?;
//! let report = webhooks.send(&Envelope::on("plugins.released", "search 2.0")?.with_tenant("acme"))?;
//! assert_eq!(report.queued, 1);
//! webhooks.wait_idle().await;
//! # Ok(()) }
//! ```
//!
//! # Delivery
//!
//! Each event accepted for an endpoint runs as its own task on the tokio
//! runtime. An endpoint has its own queue bound (events accepted and not
//! finished; past it an event is dead-lettered as `queue full`, so `send`
//! never waits), its own request concurrency, token bucket and breaker, so
//! a slow or dead endpoint holds back nothing but itself. Order within an
//! endpoint is not kept: a retry overtakes nothing and waits for nothing.
//!
//! An attempt succeeds on a 2xx response. Anything else (another status, a
//! timeout, a refused or dropped connection, an open breaker) fails it; a
//! failed attempt is retried after the [`RetryPolicy`]'s delay, or after
//! `Retry-After` (seconds or an HTTP date) on a 429 or 503 when that is
//! longer (capped by [`EndpointBuilder::max_retry_after`]). After
//! `max_attempts` attempts the event is dead-lettered. The default policy
//! ([`default_retry`]) makes 3 retries: 0.5 s, 1 s, 2 s, each shortened by up
//! to 20 % at random. The `webhook-id` (`msg_<event id>`) is the same on
//! every attempt and every replay, so receivers deduplicate by it.
//!
//! The body is JSON: `type` (the topic), `id`, `time` (ns since the
//! epoch), `correlation_id`, `tenant`, `tags`, `data` (the payload). A
//! payload whose `Serialize` fails or panics is refused by
//! [`Webhooks::send`] with [`Error::Serialize`] (the panic is contained)
//! and counted in [`Webhooks::serialize_errors`]; [`Webhooks::forward`]
//! skips it and goes on. Delivery tasks hold only the encoded body, never
//! the payload; the forwarding thread drops each envelope after sending it,
//! and a payload whose `Drop` panics there is counted in
//! [`Webhooks::drop_panics`] (the panic is contained, the thread goes on).
//! A contained panic still runs the process's panic hook (by default it
//! prints), as for a panicking tokio task; this crate sets no hook.
//!
//! # Time
//!
//! Backoff, attempt timeouts, rate limits, breaker periods and alert
//! windows read the injected [`Clock`] (default [`SystemClock`]); with a
//! [`ManualClock`] a test moves time by hand and no sleep is real. The
//! signing timestamp is the wall clock (receivers compare it with theirs).
//!
//! # Duplicates
//!
//! An endpoint remembers the event ids (or idempotency keys, when set) it
//! was given, the last 100 000 by default: the same event or key sent
//! again is not delivered again and counts as `delivery_duplicate_total`.
//! A receiver can still see an event twice if a response is lost after the
//! receiver acted on it; [`Receiver`] flags those (`Received::duplicate`).
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
    deliver::{SendReport, Webhooks, WebhooksBuilder, webhook_id},
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

#[cfg(doc)]
use evbus_core::{Envelope, Pattern};

/// The handles are `Send + Sync`, checked at compile time.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Webhooks>();
    send_sync::<Receiver>();
    send_sync::<Verifier>();
    send_sync::<Error>();
};
