//! Rendering a [`Snapshot`] as Prometheus text exposition format 0.0.4.
//!
//! Format reference:
//! <https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format>.

use std::fmt::Write as _;

use crate::{
    series::{Value, families},
    snapshot::Snapshot,
};

/// The `Content-Type` of the text [`Snapshot::to_prometheus_text`] writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Snapshot {
    /// Renders the snapshot in the Prometheus text format, version 0.0.4.
    ///
    /// Each family gets `# HELP` and `# TYPE` lines, then one line per
    /// series. Bus totals are `evbus_events_*` and `evbus_*`; subscription
    /// series (`evbus_subscription_*`) carry `subscription` (its name, or
    /// else its filter's patterns) and `id` labels, and
    /// `evbus_subscription_info` adds `filter` (the patterns, comma-separated)
    /// and `overflow` (`drop_newest`, `drop_oldest` or `block`); handler
    /// series (`evbus_handler_*`, feature `dispatch`) carry `handler` and
    /// `priority`. Latency, when sampled, is the summary
    /// `evbus_subscription_latency_seconds` plus a `_max_seconds` gauge.
    /// Label values are escaped (backslash, double quote, newline), and the
    /// text ends with a newline. Families with no series are left out.
    ///
    /// Serve it with the `Content-Type` [`CONTENT_TYPE`].
    pub fn to_prometheus_text(&self) -> String {
        let mut out = String::with_capacity(4096);
        for fs in families(self) {
            let family = fs.family;
            out.push_str("# HELP ");
            out.push_str(family.name);
            out.push(' ');
            escape_help(&mut out, family.help);
            out.push('\n');
            // Writing to a `String` cannot fail.
            let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.as_str());
            for sample in &fs.samples {
                out.push_str(family.name);
                out.push_str(sample.part.suffix());
                if !sample.labels.is_empty() {
                    out.push('{');
                    for (i, (name, value)) in sample.labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(name);
                        out.push_str("=\"");
                        escape_label_value(&mut out, value);
                        out.push('"');
                    }
                    out.push('}');
                }
                out.push(' ');
                write_value(&mut out, sample.value);
                out.push('\n');
            }
        }
        out
    }
}

/// Label values escape backslash, double quote and line feed.
pub(crate) fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Help texts escape backslash and line feed.
fn escape_help(out: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn write_value(out: &mut String, value: Value) {
    // Writing to a `String` cannot fail.
    let _ = match value {
        Value::Int(v) => write!(out, "{v}"),
        // Rust's `Display` for f64 never uses an exponent and round-trips;
        // Go's ParseFloat, which Prometheus uses, reads it.
        Value::Float(v) if v.is_finite() => write!(out, "{v}"),
        Value::Float(v) if v.is_nan() => write!(out, "NaN"),
        Value::Float(v) if v > 0.0 => write!(out, "+Inf"),
        Value::Float(_) => write!(out, "-Inf"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape_label_value(&mut out, "a\\b\"c\nd");
        assert_eq!(out, r#"a\\b\"c\nd"#);
    }

    #[test]
    fn non_finite_values_use_prometheus_spelling() {
        let mut out = String::new();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.25] {
            write_value(&mut out, Value::Float(v));
            out.push(' ');
        }
        assert_eq!(out, "NaN +Inf -Inf 0.25 ");
    }
}
