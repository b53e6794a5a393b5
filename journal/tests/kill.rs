//! The SIGKILL crash test: a child process appends under each sync policy
//! and is killed with `SIGKILL` at random points; after every kill the
//! journal reopens, every record read back is intact and in order, and no
//! acknowledged record is missing.
//!
//! # How it runs
//!
//! The child process is this test binary itself, run again with
//! `--exact <test name>` and the environment variable `EVBUS_KILL_CHILD`
//! set: the test function sees the variable and plays the child (it opens
//! the journal and appends until it is killed) instead of the parent. No
//! extra binary is built.
//!
//! Each round the parent starts a child on the same journal directory (so
//! every round also recovers what the previous kill left), reads the
//! child's acknowledgements from a pipe (`ack <seq>` lines, written after
//! `append`, `append_batch` or `Recorder::flush` returned), and kills it
//! after a random number of them plus a random short delay, so kills land
//! between writes, in the middle of a write, in a sync, in a segment roll
//! (the segment sizes are small) and in the child's own recovery. Then it
//! checks, with a reader in its own process and again after
//! [`Journal::open`]:
//! - records are contiguous from 0 and each decodes to exactly the payload
//!   the child derives from its sequence number (so no torn or corrupt
//!   record is ever returned);
//! - every acknowledged sequence number is present.
//!
//! The last check holds under every policy, not only `Always`: `SIGKILL`
//! ends the process, not the kernel, so what `write` handed to the page
//! cache survives. What differs between the policies is a power loss or a
//! kernel crash, which this test cannot produce.
//!
//! # Knobs
//!
//! - `EVBUS_KILL_ROUNDS`: kills per policy (default 50);
//! - `EVBUS_KILL_SEED`: the random seed (printed on failure), to replay a
//!   run.
//!
//! `cargo test -p evbus-journal --test kill -- --nocapture` prints a table
//! of what the kills found; the long run is
//! `journal-report --kill-rounds N` in the benches crate.

use std::{
    collections::BTreeSet,
    fs,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use evbus_core::{Bus, Envelope, Event, EventKind};
use evbus_journal::{
    Error, Journal, JournalOptions, Reader, Record, Recorder, RecorderOptions, Start, SyncPolicy,
    format::HEADER_LEN,
};
use serde::{Deserialize, Serialize};

const CHILD_ENV: &str = "EVBUS_KILL_CHILD";
const ROUNDS_ENV: &str = "EVBUS_KILL_ROUNDS";
const SEED_ENV: &str = "EVBUS_KILL_SEED";
const DEFAULT_ROUNDS: u32 = 50;
/// A child that was never killed stops after this many records (the
/// parent kills long before).
const CHILD_CAP: u64 = 200_000;
/// How long the parent waits for the child's next line before it calls the
/// child stuck (a guard against a hang, not a performance assertion).
const STUCK: Duration = Duration::from_secs(120);

// --- the records ------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TickKind {
    Tick,
}

impl EventKind for TickKind {
    const ALL: &'static [Self] = &[TickKind::Tick];
    fn topic(self) -> &'static str {
        "kill.tick"
    }
    fn index(self) -> usize {
        0
    }
}

/// The payload of record `seq`: its own sequence number and filler derived
/// from it (a string, which postcard decodes without a visit per byte).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Tick {
    seq: u64,
    fill: String,
}

