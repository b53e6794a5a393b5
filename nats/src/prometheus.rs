//! [`BridgeStats::to_prometheus_text`]: the bridge's state and counters in
//! the Prometheus text exposition format.

use std::fmt::Write as _;

use crate::state::{BridgeState, BridgeStats, ExportStats, ImportStats};

/// The `Content-Type` of [`BridgeStats::to_prometheus_text`] (text format
/// 0.0.4, as evbus-metrics serves).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every state, with its `state` label.
const STATES: [(BridgeState, &str); 5] = [
    (BridgeState::Connecting, "connecting"),
    (BridgeState::Connected, "connected"),
    (BridgeState::Reconnecting, "reconnecting"),
    (BridgeState::Lagging, "lagging"),
    (BridgeState::Closed, "closed"),
];

type Export = fn(&ExportStats) -> u64;
type Import = fn(&ImportStats) -> u64;

/// The exporter's series: name (after `evbus_nats_export_`), type, help,
/// value.
const EXPORT: [(&str, &str, &str, Export); 13] = [
    (
        "received_total",
        "counter",
        "Events taken from the export ring.",
        |e| e.received,
    ),
    (
        "sent_total",
        "counter",
        "Publishes sent, retries included.",
        |e| e.sent,
    ),
    (
        "acked_total",
        "counter",
        "Events the server acknowledged.",
        |e| e.acked,
    ),
    ("retried_total", "counter", "Publishes sent again.", |e| {
        e.retried
    }),
    (
        "deduplicated_total",
        "counter",
        "Acknowledgements that said duplicate.",
        |e| e.deduplicated,
    ),
    (
        "skipped_imported_total",
        "counter",
        "Events not exported because this bridge imported them.",
        |e| e.skipped_imported,
    ),
    (
        "lost_total",
        "counter",
        "Events the lossy export ring lost.",
        |e| e.lost,
    ),
    (
        "oversized_total",
        "counter",
        "Events larger than the server's max_payload.",
        |e| e.oversized,
    ),
    (
        "failed_total",
        "counter",
        "Events that failed (encoding, retries exhausted).",
        |e| e.failed,
    ),
    (
        "drop_panics_total",
        "counter",
        "Events whose Drop panicked in the export task.",
        |e| e.drop_panics,
    ),
    (
        "abandoned_total",
        "counter",
        "Events given up unresolved when the export task ended (bridge dropped, shutdown timed out).",
        |e| e.abandoned,
    ),
    (
        "in_flight",
        "gauge",
        "Publishes waiting for their acknowledgement.",
        |e| e.in_flight,
    ),
    ("backlog", "gauge", "Events in the export ring.", |e| {
        e.backlog
    }),
];

/// The importers' series, as [`EXPORT`] (after `evbus_nats_import_`).
const IMPORT: [(&str, &str, &str, Import); 11] = [
    (
        "received_total",
        "counter",
        "Messages pulled, redeliveries included.",
        |i| i.received,
    ),
    (
        "delivered_total",
        "counter",
        "Envelopes published on the local bus.",
        |i| i.delivered,
    ),
    (
        "acked_total",
        "counter",
        "Messages acknowledged to the server.",
        |i| i.acked,
    ),
    (
        "redelivered_total",
        "counter",
        "Messages the server delivered more than once.",
        |i| i.redelivered,
    ),
    (
        "duplicates_total",
        "counter",
        "Redeliveries dropped by envelope id.",
        |i| i.duplicates,
    ),
    (
        "own_origin_total",
        "counter",
        "Messages this bridge exported itself, skipped.",
        |i| i.own_origin,
    ),
    (
        "rejected_total",
        "counter",
        "Messages terminated as not importable.",
        |i| i.rejected,
    ),
    (
        "drop_panics_total",
        "counter",
        "Imported events whose Drop panicked in the bridge.",
        |i| i.drop_panics,
    ),
    (
        "ack_errors_total",
        "counter",
        "Acknowledgements that failed to send.",
        |i| i.ack_errors,
    ),
    (
        "stream_errors_total",
        "counter",
        "Errors of the pull stream.",
        |i| i.stream_errors,
    ),
    (
        "pending",
        "gauge",
        "Messages pending on the server for the consumers.",
        |i| i.pending,
    ),
];

/// Writes `{bridge="<escaped>"` (the brace left open for more labels).
fn open_labels(out: &mut String, bridge: &str) {
    out.push_str("{bridge=\"");
    for c in bridge.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, bridge: &str, v: u64) {
    out.push_str(name);
    open_labels(out, bridge);
    let _ = writeln!(out, "}} {v}");
}

impl BridgeStats {
    /// Prometheus text exposition (0.0.4) of this snapshot, every series
    /// labelled `bridge="<bridge>"` (the bridge's
    /// [`origin`](crate::Bridge::origin) is a good value): the state as
    /// `evbus_nats_state{state="..."}` (1 for the current one, 0 for the
    /// others), `evbus_nats_connects_total`, `evbus_nats_disconnects_total`,
    /// and every field of [`ExportStats`] and [`ImportStats`] as
    /// `evbus_nats_export_<field>_total` and `evbus_nats_import_<field>_total`
    /// (counters), or without `_total` for the gauges (`in_flight`,
    /// `backlog`, `pending`). Serve it as [`CONTENT_TYPE`]. To expose
    /// several bridges in one scrape, render the families once each: call
    /// [`prometheus_text`](BridgeStats::prometheus_text).
    pub fn to_prometheus_text(&self, bridge: &str) -> String {
        Self::prometheus_text(&[(bridge, self)])
    }

