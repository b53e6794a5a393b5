//! Record a bus to a journal, close it, reopen it, follow one request by its
//! correlation id, and replay the recording in a dry run.
//!
//! Run it with `cargo run --release -p evbus --features journal --example journal`
//! (add a directory to keep the journal: `-- /tmp/watch-journal`).
//!
//! 1. Traffic like the `demo` example's (host metrics, alerts, logins) from
//!    three publisher threads, each event in an `Envelope`. An alert opens a
//!    request: the pager's acknowledgement and the escalation are `caused` by
//!    it, so they share its correlation id.
//! 2. A `Recorder` appends everything (`>`) with a lossless subscription and
//!    group commit, syncing every 256 records; stopping it flushes and closes.
//! 3. The journal is reopened (its open report says whether a torn tail was
//!    cut), then queried by the correlation id of one alert: the request's
//!    three events come back in order, found through the correlation index.
//! 4. The recording is replayed into a fresh bus with a dispatcher in a dry
//!    run: the `pager` handler, which has outbound effects, is registered
//!    with `skip_dry_run(true)` and is never called; the `audit` handler sees
//!    every event and its replay mark; replayed events count in the handlers'
//!    replay counters, not in `received`/`handled`.
//!
//! The process exits non-zero if any of those checks fails.

use std::{
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::Duration,
};

use evbus::{
    Bus, Envelope, Event, Overflow, Pattern,
    dispatch::{Dispatcher, HandlerOptions},
    journal::{Journal, JournalOptions, Pace, Query, Recorder, Replay, Start, SyncPolicy},
};
use serde::{Deserialize, Serialize};

const HOSTS: [&str; 4] = ["web-1", "web-2", "api-1", "db-1"];
const USERS: [&str; 3] = ["ada", "grace", "ken"];
const ROUNDS: u64 = 2_000;
const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Event, Serialize, Deserialize)]
#[event(prefix = "watch")]
enum Watch {
    Metric { host: String, cpu: u8 },
    Alert { host: String, cpu: u8 },
    Acked { by: String },
    Escalated { to: String },
    Login { user: String },
}

