//! Journals and sessions for the command's tests, written with
//! evbus-journal, with fixed times so the output is known.

#![allow(dead_code)]

use std::path::Path;

use assert_cmd::Command;
use evbus_core::{Envelope, EventId, Timestamp};
use evbus_journal::{Codec, Journal, JournalOptions, Reader, Start, SyncPolicy};
use serde_json::{Value, json};

/// 2026-11-29T18:00:00Z.
pub(crate) const T0: u64 = 1_795_975_200_000_000_000;
pub(crate) const MS: u64 = 1_000_000;

/// The `evbus` binary, with no terminal anywhere.
pub(crate) fn evbus() -> Command {
    Command::cargo_bin("evbus").expect("the evbus binary is built")
}

/// A loopback port nobody listens on: bound, read and closed again.
pub(crate) fn unused_port() -> u16 {
    std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The envelopes of [`write_orders`]: `n` orders, each placed then (every
/// other one) shipped, 10 ms apart; tenants alternate acme / globex.
pub(crate) fn orders(n: u64) -> (Vec<Envelope<Value>>, EventId) {
    let mut out = Vec::new();
    let mut first_correlation = None;
    let mut t = T0;
    for i in 0..n {
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        let placed = Envelope::on("orders.placed", json!({"order": i, "total": 10 * i}))
            .unwrap()
            .with_tenant(tenant)
            .with_time(Timestamp::from_nanos(t));
        first_correlation.get_or_insert(placed.correlation_id());
        t += 10 * MS;
        if i % 2 == 0 {
            let shipped = placed
                .caused_on("orders.shipped", json!({"order": i}))
                .unwrap()
                .with_tenant(tenant)
                .with_time(Timestamp::from_nanos(t));
            t += 10 * MS;
            out.push(placed);
            out.push(shipped);
        } else {
            out.push(placed);
        }
    }
    (out, first_correlation.unwrap())
}

/// A new journal in `dir` with `codec`, never synced (tests do not crash
/// the machine).
pub(crate) fn create_journal(dir: &Path, codec: Codec) -> Journal {
    Journal::create(
        dir,
        JournalOptions::new().codec(codec).sync(SyncPolicy::Never),
    )
    .unwrap()
}

/// A journal in `dir` with [`orders`]`(n)`; returns the first order's
/// correlation id.
pub(crate) fn write_orders(dir: &Path, codec: Codec, n: u64) -> EventId {
    let (envelopes, correlation) = orders(n);
    let mut journal = create_journal(dir, codec);
    journal.append_batch(envelopes.iter()).unwrap();
    journal.close().unwrap();
    correlation
}

/// A new temporary directory holding a JSON journal of [`orders`]`(n)`.
pub(crate) fn orders_journal(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_orders(dir.path(), Codec::Json, n);
    dir
}

/// Flips one byte inside record `seq`'s frame body (not its last record),
/// so its CRC fails while valid frames follow: damage in the middle.
pub(crate) fn corrupt_record(dir: &Path, seq: u64) {
    let records: Vec<_> = Reader::open(dir, Start::Beginning)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let next = records[seq as usize + 1].position();
    let segment = dir.join(format!("{:020}.seg", next.segment));
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[next.offset as usize - 3] ^= 0x5a;
    std::fs::write(&segment, bytes).unwrap();
}

/// The lines of standard output.
pub(crate) fn lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(str::to_owned)
        .collect()
}
