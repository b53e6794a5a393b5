//! What the journal commands share: the command-line value types (times,
//! patterns, output formats), records shown as JSON or as a table row, and
//! payloads shown without knowing their type.

use std::{
    fmt::Write as _,
    path::Path,
    str::FromStr,
    time::{Duration, SystemTime},
};

use evbus_core::{Envelope, Pattern, Timestamp};
use evbus_journal::{Codec, Query, Reader, Record, Start};
use serde_json::{Value, json};

use crate::error::CliError;

/// A time on the command line: RFC 3339 (`2026-11-29T18:00:00Z`, the
/// fraction and zone optional, UTC), a duration ago (`90s`, `10m`, `2h`),
/// `now`, or nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeArg(pub(crate) Timestamp);

impl FromStr for TimeArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "now" {
            return Ok(TimeArg(Timestamp::now()));
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.len() > 12 {
            return s
                .parse::<u64>()
                .map(|n| TimeArg(Timestamp::from_nanos(n)))
                .map_err(|e| e.to_string());
        }
        if let Ok(t) = humantime::parse_rfc3339_weak(s) {
            return Ok(TimeArg(Timestamp::from_system_time(t)));
        }
        let ago = s.strip_suffix(" ago").unwrap_or(s);
        if let Ok(d) = humantime::parse_duration(ago) {
            let t = SystemTime::now()
                .checked_sub(d)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            return Ok(TimeArg(Timestamp::from_system_time(t)));
        }
        Err(format!(
            "`{s}` is not a time: use RFC 3339 (2026-11-29T18:00:00Z), a duration ago (90s, 10m, 2h), `now`, or nanoseconds since the epoch"
        ))
    }
}

/// The records `evbus query` and `evbus export` select: a topic pattern
/// and a time range.
#[derive(Debug, clap::Args)]
pub(crate) struct Selection {
    /// Only records whose topic matches this pattern.
    #[arg(long, short, value_name = "PATTERN")]
    topic: Option<Pattern>,
    /// Only records at or after this time (RFC 3339, `10m` ago, `now`).
    #[arg(long, value_name = "TIME")]
    from: Option<TimeArg>,
    /// Only records before this time.
    #[arg(long, value_name = "TIME")]
    to: Option<TimeArg>,
}

impl Selection {
    /// The journal query for the selection, after checking that the range
    /// is not reversed.
    pub(crate) fn query(&self) -> Result<Query, CliError> {
        if let (Some(from), Some(to)) = (self.from, self.to)
            && to.0 < from.0
        {
            return Err(CliError::usage(format!(
                "--to ({}) is before --from ({})",
                show_time(to.0),
                show_time(from.0)
            )));
        }
        let mut query = Query::new();
        if let Some(p) = &self.topic {
            query = query.pattern(p.clone());
        }
        if let Some(t) = self.from {
            query = query.from(t.0);
        }
        if let Some(t) = self.to {
            query = query.until(t.0);
        }
        Ok(query)
    }
}

/// How records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns: seq, time, topic, tenant, correlation id, payload.
    #[default]
    Table,
    /// One JSON object per line (JSON Lines), every field.
    Json,
}

/// `1 segment`, `2 segments`.
pub(crate) fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A time as RFC 3339 in UTC with milliseconds.
pub(crate) fn show_time(t: Timestamp) -> String {
    humantime::format_rfc3339_millis(t.to_system_time()).to_string()
}

/// A duration for people: `1.25 s`, `3 min 2 s`.
pub(crate) fn show_span(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.3} s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

/// The payload as JSON: the value itself when the codec is JSON, else (or
/// if it does not parse) `{"codec": .., "len": .., "hex": ..}`.
pub(crate) fn payload_value(record: &Record) -> Value {
    let bytes = record.payload_bytes();
    if record.codec() == Codec::Json
        && let Ok(v) = serde_json::from_slice::<Value>(bytes)
    {
        return v;
    }
    raw_payload(record.codec(), bytes)
}

/// The stand-in for a payload that is not JSON.
pub(crate) fn raw_payload(codec: Codec, bytes: &[u8]) -> Value {
    json!({ "codec": codec_name(codec), "len": bytes.len(), "hex": hex(bytes) })
}

/// `postcard` or `json`.
pub(crate) fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Json => "json",
        _ => "postcard",
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The record as an envelope around its payload shown as JSON.
pub(crate) fn envelope(record: &Record) -> Result<Envelope<Value>, evbus_journal::Error> {
    record.envelope_with(payload_value(record))
}

/// One record as `--format json` prints it, fields in this order.
#[derive(serde::Serialize)]
struct RecordLine<'a> {
    seq: u64,
    time: String,
    topic: &'a str,
    id: String,
    correlation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    causation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replay: Option<Value>,
    payload: Value,
}