impl Event for Tick {
    type Kind = TickKind;
    fn kind(&self) -> TickKind {
        TickKind::Tick
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The payload the child writes as record `seq`: mostly 0 to 99 filler
/// bytes; one record in 29 between 4 and 12 KiB, and one in 499 between
/// 256 KiB and 2 MiB (writes that span many pages: a kill can tear them).
fn tick(seq: u64) -> Tick {
    let h = splitmix(seq);
    let len = if h.is_multiple_of(499) {
        (256 << 10) + (h >> 16) % (1792 << 10)
    } else if h.is_multiple_of(29) {
        4096 + (h >> 8) % 8192
    } else {
        (h >> 8) % 100
    };
    let fill = (0..len)
        .map(|i| char::from(b'a' + (seq.wrapping_add(i.wrapping_mul(7)) % 26) as u8))
        .collect();
    Tick { seq, fill }
}

/// The session id of record `seq`, if it has one.
fn session(seq: u64) -> Option<String> {
    seq.is_multiple_of(3).then(|| format!("s{}", seq % 7))
}

fn envelope(seq: u64) -> Envelope<Tick> {
    let e = Envelope::new(tick(seq));
    match session(seq) {
        Some(s) => e.with_session(&s),
        None => e,
    }
}

/// Checks that `record` is exactly what the child wrote as record `seq`.
fn check_record(record: &Record, seq: u64) -> Result<(), String> {
    if record.seq() != seq {
        return Err(format!("expected record {seq}, read {}", record.seq()));
    }
    if record.topic() != "kill.tick" {
        return Err(format!("record {seq}: topic {:?}", record.topic()));
    }
    if record.session_id() != session(seq).as_deref() {
        return Err(format!("record {seq}: session {:?}", record.session_id()));
    }
    let payload: Tick = record
        .payload()
        .map_err(|e| format!("record {seq}: payload does not decode: {e}"))?;
    if payload != tick(seq) {
        return Err(format!("record {seq}: payload differs"));
    }
    Ok(())
}

// --- a small deterministic random source -----------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        splitmix(self.0)
    }
    /// Uniform in `0..n` (`n > 0`; the modulo bias does not matter here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// --- the child ---------------------------------------------------------------

/// How the child appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `Journal::append`, one record at a time.
    Append,
    /// `Journal::append_batch` of 1 to 16 records.
    Batch,
    /// Publishes 1 to 16 envelopes on a bus, then `Recorder::flush`.
    Recorder,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Append => "append",
            Mode::Batch => "batch",
            Mode::Recorder => "recorder",
        }
    }
    fn parse(s: &str) -> Mode {
        match s {
            "append" => Mode::Append,
            "batch" => Mode::Batch,
            "recorder" => Mode::Recorder,
            other => panic!("unknown mode {other:?}"),
        }
    }
}

fn policy_arg(p: SyncPolicy) -> String {
    match p {
        SyncPolicy::Never => "never".to_owned(),
        SyncPolicy::EveryRecords(n) => format!("every:{n}"),
        SyncPolicy::Interval(d) => format!("interval:{}", d.as_micros()),
        SyncPolicy::Always => "always".to_owned(),
    }
}

fn parse_policy(s: &str) -> SyncPolicy {
    match s.split_once(':') {
        None if s == "never" => SyncPolicy::Never,
        None if s == "always" => SyncPolicy::Always,
        Some(("every", n)) => SyncPolicy::EveryRecords(n.parse().expect("every:N")),
        Some(("interval", us)) => {
            SyncPolicy::Interval(Duration::from_micros(us.parse().expect("interval:µs")))
        }
        _ => panic!("unknown sync policy {s:?}"),
    }
}

/// [`Journal::open`], waiting out [`Error::Locked`] for a while.
///
/// The tests of this file run on parallel threads of one parent process,
/// each spawning children. A child is forked with a copy of every file
/// descriptor of the parent, including the `LOCK` file of a journal that
/// another test holds open at that moment; the copy is closed only when the
/// child execs (close-on-exec). An advisory lock belongs to the open file,
/// so for that short window it outlives the other test's `close`, and the
/// next open of that journal sees it locked.
fn open_retrying(dir: &Path, options: JournalOptions) -> evbus_journal::Result<Journal> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Journal::open(dir, options.clone()) {
            Err(Error::Locked { .. }) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1));
            }
            result => return result,
        }
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// If this process is a child, appends until killed (never returns).
fn child_if_asked() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    child_main();
    std::process::exit(0);
}

