//! The per-endpoint circuit breaker.
//!
//! - **Closed**: requests flow. It opens after
//!   [`consecutive_failures`](BreakerPolicy::consecutive_failures) failed
//!   requests in a row, or when at least
//!   [`min_requests`](BreakerPolicy::min_requests) requests in the last
//!   [`window`](BreakerPolicy::window) failed at a rate of
//!   [`failure_rate`](BreakerPolicy::failure_rate) or more.
//! - **Open** for [`open_for`](BreakerPolicy::open_for): no request is made;
//!   an attempt refused by the breaker counts as a failed attempt (error
//!   `circuit open`, no status) and its retry waits at least until the
//!   breaker half-opens.
//! - **Half-open**: up to [`half_open_probes`](BreakerPolicy::half_open_probes)
//!   requests go through at a time. A successful probe closes the breaker;
//!   a failed one opens it again.

use std::time::{Duration, Instant};

use crate::window::Window;

/// When a breaker opens and how it recovers.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BreakerPolicy {
    /// Failed requests in a row that open the breaker (default 5; 0 never
    /// opens on this rule).
    pub consecutive_failures: u32,
    /// The failure rate (0 to 1) over [`window`](Self::window) that opens
    /// the breaker (default 0.5; above 1 disables the rule).
    pub failure_rate: f64,
    /// Requests the window must hold before the rate counts (default 20).
    pub min_requests: u64,
    /// The span of the failure-rate window (default 30 s).
    pub window: Duration,
    /// How long the breaker stays open before probing (default 30 s).
    pub open_for: Duration,
    /// Requests allowed at once while half-open (default 1).
    pub half_open_probes: u32,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_rate: 0.5,
            min_requests: 20,
            window: Duration::from_secs(30),
            open_for: Duration::from_secs(30),
            half_open_probes: 1,
        }
    }
}

/// The state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// No request is made.
    Open,
    /// A limited number of probe requests go through.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// What [`Breaker::allow`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Make the request (`probe` when half-open).
    Go { probe: bool },
    /// Do not; the breaker may let a request through in this long.
    Refused { retry_in: Duration },
}

/// A change of state the caller may want to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    Opened,
    Closed,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    policy: BreakerPolicy,
    state: BreakerState,
    consecutive: u32,
    window: Window,
    open_until: Instant,
    probes_in_flight: u32,
}

impl Breaker {
    pub(crate) fn new(policy: BreakerPolicy, now: Instant) -> Self {
        Self {
            policy,
            state: BreakerState::Closed,
            consecutive: 0,
            window: Window::new(policy.window, 10, now),
            open_until: now,
            probes_in_flight: 0,
        }
    }

    pub(crate) fn state(&mut self, now: Instant) -> BreakerState {
        if self.state == BreakerState::Open && now >= self.open_until {
            self.state = BreakerState::HalfOpen;
            self.probes_in_flight = 0;
        }
        self.state
    }

    pub(crate) fn allow(&mut self, now: Instant) -> Admit {
        match self.state(now) {
            BreakerState::Closed => Admit::Go { probe: false },
            BreakerState::Open => Admit::Refused {
                retry_in: self.open_until.saturating_duration_since(now),
            },
            BreakerState::HalfOpen => {
                if self.probes_in_flight < self.policy.half_open_probes.max(1) {
                    self.probes_in_flight += 1;
                    Admit::Go { probe: true }
                } else {
                    // Another probe is out; its outcome decides. Try again
                    // after a short while.
                    Admit::Refused {
                        retry_in: Duration::ZERO,
                    }
                }
            }
        }
    }

    /// Records the outcome of a request that [`allow`](Self::allow) let
    /// through.
    pub(crate) fn record(&mut self, now: Instant, probe: bool, ok: bool) -> Option<Transition> {
        if probe {
            self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
        }
        self.window.record(now, ok);
        if ok {
            self.consecutive = 0;
        } else {
            self.consecutive = self.consecutive.saturating_add(1);
        }
        match self.state(now) {
            BreakerState::HalfOpen if probe => {
                if ok {
                    self.state = BreakerState::Closed;
                    self.window.clear();
                    Some(Transition::Closed)
                } else {
                    self.open(now);
                    Some(Transition::Opened)
                }
            }
            BreakerState::Closed if !ok => {
                let (n, failed) = self.window.totals(now);
                let by_count = self.policy.consecutive_failures > 0
                    && self.consecutive >= self.policy.consecutive_failures;
                let by_rate = n >= self.policy.min_requests.max(1)
                    && failed as f64 >= self.policy.failure_rate * n as f64;
                if by_count || by_rate {
                    self.open(now);
                    Some(Transition::Opened)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = BreakerState::Open;
        self.open_until = now.checked_add(self.policy.open_for).unwrap_or(now);
        self.probes_in_flight = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            consecutive_failures: 3,
            failure_rate: 0.5,
            min_requests: 10,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
            half_open_probes: 1,
        }
    }

    #[test]
    fn opens_after_consecutive_failures_then_probes_and_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(policy(), t0);
        for _ in 0..2 {
            assert_eq!(b.allow(t0), Admit::Go { probe: false });
            assert_eq!(b.record(t0, false, false), None);
        }
        assert_eq!(b.record(t0, false, false), Some(Transition::Opened));
        assert_eq!(
            b.allow(t0 + Duration::from_secs(1)),
            Admit::Refused {
                retry_in: Duration::from_secs(4)
            }
        );
        let t5 = t0 + Duration::from_secs(5);
        assert_eq!(b.state(t5), BreakerState::HalfOpen);
        assert_eq!(b.allow(t5), Admit::Go { probe: true });
        assert!(matches!(b.allow(t5), Admit::Refused { .. }));
        // A failed probe opens it again for the full period.
        assert_eq!(b.record(t5, true, false), Some(Transition::Opened));
        assert_eq!(b.state(t5 + Duration::from_secs(4)), BreakerState::Open);
        let t10 = t5 + Duration::from_secs(5);
        assert_eq!(b.allow(t10), Admit::Go { probe: true });
        assert_eq!(b.record(t10, true, true), Some(Transition::Closed));
        assert_eq!(b.state(t10), BreakerState::Closed);
    }

    #[test]
    fn opens_on_the_failure_rate() {
        let t0 = Instant::now();
        let mut b = Breaker::new(policy(), t0);
        // Alternating outcomes never make 3 in a row; at 10 requests the
        // rate is 50 %.
        let mut opened = None;
        for i in 0..10 {
            let ok = i % 2 == 0;
            assert_eq!(b.allow(t0), Admit::Go { probe: false });
            if let Some(t) = b.record(t0, false, ok) {
                opened = Some((i, t));
            }
        }
        assert_eq!(opened, Some((9, Transition::Opened)));
    }
}
