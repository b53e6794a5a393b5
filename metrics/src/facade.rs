//! Mirroring snapshots into the [`metrics`] facade crate (feature
//! `metrics-facade`).

use std::collections::{HashMap, HashSet};

use metrics::{Counter, Gauge, Label};

use crate::{
    series::{Kind, Part, families},
    snapshot::Snapshot,
};

/// One series: its full name (with a summary's `_sum` / `_count`) and its
/// labels.
type SeriesKey = (String, Vec<(&'static str, String)>);

/// Mirrors [`Snapshot`]s into whatever `metrics` recorder is installed.
///
/// Each series is registered once, on the first [`record`](Self::record)
/// that sees it, and its handle is kept: later records only store values.
/// Counters are set with [`Counter::absolute`] (evbus counters are already
/// totals), gauges with [`Gauge::set`]. The names and labels are the ones of
/// [`Snapshot::to_prometheus_text`]; a latency summary becomes a gauge per
/// quantile (with a `quantile` label), a `_sum` gauge and a `_count`
/// counter.
///
/// Register under the recorder that should keep the series: handles are
/// bound to the recorder that was current when they were registered.
/// Series of subscriptions that went away keep their last value.
///
/// # Examples
///
/// ```
/// # use evbus::{Bus, Event, EventKind};
/// # #[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// # enum Kind { Ping }
/// # impl EventKind for Kind {
/// #     const ALL: &'static [Self] = &[Kind::Ping];
/// #     fn topic(self) -> &'static str { "net.ping" }
/// #     fn index(self) -> usize { 0 }
/// # }
/// # #[derive(Debug, Clone)]
/// # struct Ping;
/// # impl Event for Ping {
/// #     type Kind = Kind;
/// #     fn kind(&self) -> Kind { Kind::Ping }
/// # }
/// use evbus::metrics::{MetricsMirror, Snapshot};
///
/// let bus = Bus::<Ping>::new();
/// let mut mirror = MetricsMirror::new();
/// // Once a second, say, on a housekeeping thread:
/// mirror.record(&Snapshot::capture(&bus));
/// ```
#[derive(Default)]
pub struct MetricsMirror {
    counters: HashMap<SeriesKey, Counter>,
    gauges: HashMap<SeriesKey, Gauge>,
    described: HashSet<String>,
}

impl std::fmt::Debug for MetricsMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsMirror")
            .field("counters", &self.counters.len())
            .field("gauges", &self.gauges.len())
            .finish()
    }
}

impl MetricsMirror {
    /// A mirror with nothing registered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores every value of `snapshot`, registering (and describing) the
    /// series it has not seen before.
    pub fn record(&mut self, snapshot: &Snapshot) {
        for fs in families(snapshot) {
            let family = fs.family;
            for sample in fs.samples {
                let name = format!("{}{}", family.name, sample.part.suffix());
                let as_counter = match (family.kind, sample.part) {
                    (Kind::Counter, _) | (Kind::Summary, Part::Count) => true,
                    (Kind::Gauge, _) | (Kind::Summary, Part::Main | Part::Sum) => false,
                };
                if self.described.insert(name.clone()) {
                    if as_counter {
                        metrics::describe_counter!(name.clone(), family.help);
                    } else {
                        metrics::describe_gauge!(name.clone(), family.help);
                    }
                }
                let key = (name, sample.labels);
                if as_counter {
                    let value = sample.value.as_f64() as u64;
                    self.counters
                        .entry(key)
                        .or_insert_with_key(|(name, labels)| {
                            metrics::counter!(name.clone(), to_labels(labels))
                        })
                        .absolute(value);
                } else {
                    let value = sample.value.as_f64();
                    self.gauges
                        .entry(key)
                        .or_insert_with_key(|(name, labels)| {
                            metrics::gauge!(name.clone(), to_labels(labels))
                        })
                        .set(value);
                }
            }
        }
    }

    /// How many series have been registered so far.
    pub fn registered(&self) -> usize {
        self.counters.len() + self.gauges.len()
    }
}

fn to_labels(labels: &[(&'static str, String)]) -> Vec<Label> {
    labels
        .iter()
        .map(|(k, v)| Label::new(*k, v.clone()))
        .collect()
}
