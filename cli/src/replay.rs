//! `evbus replay`: read a journal or a session file again, filtered and
//! paced, and send every envelope on (today: to standard output as JSON
//! Lines, in the session format's envelope form), with a progress bar and a
//! final report.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Write},
    path::{Path, PathBuf},
    str::FromStr,
};

use evbus_core::{Envelope, EventId, Pattern, PublishError, PublishReport};
use evbus_journal::{
    Pace, Reader, Replay, ReplayEnd, ReplayError, ReplayReport, ReplayTarget, SessionReader, Start,
};
use indicatif::ProgressBar;
use serde_json::Value;

use crate::{
    error::CliError,
    records::{self, TimeArg},
    ui::Ui,
};

/// `--speed`: `max`, `as-recorded`, or a factor like `2x` or `0.5x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Speed(pub(crate) Pace);

impl FromStr for Speed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "max" => return Ok(Speed(Pace::Max)),
            "as-recorded" | "1x" => return Ok(Speed(Pace::AsRecorded)),
            _ => {}
        }
        let factor = s
            .strip_suffix('x')
            .and_then(|f| f.parse::<f64>().ok())
            .filter(|f| f.is_finite() && *f > 0.0);
        match factor {
            Some(f) => Ok(Speed(Pace::Scaled(f))),
            None => Err(format!(
                "`{s}` is not a speed: use `max`, `as-recorded`, or a factor above zero like `2x` or `0.5x`"
            )),
        }
    }
}

/// `evbus replay`'s options.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  evbus replay ./journal --topic 'orders.>' --dry-run          # what would go out, and the report
  evbus replay session.jsonl --speed as-recorded > replayed.jsonl
  evbus replay ./journal --correlation 0193a5c2-7f1e-7c3a-9d2b-5e8f1a2b3c4d --speed 2x
  evbus replay ./journal --to nats://127.0.0.1:4222 --stream EVBUS    # into JetStream, acknowledged
  EVBUS_WEBHOOK_SECRET=whsec_... evbus replay ./journal --topic 'orders.>' --to-webhook https://hooks.example.com/evbus

Every envelope goes out with a replay mark {dry_run, recorded_seq}. The
progress bar (records, rate, ETA) and the report go to standard error.")]
pub(crate) struct ReplayArgs {
    /// A journal directory, or a session file (JSON Lines, from `evbus
    /// export` or a SessionWriter).
    source: PathBuf,
    /// Only envelopes whose topic matches this pattern.
    #[arg(long, short, value_name = "PATTERN")]
    topic: Option<Pattern>,
    /// Only envelopes at or after this time.
    #[arg(long, value_name = "TIME")]
    from: Option<TimeArg>,
    /// Only envelopes before this time.
    #[arg(long, value_name = "TIME")]
    until: Option<TimeArg>,
    /// Only envelopes with this correlation id.
    #[arg(long, value_name = "ID")]
    correlation: Option<EventId>,
    /// How fast: `max`, `as-recorded`, or a factor like `2x` (twice as
    /// fast as recorded) or `0.5x`.
    #[arg(long, value_name = "SPEED", default_value = "max")]
    speed: Speed,
    /// Read, filter and pace as a replay would, but send nothing; the
    /// report says what would have gone out.
    #[arg(long)]
    dry_run: bool,
    /// Write the envelopes to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Publish every envelope into a NATS JetStream stream instead, through
    /// an evbus-nats bridge (`nats://HOST:PORT`), and wait for the server's
    /// acknowledgements.
    #[arg(long, value_name = "nats://HOST:PORT", conflicts_with_all = ["output", "to_webhook"])]
    to: Option<String>,
    /// The JetStream stream (with --to); created if missing.
    #[arg(long, value_name = "NAME", default_value = "EVBUS", requires = "to")]
    stream: String,
    /// The subject prefix (with --to): topic `orders.placed` goes out on
    /// `<prefix>.orders.placed`.
    #[arg(long, value_name = "PREFIX", default_value = "evbus", requires = "to")]
    prefix: String,
    /// Deliver every envelope to this webhook endpoint instead (signed,
    /// retried and journaled by evbus-webhook), then report per endpoint.
    #[arg(long, value_name = "URL", conflicts_with = "output")]
    to_webhook: Option<String>,
    /// The endpoint's signing secret(s), `whsec_<base64>` (used with
    /// --to-webhook).
    #[arg(
        long = "secret",
        value_name = "WHSEC",
        env = "EVBUS_WEBHOOK_SECRET",
        hide_env_values = true,
        value_delimiter = ' '
    )]
    secrets: Vec<evbus_webhook::Secret>,
    /// Where the journal of delivery attempts and dead letters goes (with
    /// --to-webhook; default: a new directory in the system's temporary
    /// directory, named in the report).
    #[arg(long, value_name = "DIR", requires = "to_webhook")]
    attempts: Option<PathBuf>,
}

