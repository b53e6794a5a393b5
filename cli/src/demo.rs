//! `evbus demo`: a three-second monitoring scenario on one bus.
//!
//! Run it with `cargo run --release -p evbus-cli -- demo [--seconds N]`.
//!
//! - three publisher threads, each with its own `Publisher`: host metrics
//!   (bursts), alerts (now and then) and logins (steady);
//! - two fast subscribers that keep up: `dashboard` (metrics, `recv_batch`)
//!   and `pager` (alerts and logins, `recv`);
//! - a wildcard subscriber, `auditor` (`watch.>`);
//! - a stalled subscriber, `exporter`, with a small ring: it reads one event
//!   and then never again, so its ring fills up and it drops;
//! - `login-trial`, which unsubscribes itself halfway through, drains what
//!   was buffered, and ends;
//! - then `bus.shutdown()`, and a table of what every subscription saw.
//!
//! While it runs (unless `--quiet`), a live table refreshes every second with each
//! subscription's delivery rate, ring fill level and drops, so the stalled
//! `exporter` can be seen filling up and dropping while the others stay
//! empty: isolation, as it happens. On a terminal it is drawn with
//! indicatif (one fill bar per subscription); otherwise each refresh is
//! printed as a plain text block.
//!
//! The command fails (exit status 1) if a fast subscriber dropped anything, if the
//! stalled one dropped nothing, or if the bus totals disagree with the rows.

use std::{
    collections::BTreeMap,
    sync::{Arc, Barrier, mpsc},
    thread,
    time::{Duration, Instant},
};

use evbus::{
    Bus, Event, EventKind, Filter, RecvError, RecvTimeoutError, SubscribeOptions, SubscriptionStats,
};

use crate::{
    error::CliError,
    live::{self, LiveRow},
    ui::Ui,
};

/// How often the live table refreshes.
const REFRESH: Duration = Duration::from_secs(1);
const HOSTS: [&str; 8] = [
    "web-1", "web-2", "web-3", "api-1", "api-2", "db-1", "db-2", "cache-1",
];
const USERS: [&str; 5] = ["ada", "grace", "linus", "barbara", "ken"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Metric,
    Alert,
    Login,
}

impl EventKind for Kind {
    const ALL: &'static [Self] = &[Kind::Metric, Kind::Alert, Kind::Login];

    fn topic(self) -> &'static str {
        match self {
            Kind::Metric => "watch.metric",
            Kind::Alert => "watch.alert",
            Kind::Login => "watch.login",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone)]
enum Watch {
    Metric {
        host: &'static str,
        cpu_pct: f32,
    },
    Alert {
        host: &'static str,
        severity: u8,
        message: Arc<str>,
    },
    Login {
        user: &'static str,
        ok: bool,
    },
}

impl Event for Watch {
    type Kind = Kind;

    fn kind(&self) -> Kind {
        match self {
            Watch::Metric { .. } => Kind::Metric,
            Watch::Alert { .. } => Kind::Alert,
            Watch::Login { .. } => Kind::Login,
        }
    }
}

/// What a subscriber thread hands back: its stats after the run, and the
/// events its code actually took.
struct Outcome {
    stats: SubscriptionStats,
    taken: u64,
    /// What the subscriber made of its events.
    note: String,
}

/// `evbus demo`'s options.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  evbus demo --seconds 5")]
pub(crate) struct DemoArgs {
    /// How long the publishers run, in seconds.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
}

