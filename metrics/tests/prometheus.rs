//! `to_prometheus_text`: checked with a real text-format parser
//! (`prom_text_format_parser`, which validates the grammar, escapes
//! included), not by comparing strings.

mod common;

use std::collections::HashSet;

use common::{NASTY, busy_bus, handler_stats};
use evbus_metrics::{LatencySummary, Snapshot};
use prom_text_format_parser::{Metric, Scrape, Type};

fn parse(text: &str) -> Scrape {
    match Scrape::parse(text) {
        Ok(scrape) => scrape,
        Err(err) => panic!("invalid exposition: {err:?}\n{text}"),
    }
}

fn metric<'a>(scrape: &'a Scrape, name: &str) -> &'a Metric {
    scrape
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no family {name}"))
}

/// The parser keeps label values as written; undo the three escapes.
fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => panic!("dangling backslash in {v:?}"),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of the sample of `name` whose labels include every pair of
/// `want` (compared after unescaping).
fn value(scrape: &Scrape, name: &str, want: &[(&str, &str)]) -> f64 {
    let m = metric(scrape, name);
    let hits: Vec<f64> = m
        .samples
        .iter()
        .filter(|s| {
            want.iter().all(|(k, v)| {
                s.labels
                    .iter()
                    .any(|l| l.key == *k && unescape(&l.value) == *v)
            })
        })
        .map(|s| s.value.value.as_f64())
        .collect();
    assert_eq!(hits.len(), 1, "{name} {want:?}: {hits:?}");
    hits[0]
}

/// The text format is line-based: a line feed inside a label value must be
/// escaped, or it would start a line that is neither a comment nor a sample.
fn every_line_is_a_line(text: &str) {
    for line in text.lines() {
        assert!(
            line.starts_with("# HELP evbus_")
                || line.starts_with("# TYPE evbus_")
                || line.starts_with("evbus_"),
            "stray line {line:?}"
        );
    }
}

#[test]
fn parses_with_types_help_and_values() {
    let (bus, _subs) = busy_bus();
    let text = Snapshot::capture(&bus)
        .with_handlers(handler_stats())
        .to_prometheus_text();
    assert!(text.ends_with('\n'));
    every_line_is_a_line(&text);
    let scrape = parse(&text);

    for m in &scrape.metrics {
        assert!(m.help_desc.is_some(), "{} has no HELP", m.name);
        assert_ne!(m.kind, Type::Untyped, "{} has no TYPE", m.name);
        if m.name.ends_with("_total") {
            assert_eq!(m.kind, Type::Counter, "{}", m.name);
        }
    }
    let names: HashSet<&str> = scrape.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names.len(), scrape.metrics.len(), "a family appears twice");

    assert_eq!(
        metric(&scrape, "evbus_events_published_total").kind,
        Type::Counter
    );
    assert_eq!(value(&scrape, "evbus_events_published_total", &[]), 15.0);
    assert_eq!(value(&scrape, "evbus_events_dropped_total", &[]), 9.0);
    assert_eq!(metric(&scrape, "evbus_events_queued").kind, Type::Gauge);
    assert_eq!(value(&scrape, "evbus_subscriptions", &[]), 3.0);

    let all = [("subscription", "all")];
    assert_eq!(
        value(&scrape, "evbus_subscription_delivered_total", &all),
        15.0
    );
    assert_eq!(
        value(&scrape, "evbus_subscription_received_total", &all),
        4.0
    );
    assert_eq!(value(&scrape, "evbus_subscription_queued", &all), 11.0);
    assert_eq!(value(&scrape, "evbus_subscription_capacity", &all), 64.0);

    // The name with a quote, a backslash and a newline survives the trip.
    let nasty = [("subscription", NASTY)];
    assert_eq!(
        value(&scrape, "evbus_subscription_lagged_total", &nasty),
        6.0
    );
    assert_eq!(
        value(&scrape, "evbus_subscription_dropped_total", &nasty),
        6.0
    );
    assert_eq!(value(&scrape, "evbus_subscription_high_water", &nasty), 4.0);
    assert_eq!(
        value(
            &scrape,
            "evbus_subscription_info",
            &[
                ("subscription", NASTY),
                ("overflow", "drop_oldest"),
                ("filter", "orders.placed")
            ]
        ),
        1.0
    );
    // An unnamed subscription is labelled by its patterns.
    let small = [("subscription", "orders.shipped")];
    assert_eq!(
        value(&scrape, "evbus_subscription_dropped_total", &small),
        3.0
    );
    assert_eq!(
        value(&scrape, "evbus_subscription_lagged_total", &small),
        0.0
    );

    let mailer = [("handler", "mailer"), ("priority", "high")];
    assert_eq!(value(&scrape, "evbus_handler_panics_total", &mailer), 1.0);
    assert_eq!(
        value(&scrape, "evbus_handler_dead_lettered_total", &mailer),
        1.0
    );
    assert_eq!(value(&scrape, "evbus_handler_enabled", &mailer), 1.0);
    assert_eq!(
        value(
            &scrape,
            "evbus_handler_skipped_total",
            &[("handler", "bill\"ing")]
        ),
        4.0
    );
    // No latency sampled: no latency family.
    assert!(!names.contains("evbus_subscription_latency_seconds"));
}