/// Where the replay sends envelopes: JSON Lines on a writer, counted.
struct LinesTarget<W: Write> {
    out: W,
    dry_run: bool,
    error: Option<std::io::Error>,
}

impl<W: Write> ReplayTarget<Value> for LinesTarget<W> {
    fn publish_envelope(
        &mut self,
        envelope: Envelope<Value>,
    ) -> Result<PublishReport, PublishError<Envelope<Value>>> {
        if self.dry_run {
            return Ok(PublishReport::default());
        }
        let written = serde_json::to_writer(&mut self.out, &envelope)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        match written {
            Ok(()) => Ok(PublishReport::default()),
            // A closed pipe (`| head`) or a full disk: stop the replay.
            Err(e) => {
                self.error = Some(e);
                Err(PublishError::Closed(envelope))
            }
        }
    }
}

/// Runs `evbus replay`.
pub(crate) fn run(args: &ReplayArgs, ui: Ui) -> Result<(), CliError> {
    let path = &args.source;
    if !path.exists() {
        return Err(
            CliError::failure(format!("{} does not exist", path.display()))
                .hint("pass a journal directory or a session file (.jsonl)"),
        );
    }
    let (total, source): (Option<u64>, Source) = if path.is_dir() {
        journal_source(path, args.from)?
    } else {
        session_source(path)?
    };
    let bar = ui.bar(
        total,
        "replay {bar:30} {pos}/{len} records  {rate}  ETA {eta}",
    );
    let plain_every = total.map_or(u64::MAX, |t| (t / 10).max(1));
    ui.note(format!(
        "replay: {} from {}{}",
        total.map_or("records".to_owned(), |t| format!("{t} records")),
        path.display(),
        if args.dry_run { " (dry run)" } else { "" }
    ));
    let counted = Counted {
        inner: source,
        bar: bar.clone(),
        read: 0,
        plain_every,
        total,
        ui,
    };
    let mut replay = Replay::new(counted)
        .pace(args.speed.0)
        .dry_run(args.dry_run);
    if let Some(p) = &args.topic {
        replay = replay.matching(p.clone());
    }
    match (args.from, args.until) {
        (Some(f), Some(t)) => replay = replay.between(f.0, t.0),
        (Some(f), None) => replay = replay.from_time(f.0),
        (None, Some(t)) => replay = replay.until_time(t.0),
        (None, None) => {}
    }
    if let Some(id) = args.correlation {
        replay = replay.correlation_id(id);
    }
    let mut webhook = None;
    let mut nats = None;
    let result = match (&args.to, &args.to_webhook) {
        (Some(url), _) => {
            let mut sink =
                crate::nats::ReplaySink::start(url, &args.stream, &args.prefix, args.dry_run)?;
            let result = replay.run(&mut sink);
            nats = Some(sink);
            result
        }
        (None, Some(url)) => {
            let mut sink = crate::webhook::ReplaySink::start(
                url,
                &args.secrets,
                args.attempts.as_deref(),
                args.dry_run,
            )?;
            let result = replay.run(&mut sink);
            webhook = Some(sink);
            result
        }
        (None, None) => {
            let out: Box<dyn Write> = match &args.output {
                Some(file) => Box::new(BufWriter::new(File::create(file).map_err(|e| {
                    CliError::failure(format!("cannot create {}: {e}", file.display()))
                })?)),
                None => Box::new(BufWriter::new(std::io::stdout().lock())),
            };
            let mut target = LinesTarget {
                out,
                dry_run: args.dry_run,
                error: None,
            };
            let result = replay.run(&mut target);
            let flushed = target.out.flush();
            if let Some(e) = target.error.take().or(flushed.err())
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(CliError::failure(format!(
                    "writing the replayed envelopes failed: {e}"
                )));
            }
            result
        }
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = match result {
        Ok(report) => report,
        Err(ReplayError::Source { error, report }) => {
            print_report(&report, ui);
            return Err(error);
        }
        Err(ReplayError::InvalidTimeRange { .. }) => {
            return Err(CliError::usage("--until is before --from"));
        }
        Err(e) => return Err(CliError::usage(e.to_string())),
    };
    print_report(&report, ui);
    if let Some(sink) = nats {
        return sink.finish(ui);
    }
    match webhook {
        Some(sink) => sink.finish(ui),
        None => Ok(()),
    }
}

