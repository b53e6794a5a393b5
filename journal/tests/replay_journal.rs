//! A journal's reader as a replay source: record, read back from a seq,
//! replay as a dry run. The recorded seqs become the marks.
#![cfg(not(miri))] // Files and wall-clock ids; nothing here is unsafe.

use evbus::{Bus, Envelope, Event, EventKind, ReplayMark};
use evbus_journal::{Journal, JournalOptions, Pace, Replay, ReplayEnd, Start};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Placed,
}

impl EventKind for Kind {
    const ALL: &'static [Self] = &[Kind::Placed];
    fn topic(self) -> &'static str {
        "orders.placed"
    }
    fn index(self) -> usize {
        0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Placed(u64);

impl Event for Placed {
    type Kind = Kind;
    fn kind(&self) -> Kind {
        Kind::Placed
    }
}

#[test]
fn a_journal_reader_is_a_replay_source() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::create(dir.path(), JournalOptions::new()).unwrap();
    let recorded: Vec<_> = (0..5).map(|i| Envelope::new(Placed(i))).collect();
    for e in &recorded {
        journal.append(e).unwrap();
    }
    journal.flush().unwrap();

    let reader = journal.reader(Start::Seq(2)).unwrap();
    let source = reader.map(|r| r.and_then(|rec| Ok((rec.seq(), rec.envelope::<Placed>()?))));
    let bus = Bus::<Envelope<Placed>>::new();
    let mut sub = bus.subscribe(">").unwrap();
    let report = Replay::new(source)
        .pace(Pace::Max)
        .dry_run(true)
        .run(&bus)
        .unwrap();
    assert_eq!(report.end, ReplayEnd::Exhausted);
    assert_eq!(
        (report.published, report.first_seq, report.last_seq),
        (3, Some(2), Some(4))
    );
    let got: Vec<_> = sub.try_iter().collect();
    for (e, seq) in got.iter().zip(2u64..) {
        let original = &recorded[seq as usize];
        assert_eq!((e.id(), e.payload()), (original.id(), original.payload()));
        assert_eq!(
            e.replay(),
            Some(ReplayMark {
                dry_run: true,
                recorded_seq: seq
            })
        );
    }
    assert_eq!(got.len(), 3);
}
