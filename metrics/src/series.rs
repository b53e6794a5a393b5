//! The metric families a [`Snapshot`] exposes: one catalogue of names,
//! help texts, types and label sets, shared by the Prometheus text and the
//! `metrics` facade so the two never disagree.

#[cfg(feature = "dispatch")]
use evbus_dispatch::HandlerStats;

use crate::snapshot::{LatencySummary, Snapshot, SubscriptionSnapshot};

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Only goes up (a `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Quantiles with a `quantile` label, plus `_sum` and `_count`.
    Summary,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        }
    }
}

/// One metric family: a name, a help text and a type.
#[derive(Debug)]
pub(crate) struct Family {
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    pub(crate) kind: Kind,
}

/// A sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    Int(u64),
    Float(f64),
}

impl Value {
    #[cfg(feature = "metrics-facade")]
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Value::Int(v) => v as f64,
            Value::Float(v) => v,
        }
    }
}

/// Which line of a family a sample is: the family's own name, or a
/// summary's `_sum` / `_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Main,
    Sum,
    Count,
}

impl Part {
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Part::Main => "",
            Part::Sum => "_sum",
            Part::Count => "_count",
        }
    }
}

/// One line: labels (unescaped) and a value.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) part: Part,
    pub(crate) labels: Vec<(&'static str, String)>,
    pub(crate) value: Value,
}

/// A family with its samples; never empty.
#[derive(Debug)]
pub(crate) struct FamilySamples {
    pub(crate) family: &'static Family,
    pub(crate) samples: Vec<Sample>,
}

macro_rules! family {
    ($name:literal, $kind:ident, $help:literal) => {
        Family {
            name: $name,
            help: $help,
            kind: Kind::$kind,
        }
    };
}

/// A family and how to read its one value from a row of type `T`.
type Getter<T> = (Family, fn(&T) -> u64);

static BUS_FAMILIES: &[Getter<Snapshot>] = &[
    (
        family!(
            "evbus_events_published_total",
            Counter,
            "Publishes attempted on the open bus."
        ),
        |s| s.bus.published,
    ),
    (
        family!(
            "evbus_events_no_subscribers_total",
            Counter,
            "Publishes that matched no subscription."
        ),
        |s| s.bus.no_subscribers,
    ),
    (
        family!(
            "evbus_events_delivered_total",
            Counter,
            "Events that reached a subscription's ring and were not overwritten."
        ),
        |s| s.bus.delivered,
    ),
    (
        family!(
            "evbus_events_dropped_total",
            Counter,
            "Events lost to full rings, refused or overwritten."
        ),
        |s| s.bus.dropped,
    ),
    (
        family!(
            "evbus_events_queued",
            Gauge,
            "Events buffered now, over all live subscriptions."
        ),
        |s| s.bus.queued,
    ),
    (family!("evbus_topics", Gauge, "Interned topics."), |s| {
        s.bus.topics
    }),
    (
        family!(
            "evbus_subscriptions",
            Gauge,
            "Subscriptions registered now."
        ),
        |s| s.bus.subscriptions,
    ),
    (
        family!(
            "evbus_shut_down",
            Gauge,
            "1 once the bus has been shut down, else 0."
        ),
        |s| u64::from(s.bus.shut_down),
    ),
];