fn child_main() {
    let dir = env("EVBUS_KILL_DIR");
    let policy = parse_policy(&env("EVBUS_KILL_POLICY"));
    let mode = Mode::parse(&env("EVBUS_KILL_MODE"));
    let segment: u64 = env("EVBUS_KILL_SEGMENT").parse().expect("segment size");
    let mut rng = Rng(env("EVBUS_KILL_CHILD_SEED").parse().expect("seed"));
    let options = JournalOptions::new().sync(policy).segment_size(segment);
    let mut journal = open_retrying(Path::new(&dir), options).expect("child: open");
    let mut next = journal.next_seq();
    let stop = next + CHILD_CAP;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // On a line of its own: libtest has written "test <name> ... " without
    // a line break.
    writeln!(out, "\nopen {next}").expect("child: stdout");
    let ack = |out: &mut std::io::StdoutLock<'_>, seqs: std::ops::Range<u64>| {
        for s in seqs {
            writeln!(out, "ack {s}").expect("child: stdout");
        }
        out.flush().expect("child: stdout");
    };
    match mode {
        Mode::Append => {
            while next < stop {
                let seq = journal.append(&envelope(next)).expect("child: append");
                assert_eq!(seq, next);
                next += 1;
                ack(&mut out, seq..next);
            }
        }
        Mode::Batch => {
            while next < stop {
                let batch: Vec<_> = (next..next + 1 + rng.below(16)).map(envelope).collect();
                let range = journal.append_batch(&batch).expect("child: append_batch");
                assert_eq!(range.start, next);
                next = range.end;
                ack(&mut out, range);
            }
        }
        Mode::Recorder => {
            let bus = Bus::<Envelope<Tick>>::new();
            let recorder = Recorder::start_with(&bus, journal, RecorderOptions::new().capacity(64))
                .expect("child: recorder");
            while next < stop {
                let end = next + 1 + rng.below(16);
                for s in next..end {
                    bus.publish(envelope(s)).expect("child: publish");
                }
                recorder.flush().expect("child: flush");
                ack(&mut out, next..end);
                next = end;
            }
            recorder.stop();
        }
    }
}

// --- the parent ----------------------------------------------------------------

/// What the parent saw across the rounds of one policy.
#[derive(Debug, Default)]
struct Tally {
    rounds: u32,
    /// Children killed (the rest ran to their cap or failed: a failure
    /// panics).
    killed: u32,
    /// Records acknowledged by children.
    acked: u64,
    /// Acknowledged records missing after a kill (must stay 0).
    lost: u64,
    /// Records present after a kill that the child had not acknowledged
    /// (written, then killed before the ack).
    unacked_present: u64,
    /// Kills that left a torn tail, which reopening cut off.
    torn_tails: u32,
    /// Bytes those cuts removed.
    torn_bytes: u64,
    /// Kills that left the newest segment without a complete header (the
    /// writer makes a segment by renaming a file with its header written,
    /// so this stays 0).
    torn_headers: u32,
    /// Kills that left the newest segment with a header and no frame (in
    /// or right after a roll).
    empty_new_segments: u32,
    /// Kills before the child acknowledged anything (in its recovery or
    /// its first append).
    early_kills: u32,
    /// Records in the journal at the end.
    records: u64,
    segments: usize,
    by_mode: [u32; 3],
    /// Time spent running children, and checking after the kills.
    child_time: Duration,
    check_time: Duration,
}

/// What one test kills.
struct Plan {
    test: &'static str,
    /// A policy per round, in turn (the policy is not stored in the
    /// journal: each child opens it with the round's).
    policies: &'static [SyncPolicy],
    /// Segment size limits, one drawn per round.
    segment_sizes: &'static [u64],
    /// Kills after 1 to this many acks (one round in 10: before any).
    max_acks: u64,
    /// Start over in a new directory every this many rounds (bounds the
    /// number of segments a roll-heavy test reads back).
    fresh_every: u32,
}

