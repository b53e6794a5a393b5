//! A reference for single-producer buses (a `VecDeque` per subscription) run
//! in lockstep with a real `Bus::single_producer`: every publish report,
//! receive, drain and counter must agree.
//!
//! Shared by the model test in `core/tests/solo.rs` (through `common`) and
//! the `solo_ops` fuzz target (`fuzz/fuzz_targets/solo_ops.rs`, which
//! includes this file and `reference.rs` by path), so it depends only on
//! `std`, `evbus_core` and its sibling `reference` and `inject` modules.
//!
//! The events are `inject.rs`'s armed events: a `Clone` can be armed to
//! panic mid fan-out, and receivers park counting task wakers with
//! `poll_recv`, some of which panic. A publish that a panicking clone cut
//! short still wakes every parked receiver on its route (defect 5 of issue
//! 12), and counts a drop on every ring it did not reach; a panicking waker
//! does not keep the others from waking.

use std::{
    collections::VecDeque,
    fmt::Debug,
    panic::{self, AssertUnwindSafe},
    sync::Arc,
    task::{Context, Poll, Waker},
};

use evbus_core::{
    Bus, EventKind, Filter, Pattern, PublishError, RecvError, SoloPublisher, SubscribeError,
    SubscribeOptions, Subscription, TryRecvError,
};

use super::inject::{Armed, Control, TestWaker};

/// `Err` with a message unless `real == model`.
fn agree<T: PartialEq + Debug>(
    real: T,
    model: T,
    what: impl FnOnce() -> String,
) -> Result<(), String> {
    if real == model {
        Ok(())
    } else {
        Err(format!("{}: {real:?} (real) != {model:?} (model)", what()))
    }
}

/// One subscription as the model sees it.
struct Expected {
    pattern: Pattern,
    cap: usize,
    queue: VecDeque<u64>,
    open: bool,
    delivered: u64,
    dropped: u64,
    /// The task waker parked by `poll_recv` (an index into `wakes`).
    parked: Option<usize>,
}

/// A single-producer bus and its model, operated in lockstep.
pub(crate) struct SoloLockstep<K: EventKind> {
    bus: Bus<Armed<K>>,
    publisher: SoloPublisher<Armed<K>>,
    subs: Vec<(Subscription<Armed<K>>, Expected)>,
    shut: bool,
    control: Arc<Control<K>>,
    /// Every task waker registered, the wakes the model expects of it, and
    /// whether it panics.
    wakers: Vec<(Arc<TestWaker>, u64, bool)>,
    /// Clones the model expects so far, and the one that panics (0: none).
    clones: u64,
    panic_on_clone: u64,
    /// Publishes that a panic cut short, as predicted.
    pub(crate) panics: u64,
}

impl<K: EventKind> SoloLockstep<K> {
    pub(crate) fn new() -> Self {
        let (bus, publisher) = Bus::single_producer().expect("valid kind table");
        Self {
            bus,
            publisher,
            subs: Vec::new(),
            shut: false,
            control: Control::new(&[]),
            wakers: Vec::new(),
            clones: 0,
            panic_on_clone: 0,
            panics: 0,
        }
    }

    /// Subscriptions made so far (closed ones included).
    pub(crate) fn len(&self) -> usize {
        self.subs.len()
    }

    /// Subscribes to the valid `pattern` with capacity `cap` (at least 1).
    pub(crate) fn subscribe(&mut self, pattern: &str, cap: usize) -> Result<(), String> {
        let got = self.bus.subscribe_with(
            Filter::pattern(pattern).expect("valid pattern"),
            SubscribeOptions::new().capacity(cap),
        );
        if self.shut {
            return agree(got.err(), Some(SubscribeError::Closed), || {
                format!("subscribe {pattern} after shutdown")
            });
        }
        let sub = got.map_err(|e| format!("subscribe {pattern}: {e}"))?;
        let expected = Expected {
            pattern: Pattern::parse(pattern).expect("valid pattern"),
            cap,
            queue: VecDeque::new(),
            open: true,
            delivered: 0,
            dropped: 0,
            parked: None,
        };
        self.subs.push((sub, expected));
        Ok(())
    }

    /// Wakes the task parked on subscription `i`, if any: whether its
    /// waker panicked.
    fn wake(&mut self, i: usize) -> bool {
        match self.subs[i].1.parked.take() {
            Some(w) => {
                self.wakers[w].1 += 1;
                self.wakers[w].2
            }
            None => false,
        }
    }