/// Runs the scenario, prints its table, and checks it.
pub(crate) fn run(args: &DemoArgs, ui: Ui) -> Result<(), CliError> {
    let run = Duration::from_secs(args.seconds);
    let bus = Bus::<Watch>::new();

    // Published before anyone listens: counted as "no subscribers".
    bus.publish(Watch::Alert {
        host: "bus",
        severity: 0,
        message: "monitor starting".into(),
    })
    .expect("bus is open");

    let start_gate = Arc::new(Barrier::new(1 + 3 + 5));
    let mut subscribers: Vec<(&str, thread::JoinHandle<Outcome>)> = Vec::new();

    // Fast: takes metrics in batches.
    {
        let mut sub = bus
            .subscribe_with(
                Filter::kinds(&[Kind::Metric]).expect("valid kinds"),
                SubscribeOptions::new().name("dashboard"),
            )
            .expect("subscribe dashboard");
        let gate = Arc::clone(&start_gate);
        subscribers.push((
            "fast",
            thread::spawn(move || {
                gate.wait();
                let mut buf = Vec::with_capacity(64);
                let mut taken = 0;
                let mut peak = (0.0_f32, "-");
                while let Ok(n) = sub.recv_batch(&mut buf, 64) {
                    taken += n as u64;
                    for ev in buf.drain(..) {
                        if let Watch::Metric { host, cpu_pct } = ev
                            && cpu_pct > peak.0
                        {
                            peak = (cpu_pct, host);
                        }
                    }
                }
                Outcome {
                    stats: sub.stats(),
                    taken,
                    note: format!("peak cpu {:.0}% on {}", peak.0, peak.1),
                }
            }),
        ));
    }

    // Fast: alerts and logins, one at a time.
    {
        let mut sub = bus
            .subscribe_with(
                Filter::kinds(&[Kind::Alert, Kind::Login]).expect("valid kinds"),
                SubscribeOptions::new().name("pager"),
            )
            .expect("subscribe pager");
        let gate = Arc::clone(&start_gate);
        subscribers.push((
            "fast",
            thread::spawn(move || {
                gate.wait();
                let mut taken = 0;
                let (mut pages, mut failed_logins) = (0, 0);
                let mut last_page = String::new();
                loop {
                    match sub.recv() {
                        Ok(Watch::Alert {
                            host,
                            severity,
                            message,
                        }) if severity >= 3 => {
                            pages += 1;
                            last_page = format!("{host}: {message}");
                        }
                        Ok(Watch::Login { ok: false, .. }) => failed_logins += 1,
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Disconnected) => break,
                    }
                    taken += 1;
                }
                Outcome {
                    stats: sub.stats(),
                    taken,
                    note: format!(
                        "{pages} pages (last: {last_page}), {failed_logins} failed logins"
                    ),
                }
            }),
        ));
    }

    // Wildcard: everything under `watch.`.
    {
        let mut sub = bus
            .subscribe_with(
                Filter::pattern("watch.>").expect("valid pattern"),
                SubscribeOptions::new().name("auditor").capacity(4096),
            )
            .expect("subscribe auditor");
        let gate = Arc::clone(&start_gate);
        subscribers.push((
            "wildcard",
            thread::spawn(move || {
                gate.wait();
                let mut buf = Vec::with_capacity(256);
                let mut taken = 0;
                let mut per_kind = [0_u64; 3];
                while let Ok(n) = sub.recv_batch(&mut buf, 256) {
                    taken += n as u64;
                    for ev in buf.drain(..) {
                        per_kind[ev.kind().index()] += 1;
                    }
                }
                Outcome {
                    stats: sub.stats(),
                    taken,
                    note: Kind::ALL
                        .iter()
                        .map(|k| format!("{} {}", per_kind[k.index()], k.topic()))
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            }),
        ));
    }

    // Stalled: a small ring, one read, then stuck until the run is over.
    let (release_stalled, stuck) = mpsc::channel::<()>();
    {
        let mut sub = bus
            .subscribe_with(
                Filter::pattern("watch.metric").expect("valid pattern"),
                SubscribeOptions::new().name("exporter").capacity(16),
            )
            .expect("subscribe exporter");
        let gate = Arc::clone(&start_gate);
        subscribers.push((
            "stalled",
            thread::spawn(move || {
                gate.wait();
                let taken = match sub.recv_timeout(run) {
                    Ok(_) => 1,
                    Err(_) => 0,
                };
                // Stuck (say, on a dead remote) until the demo ends.
                let _ = stuck.recv();
                Outcome {
                    stats: sub.stats(),
                    taken,
                    note: format!("read {taken} event, then stalled"),
                }
            }),
        ));
    }

    // Unsubscribes itself halfway, drains what was buffered, and ends.
    {
        let mut sub = bus
            .subscribe_with(
                Filter::pattern("watch.login").expect("valid pattern"),
                SubscribeOptions::new().name("login-trial"),
            )
            .expect("subscribe login-trial");
        let gate = Arc::clone(&start_gate);
        subscribers.push((
            "leaves",
            thread::spawn(move || {
                gate.wait();
                let halfway = Instant::now() + run / 2;
                let mut taken = 0;
                let mut users = std::collections::BTreeSet::new();
                loop {
                    match sub.recv_deadline(halfway) {
                        Ok(Watch::Login { user, .. }) => {
                            users.insert(user);
                            taken += 1;
                        }
                        Ok(_) => taken += 1,
                        Err(RecvTimeoutError::Lagged(_)) => {}
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
                let closed_here = sub.unsubscribe();
                // Events buffered before the close are still ours.
                let drained = sub.iter().count() as u64;
                taken += drained;
                Outcome {
                    stats: sub.stats(),
                    taken,
                    note: format!(
                        "saw {} users, unsubscribed halfway (closed it: {closed_here}), drained {drained} after",
                        users.len()
                    ),
                }
            }),
        ));
    }

    // Three publishers, each with its own handle and pace.
    let spawn_publisher =
        |name: &'static str,
         pause: Duration,
         mut tick: Box<dyn FnMut(u64) -> Vec<Watch> + Send>| {
            let mut publisher = bus.publisher();
            let gate = Arc::clone(&start_gate);
            thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    gate.wait();
                    let end = Instant::now() + run;
                    let mut published = 0_u64;
                    let mut round = 0;
                    while Instant::now() < end {
                        for ev in tick(round) {
                            publisher.publish(ev).expect("bus is open during the run");
                            published += 1;
                        }
                        round += 1;
                        thread::sleep(pause);
                    }
                    published
                })
                .expect("spawn publisher")
        };
    let publishers = vec![
        // A burst of one sample per host every 5 ms.
        spawn_publisher(
            "metrics",
            Duration::from_millis(5),
            Box::new(|round| {
                HOSTS
                    .iter()
                    .enumerate()
                    .map(|(i, host)| Watch::Metric {
                        host,
                        cpu_pct: ((round * 7 + i as u64 * 13) % 100) as f32,
                    })
                    .collect()
            }),
        ),
        // An alert every 40 ms.
        spawn_publisher(
            "alerts",
            Duration::from_millis(40),
            Box::new(|round| {
                vec![Watch::Alert {
                    host: HOSTS[(round % HOSTS.len() as u64) as usize],
                    severity: (round % 5) as u8,
                    message: format!("check {round} failed").into(),
                }]
            }),
        ),
        // A login every 10 ms.
        spawn_publisher(
            "logins",
            Duration::from_millis(10),
            Box::new(|round| {
                vec![Watch::Login {
                    user: USERS[(round % USERS.len() as u64) as usize],
                    ok: round % 11 != 0,
                }]
            }),
        ),
    ];

    let (stop_monitor, monitor_stop) = mpsc::channel::<()>();
    let monitor = {
        let bus = bus.clone();
        thread::spawn(move || monitor(&bus, &monitor_stop, ui))
    };
    let started = Instant::now();
    start_gate.wait();
    let published_by_threads: u64 = publishers
        .into_iter()
        .map(|h| h.join().expect("publisher thread"))
        .sum();
    // One last refresh, then the live table ends.
    drop(stop_monitor);
    monitor.join().expect("monitor thread");
    let shutdown = bus.shutdown();
    drop(release_stalled);
    let outcomes: Vec<(&str, Outcome)> = subscribers
        .into_iter()
        .map(|(role, h)| (role, h.join().expect("subscriber thread")))
        .collect();
    let elapsed = started.elapsed();
    // Every subscription is gone now; its counts live on in the totals.
    let snap = bus.snapshot();

    println!(
        "evbus demo: ran {:.2} s; shutdown closed {} subscriptions with {} events buffered",
        elapsed.as_secs_f64(),
        shutdown.closed,
        shutdown.buffered
    );
    println!();
    println!(
        "{:<12} {:<9} {:<28} {:>5} {:>9} {:>9} {:>8} {:>10}",
        "subscription", "role", "filter", "cap", "delivered", "received", "dropped", "high-water"
    );
    println!("{}", "-".repeat(97));
    for (role, o) in &outcomes {
        let s = &o.stats;
        println!(
            "{:<12} {:<9} {:<28} {:>5} {:>9} {:>9} {:>8} {:>10}",
            s.name.as_deref().unwrap_or("-"),
            role,
            s.filter.join(" | "),
            s.capacity,
            s.delivered,
            s.received,
            s.dropped,
            s.high_water
        );
    }
    println!("{}", "-".repeat(97));
    for (_, o) in &outcomes {
        println!(
            "  {:<12} {}",
            o.stats.name.as_deref().unwrap_or("-"),
            o.note
        );
    }
    println!(
        "bus totals: published {}, delivered {}, dropped {}, no_subscribers {}",
        snap.published, snap.delivered, snap.dropped, snap.no_subscribers
    );

    let mut failures = Vec::new();
    for (role, o) in &outcomes {
        let s = &o.stats;
        let name = s.name.as_deref().unwrap_or("-");
        if *role == "fast" && s.dropped != 0 {
            failures.push(format!("fast subscriber {name} dropped {}", s.dropped));
        }
        if *role == "stalled" && s.dropped == 0 {
            failures.push(format!("stalled subscriber {name} dropped nothing"));
        }
        if s.received != o.taken {
            failures.push(format!(
                "{name}: stats say {} received, its thread took {}",
                s.received, o.taken
            ));
        }
    }
    let delivered: u64 = outcomes.iter().map(|(_, o)| o.stats.delivered).sum();
    let dropped: u64 = outcomes.iter().map(|(_, o)| o.stats.dropped).sum();
    if (snap.delivered, snap.dropped) != (delivered, dropped) {
        failures.push(format!(
            "bus totals delivered/dropped {}/{} differ from the rows' {delivered}/{dropped}",
            snap.delivered, snap.dropped
        ));
    }
    // The threads' publishes plus the one made before anyone subscribed.
    if snap.published != published_by_threads + 1 {
        failures.push(format!(
            "bus counted {} publishes, the publishers made {}",
            snap.published,
            published_by_threads + 1
        ));
    }

    if failures.is_empty() {
        println!(
            "check: OK - fast subscribers dropped 0, stalled subscriber dropped > 0, totals add up"
        );
        Ok(())
    } else {
        Err(CliError::failure(format!(
            "the demo's checks failed: {}",
            failures.join("; ")
        ))
        .hint("this machine may be too loaded for the demo's timing; run it again, or with --seconds 10"))
    }
}

