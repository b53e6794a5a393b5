//! A bounded window of envelope ids: the ids seen within a time span, at
//! most a given number of them.

use std::{
    collections::{HashSet, VecDeque},
    time::{Duration, Instant},
};

use evbus_core::EventId;

/// Remembers ids for `window`, and at most `capacity` of them (the oldest
/// go first).
#[derive(Debug)]
pub(crate) struct IdWindow {
    set: HashSet<EventId>,
    order: VecDeque<(EventId, Instant)>,
    window: Duration,
    capacity: usize,
}

impl IdWindow {
    pub(crate) fn new(window: Duration, capacity: usize) -> Self {
        IdWindow {
            set: HashSet::new(),
            order: VecDeque::new(),
            window,
            capacity: capacity.max(1),
        }
    }

    /// Whether `id` was inserted within the window.
    pub(crate) fn contains(&mut self, id: &EventId, now: Instant) -> bool {
        self.expire(now);
        self.set.contains(id)
    }

    /// Remembers `id`; `false` if it was already there.
    pub(crate) fn insert(&mut self, id: EventId, now: Instant) -> bool {
        self.expire(now);
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back((id, now));
        while self.order.len() > self.capacity {
            if let Some((old, _)) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(id, at)) = self.order.front() {
            if now.saturating_duration_since(at) < self.window {
                break;
            }
            self.order.pop_front();
            self.set.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_leave_by_age_and_by_count() {
        let t0 = Instant::now();
        let mut w = IdWindow::new(Duration::from_secs(10), 3);
        let ids: Vec<EventId> = (0..5u8).map(|i| EventId::from_bytes([i; 16])).collect();
        assert!(w.insert(ids[0], t0));
        assert!(!w.insert(ids[0], t0));
        assert!(w.contains(&ids[0], t0 + Duration::from_secs(9)));
        assert!(!w.contains(&ids[0], t0 + Duration::from_secs(10)));
        let t1 = t0 + Duration::from_secs(20);
        for id in &ids[1..5] {
            assert!(w.insert(*id, t1));
        }
        assert_eq!(w.len(), 3);
        assert!(!w.contains(&ids[1], t1));
        assert!(w.contains(&ids[4], t1));
    }
}
