//! Per-endpoint counters, latency histograms, alert signals, snapshots and
//! their Prometheus text.

use std::{
    fmt::Write as _,
    sync::Mutex,
    time::{Duration, Instant},
};

use evbus_core::EventId;
use evbus_metrics::LatencySummary;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::{
    breaker::BreakerState,
    sign::VerifyError,
    sync::{AtomicU64, Ordering},
    window::Window,
};

/// The `Content-Type` of [`Stats::to_prometheus_text`] (the one
/// evbus-metrics serves).
pub use evbus_metrics::CONTENT_TYPE;

/// Failed requests in a row above which [`Alert::ConsecutiveFailures`]
/// fires.
pub const ALERT_CONSECUTIVE_FAILURES: u32 = 3;
/// The failure rate above which [`Alert::FailureRate`] fires.
pub const ALERT_FAILURE_RATE: f64 = 0.05;
/// The window of [`Alert::FailureRate`].
pub const ALERT_WINDOW: Duration = Duration::from_secs(5 * 60);
/// Attempts the alert window must hold before the rate counts.
pub const ALERT_MIN_ATTEMPTS: u64 = 20;

/// A signal for an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Alert {
    /// More than [`ALERT_CONSECUTIVE_FAILURES`] requests to the endpoint
    /// failed in a row (fires once per streak).
    ConsecutiveFailures {
        /// The endpoint.
        endpoint: String,
        /// The streak so far.
        failures: u32,
    },
    /// More than [`ALERT_FAILURE_RATE`] of the attempts over
    /// [`ALERT_WINDOW`] failed (fires when the rate crosses the line; again
    /// after it fell below).
    FailureRate {
        /// The endpoint.
        endpoint: String,
        /// Failed attempts in the window.
        failed: u64,
        /// Attempts in the window.
        attempts: u64,
    },
    /// The endpoint's circuit breaker opened.
    BreakerOpened {
        /// The endpoint.
        endpoint: String,
    },
    /// The endpoint's circuit breaker closed again.
    BreakerClosed {
        /// The endpoint.
        endpoint: String,
    },
    /// An event exhausted its retries.
    DeadLettered {
        /// The endpoint.
        endpoint: String,
        /// The event.
        event_id: EventId,
    },
    /// A receiver rejected a request's signature (see
    /// [`Receiver`](crate::Receiver)).
    SignatureRejected {
        /// The receiver's name.
        receiver: String,
        /// The `webhook-id`, if the request had one.
        webhook_id: Option<String>,
        /// Why.
        error: VerifyError,
    },
}

#[derive(Debug)]
pub(crate) struct AlertState {
    consecutive: u32,
    window: Window,
    rate_alerting: bool,
}

impl AlertState {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            consecutive: 0,
            window: Window::new(ALERT_WINDOW, 30, now),
            rate_alerting: false,
        }
    }

    /// Records an attempt; `request` is false for attempts refused by the
    /// breaker (they count in the rate, not in the streak).
    pub(crate) fn record(
        &mut self,
        endpoint: &str,
        now: Instant,
        ok: bool,
        request: bool,
        out: &mut Vec<Alert>,
    ) {
        if request {
            if ok {
                self.consecutive = 0;
            } else {
                self.consecutive = self.consecutive.saturating_add(1);
                if self.consecutive == ALERT_CONSECUTIVE_FAILURES + 1 {
                    out.push(Alert::ConsecutiveFailures {
                        endpoint: endpoint.to_owned(),
                        failures: self.consecutive,
                    });
                }
            }
        }
        self.window.record(now, ok);
        let (attempts, failed) = self.window.totals(now);
        let over =
            attempts >= ALERT_MIN_ATTEMPTS && failed as f64 > ALERT_FAILURE_RATE * attempts as f64;
        if over && !self.rate_alerting {
            out.push(Alert::FailureRate {
                endpoint: endpoint.to_owned(),
                failed,
                attempts,
            });
        }
        self.rate_alerting = over;
    }

    pub(crate) fn consecutive(&self) -> u32 {
        self.consecutive
    }

    pub(crate) fn totals(&mut self, now: Instant) -> (u64, u64) {
        self.window.totals(now)
    }
}

