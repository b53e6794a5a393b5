//! Inputs at the edges: kinds missing from the kind table, unrepresentable
//! deadlines, rings too large to allocate.

mod common;

use std::{sync::mpsc, thread, time::Duration};

use common::{Event, Kind, TIMEOUT, ev, sub};
use evbus_core::{
    Bus, Event as _, EventKind, Filter, MAX_RING_BYTES, Overflow, PublishError, SubscribeError,
    SubscribeOptions, TryRecvError,
};

/// A kind enum whose `ALL` forgets one kind, and whose last kind claims an
/// index beyond `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sloppy {
    A,
    B,
    Forgotten,
    Huge,
}

impl EventKind for Sloppy {
    const ALL: &'static [Self] = &[Sloppy::A, Sloppy::B];

    fn topic(self) -> &'static str {
        match self {
            Sloppy::A => "sloppy.a",
            Sloppy::B => "sloppy.b",
            Sloppy::Forgotten => "sloppy.forgotten",
            Sloppy::Huge => "sloppy.huge",
        }
    }

    fn index(self) -> usize {
        match self {
            Sloppy::Huge => (u32::MAX as usize).saturating_add(1),
            other => other as usize,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct SloppyEvent(Sloppy);

impl evbus_core::Event for SloppyEvent {
    type Kind = Sloppy;

    fn kind(&self) -> Sloppy {
        self.0
    }
}

#[test]
fn a_kind_missing_from_all_is_refused_not_misrouted() {
    let bus = Bus::<SloppyEvent>::try_new().unwrap();
    // Interned third, so it has the id the forgotten kind would alias.
    let secret = bus.topic("secret.x").unwrap();
    let mut spy = bus.subscribe("secret.x").unwrap();
    let mut first = bus.subscribe("sloppy.a").unwrap();
    let mut publisher = bus.publisher();
    for kind in [Sloppy::Forgotten, Sloppy::Huge] {
        match bus.publish(SloppyEvent(kind)) {
            Err(PublishError::UnknownKind(e)) => assert_eq!(e, SloppyEvent(kind)),
            other => panic!("bus.publish({kind:?}) gave {other:?}"),
        }
        match publisher.publish(SloppyEvent(kind)) {
            Err(PublishError::UnknownKind(e)) => assert_eq!(e, SloppyEvent(kind)),
            other => panic!("publisher.publish({kind:?}) gave {other:?}"),
        }
    }
    assert_eq!(spy.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(first.try_recv(), Err(TryRecvError::Empty));
    // The known kinds still work, and the interned topic still routes.
    bus.publish(SloppyEvent(Sloppy::A)).unwrap();
    bus.publish_on(&secret, SloppyEvent(Sloppy::B)).unwrap();
    assert_eq!(first.try_recv(), Ok(SloppyEvent(Sloppy::A)));
    assert_eq!(spy.try_recv(), Ok(SloppyEvent(Sloppy::B)));
    assert_eq!(
        PublishError::UnknownKind(SloppyEvent(Sloppy::Forgotten)).to_string(),
        "the event's kind is not in its EventKind::ALL table"
    );
}

#[test]
fn the_solo_publisher_refuses_an_unknown_kind() {
    let (bus, mut publisher) = Bus::<SloppyEvent>::single_producer().unwrap();
    let _secret = bus.topic("secret.x").unwrap();
    let mut spy = bus.subscribe(">").unwrap();
    assert!(matches!(
        publisher.publish(SloppyEvent(Sloppy::Forgotten)),
        Err(PublishError::UnknownKind(_))
    ));
    assert_eq!(spy.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(SloppyEvent(Sloppy::B).kind().index(), 1);
}

#[test]
fn block_with_an_unrepresentable_timeout_waits_without_a_deadline() {
    let bus = Bus::<Event>::new();
    let mut blocking = sub(&bus, ">", 1, Overflow::Block(Duration::MAX));
    let mut healthy = sub(&bus, ">", 8, Overflow::DropNewest);
    bus.publish(ev(Kind::Placed, 1)).unwrap();
    let (tx, rx) = mpsc::channel();
    let publisher = {
        let bus = bus.clone();
        thread::spawn(move || {
            // The ring is full: this waits until the receiver below frees
            // the slot. It used to panic adding `Duration::MAX` to `now`.
            tx.send(
                bus.publish(ev(Kind::Placed, 2))
                    .map(|r| r.accepted as usize),
            )
            .unwrap();
        })
    };
    assert_eq!(blocking.recv_timeout(TIMEOUT), Ok(ev(Kind::Placed, 1)));
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap().unwrap(), 2);
    publisher.join().unwrap();
    assert_eq!(blocking.try_recv(), Ok(ev(Kind::Placed, 2)));
    assert_eq!(healthy.try_recv(), Ok(ev(Kind::Placed, 1)));
    assert_eq!(healthy.try_recv(), Ok(ev(Kind::Placed, 2)));
}

#[test]
fn capacity_is_bounded_in_bytes() {
    #[derive(Clone)]
    struct Big(#[allow(dead_code, reason = "only its size matters")] [u8; 1024]);
    impl evbus_core::Event for Big {
        type Kind = Kind;
        fn kind(&self) -> Kind {
            Kind::Placed
        }
    }
    let bus = Bus::<Big>::new();
    // 2^21 slots of over 1 KiB each: about 2 GiB, more than the bound,
    // though far fewer slots than `MAX_CAPACITY`.
    let too_many = 1 << 21;
    let err = bus
        .subscribe_with(
            Filter::pattern(">").unwrap(),
            SubscribeOptions::new().capacity(too_many),
        )
        .unwrap_err();
    match err {
        SubscribeError::CapacityTooLarge { requested, max } => {
            assert_eq!(requested, too_many);
            assert!(max < too_many && max > 0, "max {max}");
            assert!(max * 1024 <= MAX_RING_BYTES, "max {max}");
        }
        other => panic!("got {other:?}"),
    }
    // A capacity within the bound is accepted.
    assert!(
        bus.subscribe_with(
            Filter::pattern(">").unwrap(),
            SubscribeOptions::new().capacity(1024),
        )
        .is_ok()
    );
}
