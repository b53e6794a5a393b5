//! Reading records without the payload type: `Record::envelope_with`.

use evbus_core::{Envelope, EventId, ReplayMark, Timestamp};
use evbus_journal::{Codec, Journal, JournalOptions, Reader, Record, Start, SyncPolicy};

fn records(codec: Codec, envelopes: &[Envelope<serde_json::Value>]) -> Vec<Record> {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::create(
        dir.path(),
        JournalOptions::new().codec(codec).sync(SyncPolicy::Never),
    )
    .unwrap();
    for e in envelopes {
        journal.append(e).unwrap();
    }
    journal.close().unwrap();
    Reader::open(dir.path(), Start::Beginning)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn full() -> Envelope<serde_json::Value> {
    let root = Envelope::on("orders.placed", serde_json::json!({"n": 1})).unwrap();
    root.caused_on("orders.shipped", serde_json::json!({"n": 2, "note": "ünï"}))
        .unwrap()
        .with_session("s-1")
        .with_source("svc-a")
        .with_tenant("acme")
        .with_tag("x")
        .with_tag("y")
        .with_idempotency_key("key-9")
        .with_time(Timestamp::from_nanos(123_456_789))
        .with_replay_mark(Some(ReplayMark {
            dry_run: true,
            recorded_seq: 4,
        }))
}

#[test]
fn json_journal_reads_back_as_values_with_all_metadata() {
    let e = full();
    let back = records(Codec::Json, std::slice::from_ref(&e));
    let value: serde_json::Value = serde_json::from_slice(back[0].payload_bytes()).unwrap();
    let read = back[0].envelope_with(value).unwrap();
    assert_eq!(read, e);
    // The same as decoding with the type.
    assert_eq!(read, back[0].envelope::<serde_json::Value>().unwrap());
}

#[test]
fn postcard_journal_carries_raw_bytes_with_all_metadata() {
    let e = full();
    let back = records(Codec::Postcard, std::slice::from_ref(&e));
    let raw = back[0]
        .envelope_with(back[0].payload_bytes().to_vec())
        .unwrap();
    assert_eq!(raw.payload(), back[0].payload_bytes());
    assert_eq!(raw.id(), e.id());
    assert_eq!(raw.correlation_id(), e.correlation_id());
    assert_eq!(raw.causation_id(), e.causation_id());
    assert_ne!(raw.causation_id(), None::<EventId>);
    assert_eq!(raw.time(), e.time());
    assert_eq!(raw.topic(), "orders.shipped");
    assert_eq!(raw.session_id(), Some("s-1"));
    assert_eq!(raw.source(), Some("svc-a"));
    assert_eq!(raw.tenant(), Some("acme"));
    assert_eq!(raw.idempotency_key(), Some("key-9"));
    assert_eq!(raw.tags().collect::<Vec<_>>(), ["x", "y"]);
    assert_eq!(raw.replay(), e.replay());
}