/// Runs `rounds` kills of `plan`.
fn kill_rounds(plan: &Plan, rounds: u32) -> Tally {
    let seed = match std::env::var(SEED_ENV) {
        Ok(s) => s.parse().expect("EVBUS_KILL_SEED"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    };
    let mut rng = Rng(seed);
    let mut dir = tempfile::tempdir().unwrap();
    // Records checked after an earlier kill of this directory.
    let mut checked = 0;
    let mut tally = Tally::default();
    for round in 0..rounds {
        if round > 0 && round % plan.fresh_every == 0 {
            final_check(dir.path(), checked, &format!("{}, seed {seed}", plan.test));
            dir = tempfile::tempdir().unwrap();
            checked = 0;
        }
        let policy = plan.policies[round as usize % plan.policies.len()];
        let context = format!("{} ({policy:?}), seed {seed}, round {round}", plan.test);
        let mode = [Mode::Append, Mode::Batch, Mode::Recorder][rng.below(3) as usize];
        tally.by_mode[mode as usize] += 1;
        let segment = plan.segment_sizes[rng.below(plan.segment_sizes.len() as u64) as usize];
        // One round in 10 kills before the first ack (in the child's
        // start, its recovery or its first append).
        let target = if rng.below(10) == 0 {
            0
        } else {
            1 + rng.below(plan.max_acks)
        };
        let delay = Duration::from_micros(rng.below(2000));
        let child = ChildPlan {
            test: plan.test,
            dir: dir.path(),
            policy,
            mode,
            segment,
            seed: rng.next(),
        };
        let t0 = Instant::now();
        let outcome = run_child(&child, target, delay).unwrap_or_else(|e| panic!("{context}: {e}"));
        let t1 = Instant::now();
        tally.rounds += 1;
        tally.killed += u32::from(outcome.killed);
        tally.acked += outcome.acked.len() as u64;
        tally.early_kills += u32::from(outcome.acked.is_empty());
        let check = check_after_kill(dir.path(), policy, &outcome, checked)
            .unwrap_or_else(|e| panic!("{context} ({} mode): {e}", mode.name()));
        tally.child_time += t1 - t0;
        tally.check_time += t1.elapsed();
        checked = check.records;
        tally.lost += check.lost;
        tally.unacked_present += check.unacked_present;
        tally.torn_tails += u32::from(check.torn_bytes.is_some());
        tally.torn_bytes += check.torn_bytes.unwrap_or(0);
        tally.torn_headers += u32::from(check.torn_header);
        tally.empty_new_segments += u32::from(check.empty_new_segment);
        tally.records += check.records - check.records_before;
        tally.segments = tally.segments.max(check.segments);
        assert_eq!(
            check.lost, 0,
            "{context}: {} acknowledged records lost",
            check.lost
        );
    }
    final_check(dir.path(), checked, &format!("{}, seed {seed}", plan.test));
    tally
}

/// Every record of the journal in `dir`, checked once more from the first:
/// there must be `records`.
fn final_check(dir: &Path, records: u64, context: &str) {
    if records == 0 {
        return;
    }
    let read = Reader::open(dir, Start::Beginning)
        .map_err(|e| e.to_string())
        .and_then(|reader| read_all(reader, 0));
    match read {
        Ok(n) if n == records => {}
        Ok(n) => panic!("{context}, final check: {n} records, {records} expected"),
        Err(e) => panic!("{context}, final check: {e}"),
    }
}

struct ChildOutcome {
    /// The journal's next sequence number when the child had opened it.
    opened: Option<u64>,
    /// Sequence numbers the child acknowledged.
    acked: BTreeSet<u64>,
    /// Whether the parent killed it (or it ended by itself).
    killed: bool,
}

/// What one child does.
struct ChildPlan<'a> {
    test: &'a str,
    dir: &'a Path,
    policy: SyncPolicy,
    mode: Mode,
    segment: u64,
    seed: u64,
}