    /// The model's side of a close of subscription `i`: wakes its parked
    /// task, if any; whether its waker panicked.
    fn close(&mut self, i: usize) -> bool {
        let exp = &mut self.subs[i].1;
        if !exp.open {
            return false;
        }
        exp.open = false;
        self.wake(i)
    }

    /// Unsubscribes subscription `i`, if there is one.
    pub(crate) fn unsubscribe(&mut self, i: usize) -> Result<(), String> {
        if let Some((sub, exp)) = self.subs.get(i) {
            let was_open = exp.open;
            let got = panic::catch_unwind(AssertUnwindSafe(|| sub.unsubscribe()));
            let want = if self.close(i) { None } else { Some(was_open) };
            agree(got.ok(), want, || format!("unsubscribe {i}"))?;
        }
        Ok(())
    }

    /// Makes the `n`-th clone from now panic (`n` from 1).
    pub(crate) fn arm_clone(&mut self, n: u64) {
        self.control.panic_on_clone(self.control.clones() + n);
        self.panic_on_clone = self.clones + n;
    }

    /// Publishes an event of `kind` numbered `seq`; the report must match
    /// the model's, and so must a panic of an armed clone.
    pub(crate) fn publish(&mut self, kind: K, seq: u64) -> Result<(), String> {
        let topic = kind.topic();
        let event = self.control.event(kind, seq);
        let publisher = &mut self.publisher;
        let got = panic::catch_unwind(AssertUnwindSafe(|| publisher.publish(event)));
        if self.shut {
            return agree(
                matches!(got, Ok(Err(PublishError::Closed(_)))),
                true,
                || format!("publish {seq} after shutdown"),
            );
        }
        let route: Vec<usize> = (0..self.subs.len())
            .filter(|&i| self.subs[i].1.open && self.subs[i].1.pattern.matches(topic))
            .collect();
        let last = route.len().saturating_sub(1);
        let (mut matched, mut accepted, mut cut_at) = (0, 0, None);
        for (pos, &i) in route.iter().enumerate() {
            let exp = &mut self.subs[i].1;
            matched += 1;
            if exp.queue.len() >= exp.cap {
                exp.dropped += 1;
                continue;
            }
            if pos != last {
                self.clones += 1;
                if self.clones == self.panic_on_clone {
                    cut_at = Some(pos);
                    break;
                }
            }
            let exp = &mut self.subs[i].1;
            exp.queue.push_back(seq);
            exp.delivered += 1;
            accepted += 1;
        }
        // Cut short or not, every parked receiver on the route is woken,
        // each waker contained.
        let mut waker_panicked = false;
        for &i in &route {
            waker_panicked |= self.wake(i);
        }
        if let Some(at) = cut_at {
            // The ring whose clone panicked, and every ring after it.
            for &i in &route[at..] {
                self.subs[i].1.dropped += 1;
            }
        }
        match (got, cut_at.is_some() || waker_panicked) {
            (Err(_), true) => {
                self.panics += 1;
                Ok(())
            }
            (Ok(Ok(report)), false) => agree(
                (report.matched, report.accepted, report.dropped),
                (matched, accepted, matched - accepted),
                || format!("publish {seq}: matched, accepted, dropped"),
            ),
            (got, _) => Err(format!(
                "publish {seq}: {} (real), model: clone panics at ring {cut_at:?}, \
                 a waker panics: {waker_panicked}",
                match got {
                    Err(_) => "panicked".to_string(),
                    Ok(r) => format!("{:?}", r.map(|r| r.accepted).map_err(|e| e.to_string())),
                }
            )),
        }
    }

    /// The model's receive on subscription `i`.
    fn model_recv(&mut self, i: usize) -> Result<u64, TryRecvError> {
        let exp = &mut self.subs[i].1;
        match exp.queue.pop_front() {
            Some(v) => Ok(v),
            None if exp.open => Err(TryRecvError::Empty),
            None => Err(TryRecvError::Disconnected),
        }
    }

    /// `try_recv` on subscription `i`, if there is one.
    pub(crate) fn try_recv(&mut self, i: usize) -> Result<(), String> {
        if i < self.subs.len() {
            let got = self.subs[i].0.try_recv().map(|e| e.seq);
            agree(got, self.model_recv(i), || format!("try_recv {i}"))?;
        }
        Ok(())
    }