    /// As [`to_prometheus_text`](BridgeStats::to_prometheus_text), for
    /// several bridges (label value, snapshot) in one exposition: each
    /// family once, one sample per bridge.
    pub fn prometheus_text(bridges: &[(&str, &BridgeStats)]) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "evbus_nats_state",
            "gauge",
            "The bridge's state (1 for the current one).",
        );
        for (bridge, stats) in bridges {
            for (state, label) in STATES {
                out.push_str("evbus_nats_state");
                open_labels(&mut out, bridge);
                let _ = writeln!(
                    out,
                    ",state=\"{label}\"}} {}",
                    u8::from(stats.state == state)
                );
            }
        }
        type Top = fn(&BridgeStats) -> u64;
        let top: [(&str, &str, Top); 2] = [
            (
                "evbus_nats_connects_total",
                "Connections made, reconnections included.",
                |s| s.connects,
            ),
            ("evbus_nats_disconnects_total", "Connections lost.", |s| {
                s.disconnects
            }),
        ];
        for (name, help, get) in top {
            family(&mut out, name, "counter", help);
            for (bridge, stats) in bridges {
                sample(&mut out, name, bridge, get(stats));
            }
        }
        for (field, kind, help, get) in EXPORT {
            let name = format!("evbus_nats_export_{field}");
            family(&mut out, &name, kind, help);
            for (bridge, stats) in bridges {
                sample(&mut out, &name, bridge, get(&stats.export));
            }
        }
        for (field, kind, help, get) in IMPORT {
            let name = format!("evbus_nats_import_{field}");
            family(&mut out, &name, kind, help);
            for (bridge, stats) in bridges {
                sample(&mut out, &name, bridge, get(&stats.import));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use prom_text_format_parser::{Scrape, Type};

    use super::*;

    fn value(scrape: &Scrape, name: &str, bridge: &str, state: Option<&str>) -> f64 {
        let m = scrape
            .metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no family {name}"));
        let hits: Vec<f64> = m
            .samples
            .iter()
            .filter(|s| {
                s.labels
                    .iter()
                    .any(|l| l.key == "bridge" && l.value == bridge)
                    && state
                        .is_none_or(|st| s.labels.iter().any(|l| l.key == "state" && l.value == st))
            })
            .map(|s| s.value.value.as_f64())
            .collect();
        assert_eq!(hits.len(), 1, "{name} {bridge}");
        hits[0]
    }

    /// Every field reaches its series, the text parses (an escaped label
    /// included), and two bridges share the families.
    #[test]
    fn every_counter_is_rendered_and_parses() {
        let mut a = BridgeStats {
            state: BridgeState::Reconnecting,
            connects: 2,
            disconnects: 1,
            ..BridgeStats::default()
        };
        a.export = ExportStats {
            acked: 7,
            abandoned: 3,
            drop_panics: 1,
            backlog: 5,
            ..ExportStats::default()
        };
        a.import = ImportStats {
            delivered: 4,
            pending: 9,
            ..ImportStats::default()
        };
        let b = BridgeStats::default();
        let nasty = "a\"b\\c";
        let text = BridgeStats::prometheus_text(&[("one", &a), (nasty, &b)]);
        let scrape = match Scrape::parse(&text) {
            Ok(s) => s,
            Err(e) => panic!("invalid exposition: {e:?}\n{text}"),
        };
        assert_eq!(
            value(&scrape, "evbus_nats_export_abandoned_total", "one", None),
            3.0
        );
        assert_eq!(
            value(&scrape, "evbus_nats_export_acked_total", "one", None),
            7.0
        );
        assert_eq!(
            value(&scrape, "evbus_nats_export_drop_panics_total", "one", None),
            1.0
        );
        assert_eq!(
            value(&scrape, "evbus_nats_export_backlog", "one", None),
            5.0
        );
        assert_eq!(
            value(&scrape, "evbus_nats_import_delivered_total", "one", None),
            4.0
        );
        assert_eq!(
            value(&scrape, "evbus_nats_import_pending", "one", None),
            9.0
        );
        assert_eq!(
            value(&scrape, "evbus_nats_connects_total", "one", None),
            2.0
        );
        assert_eq!(
            value(&scrape, "evbus_nats_state", "one", Some("reconnecting")),
            1.0
        );
        assert_eq!(
            value(&scrape, "evbus_nats_state", "one", Some("connected")),
            0.0
        );
        assert_eq!(
            value(
                &scrape,
                "evbus_nats_export_abandoned_total",
                "a\\\"b\\\\c",
                None
            ),
            0.0
        );
        let families = 1 + 2 + EXPORT.len() + IMPORT.len();
        assert_eq!(scrape.metrics.len(), families);
        for m in &scrape.metrics {
            let gauge = ["state", "in_flight", "backlog", "pending"]
                .iter()
                .any(|g| m.name.ends_with(g));
            let want = if gauge { Type::Gauge } else { Type::Counter };
            assert_eq!(m.kind, want, "{}", m.name);
        }
        assert_eq!(
            a.to_prometheus_text("one"),
            BridgeStats::prometheus_text(&[("one", &a)])
        );
    }
}