/// Counters of one endpoint.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) success: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retry: AtomicU64,
    pub(crate) dead: AtomicU64,
    pub(crate) duplicate: AtomicU64,
    pub(crate) outstanding: AtomicU64,
    pub(crate) first_attempt_success: AtomicU64,
    pub(crate) ack: Mutex<Histogram<u64>>,
    pub(crate) delivery: Mutex<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 1 hour, 3 significant digits; the bounds are valid constants.
    match Histogram::new_with_bounds(1, 3_600_000_000, 3) {
        Ok(h) => h,
        Err(_) => unreachable!("valid histogram bounds"),
    }
}

impl Counters {
    pub(crate) fn new() -> Self {
        Self {
            success: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retry: AtomicU64::new(0),
            dead: AtomicU64::new(0),
            duplicate: AtomicU64::new(0),
            outstanding: AtomicU64::new(0),
            first_attempt_success: AtomicU64::new(0),
            ack: Mutex::new(histogram()),
            delivery: Mutex::new(histogram()),
        }
    }

    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_latency(h: &Mutex<Histogram<u64>>, d: Duration) {
        let us = u64::try_from(d.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, 3_600_000_000);
        if let Ok(mut h) = h.lock() {
            let _ = h.record(us);
        }
    }
}

pub(crate) fn summary(h: &Mutex<Histogram<u64>>) -> LatencySummary {
    let mut s = LatencySummary::default();
    let Ok(h) = h.lock() else { return s };
    if h.is_empty() {
        return s;
    }
    let ns = |us: u64| us.saturating_mul(1000);
    s.samples = h.len();
    s.p50_ns = ns(h.value_at_quantile(0.5));
    s.p95_ns = ns(h.value_at_quantile(0.95));
    s.p99_ns = ns(h.value_at_quantile(0.99));
    s.p999_ns = ns(h.value_at_quantile(0.999));
    s.max_ns = ns(h.max());
    s.sum_ns = ns(u64::try_from((h.mean() * h.len() as f64) as u128).unwrap_or(u64::MAX));
    s
}

/// One endpoint's figures at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EndpointStats {
    /// The endpoint's name.
    pub endpoint: String,
    /// Events accepted and not yet delivered or dead-lettered.
    pub outstanding: u64,
    /// Events delivered (acknowledged with a 2xx).
    pub delivery_success_total: u64,
    /// Of those, delivered on their first attempt.
    pub first_attempt_success_total: u64,
    /// Attempts that failed (including those the breaker refused).
    pub delivery_failure_total: u64,
    /// Retries scheduled.
    pub delivery_retry_total: u64,
    /// Events dead-lettered.
    pub delivery_dead_letter_total: u64,
    /// Events not delivered again because this endpoint already got them
    /// (same idempotency key, or same event id).
    pub delivery_duplicate_total: u64,
    /// The breaker's state.
    pub breaker: BreakerState,
    /// Failed requests in a row now.
    pub consecutive_failures: u32,
    /// Attempts in the last 5 minutes.
    pub attempts_5m: u64,
    /// Failed attempts in the last 5 minutes.
    pub failed_5m: u64,
    /// Time of successful attempts, request to response (the
    /// acknowledgement latency), on the injected clock.
    pub ack_latency: LatencySummary,
    /// Time from acceptance to acknowledgement, retries included.
    pub delivery_latency: LatencySummary,
}

/// Every endpoint's figures, and the deliverer's own counters.
///
/// More fields may be added in later versions (`#[non_exhaustive]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// One entry per endpoint, by name.
    pub endpoints: Vec<EndpointStats>,
    /// Events [`send`](crate::Webhooks::send) refused because their
    /// payload did not serialize, as
    /// [`Webhooks::serialize_errors`](crate::Webhooks::serialize_errors).
    #[serde(default)]
    pub serialize_errors: u64,
    /// Envelopes whose payload's `Drop` panicked in a forwarding thread,
    /// as [`Webhooks::drop_panics`](crate::Webhooks::drop_panics).
    #[serde(default)]
    pub drop_panics: u64,
}

