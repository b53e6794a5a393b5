//! Session files: round trips, header checks, bad lines by number, bounded
//! lines, truncation, and hostile bytes.
#![cfg(not(miri))] // Files and wall-clock ids; nothing here is unsafe.

mod common;

use std::io::{self, BufReader, Read};

use evbus::{Envelope, Event, ReplayMark, Timestamp};
use evbus_journal::{
    ReadOptions, SessionError, SessionReader, SessionWriter, read_session,
    session::{SESSION_FORMAT, SESSION_VERSION},
    write_session,
};
use serde::{Deserialize, Serialize};

use common::{Kind, Rng};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Order {
    Placed { id: u64, note: String },
    Shipped { id: u64 },
}

impl Event for Order {
    type Kind = Kind;
    fn kind(&self) -> Kind {
        match self {
            Order::Placed { .. } => Kind::Placed,
            Order::Shipped { .. } => Kind::Shipped,
        }
    }
}

/// A root with every optional field set, and a plain child.
fn sample() -> Vec<Envelope<Order>> {
    let root = Envelope::new(Order::Placed {
        id: 1,
        note: "line\nbreak \"quoted\" ü".into(),
    })
    .with_time(Timestamp::from_nanos(1_000))
    .with_session("s-1")
    .with_source("shop")
    .with_tenant("acme")
    .with_tag("vip")
    .with_tag("eu")
    .with_idempotency_key("order-1")
    .with_replay_mark(Some(ReplayMark {
        dry_run: true,
        recorded_seq: 41,
    }));
    let child = root
        .caused(Order::Shipped { id: 1 })
        .with_time(Timestamp::from_nanos(2_000));
    let other = Envelope::on("audit.note", Order::Shipped { id: 2 })
        .unwrap()
        .with_time(Timestamp::from_nanos(3_000));
    vec![root, child, other]
}

