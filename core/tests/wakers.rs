//! Asynchronous receiving: `poll_recv` registers a task waker that a
//! publish, a close or an eviction fires; route order follows
//! `SubscribeOptions::priority`; and, with the `async` feature, a
//! subscription is a `futures_core::Stream` on a tokio runtime.

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    task::{Context, Poll, Wake, Waker},
    thread,
};

use common::{Event, Kind, TIMEOUT, ev, sub};
use evbus_core::{Bus, Filter, Overflow, RecvError, SubscribeOptions};

/// A waker that counts its wakes and reports them on a channel, tagged.
struct Probe {
    tag: u32,
    wakes: AtomicUsize,
    log: Mutex<mpsc::Sender<u32>>,
}

impl Wake for Probe {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        let _ = self.log.lock().unwrap().send(self.tag);
    }
}

fn probe(tag: u32, log: &mpsc::Sender<u32>) -> (Arc<Probe>, Waker) {
    let p = Arc::new(Probe {
        tag,
        wakes: AtomicUsize::new(0),
        log: Mutex::new(log.clone()),
    });
    (Arc::clone(&p), Waker::from(p))
}

#[test]
fn publish_wakes_a_registered_task_once() {
    let bus = Bus::<Event>::new();
    let mut s = bus.subscribe(">").unwrap();
    let (tx, rx) = mpsc::channel();
    let (p, waker) = probe(1, &tx);
    let mut cx = Context::from_waker(&waker);
    assert!(s.poll_recv(&mut cx).is_pending());
    // Polling again while registered keeps one registration.
    assert!(s.poll_recv(&mut cx).is_pending());
    bus.publish(ev(Kind::Placed, 1)).unwrap();
    bus.publish(ev(Kind::Placed, 2)).unwrap();
    assert_eq!(
        p.wakes.load(Ordering::SeqCst),
        1,
        "one wake per registration"
    );
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(s.poll_recv(&mut cx), Poll::Ready(Ok(ev(Kind::Placed, 1))));
    assert_eq!(s.poll_recv(&mut cx), Poll::Ready(Ok(ev(Kind::Placed, 2))));
    assert!(s.poll_recv(&mut cx).is_pending());
    // The blocking path still works after an asynchronous registration.
    bus.publish(ev(Kind::Placed, 3)).unwrap();
    assert_eq!(s.recv(), Ok(ev(Kind::Placed, 3)));
}

#[test]
fn publish_without_registration_does_not_wake() {
    let bus = Bus::<Event>::new();
    let mut s = bus.subscribe(">").unwrap();
    let (tx, _rx) = mpsc::channel();
    let (p, waker) = probe(1, &tx);
    bus.publish(ev(Kind::Placed, 1)).unwrap();
    let mut cx = Context::from_waker(&waker);
    assert_eq!(s.poll_recv(&mut cx), Poll::Ready(Ok(ev(Kind::Placed, 1))));
    bus.publish(ev(Kind::Placed, 2)).unwrap();
    assert_eq!(p.wakes.load(Ordering::SeqCst), 0);
}

#[test]
fn close_wakes_and_ends_after_draining() {
    let bus = Bus::<Event>::new();
    let mut s = bus.subscribe(">").unwrap();
    let (tx, rx) = mpsc::channel();
    let (_p, waker) = probe(7, &tx);
    let mut cx = Context::from_waker(&waker);
    assert!(s.poll_recv(&mut cx).is_pending());
    assert_eq!(bus.shutdown().closed, 1);
    assert_eq!(rx.try_recv(), Ok(7));
    assert_eq!(
        s.poll_recv(&mut cx),
        Poll::Ready(Err(RecvError::Disconnected))
    );
}

#[test]
fn eviction_wakes_a_registered_task() {
    let bus = Bus::<Event>::new();
    let mut s = sub(&bus, ">", 1, Overflow::DropOldest);
    let (tx, rx) = mpsc::channel();
    let (_p, waker) = probe(3, &tx);
    let mut cx = Context::from_waker(&waker);
    bus.publish(ev(Kind::Placed, 1)).unwrap();
    bus.publish(ev(Kind::Placed, 2)).unwrap();
    assert_eq!(s.poll_recv(&mut cx), Poll::Ready(Err(RecvError::Lagged(1))));
    assert_eq!(s.poll_recv(&mut cx), Poll::Ready(Ok(ev(Kind::Placed, 2))));
    assert!(s.poll_recv(&mut cx).is_pending());
    bus.publish(ev(Kind::Placed, 3)).unwrap();
    assert_eq!(rx.try_recv(), Ok(3));
    assert_eq!(s.poll_recv(&mut cx), Poll::Ready(Ok(ev(Kind::Placed, 3))));
}