/// Runs a child; kills it after `target` acks and `delay`.
fn run_child(plan: &ChildPlan<'_>, target: u64, delay: Duration) -> Result<ChildOutcome, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["--exact", plan.test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("EVBUS_KILL_DIR", plan.dir)
        .env("EVBUS_KILL_POLICY", policy_arg(plan.policy))
        .env("EVBUS_KILL_MODE", plan.mode.name())
        .env("EVBUS_KILL_SEGMENT", plan.segment.to_string())
        .env("EVBUS_KILL_CHILD_SEED", plan.seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawning the child: {e}"))?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    // A thread reads the pipe, so the parent can wait with a time limit
    // (a guard against a stuck child) and drain what was written before the
    // kill.
    let (tx, rx) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut acked = BTreeSet::new();
    let mut opened = None;
    let mut parse = |line: &str, acked: &mut BTreeSet<u64>| -> Result<(), String> {
        let number = |s: &str| s.parse::<u64>().map_err(|_| format!("bad line {line:?}"));
        if let Some(seq) = line.strip_prefix("ack ") {
            acked.insert(number(seq)?);
        } else if let Some(next) = line.strip_prefix("open ") {
            opened = Some(number(next)?);
        }
        // Other lines: libtest's own output.
        Ok(())
    };
    let mut ended = false;
    while (acked.len() as u64) < target {
        match rx.recv_timeout(STUCK) {
            Ok(line) => parse(&line, &mut acked)?,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                ended = true;
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("the child wrote nothing for {STUCK:?}"));
            }
        }
    }
    if !ended {
        thread::sleep(delay);
    }
    // `Child::kill` sends SIGKILL on Unix.
    let killed = child.kill().is_ok();
    let status = child.wait().map_err(|e| e.to_string())?;
    // What the child wrote before it died is still in the pipe.
    for line in rx.iter() {
        parse(&line, &mut acked)?;
    }
    reader.join().map_err(|_| "the pipe reader panicked")?;
    if ended && !status.success() {
        return Err(format!("the child failed ({status}) before it was killed"));
    }
    Ok(ChildOutcome {
        opened,
        acked,
        killed: killed && !ended,
    })
}

struct Check {
    /// Records before the kill's round (checked after an earlier kill).
    records_before: u64,
    records: u64,
    segments: usize,
    lost: u64,
    unacked_present: u64,
    torn_bytes: Option<u64>,
    torn_header: bool,
    empty_new_segment: bool,
}

/// Reads every record of `reader` (which starts at `Start::Seq(from)`):
/// sequence numbers must run from `from` without a gap, and each record
/// must be exactly what the child wrote. Returns the sequence number after
/// the last record.
fn read_all(reader: Reader, from: u64) -> Result<u64, String> {
    let mut next = from;
    for r in reader {
        let record = r.map_err(|e| format!("reading record {next}: {e}"))?;
        check_record(&record, next)?;
        next += 1;
    }
    Ok(next)
}

fn segment_files(dir: &Path) -> Vec<(String, u64)> {
    let mut segs: Vec<(String, u64)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    segs.sort();
    segs
}

/// Checks the journal after a kill; records below `checked` were checked
/// after an earlier kill (and must all still be there: reopening says how
/// many records there are).
fn check_after_kill(
    dir: &Path,
    policy: SyncPolicy,
    outcome: &ChildOutcome,
    checked: u64,
) -> Result<Check, String> {
    let acked = &outcome.acked;
    let segs = segment_files(dir);
    let last_len = segs.last().map_or(0, |s| s.1);
    let torn_header = segs.last().is_some_and(|s| s.1 < HEADER_LEN);
    let empty_new_segment = segs.len() > 1 && last_len == HEADER_LEN;
    // 1. A reader of another process (this one), before any recovery: it
    //    stops at the torn tail (or a header not yet written) and returns
    //    only intact records, never an error. Records before `checked` were
    //    read after an earlier kill (and are read again at the end); a kill
    //    only ever touches the newest segment.
    match Reader::open(dir, Start::Seq(checked)) {
        Ok(reader) => {
            read_all(reader, checked)
                .map_err(|e| format!("cross-process reader after the kill: {e}"))?;
        }
        // Killed before it made the first segment.
        Err(Error::NotFound { .. }) if segs.is_empty() => {}
        Err(e) => return Err(format!("opening a reader after the kill: {e}")),
    }
    // 2. Reopen for writing: recovery cuts a torn tail.
    let options = JournalOptions::new().sync(policy);
    let journal = open_retrying(dir, options).map_err(|e| format!("reopening: {e}"))?;
    let records = journal.next_seq();
    let torn_bytes = journal.open_report().truncated.as_ref().map(|t| t.bytes);
    if records < checked {
        return Err(format!(
            "{records} records after reopening, {checked} before the kill"
        ));
    }
    let read = read_all(
        journal
            .reader(Start::Seq(checked))
            .map_err(|e| e.to_string())?,
        checked,
    )?;
    if read != records {
        return Err(format!(
            "the reopened journal says {records} records, its reader read {read}"
        ));
    }
    journal.close().map_err(|e| format!("closing: {e}"))?;
    let lost = acked.iter().filter(|&&s| s >= records).count() as u64;
    // Records this round's child wrote that are present but were not
    // acknowledged (written, then killed before the ack).
    let written = outcome.opened.map_or(0, |o| records.saturating_sub(o));
    let acked_present = acked.len() as u64 - lost;
    Ok(Check {
        records_before: checked,
        records,
        segments: segment_files(dir).len(),
        lost,
        unacked_present: written.saturating_sub(acked_present),
        torn_bytes,
        torn_header,
        empty_new_segment,
    })
}

