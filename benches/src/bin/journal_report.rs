//! `journal-report`: the durable journal measured against its peers in one
//! run, printed as Markdown tables with ratios to the peers.
//!
//! ```text
//! cargo run --release -p evbus-benches --bin journal-report -- [--quick] [--query-records N | --ten-million]
//! cargo run --release -p evbus-benches --bin journal-report -- --kill-rounds 500
//! ```
//!
//! 1. **Append throughput**, 64-byte payloads, under each sync policy:
//!    `Journal::append` (one `write` per record), `Journal::append_batch`
//!    (256 records, the recorder's group commit), a `Recorder` fed by a bus,
//!    the floor (a `BufWriter<File>` writing the same frames, byte for byte,
//!    with the same CRC32C and the same sync points) and SQLite through
//!    `rusqlite` (an `event_log` table, WAL, `synchronous` OFF / NORMAL /
//!    FULL for never / every-N and interval / always, 256 rows per
//!    transction). Peers run round-robin; each figure is the median over
//!    rounds.
//! 2. **Publish-to-durable latency** under the page-cache policy: an event
//!    is published on a `Bus<Envelope<T>>`, a `Recorder` appends it, a
//!    tailer thread of the same process reads it from the journal. One event
//!    in flight at a time. The bus alone (a subscriber thread) is measured
//!    in the same run for reference.
//! 3. **A time-range query** (1 % of the records, in the middle) over a
//!    journal of N records, with the bytes read and segments opened.
//! 4. `--kill-rounds N`: the SIGKILL crash test of `journal/tests/kill.rs`
//!    with N kills per policy (built and run through `cargo test
//!    --release`), its table printed.
//!
//! The journal's files go to a directory under the system's temporary
//! directory (on this machine, the root disk: syncs are real), removed at
//! the end.

use std::{
    fs::{self, File},
    hint::black_box,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use clap::Parser;
use evbus_core::{Bus, Envelope, Event, EventKind, Timestamp};
use evbus_journal::{
    Journal, JournalOptions, Query, Reader, Record, Recorder, RecorderOptions, Start, SyncPolicy,
    TailError, Tailer, format::HEADER_LEN,
};
use serde::{Deserialize, Serialize};

/// Measures the evbus journal against a plain framed file (the floor) and
/// SQLite, and prints Markdown tables.
#[derive(Debug, Parser)]
#[command(name = "journal-report", version)]
struct Args {
    /// A short run: 1 round, 300 000 records per throughput figure (at most
    /// 1 s each), 20 000 latency samples, a 200 000-record query journal
    /// (default: 3 rounds, 2 000 000 records or 3 s, 100 000 samples,
    /// 1 000 000 records).
    #[arg(long)]
    quick: bool,
    /// Records in the time-range query's journal.
    #[arg(long, value_name = "N")]
    query_records: Option<u64>,
    /// The query over 10 000 000 records (about 1.4 GB on disk).
    #[arg(long, conflicts_with = "query_records")]
    ten_million: bool,
    /// Only run the SIGKILL crash test, with N kills per sync policy.
    #[arg(long, value_name = "N")]
    kill_rounds: Option<u32>,
    /// Run only these sections: append, latency, query (comma-separated).
    #[arg(long, value_name = "SECTIONS", value_delimiter = ',')]
    only: Vec<Section>,
    /// Where to write the journals (default: the system's temporary
    /// directory).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// A section of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    /// Append throughput.
    Append,
    /// Publish-to-durable latency.
    Latency,
    /// The time-range query.
    Query,
}

// --- the payload ------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BenchKind {
    Event,
}

impl EventKind for BenchKind {
    const ALL: &'static [Self] = &[BenchKind::Event];
    fn topic(self) -> &'static str {
        "bench.journal"
    }
    fn index(self) -> usize {
        0
    }
}

/// 64 bytes: postcard writes fixed-size byte arrays as they are, so the
/// encoded payload is exactly 64 bytes. `sent` carries the publish time in
/// the latency scenario (nanoseconds since the run's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct P64 {
    a: [u8; 32],
    b: [u8; 24],
    sent: [u8; 8],
}