/// The record as one JSON object: `seq`, `time` (RFC 3339), `topic`,
/// the ids, every other metadata field that is set, and `payload`.
pub(crate) fn record_json(record: &Record) -> String {
    let line = RecordLine {
        seq: record.seq(),
        time: show_time(record.time()),
        topic: record.topic(),
        id: record.id().to_string(),
        correlation_id: record.correlation_id().to_string(),
        causation_id: record.causation_id().map(|c| c.to_string()),
        session_id: record.session_id(),
        source: record.source(),
        tenant: record.tenant(),
        idempotency_key: record.idempotency_key(),
        tags: record.tags().collect(),
        replay: record
            .replay()
            .map(|m| json!({ "dry_run": m.dry_run, "recorded_seq": m.recorded_seq })),
        payload: payload_value(record),
    };
    // Strings, numbers and values only: serializing cannot fail.
    serde_json::to_string(&line).unwrap_or_default()
}

/// The header of [`table_row`]'s columns.
pub(crate) fn table_header() -> String {
    format!(
        "{:>6}  {:<24}  {:<20}  {:<8}  {:<13}  payload",
        "seq", "time (UTC)", "topic", "tenant", "correlation"
    )
}

/// The record as one aligned line; long payloads are cut at 60 characters.
pub(crate) fn table_row(record: &Record) -> String {
    let mut payload = payload_value(record).to_string();
    if payload.chars().count() > 60 {
        payload = payload.chars().take(59).collect::<String>() + "…";
    }
    let correlation = record.correlation_id().to_string();
    // The last 12 hex digits tell correlation ids apart at a glance.
    let short = &correlation[correlation.len().saturating_sub(12)..];
    format!(
        "{:>6}  {:<24}  {:<20}  {:<8}  …{:<12}  {}",
        record.seq(),
        show_time(record.time()),
        record.topic(),
        record.tenant().unwrap_or("-"),
        short,
        payload
    )
}

/// Standard output for records, buffered ([`Out::flush`] when there is
/// nothing more for now); a reader that went away (`| head`) ends the
/// command quietly instead of a panic.
pub(crate) struct Out {
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
}

impl Out {
    /// Locks standard output.
    pub(crate) fn new() -> Out {
        Out {
            out: std::io::BufWriter::new(std::io::stdout().lock()),
        }
    }

    /// Writes one line; `Ok(false)` if the reader closed the pipe.
    pub(crate) fn line(&mut self, line: &str) -> Result<bool, CliError> {
        use std::io::Write as _;
        Self::check(writeln!(self.out, "{line}"))
    }

    /// Writes out what is buffered; `Ok(false)` if the reader closed the
    /// pipe.
    pub(crate) fn flush(&mut self) -> Result<bool, CliError> {
        use std::io::Write as _;
        Self::check(self.out.flush())
    }

    fn check(result: std::io::Result<()>) -> Result<bool, CliError> {
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(CliError::failure(format!(
                "writing to standard output failed: {e}"
            ))),
        }
    }

    /// Writes `record` in `format`; `Ok(false)` if the reader went away.
    pub(crate) fn record(&mut self, record: &Record, format: Format) -> Result<bool, CliError> {
        match format {
            Format::Table => self.line(&table_row(record)),
            Format::Json => self.line(&record_json(record)),
        }
    }
}

/// The path must be a directory holding a journal; a clear error if not.
pub(crate) fn check_journal_dir(dir: &Path) -> Result<(), CliError> {
    if !dir.exists() {
        return Err(
            CliError::failure(format!("{} does not exist", dir.display()))
                .hint("pass the directory a Journal or Recorder writes to"),
        );
    }
    if !dir.is_dir() {
        return Err(CliError::failure(format!(
            "{} is a file, not a journal directory",
            dir.display()
        ))
        .hint("a journal is a directory of .seg files; for a session file (.jsonl) use `evbus replay` or `evbus import`"));
    }
    Ok(())
}

/// The sequence numbers a reader of `dir` would see: the first and the one
/// after the last (equal when empty).
pub(crate) fn seq_bounds(dir: &Path) -> Result<(u64, u64), CliError> {
    let end = Reader::open(dir, Start::End)
        .map_err(|e| CliError::journal(dir, e))?
        .next_seq();
    let first = Reader::open(dir, Start::Beginning)
        .map_err(|e| CliError::journal(dir, e))?
        .next_seq();
    Ok((first.min(end), end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_form() {
        let t = "2026-11-29T18:00:00Z".parse::<TimeArg>().unwrap().0;
        assert_eq!(t.as_nanos(), 1_795_975_200_000_000_000);
        assert_eq!(show_time(t), "2026-11-29T18:00:00.000Z");
        let n = "1795975200000000000".parse::<TimeArg>().unwrap().0;
        assert_eq!(n, t);
        let ago = "10m".parse::<TimeArg>().unwrap().0;
        let now = Timestamp::now();
        assert!(ago < now && now.saturating_duration_since(ago) >= Duration::from_secs(600));
        assert!("5s ago".parse::<TimeArg>().is_ok());
        let err = "yesterday-ish".parse::<TimeArg>().unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn raw_payloads_show_codec_length_and_hex() {
        assert_eq!(
            raw_payload(Codec::Postcard, &[0x07, 0xff]),
            json!({"codec": "postcard", "len": 2, "hex": "07ff"})
        );
    }
}