fn escape(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

impl Stats {
    /// The endpoint named `name`.
    pub fn endpoint(&self, name: &str) -> Option<&EndpointStats> {
        self.endpoints.iter().find(|e| e.endpoint == name)
    }

    /// Prometheus text exposition (0.0.4), one series per endpoint (label
    /// `endpoint`): the counters as `evbus_webhook_<name>`, the breaker as
    /// `evbus_webhook_breaker_open` (1 when open or half-open), and the two
    /// latencies as summaries in seconds; the deliverer's own counters,
    /// without labels, as `evbus_webhook_serialize_errors_total` and
    /// `evbus_webhook_drop_panics_total`. Serve it as [`CONTENT_TYPE`].
    pub fn to_prometheus_text(&self) -> String {
        let mut out = String::new();
        let totals = [
            (
                "serialize_errors_total",
                "Events refused because their payload did not serialize.",
                self.serialize_errors,
            ),
            (
                "drop_panics_total",
                "Envelopes whose payload's Drop panicked in a forwarding thread.",
                self.drop_panics,
            ),
        ];
        for (name, help, v) in totals {
            let _ = writeln!(
                out,
                "# HELP evbus_webhook_{name} {help}\n# TYPE evbus_webhook_{name} counter\nevbus_webhook_{name} {v}"
            );
        }
        type Get = fn(&EndpointStats) -> u64;
        let counters: [(&str, &str, &str, Get); 7] = [
            (
                "delivery_success_total",
                "counter",
                "Events delivered (2xx).",
                |e| e.delivery_success_total,
            ),
            (
                "delivery_first_attempt_success_total",
                "counter",
                "Events delivered on their first attempt.",
                |e| e.first_attempt_success_total,
            ),
            (
                "delivery_failure_total",
                "counter",
                "Failed attempts.",
                |e| e.delivery_failure_total,
            ),
            (
                "delivery_retry_total",
                "counter",
                "Retries scheduled.",
                |e| e.delivery_retry_total,
            ),
            (
                "delivery_dead_letter_total",
                "counter",
                "Events dead-lettered.",
                |e| e.delivery_dead_letter_total,
            ),
            (
                "delivery_duplicate_total",
                "counter",
                "Events not sent again to an endpoint that already got them.",
                |e| e.delivery_duplicate_total,
            ),
            (
                "outstanding",
                "gauge",
                "Events accepted, not yet delivered or dead-lettered.",
                |e| e.outstanding,
            ),
        ];
        for (name, kind, help, get) in counters {
            let _ = writeln!(
                out,
                "# HELP evbus_webhook_{name} {help}\n# TYPE evbus_webhook_{name} {kind}"
            );
            for e in &self.endpoints {
                out.push_str("evbus_webhook_");
                out.push_str(name);
                out.push_str("{endpoint=\"");
                escape(&mut out, &e.endpoint);
                let _ = writeln!(out, "\"}} {}", get(e));
            }
        }
        let _ = writeln!(
            out,
            "# HELP evbus_webhook_breaker_open Whether the circuit breaker is open or half-open.\n# TYPE evbus_webhook_breaker_open gauge"
        );
        for e in &self.endpoints {
            out.push_str("evbus_webhook_breaker_open{endpoint=\"");
            escape(&mut out, &e.endpoint);
            let _ = writeln!(out, "\"}} {}", u8::from(e.breaker != BreakerState::Closed));
        }
        type Lat = fn(&EndpointStats) -> &LatencySummary;
        let lats: [(&str, &str, Lat); 2] = [
            (
                "ack_latency_seconds",
                "Request to 2xx response, successful attempts.",
                |e| &e.ack_latency,
            ),
            (
                "delivery_latency_seconds",
                "Acceptance to acknowledgement, retries included.",
                |e| &e.delivery_latency,
            ),
        ];
        for (name, help, get) in lats {
            let _ = writeln!(
                out,
                "# HELP evbus_webhook_{name} {help}\n# TYPE evbus_webhook_{name} summary"
            );
            for e in &self.endpoints {
                let l = get(e);
                for (q, v) in [("0.5", l.p50_ns), ("0.95", l.p95_ns), ("0.99", l.p99_ns)] {
                    out.push_str("evbus_webhook_");
                    out.push_str(name);
                    out.push_str("{endpoint=\"");
                    escape(&mut out, &e.endpoint);
                    let _ = writeln!(out, "\",quantile=\"{q}\"}} {}", v as f64 / 1e9);
                }
                for (suffix, v) in [
                    ("_sum", l.sum_ns as f64 / 1e9),
                    ("_count", l.samples as f64),
                ] {
                    out.push_str("evbus_webhook_");
                    out.push_str(name);
                    out.push_str(suffix);
                    out.push_str("{endpoint=\"");
                    escape(&mut out, &e.endpoint);
                    let _ = writeln!(out, "\"}} {v}");
                }
            }
        }
        out
    }
}
