//! Fuzzes the session reader (`evbus_journal::SessionReader`): arbitrary
//! bytes never panic, the iteration always ends (at most one item per line,
//! plus the final count check), every bad line is an error that names a
//! line of the input, and every envelope it yields is well formed (its
//! topic listed in the header, its seq its line's position, and it
//! round-trips through JSON).
//!
//! Input: the first byte picks the options (bit 0: skip bad lines; bits
//! 1..: the line limit, from 16 bytes up), the rest is the file.

#![no_main]

use evbus_journal::{ReadOptions, SessionError, SessionReader};
use libfuzzer_sys::fuzz_target;

type Payload = serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&opts, file)) = data.split_first() else {
        return;
    };
    let skip = opts & 1 == 1;
    let limit = 16 + usize::from(opts >> 1) * 64;
    let options = ReadOptions::new().max_line_len(limit).skip_bad_lines(skip);
    let Ok(reader) = SessionReader::<_, Payload>::with_options(file, options) else {
        return;
    };
    // Lines in the file: pieces split at `\n`, a final empty one not
    // counted; the header is line 1.
    let mut lines = file.split(|&b| b == b'\n').count();
    if file.last() == Some(&b'\n') {
        lines -= 1;
    }
    let body = lines as u64 - 1;
    let header = reader.header().clone();
    let mut reader = reader;
    let mut items = 0u64;
    let mut envelopes = 0u64;
    let mut bad_lines = 0u64;
    let mut count_mismatch = false;
    while let Some(item) = reader.next() {
        items += 1;
        assert!(items <= body + 1, "more items than lines");
        assert!(!count_mismatch, "an item after the count check");
        match item {
            Ok((seq, envelope)) => {
                envelopes += 1;
                assert!(seq < body, "seq {seq} past the last line");
                assert!(header.topics.iter().any(|t| t == envelope.topic()));
                let json = serde_json::to_string(&envelope).expect("re-encodes");
                let again: evbus_core::Envelope<Payload> =
                    serde_json::from_str(&json).expect("re-decodes");
                assert_eq!(again, envelope);
            }
            Err(SessionError::CountMismatch { expected, found }) => {
                assert_eq!(expected, header.count);
                assert_eq!(found, body);
                assert_ne!(expected, found);
                count_mismatch = true;
            }
            Err(e) => {
                assert!(!skip, "a bad line was not skipped: {e}");
                let line = e.line().expect("a line error names its line");
                assert!(line >= 2 && line <= lines as u64, "line {line} of {lines}");
                bad_lines += 1;
            }
        }
    }
    // Every line after the header was an envelope, a bad line or skipped.
    assert_eq!(envelopes + bad_lines + reader.skipped(), body);
    assert_eq!(count_mismatch, header.count != body);
});