fn rounds() -> u32 {
    std::env::var(ROUNDS_ENV)
        .ok()
        .map_or(DEFAULT_ROUNDS, |s| s.parse().expect("EVBUS_KILL_ROUNDS"))
}

fn policies(plan: &Plan) -> String {
    plan.policies
        .iter()
        .map(|&p| policy_arg(p))
        .collect::<Vec<_>>()
        .join(", ")
}

fn run(plan: &Plan) {
    child_if_asked();
    let started = Instant::now();
    let t = kill_rounds(plan, rounds());
    // A summary (shown with --nocapture) as a markdown table row, with the
    // header each time, so rows can be collected in any order.
    println!(
        "| test | policy | rounds | killed | kills before an ack | acked | acked lost | \
         unacked present | torn tails cut (bytes) | torn headers | empty new segments | \
         records | most segments | rounds append/batch/recorder | seconds (children, checks) |"
    );
    println!("|{}", "---|".repeat(15));
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} | {}/{}/{} | {:.1} ({:.1}, {:.1}) |",
        plan.test,
        policies(plan),
        t.rounds,
        t.killed,
        t.early_kills,
        t.acked,
        t.lost,
        t.unacked_present,
        t.torn_tails,
        t.torn_bytes,
        t.torn_headers,
        t.empty_new_segments,
        t.records,
        t.segments,
        t.by_mode[0],
        t.by_mode[1],
        t.by_mode[2],
        started.elapsed().as_secs_f64(),
        t.child_time.as_secs_f64(),
        t.check_time.as_secs_f64(),
    );
    assert_eq!(t.lost, 0);
    assert_eq!(t.rounds, rounds());
}

/// Segment sizes for the policy tests: small ones roll every few records
/// (kills land in rolls), a large one does not roll at all.
const SIZES: &[u64] = &[2 << 10, 16 << 10, 1 << 20];

fn policy_plan(test: &'static str, policies: &'static [SyncPolicy]) -> Plan {
    Plan {
        test,
        policies,
        segment_sizes: SIZES,
        max_acks: 100,
        fresh_every: u32::MAX,
    }
}

#[test]
fn sigkill_never() {
    run(&policy_plan("sigkill_never", &[SyncPolicy::Never]));
}

#[test]
fn sigkill_every_records() {
    run(&policy_plan(
        "sigkill_every_records",
        &[SyncPolicy::EveryRecords(8)],
    ));
}

#[test]
fn sigkill_interval() {
    const INTERVAL: &[SyncPolicy] = &[SyncPolicy::Interval(Duration::from_millis(2))];
    run(&policy_plan("sigkill_interval", INTERVAL));
}

#[test]
fn sigkill_always() {
    run(&policy_plan("sigkill_always", &[SyncPolicy::Always]));
}

/// Segments of 256 bytes: nearly every append rolls, so many kills land in
/// a roll: with `Always` a roll syncs the old segment, the new one and the
/// directory (a wide window), with `Never` it only creates the file and
/// writes its header.
#[test]
fn sigkill_during_rolls() {
    run(&Plan {
        test: "sigkill_during_rolls",
        policies: &[SyncPolicy::Always, SyncPolicy::Never],
        segment_sizes: &[256],
        max_acks: 20,
        fresh_every: 5,
    });
}