static SUBSCRIPTION_FAMILIES: &[Getter<SubscriptionSnapshot>] = &[
    (
        family!(
            "evbus_subscription_delivered_total",
            Counter,
            "Events that reached the subscription's ring and were not overwritten."
        ),
        |s| s.delivered,
    ),
    (
        family!(
            "evbus_subscription_received_total",
            Counter,
            "Events the subscriber took out of its ring."
        ),
        |s| s.received,
    ),
    (
        family!(
            "evbus_subscription_dropped_total",
            Counter,
            "Events the subscription lost: refused by its full ring or overwritten."
        ),
        |s| s.dropped,
    ),
    (
        family!(
            "evbus_subscription_lagged_total",
            Counter,
            "Events overwritten under drop_oldest (included in dropped)."
        ),
        |s| s.lagged,
    ),
    (
        family!(
            "evbus_subscription_queued",
            Gauge,
            "Events buffered in the subscription's ring now."
        ),
        |s| s.queued,
    ),
    (
        family!(
            "evbus_subscription_capacity",
            Gauge,
            "Capacity of the subscription's ring."
        ),
        |s| s.capacity,
    ),
    (
        family!(
            "evbus_subscription_high_water",
            Gauge,
            "Largest queue length observed in the subscription's ring."
        ),
        |s| s.high_water,
    ),
    (
        family!(
            "evbus_subscription_closed",
            Gauge,
            "1 once the subscription is closed, else 0."
        ),
        |s| u64::from(s.closed),
    ),
];

static SUBSCRIPTION_INFO: Family = family!(
    "evbus_subscription_info",
    Gauge,
    "Always 1; labels give each subscription's filter patterns and overflow policy."
);

static LATENCY: Family = family!(
    "evbus_subscription_latency_seconds",
    Summary,
    "Publish-to-receive latency of sampled events."
);

static LATENCY_MAX: Family = family!(
    "evbus_subscription_latency_max_seconds",
    Gauge,
    "Largest sampled publish-to-receive latency."
);

#[cfg(feature = "dispatch")]
static HANDLER_FAMILIES: &[Getter<HandlerStats>] = &[
    (
        family!(
            "evbus_handler_received_total",
            Counter,
            "Events taken out of the handler's ring."
        ),
        |h| h.received,
    ),
    (
        family!(
            "evbus_handler_handled_total",
            Counter,
            "Events the handler returned Ok for."
        ),
        |h| h.handled,
    ),
    (
        family!(
            "evbus_handler_errors_total",
            Counter,
            "Handler attempts that returned Err."
        ),
        |h| h.errors,
    ),
    (
        family!(
            "evbus_handler_panics_total",
            Counter,
            "Handler attempts that panicked."
        ),
        |h| h.panics,
    ),
    (
        family!(
            "evbus_handler_retries_total",
            Counter,
            "Retries scheduled after a failed attempt."
        ),
        |h| h.retries,
    ),
    (
        family!(
            "evbus_handler_dead_lettered_total",
            Counter,
            "Events sent to the dead-letter topic after the last attempt failed."
        ),
        |h| h.dead_lettered,
    ),
    (
        family!(
            "evbus_handler_skipped_total",
            Counter,
            "Events taken while the handler was disabled."
        ),
        |h| h.skipped,
    ),
    (
        family!(
            "evbus_handler_abandoned_total",
            Counter,
            "Events whose pending retry shutdown abandoned."
        ),
        |h| h.abandoned,
    ),
    (
        family!(
            "evbus_handler_replayed_total",
            Counter,
            "Replayed events taken out of the handler's ring (not in received)."
        ),
        |h| h.replayed,
    ),
    (
        family!(
            "evbus_handler_replay_handled_total",
            Counter,
            "Replayed events the handler returned Ok for (not in handled)."
        ),
        |h| h.replay_handled,
    ),
    (
        family!(
            "evbus_handler_skipped_dry_run_total",
            Counter,
            "Dry-run events the handler was not called for (skip_dry_run)."
        ),
        |h| h.skipped_dry_run,
    ),
    (
        family!(
            "evbus_handler_replay_errors_total",
            Counter,
            "Failed attempts on replayed events (not in errors or panics)."
        ),
        |h| h.replay_errors,
    ),
    (
        family!(
            "evbus_handler_replay_failed_total",
            Counter,
            "Replayed events dead-lettered, abandoned or skipped while disabled."
        ),
        |h| h.replay_failed,
    ),
    (
        family!(
            "evbus_handler_delivered_total",
            Counter,
            "Events the handler's ring accepted."
        ),
        |h| h.delivered,
    ),
    (
        family!(
            "evbus_handler_dropped_total",
            Counter,
            "Events the handler's ring dropped."
        ),
        |h| h.dropped,
    ),
    (
        family!(
            "evbus_handler_queued",
            Gauge,
            "Events buffered in the handler's ring now."
        ),
        |h| h.queued as u64,
    ),
    (
        family!(
            "evbus_handler_capacity",
            Gauge,
            "Capacity of the handler's ring."
        ),
        |h| h.capacity as u64,
    ),
    (
        family!(
            "evbus_handler_enabled",
            Gauge,
            "1 while the handler is enabled, else 0."
        ),
        |h| u64::from(h.enabled),
    ),
];