impl P64 {
    fn new(i: u64) -> Self {
        P64 {
            a: [i as u8; 32],
            b: [7; 24],
            sent: 0u64.to_le_bytes(),
        }
    }
}

impl Event for P64 {
    type Kind = BenchKind;
    fn kind(&self) -> BenchKind {
        BenchKind::Event
    }
}

/// Envelopes to append, made once and reused (making an envelope, with its
/// UUIDv7 and clock read, is the caller's cost, not the journal's).
fn pool() -> Vec<Envelope<P64>> {
    (0..4096).map(|i| Envelope::new(P64::new(i))).collect()
}

// --- the floor: the same frames through a BufWriter ----------------------------

/// Encodes `e` as the journal does (a body without optional fields, then the
/// 64-byte payload) into `out`, framed with its length and CRC32C.
fn floor_frame(out: &mut Vec<u8>, seq: u64, e: &Envelope<P64>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&e.time().as_nanos().to_le_bytes());
    out.extend_from_slice(e.id().as_bytes());
    out.extend_from_slice(e.correlation_id().as_bytes());
    out.push(0); // flags
    let topic = e.topic().as_bytes();
    out.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    out.extend_from_slice(topic);
    out.push(0); // tags
    let p = e.payload();
    out.extend_from_slice(&p.a);
    out.extend_from_slice(&p.b);
    out.extend_from_slice(&p.sent);
    let body = &out[start + 8..];
    let len = body.len() as u32;
    let crc = crc32c::crc32c(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// When the floor and SQLite sync, mirroring a [`SyncPolicy`].
struct Syncer {
    policy: SyncPolicy,
    unsynced: u64,
    last: Instant,
}

impl Syncer {
    fn new(policy: SyncPolicy) -> Self {
        Syncer {
            policy,
            unsynced: 0,
            last: Instant::now(),
        }
    }
    /// After a batch of `n` records: whether to sync now.
    fn due(&mut self, n: u64) -> bool {
        self.unsynced += n;
        let due = match self.policy {
            SyncPolicy::Never => false,
            SyncPolicy::EveryRecords(k) => self.unsynced >= k,
            SyncPolicy::Interval(d) => self.last.elapsed() >= d,
            SyncPolicy::Always => true,
        };
        if due {
            self.unsynced = 0;
            self.last = Instant::now();
        }
        due
    }
}

// --- append throughput -------------------------------------------------------------

const BATCH: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Append,
    AppendBatch,
    Recorder,
    Floor,
    Sqlite,
}

impl Peer {
    const ALL: [Peer; 5] = [
        Peer::Append,
        Peer::AppendBatch,
        Peer::Recorder,
        Peer::Floor,
        Peer::Sqlite,
    ];
    fn name(self) -> &'static str {
        match self {
            Peer::Append => "journal `append`",
            Peer::AppendBatch => "journal `append_batch` (256)",
            Peer::Recorder => "bus + `Recorder`",
            Peer::Floor => "floor: `BufWriter<File>`, same frames",
            Peer::Sqlite => "SQLite `event_log` (WAL, 256 rows per txn)",
        }
    }
}

struct Budget {
    records: u64,
    time: Duration,
}