fn session_bytes(envelopes: &[Envelope<Order>]) -> Vec<u8> {
    let mut w = SessionWriter::new(Vec::new()).created(Timestamp::from_nanos(77));
    w.write_all(envelopes).unwrap();
    w.finish().unwrap().0
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn header_line(version: u64, topics: &[&str], count: u64) -> String {
    serde_json::json!({
        "format": SESSION_FORMAT, "version": version, "topics": topics,
        "count": count, "created": 5,
    })
    .to_string()
}

fn read_all(
    bytes: &[u8],
    options: ReadOptions,
) -> Vec<Result<(u64, Envelope<Order>), SessionError>> {
    SessionReader::<_, Order>::with_options(bytes, options)
        .unwrap()
        .collect()
}

#[test]
fn round_trip_keeps_every_field_and_the_order() {
    let envelopes = sample();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    let header = write_session(&path, &envelopes).unwrap();
    assert_eq!(header.format, SESSION_FORMAT);
    assert_eq!(header.version, SESSION_VERSION);
    assert_eq!(
        header.topics,
        ["audit.note", "orders.placed", "orders.shipped"]
    );
    assert_eq!(header.count, 3);
    assert!(header.created > Timestamp::EPOCH);
    // No temporary file is left next to it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["s.jsonl"]);

    let reader = SessionReader::<_, Order>::open(&path).unwrap();
    assert_eq!(reader.header(), &header);
    let back: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    let expected: Vec<_> = (0..).zip(envelopes.iter().cloned()).collect();
    assert_eq!(back, expected);
    let root = &back[0].1;
    assert_eq!(root.tags().collect::<Vec<_>>(), ["vip", "eu"]);
    assert_eq!(
        root.replay(),
        Some(ReplayMark {
            dry_run: true,
            recorded_seq: 41
        })
    );
    assert_eq!(back[1].1.causation_id(), Some(root.id()));
    assert_eq!(back[1].1.correlation_id(), root.correlation_id());
    assert_eq!(back[1].1.tenant(), Some("acme"));

    let (h, all) = read_session::<Order>(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!((h, all), (header, envelopes));
}

#[test]
fn the_file_is_a_header_line_then_one_flat_record_per_line() {
    let envelopes = sample();
    let bytes = session_bytes(&envelopes);
    let lines = lines(&bytes);
    assert_eq!(lines.len(), 4);
    let header: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(
        header,
        serde_json::json!({
            "format": "evbus-session", "version": 1,
            "topics": ["audit.note", "orders.placed", "orders.shipped"],
            "count": 3, "created": 77,
        })
    );
    let first: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(first["topic"], "orders.placed");
    assert_eq!(first["tenant"], "acme");
    assert_eq!(first["idempotency_key"], "order-1");
    assert_eq!(first["replay"]["recorded_seq"], 41);
    assert_eq!(first["id"], envelopes[0].id().to_string());
    // An empty session is a header with no topics.
    let empty = session_bytes(&[]);
    let mut r = SessionReader::<_, Order>::new(&empty[..]).unwrap();
    assert_eq!((r.header().count, r.header().topics.len()), (0, 0));
    assert!(r.next().is_none());
}

#[test]
fn header_errors_are_typed() {
    let read = |bytes: &[u8]| SessionReader::<_, Order>::new(bytes).map(|_| ());
    assert!(matches!(read(b""), Err(SessionError::MissingHeader)));
    assert!(matches!(
        read(b"not json\n"),
        Err(SessionError::BadHeader { .. })
    ));
    assert!(matches!(
        read(br#"{"format":"other","version":1,"topics":[],"count":0,"created":0}"#),
        Err(SessionError::BadHeader { .. })
    ));
    let v2 = header_line(2, &[], 0);
    let err = read(v2.as_bytes()).unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.line(), Some(1));
    // A future version may change every other field: still a version error.
    let v9 = br#"{"format":"evbus-session","version":9,"streams":{}}"#;
    assert!(matches!(
        read(v9),
        Err(SessionError::UnsupportedVersion { found: 9, .. })
    ));
    let missing_count = br#"{"format":"evbus-session","version":1,"topics":[],"created":0}"#;
    assert!(matches!(
        read(missing_count),
        Err(SessionError::BadHeader { .. })
    ));
    let unsorted = header_line(1, &["b.b", "a.a"], 0);
    assert!(matches!(
        read(unsorted.as_bytes()),
        Err(SessionError::BadHeader { .. })
    ));
    let bad_topic = header_line(1, &["a..b"], 0);
    let err = read(bad_topic.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("a..b"), "{err}");
    let long = header_line(1, &["a.a"; 1], 0);
    let err = SessionReader::<_, Order>::with_options(
        long.as_bytes(),
        ReadOptions::new().max_line_len(10),
    )
    .unwrap_err();
    assert!(
        matches!(err, SessionError::LineTooLong { line: 1, limit: 10 }),
        "{err:?}"
    );
}

#[test]
fn each_bad_line_is_an_error_with_its_number() {
    let envelopes = sample();
    let good = lines(&session_bytes(&envelopes));
    let unlisted =
        serde_json::to_string(&Envelope::on("other.topic", Order::Shipped { id: 9 }).unwrap())
            .unwrap();
    let mut bad_field: serde_json::Value = serde_json::from_str(&good[1]).unwrap();
    bad_field["surprise"] = 1.into();
    let mut bad_topic: serde_json::Value = serde_json::from_str(&good[1]).unwrap();
    bad_topic["topic"] = "orders..placed".into();
    let body = [
        good[1].clone(),         // line 2, seq 0
        "{ not json".to_owned(), // line 3
        good[2].clone(),         // line 4, seq 2
        String::new(),           // line 5
        unlisted,                // line 6
        "x".repeat(5000),        // line 7
        bad_field.to_string(),   // line 8
        bad_topic.to_string(),   // line 9
        good[3].clone(),         // line 10, seq 8
    ];
    let text = format!(
        "{}\n{}\n",
        header_line(1, &["audit.note", "orders.placed", "orders.shipped"], 9),
        body.join("\n")
    );
    let opts = ReadOptions::new().max_line_len(4096);
    let items = read_all(text.as_bytes(), opts.clone());
    let summary: Vec<Result<u64, (u64, &'static str)>> = items
        .iter()
        .map(|item| match item {
            Ok((seq, _)) => Ok(*seq),
            Err(e) => Err((
                e.line().unwrap(),
                match e {
                    SessionError::BadLine { .. } => "bad",
                    SessionError::UnlistedTopic { .. } => "unlisted",
                    SessionError::LineTooLong { .. } => "long",
                    _ => "other",
                },
            )),
        })
        .collect();
    assert_eq!(
        summary,
        [
            Ok(0),
            Err((3, "bad")),
            Ok(2),
            Err((5, "bad")),
            Err((6, "unlisted")),
            Err((7, "long")),
            Err((8, "bad")),
            Err((9, "bad")),
            Ok(8),
        ]
    );
    assert_eq!(items[0].as_ref().unwrap().1, envelopes[0]);
    assert_eq!(items[8].as_ref().unwrap().1, envelopes[2]);
    let msg = items[1].as_ref().unwrap_err().to_string();
    assert!(msg.starts_with("line 3 is not an envelope"), "{msg}");

    // Skipping: the good ones, with their file positions, and a count.
    let mut reader =
        SessionReader::<_, Order>::with_options(text.as_bytes(), opts.skip_bad_lines(true))
            .unwrap();
    let seqs: Vec<u64> = reader.by_ref().map(|r| r.unwrap().0).collect();
    assert_eq!(seqs, [0, 2, 8]);
    assert_eq!(reader.skipped(), 6);
}

#[test]
fn crlf_line_ends_are_accepted() {
    let bytes = session_bytes(&sample());
    let crlf = String::from_utf8(bytes).unwrap().replace('\n', "\r\n");
    let items = read_all(crlf.as_bytes(), ReadOptions::new());
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(Result::is_ok));
}

#[test]
fn a_truncated_or_extended_file_is_a_count_mismatch() {
    let bytes = session_bytes(&sample());
    let mut kept = lines(&bytes);
    let extra = kept.pop().unwrap();
    let short = kept.join("\n");
    let items = read_all(short.as_bytes(), ReadOptions::new());
    assert_eq!(items.len(), 3);
    assert!(matches!(
        items[2],
        Err(SessionError::CountMismatch {
            expected: 3,
            found: 2
        })
    ));
    // Cut in the middle of a line: that line is bad, then the count is off
    // by nothing (the line is there), so only the bad line is reported.
    let cut = &bytes[..bytes.len() - 10];
    let items = read_all(cut, ReadOptions::new());
    assert_eq!(items.len(), 3);
    assert_eq!(items[2].as_ref().unwrap_err().line(), Some(4));
    let mut long = bytes.clone();
    long.extend_from_slice(extra.as_bytes());
    long.push(b'\n');
    let items = read_all(&long, ReadOptions::new());
    assert!(matches!(
        items.last(),
        Some(Err(SessionError::CountMismatch {
            expected: 3,
            found: 4
        }))
    ));
}

#[test]
fn a_huge_line_is_an_error_not_an_allocation() {
    // 64 MiB of one line, streamed: the reader buffers at most its limit.
    let header = format!("{}\n", header_line(1, &["a.b"], 2));
    let huge = io::repeat(b'x').take(64 << 20);
    let tail = b"\n";
    let input = BufReader::new(header.as_bytes().chain(huge).chain(&tail[..]));
    let mut reader =
        SessionReader::<_, Order>::with_options(input, ReadOptions::new().max_line_len(1024))
            .unwrap();
    assert!(matches!(
        reader.next(),
        Some(Err(SessionError::LineTooLong {
            line: 2,
            limit: 1024
        }))
    ));
    // Then the end: one line of the two the header counts.
    assert!(matches!(
        reader.next(),
        Some(Err(SessionError::CountMismatch {
            expected: 2,
            found: 1
        }))
    ));
    assert!(reader.next().is_none());
}

/// A reader that fails after its data.
struct Failing<'a>(&'a [u8]);

impl Read for Failing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.is_empty() {
            return Err(io::Error::other("disk on fire"));
        }
        let n = self.0.read(buf)?;
        Ok(n)
    }
}

