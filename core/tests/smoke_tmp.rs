use evbus_core::*;
use std::time::Duration;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum K { A, B }
impl EventKind for K { const ALL: &'static [Self] = &[K::A, K::B]; fn topic(self) -> &'static str { match self { K::A => "x.a", K::B => "x.b" } } fn index(self) -> usize { self as usize } }
#[derive(Debug, Clone, PartialEq)]
struct Ev(K, u64);
impl Event for Ev { type Kind = K; fn kind(&self) -> K { self.0 } }
#[test]
fn smoke() {
    let bus = Bus::<Ev>::new();
    let mut s1 = bus.subscribe("x.*").unwrap();
    let mut s2 = bus.subscribe_with(Filter::kinds(&[K::B]).unwrap(), SubscribeOptions::new().capacity(1)).unwrap();
    let mut p = bus.publisher();
    for i in 0..5 { p.publish(Ev(K::B, i)).unwrap(); }
    p.publish(Ev(K::A, 9)).unwrap();
    assert_eq!(s1.try_recv().unwrap(), Ev(K::B, 0));
    assert_eq!(s2.try_recv().unwrap(), Ev(K::B, 0));
    assert_eq!(s2.try_recv(), Err(TryRecvError::Empty));
    let st = s2.stats(); assert_eq!((st.delivered, st.dropped), (1, 4));
    let h = std::thread::spawn(move || { let mut n = 0; while let Ok(_) = s1.recv() { n += 1 } n });
    for i in 0..1000 { p.publish_to("x.a", Ev(K::A, i)).unwrap(); if i % 100 == 0 { std::thread::yield_now() } }
    let snap = bus.snapshot();
    assert_eq!(snap.published, 1006);
    let r = bus.shutdown();
    assert_eq!(r.closed, 2);
    assert!(matches!(p.publish(Ev(K::A, 1)), Err(PublishError::Closed(_))));
    let n = h.join().unwrap();
    println!("{n} {:?}", bus.snapshot());
    let mut s3 = Bus::<Ev>::new().subscribe_with(Filter::pattern(">").unwrap(), SubscribeOptions::new().capacity(2).overflow(Overflow::DropOldest)).unwrap();
    let _ = s3.recv_timeout(Duration::from_millis(1));
}
#[test]
fn drop_oldest() {
    let bus = Bus::<Ev>::new();
    let mut s = bus.subscribe_with(Filter::pattern(">").unwrap(), SubscribeOptions::new().capacity(3).overflow(Overflow::DropOldest)).unwrap();
    for i in 0..10 { bus.publish(Ev(K::A, i)).unwrap(); }
    assert_eq!(s.try_recv(), Err(TryRecvError::Lagged(7)));
    assert_eq!(s.try_recv().unwrap().1, 7);
    assert_eq!(s.try_recv().unwrap().1, 8);
    assert_eq!(s.try_recv().unwrap().1, 9);
    assert_eq!(s.try_recv(), Err(TryRecvError::Empty));
    let st = s.stats(); assert_eq!((st.delivered, st.dropped, st.received), (3, 7, 3));
}
#[test]
fn block() {
    let bus = Bus::<Ev>::new();
    let mut s = bus.subscribe_with(Filter::pattern(">").unwrap(), SubscribeOptions::new().capacity(2).overflow(Overflow::Block(Duration::from_secs(10)))).unwrap();
    let b2 = bus.clone();
    let h = std::thread::spawn(move || { for i in 0..1000 { b2.publish(Ev(K::A, i)).unwrap(); } });
    for i in 0..1000 { assert_eq!(s.recv().unwrap().1, i); }
    h.join().unwrap();
    assert_eq!(s.stats().dropped, 0);
}
