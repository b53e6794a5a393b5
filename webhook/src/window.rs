//! A sliding window of attempt outcomes in fixed time buckets.

use std::time::{Duration, Instant};

/// Counts of successes and failures over the last `span`, in `buckets`
/// equal slices (the window slides by one slice at a time).
#[derive(Debug, Clone)]
pub(crate) struct Window {
    slice: Duration,
    origin: Instant,
    /// `(slice number, ok, failed)`, oldest first.
    buckets: std::collections::VecDeque<(u64, u64, u64)>,
    len: usize,
}

impl Window {
    pub(crate) fn new(span: Duration, buckets: u32, origin: Instant) -> Self {
        let buckets = buckets.max(1);
        let slice = (span / buckets).max(Duration::from_millis(1));
        Self {
            slice,
            origin,
            buckets: std::collections::VecDeque::with_capacity(buckets as usize + 1),
            len: buckets as usize,
        }
    }

    fn slice_of(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin);
        u64::try_from(since.as_nanos() / self.slice.as_nanos().max(1)).unwrap_or(u64::MAX)
    }

    fn expire(&mut self, now: Instant) {
        let current = self.slice_of(now);
        let oldest_kept = current.saturating_sub(self.len as u64 - 1);
        while self.buckets.front().is_some_and(|b| b.0 < oldest_kept) {
            self.buckets.pop_front();
        }
    }

    pub(crate) fn record(&mut self, now: Instant, ok: bool) {
        self.expire(now);
        let current = self.slice_of(now);
        match self.buckets.back_mut() {
            Some(b) if b.0 == current => {
                if ok {
                    b.1 += 1
                } else {
                    b.2 += 1
                }
            }
            _ => self
                .buckets
                .push_back((current, u64::from(ok), u64::from(!ok))),
        }
    }

    /// `(attempts, failures)` within the window at `now`.
    pub(crate) fn totals(&mut self, now: Instant) -> (u64, u64) {
        self.expire(now);
        self.buckets
            .iter()
            .fold((0, 0), |(n, f), b| (n + b.1 + b.2, f + b.2))
    }

    pub(crate) fn clear(&mut self) {
        self.buckets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_slices_fall_out() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(10), 10, t0);
        w.record(t0, true);
        w.record(t0 + Duration::from_secs(5), false);
        assert_eq!(w.totals(t0 + Duration::from_secs(9)), (2, 1));
        assert_eq!(w.totals(t0 + Duration::from_secs(10)), (1, 1));
        assert_eq!(w.totals(t0 + Duration::from_secs(15)), (0, 0));
    }
}
