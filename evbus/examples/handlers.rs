//! The handler runtime in one run: priorities, a panicking handler that
//! does not disturb the others, a retrying handler whose event ends in the
//! dead-letter topic, and a stall watchdog that fires and recovers.
//!
//! ```text
//! cargo run --release -p evbus --example handlers
//! ```

use std::{
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use evbus::{
    Bus, Event, EventKind, Filter,
    dispatch::{Dispatcher, HandlerOptions, Priority, RetryPolicy, Signal},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Order,
    Heartbeat,
}

impl EventKind for Kind {
    const ALL: &'static [Self] = &[Kind::Order, Kind::Heartbeat];

    fn topic(self) -> &'static str {
        match self {
            Kind::Order => "shop.order",
            Kind::Heartbeat => "sys.heartbeat",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Order { id: u64, cents: u64 },
    Heartbeat,
}

impl Event for Ev {
    type Kind = Kind;

    fn kind(&self) -> Kind {
        match self {
            Ev::Order { .. } => Kind::Order,
            Ev::Heartbeat => Kind::Heartbeat,
        }
    }
}

const WAIT: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Panics are caught and counted by the dispatcher; print them briefly.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        println!("    (a handler panicked: {msg:?}; caught)");
    }));

    let bus = Bus::<Ev>::new();
    // One worker makes the priority order per event strict and visible.
    let d = Dispatcher::builder(&bus)
        .workers(1)
        .on_error(|f| {
            let next = if f.will_retry {
                "will retry"
            } else {
                "giving up"
            };
            println!(
                "    error hook: {} attempt {} failed: {} ({next})",
                f.handler, f.attempt, f.failure
            );
        })
        .build()?;
    let mut signals = d.signals().subscribe(">")?;

    println!("== 1. priorities: three handlers take the same orders");
    let trace = Arc::new(Mutex::new(Vec::new()));
    for (name, priority) in [
        ("analytics", Priority::Low),
        ("billing", Priority::Normal),
        ("fraud-check", Priority::High),
    ] {
        let trace = Arc::clone(&trace);
        d.register(
            HandlerOptions::pattern(name, "shop.order")?.priority(priority),
            move |e: &Ev| {
                if let Ev::Order { id, .. } = e {
                    trace
                        .lock()
                        .unwrap()
                        .push(format!("{name} ({priority}) took order {id}"));
                }
                Ok(())
            },
        )?;
    }
    d.wait_idle(WAIT);
    for id in 1..=2 {
        bus.publish(Ev::Order { id, cents: 1999 })?;
    }
    d.wait_idle(WAIT);
    for line in trace.lock().unwrap().drain(..) {
        println!("    {line}");
    }

    println!("== 2. isolation: a handler that panics on large orders");
    d.register(
        HandlerOptions::pattern("receipt-printer", "shop.order")?.retry(RetryPolicy::never()),
        |e: &Ev| match e {
            Ev::Order { cents, .. } if *cents > 100_000 => panic!("paper jam on a long receipt"),
            _ => Ok(()),
        },
    )?;
    bus.publish(Ev::Order {
        id: 3,
        cents: 250_000,
    })?;
    bus.publish(Ev::Order { id: 4, cents: 500 })?;
    d.wait_idle(WAIT);
    trace.lock().unwrap().clear();
    let p = d.stats("receipt-printer").expect("registered");
    let b = d.stats("billing").expect("registered");
    println!(
        "    receipt-printer: {} handled, {} panicked; billing kept going: {} handled",
        p.handled, p.panics, b.handled
    );
    drain_dead_letters(&mut signals);

    println!("== 3. retries: a mailer whose SMTP server is down");
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .base(Duration::from_millis(20))
        .factor(2.0)
        .max_delay(Duration::from_millis(200))
        .jitter(0.1)
        .build()?;
    d.register(
        HandlerOptions::pattern("mailer", "shop.order")?.retry(policy),
        |_: &Ev| Err(io::Error::other("smtp: connection refused").into()),
    )?;
    bus.publish(Ev::Order { id: 5, cents: 4200 })?;
    loop {
        match signals.recv_timeout(WAIT)? {
            Signal::DeadLetter(letter) => {
                println!(
                    "    dead letter: {:?} from {} after {} attempts ({})",
                    letter.event, letter.handler, letter.attempts, letter.failure
                );
                break;
            }
            other => println!("    signal: {other:?}"),
        }
    }
    d.unregister("mailer");
    d.wait_idle(WAIT);
    trace.lock().unwrap().clear();

    println!("== 4. stall watchdog: heartbeats stop for a while");
    d.watch_stall(
        "heartbeat",
        Filter::kinds(&[Kind::Heartbeat])?,
        Duration::from_millis(150),
    )?;
    for _ in 0..3 {
        bus.publish(Ev::Heartbeat)?;
    }
    println!("    (three heartbeats, then silence)");
    loop {
        if let Signal::Stall(alarm) = signals.recv_timeout(WAIT)? {
            println!(
                "    STALL: {} quiet for {:?}",
                alarm.watchdog, alarm.quiet_for
            );
            break;
        }
    }
    bus.publish(Ev::Heartbeat)?;
    loop {
        if let Signal::Recovered(alarm) = signals.recv_timeout(WAIT)? {
            println!(
                "    RECOVERED: {} after {:?} without heartbeats",
                alarm.watchdog, alarm.quiet_for
            );
            break;
        }
    }

    println!("== per-handler stats");
    println!(
        "    {:<20} {:>8} {:>8} {:>7} {:>7} {:>8} {:>6} {:>8}",
        "handler", "received", "handled", "errors", "panics", "retries", "dead", "dropped"
    );
    for s in d.handler_stats() {
        println!(
            "    {:<20} {:>8} {:>8} {:>7} {:>7} {:>8} {:>6} {:>8}",
            s.name,
            s.received,
            s.handled,
            s.errors,
            s.panics,
            s.retries,
            s.dead_lettered,
            s.dropped
        );
    }
    let report = d.shutdown(Duration::from_secs(5));
    println!(
        "== shutdown: drained={} wedged={:?} abandoned retries={} workers joined={}",
        report.drained, report.wedged, report.abandoned_retries, report.workers_joined
    );
    Ok(())
}

fn drain_dead_letters(signals: &mut evbus::Subscription<Signal<Ev>>) {
    for s in signals.try_iter() {
        if let Signal::DeadLetter(letter) = s {
            println!(
                "    dead letter: {:?} from {} ({})",
                letter.event, letter.handler, letter.failure
            );
        }
    }
}