#[test]
fn latency_is_a_summary_in_seconds() {
    let (bus, _subs) = busy_bus();
    let mut snap = Snapshot::capture(&bus);
    let mut l = LatencySummary::default();
    l.samples = 40;
    l.p50_ns = 1_500;
    l.p95_ns = 8_000;
    l.p99_ns = 20_000;
    l.p999_ns = 250_000;
    l.max_ns = 1_000_000;
    l.sum_ns = 120_000;
    snap.subscriptions[1].latency = Some(l);
    let text = snap.to_prometheus_text();
    let scrape = parse(&text);
    let summary = metric(&scrape, "evbus_subscription_latency_seconds");
    assert_eq!(summary.kind, Type::Summary);
    let nasty = ("subscription", NASTY);
    let q = |quantile| {
        value(
            &scrape,
            "evbus_subscription_latency_seconds",
            &[nasty, ("quantile", quantile)],
        )
    };
    assert_eq!(q("0.5"), 1.5e-6);
    assert_eq!(q("0.95"), 8e-6);
    assert_eq!(q("0.99"), 2e-5);
    assert_eq!(q("0.999"), 2.5e-4);
    // `_sum` and `_count` belong to the summary.
    assert_eq!(summary.samples.len(), 4 + 2);
    assert!(text.contains("evbus_subscription_latency_seconds_count{"));
    assert_eq!(
        value(&scrape, "evbus_subscription_latency_max_seconds", &[nasty]),
        1e-3
    );
}

#[test]
fn empty_bus_is_valid_too() {
    let bus = evbus_core::Bus::<common::Order>::new();
    let text = Snapshot::capture(&bus).to_prometheus_text();
    let scrape = parse(&text);
    assert_eq!(value(&scrape, "evbus_events_published_total", &[]), 0.0);
    assert!(!text.contains("evbus_subscription_"));
    assert!(text.ends_with('\n'));
}

/// The parser is strict enough to catch a missing quote or backslash
/// escape, so the tests above would see one. (It lets a raw line feed
/// through inside quotes, so `every_line_is_a_line` checks that one.)
#[test]
fn parser_rejects_unescaped_label_values() {
    let good = "# TYPE x gauge\nx{a=\"q\\\"q\"} 1\n";
    assert!(Scrape::parse(good).is_ok());
    for bad in [
        "# TYPE x gauge\nx{a=\"q\"q\"} 1\n",
        "# TYPE x gauge\nx{a=\"q\\q\"} 1\n",
    ] {
        assert!(Scrape::parse(bad).is_err(), "accepted {bad:?}");
    }
}