#[test]
fn an_io_error_ends_the_iteration() {
    let bytes = session_bytes(&sample());
    let cut = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut reader =
        SessionReader::<_, Order>::new(BufReader::new(Failing(&bytes[..cut]))).unwrap();
    let err = reader.next().unwrap().unwrap_err();
    assert!(
        matches!(err, SessionError::Io { line: Some(2), .. }),
        "{err:?}"
    );
    assert!(std::error::Error::source(&err).is_some());
    assert!(reader.next().is_none());
}

#[test]
fn write_errors_are_typed() {
    #[derive(Debug)]
    struct Unencodable;
    impl Serialize for Unencodable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("no"))
        }
    }
    let mut w = SessionWriter::new(Vec::new());
    let e = Envelope::on("a.b", Unencodable).unwrap();
    assert!(matches!(w.write(&e), Err(SessionError::Encode { .. })));
    let mut w = SessionWriter::new(Vec::new()).max_line_len(50);
    assert!(matches!(
        w.write(&sample()[0]),
        Err(SessionError::Encode { .. })
    ));
    assert_eq!(w.count(), 0);
    let (bytes, header) = w.finish().unwrap();
    assert_eq!(header.count, 0);
    assert_eq!(lines(&bytes).len(), 1);
    // A directory that does not exist.
    let dir = tempfile::tempdir().unwrap();
    let err = write_session(dir.path().join("no/such/dir/s.jsonl"), sample()).unwrap_err();
    assert!(matches!(err, SessionError::Io { line: None, .. }));
}