/// Refreshes the live table every [`REFRESH`] until `stop` is dropped,
/// then draws it one last time.
fn monitor(bus: &Bus<Watch>, stop: &mpsc::Receiver<()>, ui: Ui) {
    let mut view = live::view(ui, REFRESH);
    let started = Instant::now();
    let mut last = (Instant::now(), counts(bus));
    loop {
        let done = !matches!(
            stop.recv_timeout(REFRESH),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        let now = (Instant::now(), counts(bus));
        let dt = now.0.duration_since(last.0).as_secs_f64().max(1e-9);
        let rows: Vec<LiveRow> = now
            .1
            .values()
            .map(|s| {
                let before = last.1.get(&s.id);
                let (delivered0, dropped0) = before.map_or((0, 0), |b| (b.delivered, b.dropped));
                LiveRow {
                    name: s.name.clone().unwrap_or_else(|| s.filter.join(",")),
                    capacity: s.capacity,
                    queued: s.queued,
                    delivered_per_s: s.delivered.saturating_sub(delivered0) as f64 / dt,
                    dropped: s.dropped,
                    dropped_per_s: s.dropped.saturating_sub(dropped0) as f64 / dt,
                }
            })
            .collect();
        // The stop usually lands just after a refresh: rates over a sliver
        // of a second say nothing, so that last sliver is not drawn.
        if !done || dt >= REFRESH.as_secs_f64() / 4.0 {
            view.draw(started.elapsed(), &rows);
        }
        last = now;
        if done {
            view.finish();
            return;
        }
    }
}

/// The stats of every registered subscription, by id.
fn counts(bus: &Bus<Watch>) -> BTreeMap<u64, SubscriptionStats> {
    bus.snapshot()
        .subscriptions
        .into_iter()
        .map(|s| (s.id, s))
        .collect()
}