type Quantile = (&'static str, fn(&LatencySummary) -> u64);

/// The quantiles a latency summary reports, with their label values.
pub(crate) const QUANTILES: [Quantile; 4] = [
    ("0.5", |l| l.p50_ns),
    ("0.95", |l| l.p95_ns),
    ("0.99", |l| l.p99_ns),
    ("0.999", |l| l.p999_ns),
];

fn sub_labels(s: &SubscriptionSnapshot) -> Vec<(&'static str, String)> {
    vec![("subscription", s.label()), ("id", s.id.to_string())]
}

#[cfg(feature = "dispatch")]
fn handler_labels(h: &HandlerStats) -> Vec<(&'static str, String)> {
    vec![
        ("handler", h.name.clone()),
        ("priority", h.priority.as_str().to_owned()),
    ]
}

fn main(labels: Vec<(&'static str, String)>, value: Value) -> Sample {
    Sample {
        part: Part::Main,
        labels,
        value,
    }
}

fn nanos_to_seconds(ns: u64) -> Value {
    Value::Float(ns as f64 / 1e9)
}

/// Every family of `snap` that has at least one sample, in a fixed order.
pub(crate) fn families(snap: &Snapshot) -> Vec<FamilySamples> {
    let mut out = Vec::new();
    let mut push = |family: &'static Family, samples: Vec<Sample>| {
        if !samples.is_empty() {
            out.push(FamilySamples { family, samples });
        }
    };
    for (family, get) in BUS_FAMILIES {
        push(family, vec![main(Vec::new(), Value::Int(get(snap)))]);
    }
    let subs = &snap.subscriptions;
    push(
        &SUBSCRIPTION_INFO,
        subs.iter()
            .map(|s| {
                let mut labels = sub_labels(s);
                labels.push(("filter", s.filter.join(",")));
                labels.push(("overflow", s.overflow.as_str().to_owned()));
                main(labels, Value::Int(1))
            })
            .collect(),
    );
    for (family, get) in SUBSCRIPTION_FAMILIES {
        push(
            family,
            subs.iter()
                .map(|s| main(sub_labels(s), Value::Int(get(s))))
                .collect(),
        );
    }
    let sampled: Vec<(&SubscriptionSnapshot, &LatencySummary)> = subs
        .iter()
        .filter_map(|s| s.latency.as_ref().map(|l| (s, l)))
        .collect();
    let mut latency = Vec::new();
    for (s, l) in &sampled {
        for (q, get) in QUANTILES {
            let mut labels = sub_labels(s);
            labels.push(("quantile", q.to_owned()));
            latency.push(main(labels, nanos_to_seconds(get(l))));
        }
        latency.push(Sample {
            part: Part::Sum,
            labels: sub_labels(s),
            value: nanos_to_seconds(l.sum_ns),
        });
        latency.push(Sample {
            part: Part::Count,
            labels: sub_labels(s),
            value: Value::Int(l.samples),
        });
    }
    push(&LATENCY, latency);
    push(
        &LATENCY_MAX,
        sampled
            .iter()
            .map(|(s, l)| main(sub_labels(s), nanos_to_seconds(l.max_ns)))
            .collect(),
    );
    #[cfg(feature = "dispatch")]
    for (family, get) in HANDLER_FAMILIES {
        push(
            family,
            snap.handlers
                .iter()
                .map(|h| main(handler_labels(h), Value::Int(get(h))))
                .collect(),
        );
    }
    out
}