#[test]
fn wake_crosses_threads() {
    let bus = Bus::<Event>::new();
    let mut s = bus.subscribe(">").unwrap();
    let (tx, rx) = mpsc::channel();
    let (_p, waker) = probe(9, &tx);
    let mut cx = Context::from_waker(&waker);
    let mut got = Vec::new();
    let publisher = {
        let bus = bus.clone();
        thread::spawn(move || {
            for seq in 0..100 {
                bus.publish(ev(Kind::Placed, seq)).unwrap();
            }
        })
    };
    while got.len() < 100 {
        match s.poll_recv(&mut cx) {
            Poll::Ready(Ok(e)) => got.push(e.seq),
            Poll::Ready(Err(e)) => panic!("unexpected {e:?}"),
            // Pending registered the waker; a publish must fire it.
            Poll::Pending => assert_eq!(rx.recv_timeout(TIMEOUT), Ok(9), "lost wake-up"),
        }
    }
    publisher.join().unwrap();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

/// Registers a waker on each subscription and reports the order in which
/// one publish wakes them.
fn wake_order(priorities: &[i32], publish: impl FnOnce(&Bus<Event>)) -> Vec<u32> {
    let bus = Bus::<Event>::new();
    let (tx, rx) = mpsc::channel();
    let mut subs = Vec::new();
    for (tag, &priority) in priorities.iter().enumerate() {
        let mut s = bus
            .subscribe_with(
                Filter::pattern(">").unwrap(),
                SubscribeOptions::new().priority(priority),
            )
            .unwrap();
        let (_p, waker) = probe(tag as u32, &tx);
        assert!(s.poll_recv(&mut Context::from_waker(&waker)).is_pending());
        subs.push(s);
    }
    publish(&bus);
    rx.try_iter().collect()
}

#[test]
fn routes_deliver_by_descending_priority_then_subscription_order() {
    let priorities = [0, 5, -1, 5, 0];
    let expected = vec![1, 3, 0, 4, 2];
    // An interned topic (kind topics are interned when the bus is built).
    assert_eq!(
        wake_order(&priorities, |bus| {
            bus.publish(ev(Kind::Placed, 1)).unwrap();
        }),
        expected
    );
    // A topic resolved through the pattern index on each publish.
    assert_eq!(
        wake_order(&priorities, |bus| {
            bus.publish_to("never.interned", ev(Kind::Placed, 1))
                .unwrap();
        }),
        expected
    );
    // A topic interned after the subscriptions.
    assert_eq!(
        wake_order(&priorities, |bus| {
            let topic = bus.topic("late.topic").unwrap();
            bus.publish_on(&topic, ev(Kind::Placed, 1)).unwrap();
        }),
        expected
    );
}

#[cfg(feature = "async")]
mod stream {
    use std::{future::poll_fn, pin::Pin};

    use futures_core::Stream;

    use super::*;

    async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
        poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
    }

    #[test]
    fn subscription_is_a_stream_on_tokio() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        let bus = Bus::<Event>::new();
        let mut s = sub(&bus, ">", 4, Overflow::DropOldest);
        let got = rt.block_on(async {
            let consumer = tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(item) = next(&mut s).await {
                    got.push(item.map(|e| e.seq));
                }
                got
            });
            let publisher = {
                let bus = bus.clone();
                tokio::task::spawn_blocking(move || {
                    for seq in 0..50 {
                        bus.publish(ev(Kind::Placed, seq)).unwrap();
                    }
                    bus.shutdown();
                })
            };
            publisher.await.unwrap();
            tokio::time::timeout(TIMEOUT, consumer)
                .await
                .expect("stream ended")
                .unwrap()
        });
        // Received events come in order, and every event is either received
        // or counted in a lag report. (A lag may be reported after a later
        // event: an eviction can land between the lag check and the take.)
        let received: Vec<u64> = got.iter().filter_map(|i| i.ok()).collect();
        assert!(received.windows(2).all(|w| w[0] < w[1]), "{got:?}");
        let lagged: u64 = got.iter().filter_map(|i| i.err()).map(|l| l.0).sum();
        assert_eq!(received.len() as u64 + lagged, 50, "{got:?}");
    }
}
