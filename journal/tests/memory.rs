//! The in-memory journal: a bounded history of the last N envelopes.

mod common;

use common::{Order, order};
use evbus_core::{Bus, Envelope, Filter, ReplayMark};
use evbus_journal::{
    Error, EventHistory, HistoryError, HistoryStart, MemoryJournal, RecorderOptions,
};

fn ns(v: &[(u64, Envelope<Order>)]) -> Vec<(u64, u64)> {
    v.iter().map(|(s, e)| (*s, e.payload().n)).collect()
}

#[test]
fn smoke() {
    let bus = Bus::<Envelope<Order>>::new();
    let mem = MemoryJournal::start(&bus, 4).unwrap();
    assert!(mem.is_empty());
    for n in 0..10 {
        bus.publish(order(n)).unwrap();
    }
    mem.flush().unwrap();
    assert_eq!((mem.len(), mem.history_len(), mem.next_seq()), (4, 4, 10));
    let all = mem
        .history(Filter::pattern(">").unwrap(), HistoryStart::Seq(0))
        .unwrap();
    assert_eq!(ns(&all), [(6, 6), (7, 7), (8, 8), (9, 9)]);
}

#[test]
fn capacity_keeps_the_last_n_and_queries_filter() {
    let bus = Bus::<Envelope<Order>>::new();
    let mem = MemoryJournal::start(&bus, 100).unwrap();
    for n in 0..250 {
        bus.publish(order(n)).unwrap();
    }
    mem.flush().unwrap();
    assert_eq!(mem.len(), 100);
    let shipped = Filter::pattern("orders.shipped").unwrap();
    let last = mem.history(shipped.clone(), HistoryStart::Last(3)).unwrap();
    assert_eq!(ns(&last), [(245, 245), (247, 247), (249, 249)]);
    // More than kept: what is kept.
    let many = mem.history(shipped, HistoryStart::Last(1000)).unwrap();
    assert_eq!(many.len(), 50);
    assert_eq!(many[0].0, 151);
}

#[test]
fn tail_is_a_live_only_history_subscription() {
    let bus = Bus::<Envelope<Order>>::new();
    let mem = MemoryJournal::start(&bus, 8).unwrap();
    bus.publish(order(0)).unwrap();
    mem.flush().unwrap();
    let mut tail = mem
        .subscribe_with_history("orders.>", HistoryStart::LiveOnly)
        .unwrap();
    assert!(matches!(tail.try_recv(), Err(HistoryError::Empty)));
    bus.publish(order(1)).unwrap();
    let item = tail.recv().unwrap();
    assert!(item.is_live());
    assert_eq!(item.into_envelope().payload().n, 1);
    mem.stop();
    assert!(matches!(tail.recv(), Err(HistoryError::Disconnected)));
}

#[test]
fn history_then_live_with_seqs() {
    let bus = Bus::<Envelope<Order>>::new();
    let mem = MemoryJournal::start(&bus, 8).unwrap();
    for n in 0..3 {
        bus.publish(order(n)).unwrap();
    }
    mem.flush().unwrap();
    let mut sub = mem
        .subscribe_with_history(">", HistoryStart::Last(2))
        .unwrap();
    assert_eq!(sub.boundary(), 3);
    bus.publish(order(3)).unwrap();
    let a = sub.recv().unwrap();
    let b = sub.recv().unwrap();
    assert!(sub.history_done());
    let c = sub.recv().unwrap();
    assert_eq!((a.seq(), b.seq(), c.seq()), (Some(1), Some(2), None));
    assert_eq!(c.envelope().payload().n, 3);
}

#[test]
fn dry_runs_are_not_kept_but_are_live() {
    let bus = Bus::<Envelope<Order>>::new();
    let mem = MemoryJournal::start(&bus, 8).unwrap();
    let mut sub = mem
        .subscribe_with_history(">", HistoryStart::LiveOnly)
        .unwrap();
    let mark = ReplayMark {
        dry_run: true,
        recorded_seq: 0,
    };
    bus.publish(order(0).with_replay_mark(Some(mark))).unwrap();
    bus.publish(order(1)).unwrap();
    mem.flush().unwrap();
    assert_eq!(mem.len(), 1);
    assert_eq!(sub.recv().unwrap().envelope().payload().n, 0);
    assert_eq!(sub.recv().unwrap().envelope().payload().n, 1);
}

#[test]
fn closes_with_the_bus() {
    let bus = Bus::<Envelope<Order>>::new();
    let mem = MemoryJournal::start(&bus, 8).unwrap();
    bus.publish(order(0)).unwrap();
    let sub = mem
        .subscribe_with_history(">", HistoryStart::Seq(0))
        .unwrap();
    bus.shutdown();
    let seen: Vec<u64> = sub.map(|i| i.envelope().payload().n).collect();
    assert_eq!(seen, [0]);
    assert!(mem.is_closed());
    // Still queryable.
    assert_eq!(
        ns(&mem
            .history(Filter::pattern(">").unwrap(), HistoryStart::Seq(0))
            .unwrap()),
        [(0, 0)]
    );
}

#[test]
fn bad_options_are_typed_errors() {
    let bus = Bus::<Envelope<Order>>::new();
    assert!(matches!(
        MemoryJournal::start(&bus, 0),
        Err(Error::InvalidOptions { .. })
    ));
    assert!(matches!(
        MemoryJournal::start_with(&bus, 1, RecorderOptions::new().pattern("a..b")),
        Err(Error::Subscribe(_))
    ));
    let mem = MemoryJournal::start(&bus, 1).unwrap();
    assert!(matches!(
        EventHistory::subscribe_with_history(&mem, "", HistoryStart::LiveOnly),
        Err(Error::Subscribe(_))
    ));
}