    /// `poll_recv` on subscription `i`, if there is one, with a new
    /// counting task waker, which panics when woken if `panics`.
    pub(crate) fn park(&mut self, i: usize, panics: bool) -> Result<(), String> {
        if i >= self.subs.len() {
            return Ok(());
        }
        let waker = TestWaker::new(panics);
        let w = Waker::from(Arc::clone(&waker));
        let got = match self.subs[i].0.poll_recv(&mut Context::from_waker(&w)) {
            Poll::Pending => Err(TryRecvError::Empty),
            Poll::Ready(Ok(e)) => Ok(e.seq),
            Poll::Ready(Err(RecvError::Disconnected)) => Err(TryRecvError::Disconnected),
            Poll::Ready(Err(RecvError::Lagged(n))) => Err(TryRecvError::Lagged(n)),
        };
        agree(got, self.model_recv(i), || format!("poll_recv {i}"))?;
        if got == Err(TryRecvError::Empty) {
            self.wakers.push((waker, 0, panics));
            self.subs[i].1.parked = Some(self.wakers.len() - 1);
        }
        Ok(())
    }

    /// `drain_with` on subscription `i`, if there is one.
    pub(crate) fn drain(&mut self, i: usize) -> Result<(), String> {
        if let Some((sub, exp)) = self.subs.get_mut(i) {
            let mut got = Vec::new();
            let n = sub.drain_with(|e| got.push(e.seq));
            agree(n, got.len(), || format!("drain {i}: count"))?;
            let expected: Vec<u64> = exp.queue.drain(..).collect();
            agree(got, expected, || format!("drain {i}"))?;
        }
        Ok(())
    }

    /// Shuts the bus down: every ring closes, then every parked task is
    /// woken, each waker contained; a panic among them reaches the caller.
    pub(crate) fn shutdown(&mut self) -> Result<(), String> {
        let bus = &self.bus;
        let got = panic::catch_unwind(AssertUnwindSafe(|| bus.shutdown())).is_err();
        let already = self.shut;
        self.shut = true;
        let mut panicked = false;
        for i in 0..self.subs.len() {
            panicked |= self.close(i);
        }
        agree(got, panicked && !already, || {
            "shutdown: a waker panicked".to_string()
        })
    }

    /// Every subscription's counters equal the model's, and so do the task
    /// wakes, the clones made and the events alive.
    pub(crate) fn check(&self, step: usize) -> Result<(), String> {
        for (i, (sub, exp)) in self.subs.iter().enumerate() {
            let s = sub.stats();
            agree(
                (s.delivered, s.dropped, s.queued, s.closed),
                (exp.delivered, exp.dropped, exp.queue.len(), !exp.open),
                || {
                    format!(
                        "subscription {i} after step {step}: delivered, dropped, queued, closed"
                    )
                },
            )?;
        }
        let wakes = |f: fn(&(Arc<TestWaker>, u64, bool)) -> u64| -> Vec<u64> {
            self.wakers.iter().map(f).collect()
        };
        agree(wakes(|w| w.0.wakes()), wakes(|w| w.1), || {
            format!("task wakes after step {step}")
        })?;
        agree(self.control.clones(), self.clones, || {
            format!("clones after step {step}")
        })?;
        let queued: usize = self.subs.iter().map(|(_, e)| e.queue.len()).sum();
        agree(self.control.live(), queued as u64, || {
            format!("events alive after step {step}")
        })
    }

    /// Drops everything: every parked task wakes, every event is dropped
    /// exactly once.
    pub(crate) fn teardown(mut self) -> Result<(), String> {
        self.control.disarm();
        let subs = std::mem::take(&mut self.subs);
        for (i, (sub, exp)) in subs.into_iter().enumerate() {
            // Dropping a subscription closes it, and wakes its parked task.
            let got = panic::catch_unwind(AssertUnwindSafe(move || drop(sub))).is_err();
            let want = exp.open && exp.parked.is_some_and(|w| self.wakers[w].2);
            if let Some(w) = exp.parked.filter(|_| exp.open) {
                self.wakers[w].1 += 1;
            }
            agree(got, want, || format!("teardown: drop subscription {i}"))?;
        }
        let Self {
            bus,
            publisher,
            control,
            wakers,
            ..
        } = self;
        drop((bus, publisher));
        let real: Vec<u64> = wakers.iter().map(|w| w.0.wakes()).collect();
        let model: Vec<u64> = wakers.iter().map(|w| w.1).collect();
        agree(real, model, || "task wakes after teardown".to_string())?;
        let (made, dropped) = control.made_dropped();
        agree(dropped, made, || {
            "events dropped vs made (leak if fewer, double drop if more)".to_string()
        })
    }
}