type Ev = Envelope<Watch>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("journal example failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (dir, _keep) = journal_dir()?;
    println!("journal: {}", dir.display());

    // 1 and 2: record the traffic.
    let bus = Bus::<Ev>::new();
    let journal = Journal::create(
        &dir,
        JournalOptions::new()
            .sync(SyncPolicy::EveryRecords(256))
            .segment_size(256 << 10),
    )?;
    let recorder = Recorder::start(&bus, journal)?;
    let first_alert = traffic(&bus)?;
    let report = recorder.stop();
    let published = bus.snapshot().published;
    println!(
        "recorded {} of {published} events in {} batches, {} syncs",
        report.records, report.batches, report.syncs
    );
    check(report.records == published, "the recorder kept every event")?;
    drop(bus);

    // 3: reopen and follow one request.
    let journal = Journal::open(&dir, JournalOptions::new())?;
    match &journal.open_report().truncated {
        Some(t) => println!("reopened: cut a torn tail of {} bytes", t.bytes),
        None => println!("reopened: clean, next seq {}", journal.next_seq()),
    }
    let mut chain = journal.query(&Query::new().correlation(first_alert))?;
    println!("request {first_alert}:");
    let mut topics = Vec::new();
    for record in chain.by_ref() {
        let record = record?;
        let envelope = record.envelope::<Watch>()?;
        println!(
            "  seq {:>6}  {:<16} caused by {:?}  {:?}",
            record.seq(),
            record.topic(),
            envelope.causation_id().map(|id| id.to_string()),
            envelope.payload()
        );
        topics.push(record.topic().to_owned());
    }
    let stats = chain.stats();
    println!(
        "  read {} bytes in {} segments to find them",
        stats.bytes_read, stats.segments_opened
    );
    check(
        topics == ["watch.alert", "watch.acked", "watch.escalated"],
        "the request's three events, in order",
    )?;

    // 4: replay in a dry run, with a handler that must not page anyone.
    let replay_bus = Bus::<Ev>::new();
    let dispatcher = Dispatcher::builder(&replay_bus).build()?;
    let paged = Arc::new(AtomicU64::new(0));
    let audited = Arc::new(AtomicU64::new(0));
    {
        let paged = Arc::clone(&paged);
        dispatcher.register(
            HandlerOptions::pattern("pager", "watch.alert")?
                .overflow(Overflow::Block(WAIT))
                .skip_dry_run(true),
            move |_: &Ev| {
                paged.fetch_add(1, Ordering::Relaxed);
                Ok(())
            },
        )?;
        let audited = Arc::clone(&audited);
        // Lossless: a replay at full speed outruns a handler, so the
        // audit ring makes the replay wait rather than drop.
        let audit = HandlerOptions::pattern("audit", ">")?.overflow(Overflow::Block(WAIT));
        dispatcher.register(audit, move |e: &Ev| {
            if e.replay().is_some_and(|m| m.dry_run) {
                audited.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })?;
    }
    let source = journal
        .reader(Start::Beginning)?
        .map(|r| r.and_then(|rec| Ok((rec.seq(), rec.envelope::<Watch>()?))));
    let replayed = Replay::new(source)
        .matching(Pattern::parse(">")?)
        .pace(Pace::Max)
        .dry_run(true)
        .run(&replay_bus)?;
    check(dispatcher.wait_idle(WAIT), "the dispatcher settled")?;
    println!(
        "dry run: published {}, filtered {}, dropped {}, failed {}",
        replayed.published, replayed.skipped, replayed.dropped, replayed.failed
    );
    for s in dispatcher.handler_stats() {
        println!(
            "  handler {:<6} received {} replayed {} replay_handled {} skipped_dry_run {}",
            s.name, s.received, s.replayed, s.replay_handled, s.skipped_dry_run
        );
    }
    check(
        replayed.published == report.records && replayed.dropped == 0,
        "the dry run published every record, dropping none",
    )?;
    check(paged.load(Ordering::Relaxed) == 0, "no page in a dry run")?;
    check(
        audited.load(Ordering::Relaxed) == replayed.published,
        "audit saw every replayed event, marked",
    )?;
    check(
        dispatcher.handler_stats().iter().all(|s| s.received == 0),
        "no live counter moved",
    )?;
    dispatcher.shutdown(WAIT);
    println!("all checks passed");
    Ok(())
}

/// Three publisher threads; returns the correlation id of the first alert.
fn traffic(bus: &Bus<Ev>) -> Result<evbus::EventId, Box<dyn std::error::Error>> {
    let first_alert = thread::scope(|s| {
        let metrics = s.spawn(|| {
            let mut p = bus.publisher();
            for i in 0..ROUNDS {
                let host = HOSTS[i as usize % HOSTS.len()].to_owned();
                let cpu = (i * 37 % 100) as u8;
                p.publish(Envelope::new(Watch::Metric { host, cpu }).with_source("collector"))
                    .expect("the bus is open");
            }
        });
        let logins = s.spawn(|| {
            let mut p = bus.publisher();
            for i in 0..ROUNDS / 4 {
                let user = USERS[i as usize % USERS.len()].to_owned();
                p.publish(Envelope::new(Watch::Login { user }).with_tenant("acme"))
                    .expect("the bus is open");
            }
        });
        let alerts = s.spawn(|| {
            let mut p = bus.publisher();
            let mut first = None;
            for i in 0..ROUNDS / 100 {
                let host = HOSTS[i as usize % HOSTS.len()].to_owned();
                let alert = Envelope::new(Watch::Alert { host, cpu: 99 }).with_source("watchdog");
                first.get_or_insert(alert.correlation_id());
                let acked = alert.caused(Watch::Acked { by: "ada".into() });
                let escalated = acked.caused(Watch::Escalated {
                    to: "oncall".into(),
                });
                for e in [alert, acked, escalated] {
                    p.publish(e).expect("the bus is open");
                }
            }
            first.expect("at least one alert")
        });
        metrics.join().expect("metrics thread");
        logins.join().expect("logins thread");
        alerts.join().expect("alerts thread")
    });
    Ok(first_alert)
}

/// The journal's directory: the first argument, or a fresh one under the
/// temporary directory that is removed at the end.
fn journal_dir() -> std::io::Result<(PathBuf, Option<TempDir>)> {
    if let Some(dir) = std::env::args_os().nth(1) {
        return Ok((PathBuf::from(dir), None));
    }
    let dir = std::env::temp_dir().join(format!("evbus-journal-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok((dir.clone(), Some(TempDir(dir))))
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        println!("ok: {what}");
        Ok(())
    } else {
        Err(format!("check failed: {what}"))
    }
}