#[test]
fn mutated_sessions_never_panic_and_always_end() {
    let base = session_bytes(&sample());
    let mut noise = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..2000 {
        let mut bytes = base.clone();
        for _ in 0..=(noise.next() % 8) {
            let at = (noise.next() as usize) % bytes.len();
            match noise.next() % 4 {
                0 => bytes[at] = noise.next() as u8,
                1 => {
                    bytes.remove(at);
                }
                2 => bytes.insert(at, b"\n{}\":,[]\r0"[(noise.next() % 10) as usize]),
                _ => bytes.truncate(at),
            }
            if bytes.is_empty() {
                break;
            }
        }
        let opts = ReadOptions::new()
            .max_line_len(64 + (round % 700))
            .skip_bad_lines(round & 1 == 0);
        if let Ok(reader) = SessionReader::<_, Order>::with_options(&bytes[..], opts) {
            // At most one item per line, plus the count check.
            let bound = bytes.iter().filter(|&&b| b == b'\n').count() + 2;
            assert!(reader.take(bound + 1).count() <= bound);
        }
    }
}

#[test]
fn seqs_are_file_positions_and_the_created_time_is_kept() {
    let bytes = session_bytes(&sample());
    let reader = SessionReader::<_, Order>::new(BufReader::new(&bytes[..])).unwrap();
    assert_eq!(reader.header().created, Timestamp::from_nanos(77));
    let seqs: Vec<u64> = reader.map(|r| r.unwrap().0).collect();
    assert_eq!(seqs, [0, 1, 2]);
}

/// A number in a payload is read as the nearest float, and survives a
/// write and a second read to the last bit. serde_json's default parser is
/// best-effort: the 49-digit integer below came back as
/// 2.444444444444445e48 and, written and read again, as
/// 2.4444444444444446e48 (the `session_parse` fuzz target found it). The
/// workspace turns on its `float_roundtrip` feature, so a replayed session
/// holds exactly the values that were recorded.
#[test]
fn floats_round_trip_exactly() {
    let header = header_line(u64::from(SESSION_VERSION), &["orders.placed"], 1);
    let line = serde_json::json!({
        "id": "01890a5d-ac96-774b-bcce-b302709a8001",
        "time": 1001,
        "topic": "orders.placed",
        "correlation_id": "01890a5d-ac96-774b-bcce-b302709a8001",
        "payload": {"n": 0},
    })
    .to_string()
    .replace(
        r#"{"n":0}"#,
        r#"{"n":2444444444444444444444444444444444444444444444444}"#,
    );
    let bytes = format!("{header}\n{line}\n");
    let read = SessionReader::<_, serde_json::Value>::with_options(
        bytes.as_bytes(),
        ReadOptions::default(),
    )
    .unwrap()
    .collect::<Result<Vec<_>, _>>()
    .unwrap();
    assert_eq!(read.len(), 1);
    let envelope = &read[0].1;
    assert_eq!(
        envelope.payload()["n"].as_f64(),
        Some(2.444_444_444_444_444_3e48)
    );
    let json = serde_json::to_string(envelope).unwrap();
    let again: Envelope<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(&again, envelope);
}