type Source = Box<dyn Iterator<Item = Result<(u64, Envelope<Value>), CliError>>>;

/// The journal's records from `from` on (found through the time index);
/// the total is a bound for the progress bar.
fn journal_source(dir: &Path, from: Option<TimeArg>) -> Result<(Option<u64>, Source), CliError> {
    let (_, end) = records::seq_bounds(dir)?;
    let start = from.map_or(Start::Beginning, |t| Start::Time(t.0));
    let reader = Reader::open(dir, start).map_err(|e| CliError::journal(dir, e))?;
    let first = reader.next_seq().min(end);
    let dir = dir.to_path_buf();
    let source = reader.map(move |r| {
        r.and_then(|rec| Ok((rec.seq(), records::envelope(&rec)?)))
            .map_err(|e| CliError::journal(&dir, e))
    });
    Ok((Some(end - first), Box::new(source)))
}

fn session_source(file: &Path) -> Result<(Option<u64>, Source), CliError> {
    let reader =
        SessionReader::<BufReader<File>, Value>::open(file).map_err(|e| session_error(file, &e))?;
    let total = reader.header().count;
    let file = file.to_path_buf();
    Ok((
        Some(total),
        Box::new(reader.map(move |r| r.map_err(|e| session_error(&file, &e)))),
    ))
}

/// A session file error, with what to do.
pub(crate) fn session_error(file: &Path, e: &evbus_journal::SessionError) -> CliError {
    CliError::failure(format!("session file {}: {e}", file.display())).hint(
        "a session file is JSON Lines: a header {\"format\":\"evbus-session\",..} and one envelope per line, as `evbus export` writes it",
    )
}

/// The source, counting what the replay reads into the progress bar (or
/// plain lines every tenth of the total).
struct Counted {
    inner: Source,
    bar: Option<ProgressBar>,
    read: u64,
    plain_every: u64,
    total: Option<u64>,
    ui: Ui,
}

impl Iterator for Counted {
    type Item = Result<(u64, Envelope<Value>), CliError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next()?;
        self.read += 1;
        match &self.bar {
            Some(bar) => bar.inc(1),
            None if self.read.is_multiple_of(self.plain_every) => self.ui.note(format!(
                "replay: {}/{} records",
                self.read,
                self.total.unwrap_or(self.read)
            )),
            None => {}
        }
        Some(item)
    }
}

fn print_report(r: &ReplayReport, ui: Ui) {
    if ui.quiet {
        return;
    }
    let verb = if r.dry_run { "would send" } else { "sent" };
    let seqs = match (r.first_seq, r.last_seq) {
        (Some(a), Some(b)) => format!(" (recorded seq {a}..={b})"),
        _ => String::new(),
    };
    eprintln!(
        "replay report: read {}, {verb} {}{seqs}, filtered out {} (topic {}, time {}, correlation {}), failed {}, ended: {}",
        r.read,
        r.published,
        r.skipped,
        r.filtered_by.pattern,
        r.filtered_by.time,
        r.filtered_by.correlation,
        r.failed,
        match r.end {
            ReplayEnd::Exhausted => "source exhausted",
            ReplayEnd::TargetClosed => "output closed",
        }
    );
}