/// Runs `peer` under `policy` in a fresh directory; returns records per
/// second.
fn throughput(
    peer: Peer,
    policy: SyncPolicy,
    pool: &[Envelope<P64>],
    budget: &Budget,
    root: &Path,
) -> f64 {
    let dir = root.join("throughput");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("bench dir");
    let options = JournalOptions::new().sync(policy);
    let start;
    let mut n = 0u64;
    // Check the clock once per batch.
    let over = |n: u64, start: Instant| n >= budget.records || start.elapsed() >= budget.time;
    match peer {
        Peer::Append => {
            let mut j = Journal::create(&dir, options).expect("create");
            start = Instant::now();
            while !over(n, start) {
                for _ in 0..BATCH {
                    j.append(&pool[n as usize % pool.len()]).expect("append");
                    n += 1;
                }
            }
            j.close().expect("close");
        }
        Peer::AppendBatch => {
            let mut j = Journal::create(&dir, options).expect("create");
            start = Instant::now();
            while !over(n, start) {
                let at = n as usize % pool.len();
                let batch = &pool[at..(at + BATCH).min(pool.len())];
                let r = j.append_batch(batch).expect("append_batch");
                n += r.end - r.start;
            }
            j.close().expect("close");
        }
        Peer::Recorder => {
            let bus = Bus::<Envelope<P64>>::new();
            let j = Journal::create(&dir, options).expect("create");
            let recorder = Recorder::start_with(&bus, j, RecorderOptions::new().capacity(4096))
                .expect("recorder");
            let mut publisher = bus.publisher();
            start = Instant::now();
            while !over(n, start) {
                for _ in 0..BATCH {
                    publisher
                        .publish(pool[n as usize % pool.len()].clone())
                        .expect("publish");
                    n += 1;
                }
            }
            recorder.flush().expect("flush");
            let report = recorder.stop();
            assert_eq!(report.records, n, "the recorder lost records");
        }
        Peer::Floor => {
            let path = dir.join("floor.log");
            let file = File::create(&path).expect("floor file");
            let mut w = BufWriter::with_capacity(1 << 16, file);
            let mut sync = Syncer::new(policy);
            let mut buf = Vec::with_capacity(256);
            start = Instant::now();
            while !over(n, start) {
                for _ in 0..BATCH {
                    buf.clear();
                    floor_frame(&mut buf, n, &pool[n as usize % pool.len()]);
                    w.write_all(&buf).expect("floor write");
                    n += 1;
                }
                if sync.due(BATCH as u64) {
                    w.flush().expect("floor flush");
                    w.get_ref().sync_data().expect("floor sync");
                }
            }
            w.flush().expect("floor flush");
        }
        Peer::Sqlite => {
            let conn = sqlite_open(&dir.join("events.db"), policy);
            let mut sync = Syncer::new(policy);
            start = Instant::now();
            while !over(n, start) {
                let tx = conn.unchecked_transaction().expect("begin");
                {
                    let mut stmt = tx
                        .prepare_cached(
                            "INSERT INTO event_log (seq, time, topic, id, correlation_id, payload) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        )
                        .expect("prepare");
                    for _ in 0..BATCH {
                        let e = &pool[n as usize % pool.len()];
                        let p = e.payload();
                        let mut payload = [0u8; 64];
                        payload[..32].copy_from_slice(&p.a);
                        payload[32..56].copy_from_slice(&p.b);
                        payload[56..].copy_from_slice(&p.sent);
                        stmt.execute(rusqlite::params![
                            n as i64,
                            e.time().as_nanos() as i64,
                            e.topic(),
                            &e.id().as_bytes()[..],
                            &e.correlation_id().as_bytes()[..],
                            &payload[..],
                        ])
                        .expect("insert");
                        n += 1;
                    }
                }
                tx.commit().expect("commit");
                // `synchronous` does the syncing; NORMAL under WAL syncs at
                // checkpoints, so every-N and interval also checkpoint when
                // their sync is due.
                if matches!(
                    policy,
                    SyncPolicy::EveryRecords(_) | SyncPolicy::Interval(_)
                ) && sync.due(BATCH as u64)
                {
                    conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)")
                        .expect("checkpoint");
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = fs::remove_dir_all(&dir);
    n as f64 / secs
}

fn sqlite_open(path: &Path, policy: SyncPolicy) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("sqlite open");
    let synchronous = match policy {
        SyncPolicy::Never => "OFF",
        SyncPolicy::EveryRecords(_) | SyncPolicy::Interval(_) => "NORMAL",
        SyncPolicy::Always => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};
         CREATE TABLE event_log (
             seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, topic TEXT NOT NULL,
             id BLOB NOT NULL, correlation_id BLOB NOT NULL, payload BLOB NOT NULL);"
    ))
    .expect("sqlite schema");
    conn
}

/// Checks that the floor writes the journal's frames byte for byte.
fn check_floor(pool: &[Envelope<P64>], root: &Path) {
    let dir = root.join("floor-check");
    let _ = fs::remove_dir_all(&dir);
    let pool = &pool[..pool.len().min(100)];
    let mut j = Journal::create(&dir, JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
    j.append_batch(pool).unwrap();
    j.close().unwrap();
    let seg = fs::read(dir.join(format!("{:020}.seg", 0))).unwrap();
    let mut floor = Vec::new();
    for (i, e) in pool.iter().enumerate() {
        floor_frame(&mut floor, i as u64, e);
    }
    assert!(
        seg[HEADER_LEN as usize..] == floor[..],
        "the floor's frames differ from the journal's"
    );
    let _ = fs::remove_dir_all(&dir);
}

fn policy_name(p: SyncPolicy) -> String {
    match p {
        SyncPolicy::Never => "never (page cache)".to_owned(),
        SyncPolicy::EveryRecords(n) => format!("every {n} records"),
        SyncPolicy::Interval(d) => format!("interval {} ms", d.as_millis()),
        SyncPolicy::Always => "always (fsync per batch)".to_owned(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k/s", r / 1e3)
    } else {
        format!("{r:.0} /s")
    }
}

fn append_section(rounds: usize, budget: &Budget, root: &Path) {
    let pool = pool();
    check_floor(&pool, root);
    let policies = [
        SyncPolicy::Never,
        SyncPolicy::EveryRecords(1000),
        SyncPolicy::Interval(Duration::from_millis(10)),
        SyncPolicy::Always,
    ];
    println!("### Append throughput, 64-byte payloads (records per second, median of {rounds})");
    println!();
    println!("| sync policy | peer | records/s | ÷ floor | ÷ SQLite |");
    println!("|---|---|---:|---:|---:|");
    for policy in policies {
        let mut figures: Vec<Vec<f64>> = vec![Vec::new(); Peer::ALL.len()];
        for round in 0..rounds {
            // Rotate the order each round, so no peer always runs right
            // after the same one (a peer that synced often leaves the
            // file system's own journal busy for a while).
            for k in 0..Peer::ALL.len() {
                let i = (k + round) % Peer::ALL.len();
                figures[i].push(throughput(Peer::ALL[i], policy, &pool, budget, root));
            }
        }
        let med: Vec<f64> = figures.into_iter().map(median).collect();
        let floor = med[3];
        let sqlite = med[4];
        for (i, peer) in Peer::ALL.into_iter().enumerate() {
            println!(
                "| {} | {} | {} | {:.2} | {:.2} |",
                policy_name(policy),
                peer.name(),
                rate(med[i]),
                med[i] / floor,
                med[i] / sqlite
            );
        }
    }
    println!();
}

// --- publish-to-durable latency ---------------------------------------------------------

/// What the tailer thread uses to follow the journal: the crate's
/// `Tailer`, woken by the writer (it parks; it never spins).
struct Follow {
    tailer: Tailer,
}

impl Follow {
    /// The next record, waiting for it; `None` once `stop` is set.
    fn next(&mut self, stop: &AtomicBool) -> Option<Record> {
        loop {
            match self.tailer.next_timeout(Duration::from_millis(50)) {
                Ok(r) => return Some(r),
                Err(TailError::Timeout | TailError::Empty) => {
                    if stop.load(Ordering::Relaxed) {
                        return None;
                    }
                }
                Err(e) => panic!("tailer: {e}"),
            }
        }
    }
}

fn nanos_since(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

fn percentiles(mut v: Vec<u64>) -> [f64; 4] {
    v.sort_unstable();
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0;
    [
        at(0.5),
        at(0.99),
        at(0.999),
        *v.last().unwrap_or(&0) as f64 / 1000.0,
    ]
}

/// The publishing side of the latency ping-pong: `samples` events, one in
/// flight at a time, each stamped with its send time (nanoseconds since
/// `base`); after each, wait until the receiving thread has counted it in
/// `seen`.
fn ping_pong(bus: &Bus<Envelope<P64>>, base: Instant, seen: &AtomicU64, samples: usize) {
    let mut publisher = bus.publisher();
    let template = Envelope::new(P64::new(1));
    for i in 0..samples as u64 {
        let mut e = template.clone();
        e.payload_mut().sent = nanos_since(base).to_le_bytes();
        publisher.publish(e).unwrap();
        let mut spins = 0u32;
        // Acquire: pairs with the receiver's Release store.
        while seen.load(Ordering::Acquire) <= i {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                thread::yield_now();
            }
        }
    }
}

/// One event in flight at a time: publish, wait until the tailer saw it.
fn latency_journal(samples: usize, root: &Path) -> [f64; 4] {
    let dir = root.join("latency");
    let _ = fs::remove_dir_all(&dir);
    let bus = Bus::<Envelope<P64>>::new();
    let j = Journal::create(&dir, JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
    let recorder = Recorder::start(&bus, j).unwrap();
    let follow = Follow {
        tailer: recorder.tailer(Start::End).unwrap(),
    };
    let base = Instant::now();
    let seen = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tailer = {
        let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
        thread::spawn(move || {
            let mut follow = follow;
            let mut lat = Vec::with_capacity(samples);
            while let Some(r) = follow.next(&stop) {
                let now = nanos_since(base);
                let p: P64 = r.payload().expect("payload");
                lat.push(now - u64::from_le_bytes(p.sent));
                // Release: pairs with the publisher's Acquire load, which
                // then publishes the next event.
                seen.store(r.seq() + 1, Ordering::Release);
            }
            lat
        })
    };
    ping_pong(&bus, base, &seen, samples);
    stop.store(true, Ordering::Relaxed);
    let lat = tailer.join().unwrap();
    recorder.stop();
    let _ = fs::remove_dir_all(&dir);
    percentiles(lat)
}

/// The same ping-pong with a plain subscriber thread instead of the
/// journal: what the bus alone costs on this machine now.
fn latency_bus(samples: usize) -> [f64; 4] {
    let bus = Bus::<Envelope<P64>>::new();
    let mut sub = bus.subscribe(">").unwrap();
    let base = Instant::now();
    let seen = Arc::new(AtomicU64::new(0));
    let tailer = {
        let seen = Arc::clone(&seen);
        thread::spawn(move || {
            let mut lat = Vec::with_capacity(samples);
            let mut spins = 0u32;
            while lat.len() < samples {
                match sub.try_recv() {
                    Ok(e) => {
                        let now = nanos_since(base);
                        lat.push(now - u64::from_le_bytes(e.payload().sent));
                        // Release: pairs with the publisher's Acquire load.
                        seen.store(lat.len() as u64, Ordering::Release);
                        spins = 0;
                    }
                    Err(_) => {
                        spins += 1;
                        if spins < 64 {
                            std::hint::spin_loop();
                        } else {
                            thread::yield_now();
                        }
                    }
                }
            }
            lat
        })
    };
    ping_pong(&bus, base, &seen, samples);
    percentiles(tailer.join().unwrap())
}

fn latency_section(samples: usize, root: &Path) {
    let journal = latency_journal(samples, root);
    let bus = latency_bus(samples);
    println!(
        "### Publish-to-durable latency, page-cache policy ({samples} events, one in flight; µs)"
    );
    println!();
    println!("| path | p50 | p99 | p99.9 | max |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| publish → `Recorder` appends → tailer thread reads it (polled `Reader`) | {:.1} | {:.1} | {:.1} | {:.1} |",
        journal[0], journal[1], journal[2], journal[3]
    );
    println!(
        "| reference: publish → subscriber thread (bus only) | {:.1} | {:.1} | {:.1} | {:.1} |",
        bus[0], bus[1], bus[2], bus[3]
    );
    println!();
}

// --- time-range query --------------------------------------------------------------------

/// Segment size of the query's journal: small enough that a 1 % range
/// spans few of many segments.
const QUERY_SEGMENT: u64 = 8 << 20;
/// Records are 1 µs apart in time.
const TIME_STEP: u64 = 1_000;

fn query_section(records: u64, root: &Path) {
    let dir = root.join("query");
    let _ = fs::remove_dir_all(&dir);
    let base = 1_700_000_000_000_000_000u64;
    let pool = pool();
    let written = Instant::now();
    {
        let mut j = Journal::create(
            &dir,
            JournalOptions::new()
                .sync(SyncPolicy::Never)
                .segment_size(QUERY_SEGMENT),
        )
        .unwrap();
        let mut batch = Vec::with_capacity(BATCH);
        let mut n = 0u64;
        while n < records {
            batch.clear();
            let k = (records - n).min(BATCH as u64);
            for i in n..n + k {
                let e = pool[i as usize % pool.len()]
                    .clone()
                    .with_time(Timestamp::from_nanos(base + i * TIME_STEP));
                batch.push(e);
            }
            j.append_batch(&batch).unwrap();
            n += k;
        }
        j.close().unwrap();
    }
    let write_secs = written.elapsed().as_secs_f64();
    let mut segs: Vec<(u64, u64)> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            let first = name.strip_suffix(".seg")?.parse().ok()?;
            Some((first, e.metadata().ok()?.len()))
        })
        .collect();
    segs.sort_unstable();
    let total_bytes: u64 = segs.iter().map(|s| s.1).sum();
    // The range: 1 % of the records, from the middle.
    let lo = records / 2;
    let hi = lo + (records / 100).max(1);
    let (t0, t1) = (base + lo * TIME_STEP, base + hi * TIME_STEP);
    // Segments that hold records of the range: what an index would open.
    let needed: Vec<&(u64, u64)> = segs
        .iter()
        .enumerate()
        .filter(|(k, s)| {
            let end = segs.get(k + 1).map_or(u64::MAX, |n| n.0);
            s.0 < hi && end > lo
        })
        .map(|(_, s)| s)
        .collect();
    // Every frame has the same size here.
    let frame = (total_bytes - HEADER_LEN * segs.len() as u64) / records.max(1);

    println!(
        "### Time-range query: 1 % of {records} records ({:.0} MB in {} segments of {} MiB, written in {write_secs:.1} s)",
        total_bytes as f64 / 1e6,
        segs.len(),
        QUERY_SEGMENT >> 20
    );
    println!();
    println!("| how | records | segments opened | bytes read | ms |");
    println!("|---|---:|---:|---:|---:|");
    let run = |how: &str, start: Start| {
        // Cold-ish: the files were just written, so they are in the page
        // cache for every variant alike.
        let began = Instant::now();
        let mut reader = Reader::open(&dir, start).unwrap();
        let mut count = 0u64;
        let mut first_segment = None;
        let mut end = reader.next_position();
        for r in reader.by_ref() {
            let r = r.unwrap();
            let t = r.time().as_nanos();
            if first_segment.is_none() {
                first_segment = Some(r.position().segment);
            }
            if t >= t1 {
                break;
            }
            if t >= t0 {
                count += 1;
                black_box(r.payload_bytes());
            }
            end = r.position();
        }
        let ms = began.elapsed().as_secs_f64() * 1e3;
        // The reader went through every segment from the one it started
        // in up to the one it stopped in.
        // (Both starts seek through the segment indexes, so the reader
        // begins in the segment of its first record.)
        let from = first_segment.unwrap_or(segs[0].0);
        let opened: Vec<&(u64, u64)> = segs
            .iter()
            .filter(|s| s.0 >= from && s.0 <= end.segment)
            .collect();
        let bytes: u64 = opened
            .iter()
            .map(|s| if s.0 == end.segment { end.offset } else { s.1 })
            .sum();
        println!(
            "| {how} | {count} | {} | {:.1} MB | {ms:.1} |",
            opened.len(),
            bytes as f64 / 1e6
        );
    };
    run(
        "`Reader` from `Start::Time(t0)` (the index picks the segment and the block)",
        Start::Time(Timestamp::from_nanos(t0)),
    );
    run(
        "`Reader` from `Start::Seq(first of range)` (the index picks the segment and the block)",
        Start::Seq(lo),
    );
    {
        // The query API: the sparse index rules segments out and seeks
        // inside the ones it opens.
        let began = Instant::now();
        let mut it = Query::run(
            &dir,
            &Query::new().time_range(Timestamp::from_nanos(t0), Timestamp::from_nanos(t1)),
        )
        .unwrap();
        let mut count = 0u64;
        for r in it.by_ref() {
            black_box(r.unwrap().payload_bytes());
            count += 1;
        }
        let ms = began.elapsed().as_secs_f64() * 1e3;
        let st = it.stats();
        println!(
            "| `Query::run(dir, time_range(t0, t1))` ({} segments skipped by the index, {:.1} kB of index read) | {count} | {} | {:.1} MB | {ms:.1} |",
            st.segments_skipped,
            st.index_bytes_read as f64 / 1e3,
            st.segments_opened,
            st.bytes_read as f64 / 1e6
        );
    }
    println!(
        "| ideal: the range's frames only, in the segments holding them | {} | {} | {:.1} MB | – |",
        hi - lo,
        needed.len(),
        ((hi - lo) * frame) as f64 / 1e6
    );
    println!();
    let _ = fs::remove_dir_all(&dir);
}

// --- the kill test, long --------------------------------------------------------------------

fn kill_section(rounds: u32) -> ExitCode {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .current_dir(&workspace)
        .args([
            "test",
            "--release",
            "-p",
            "evbus-journal",
            "--test",
            "kill",
            "--",
            "--nocapture",
        ])
        .env("EVBUS_KILL_ROUNDS", rounds.to_string())
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => {
            eprintln!("journal-report: running cargo test: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("### SIGKILL crash test, {rounds} kills per test (`journal/tests/kill.rs`)");
    println!();
    let mut header = false;
    for line in stdout.lines() {
        if line.starts_with("| test ") || line.starts_with("|---") {
            if !header {
                println!("{line}");
            }
            if line.starts_with("|---") {
                header = true;
            }
        } else if line.starts_with("| sigkill") {
            println!("{line}");
        }
    }
    println!();
    if output.status.success() {
        ExitCode::SUCCESS
    } else {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        eprintln!("journal-report: the kill test failed ({})", output.status);
        ExitCode::FAILURE
    }
}

// --- the report ------------------------------------------------------------------------------

fn sh(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let load = fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    format!("{cpu}, {cores} cores, load average {load} at start")
}

fn main() -> ExitCode {
    let args = Args::parse();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let commit = sh("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "?".to_owned());
    let dirty = sh("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    println!("## journal-report");
    println!();
    println!("| | |");
    println!("|---|---|");
    println!("| machine | {} |", machine());
    println!(
        "| date | {} |",
        sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default()
    );
    println!(
        "| commit | {commit}{} |",
        if dirty { " (with changes)" } else { "" }
    );
    println!("| command | `{command}` |");
    println!();
    if let Some(rounds) = args.kill_rounds {
        return kill_section(rounds);
    }
    let root = args
        .dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("evbus-journal-report-{}", std::process::id()));
    if let Err(e) = fs::create_dir_all(&root) {
        eprintln!("journal-report: {}: {e}", root.display());
        return ExitCode::FAILURE;
    }
    let (rounds, budget, samples, query) = if args.quick {
        let b = Budget {
            records: 300_000,
            time: Duration::from_secs(1),
        };
        (1, b, 20_000, 200_000)
    } else {
        let b = Budget {
            records: 2_000_000,
            time: Duration::from_secs(3),
        };
        (3, b, 100_000, 1_000_000)
    };
    let query = if args.ten_million {
        10_000_000
    } else {
        args.query_records.unwrap_or(query)
    };
    let wanted = |s: Section| args.only.is_empty() || args.only.contains(&s);
    if wanted(Section::Append) {
        append_section(rounds, &budget, &root);
    }
    if wanted(Section::Latency) {
        latency_section(samples, &root);
    }
    if wanted(Section::Query) {
        query_section(query, &root);
    }
    let _ = fs::remove_dir_all(&root);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::{Args, Envelope, P64, floor_frame};

    #[test]
    fn command_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn the_floor_writes_the_journals_frames() {
        let dir = std::env::temp_dir().join(format!("journal-report-test-{}", std::process::id()));
        let pool: Vec<_> = (0..10).map(|i| Envelope::new(P64::new(i))).collect();
        super::check_floor(&pool, &dir);
        let mut buf = Vec::new();
        floor_frame(&mut buf, 0, &pool[0]);
        assert_eq!(buf.len(), 8 + 8 + 8 + 16 + 16 + 1 + 2 + 13 + 1 + 64);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
