//! Seed acceptance tests: a plugin bus.
//!
//! Plugins (a trivia bot, a logger, a moderation filter) register handlers
//! in their own group on one dispatcher. Waits go through channels and
//! `Dispatcher::wait_idle`, each guarded by a timeout; no test sleeps.

use std::{
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use evbus::{
    Bus, Event, EventKind,
    dispatch::{Dispatcher, HandlerOptions, Priority, RetryPolicy},
};

const HANG_GUARD: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Question,
    Answer,
    Chat,
    Join,
}

impl EventKind for Kind {
    const ALL: &'static [Self] = &[Kind::Question, Kind::Answer, Kind::Chat, Kind::Join];

    fn topic(self) -> &'static str {
        match self {
            Kind::Question => "trivia.question",
            Kind::Answer => "trivia.answer",
            Kind::Chat => "chat.message",
            Kind::Join => "room.join",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Msg {
    kind: Kind,
    text: String,
}

impl Event for Msg {
    type Kind = Kind;

    fn kind(&self) -> Kind {
        self.kind
    }
}

fn msg(kind: Kind, text: &str) -> Msg {
    Msg {
        kind,
        text: text.to_owned(),
    }
}

type Log = Arc<Mutex<Vec<String>>>;

/// A handler that appends `tag:text` to `log`.
fn logging(
    log: &Log,
    tag: &'static str,
) -> impl FnMut(&Msg) -> evbus::dispatch::HandlerResult + Send + 'static {
    let log = Arc::clone(log);
    move |m: &Msg| {
        log.lock().unwrap().push(format!("{tag}:{}", m.text));
        Ok(())
    }
}

fn setup(workers: usize) -> (Bus<Msg>, Dispatcher<Msg>, Log) {
    let bus = Bus::new();
    let d = Dispatcher::builder(&bus).workers(workers).build().unwrap();
    (bus, d, Arc::new(Mutex::new(Vec::new())))
}

fn opts(name: &str, pattern: &str, plugin: &str) -> HandlerOptions {
    HandlerOptions::pattern(name, pattern)
        .unwrap()
        .group(plugin)
}

fn taken(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn basic_publish_and_subscribe() {
    let (bus, d, log) = setup(2);
    d.register(
        opts("greeter", "room.join", "greeter"),
        logging(&log, "greeter"),
    )
    .unwrap();
    bus.publish(msg(Kind::Join, "ana")).unwrap();
    bus.publish(msg(Kind::Chat, "hi")).unwrap();
    assert!(d.wait_idle(HANG_GUARD));
    assert_eq!(taken(&log), ["greeter:ana"]);
    let mut sub = bus.subscribe("chat.message").unwrap();
    bus.publish(msg(Kind::Chat, "hello")).unwrap();
    assert_eq!(sub.recv_timeout(HANG_GUARD).unwrap().text, "hello");
}

#[test]
fn wildcards_one_segment_and_everything() {
    let (bus, d, log) = setup(1);
    d.register(
        opts("trivia", "trivia.*", "trivia"),
        logging(&log, "trivia"),
    )
    .unwrap();
    d.register(opts("logger", ">", "logger"), logging(&log, "all"))
        .unwrap();
    bus.publish(msg(Kind::Question, "q1")).unwrap();
    bus.publish(msg(Kind::Chat, "c1")).unwrap();
    bus.publish(msg(Kind::Answer, "a1")).unwrap();
    bus.publish_to("trivia.score.board", msg(Kind::Answer, "deep"))
        .unwrap();
    assert!(d.wait_idle(HANG_GUARD));
    let log = taken(&log);
    let of = |tag: &str| -> Vec<&str> { log.iter().filter_map(|l| l.strip_prefix(tag)).collect() };
    assert_eq!(of("trivia:"), ["q1", "a1"], "`*` is exactly one segment");
    assert_eq!(of("all:"), ["q1", "c1", "a1", "deep"]);
}

#[test]
fn priority_order() {
    let (bus, d, log) = setup(1);
    d.register(
        opts("archive", ">", "logger").priority(Priority::Low),
        logging(&log, "low"),
    )
    .unwrap();
    d.register(
        opts("scorer", "trivia.>", "trivia"),
        logging(&log, "normal"),
    )
    .unwrap();
    d.register(
        opts("moderator", ">", "moderation").priority(Priority::High),
        logging(&log, "high"),
    )
    .unwrap();
    assert!(d.wait_idle(HANG_GUARD));
    for i in 0..20 {
        bus.publish(msg(Kind::Answer, &i.to_string())).unwrap();
    }
    assert!(d.wait_idle(HANG_GUARD));
    let log = taken(&log);
    assert_eq!(log.len(), 60);
    for i in 0..20 {
        let order: Vec<&str> = log
            .iter()
            .filter(|l| l.ends_with(&format!(":{i}")))
            .map(|l| l.split(':').next().unwrap())
            .collect();
        assert_eq!(order, ["high", "normal", "low"], "event {i}");
    }
}

#[test]
fn error_isolation() {
    let (bus, d, log) = setup(2);
    d.register(
        opts("flaky-bot", "trivia.>", "trivia").retry(RetryPolicy::never()),
        |m: &Msg| {
            if m.text.contains('?') {
                Err(io::Error::other("cannot parse").into())
            } else if m.text.contains('!') {
                panic!("bot crashed on {}", m.text)
            } else {
                Ok(())
            }
        },
    )
    .unwrap();
    d.register(opts("logger", ">", "logger"), logging(&log, "log"))
        .unwrap();
    for text in ["why?", "boom!", "fine", "how?", "ok"] {
        bus.publish(msg(Kind::Question, text)).unwrap();
    }
    assert!(d.wait_idle(HANG_GUARD));
    assert_eq!(taken(&log).len(), 5);
    let s = d.stats("flaky-bot").unwrap();
    assert_eq!(
        (s.received, s.errors, s.panics, s.handled, s.dead_lettered),
        (5, 2, 1, 2, 3)
    );
}

#[test]
fn unsubscribe_one_plugin_or_all_and_list_each_plugins_handlers() {
    let (bus, d, log) = setup(2);
    d.register(
        opts("trivia-q", "trivia.question", "trivia"),
        logging(&log, "q"),
    )
    .unwrap();
    d.register(
        opts("trivia-a", "trivia.answer", "trivia"),
        logging(&log, "a"),
    )
    .unwrap();
    d.register(opts("logger", ">", "logger"), logging(&log, "log"))
        .unwrap();
    d.register(opts("mod", "chat.>", "moderation"), logging(&log, "mod"))
        .unwrap();
    assert_eq!(d.handlers_in("trivia"), ["trivia-q", "trivia-a"]);
    assert_eq!(d.handlers_in("logger"), ["logger"]);
    assert!(d.handlers_in("nobody").is_empty());
    assert_eq!(bus.subscriber_count(), 4);

    assert_eq!(d.unregister_group("trivia"), 2);
    assert!(d.handlers_in("trivia").is_empty());
    assert_eq!(d.handler_names(), ["logger", "mod"]);
    assert!(d.wait_idle(HANG_GUARD));
    assert_eq!(bus.subscriber_count(), 2, "their subscriptions are gone");
    bus.publish(msg(Kind::Question, "q?")).unwrap();
    assert!(d.wait_idle(HANG_GUARD));
    assert_eq!(taken(&log), ["log:q?"]);

    assert!(!d.unregister("trivia-q"), "already gone");
    assert_eq!(d.unregister_all(), 2);
    assert!(d.wait_idle(HANG_GUARD));
    assert_eq!(bus.subscriber_count(), 0);
    bus.publish(msg(Kind::Chat, "anyone?")).unwrap();
    assert!(d.wait_idle(HANG_GUARD));
    assert!(taken(&log).is_empty());
}

#[test]
fn stats() {
    let (bus, d, log) = setup(2);
    d.register(
        opts("logger", ">", "logger").capacity(128),
        logging(&log, "log"),
    )
    .unwrap();
    d.register(
        opts("scorer", "trivia.*", "trivia").priority(Priority::High),
        logging(&log, "score"),
    )
    .unwrap();
    for i in 0..10 {
        bus.publish(msg(if i % 2 == 0 { Kind::Answer } else { Kind::Chat }, "x"))
            .unwrap();
    }
    assert!(d.wait_idle(HANG_GUARD));
    let all = d.handler_stats();
    assert_eq!(all.len(), 2);
    let logger = &all[0];
    assert_eq!(logger.name, "logger");
    assert_eq!(logger.filter, [">"]);
    assert_eq!(logger.capacity, 128);
    assert_eq!(
        (
            logger.received,
            logger.handled,
            logger.delivered,
            logger.dropped
        ),
        (10, 10, 10, 0)
    );
    let scorer = &all[1];
    assert_eq!(scorer.priority, Priority::High);
    assert_eq!((scorer.received, scorer.handled, scorer.queued), (5, 5, 0));
    assert!(scorer.enabled);
    let snap = bus.snapshot();
    assert_eq!(snap.published, 10);
    assert!(
        snap.subscriptions
            .iter()
            .any(|s| s.name.as_deref() == Some("scorer"))
    );
}
