//! `evbus tail`: the last records of a journal, then (with `--follow`) the
//! records appended by a writer in any process, as they arrive.

use std::{
    path::{Path, PathBuf},
    thread,
    time::Duration,
};

use evbus_core::Pattern;
use evbus_journal::{Reader, Start};

use crate::{
    error::CliError,
    records::{self, Format, TimeArg},
};

/// How often `--follow` looks for new records once it has read them all.
const POLL: Duration = Duration::from_millis(100);

/// `evbus tail`'s options.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  evbus tail ./journal                        # the last 10 records
  evbus tail ./journal --topic 'orders.>' --follow --format json
  evbus tail ./journal --since 10m            # everything from the last 10 minutes")]
pub(crate) struct TailArgs {
    /// The journal directory.
    journal: PathBuf,
    /// Only records whose topic matches this pattern (`*` one segment,
    /// `>` the rest).
    #[arg(long, short, value_name = "PATTERN")]
    topic: Option<Pattern>,
    /// Start at the first record at or after this time instead of the last
    /// `--lines` (RFC 3339, `10m` ago, `now`).
    #[arg(long, value_name = "TIME", conflicts_with = "lines")]
    since: Option<TimeArg>,
    /// Start with the last N records (that match `--topic`, if given).
    #[arg(long, short = 'n', value_name = "N", default_value_t = 10)]
    lines: u64,
    /// Keep waiting for new records (any process may be writing them) until
    /// interrupted, or until `--count` records were printed.
    #[arg(long, short)]
    follow: bool,
    /// Stop after printing this many records.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// How to print records.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Runs `evbus tail`.
pub(crate) fn run(args: &TailArgs) -> Result<(), CliError> {
    let dir = &args.journal;
    records::check_journal_dir(dir)?;
    let start = match args.since {
        Some(t) => Start::Time(t.0),
        None => Start::Seq(last_n_start(dir, args.topic.as_ref(), args.lines)?),
    };
    let mut reader = Reader::open(dir, start).map_err(|e| CliError::journal(dir, e))?;
    let mut out = records::Out::new();
    if args.format == Format::Table && !out.line(&records::table_header())? {
        return Ok(());
    }
    let mut printed = 0;
    loop {
        if args.count.is_some_and(|n| printed >= n) {
            break;
        }
        match reader.next() {
            Some(Ok(record)) => {
                if args
                    .topic
                    .as_ref()
                    .is_none_or(|p| p.matches(record.topic()))
                {
                    if !out.record(&record, args.format)? {
                        return Ok(());
                    }
                    printed += 1;
                }
            }
            Some(Err(e)) => {
                out.flush()?;
                return Err(CliError::journal(dir, e));
            }
            None if args.follow => {
                // Nothing more for now: show what was read, then wait.
                if !out.flush()? {
                    return Ok(());
                }
                thread::sleep(POLL);
            }
            None => break,
        }
    }
    out.flush().map(drop)
}

/// The sequence number to start at so that the last `n` records matching
/// `topic` are printed: reads backwards in growing windows (4 times larger
/// each time), so a rare topic costs at most about 4/3 of one pass.
fn last_n_start(dir: &Path, topic: Option<&Pattern>, n: u64) -> Result<u64, CliError> {
    let (first, end) = records::seq_bounds(dir)?;
    let Some(pattern) = topic else {
        return Ok(end.saturating_sub(n).max(first));
    };
    if n == 0 {
        return Ok(end);
    }
    let mut window = n.saturating_mul(4).max(256);
    let mut upto = end;
    let mut found: Vec<u64> = Vec::new();
    loop {
        let from = upto.saturating_sub(window).max(first);
        let mut in_window = Vec::new();
        let reader = Reader::open(dir, Start::Seq(from)).map_err(|e| CliError::journal(dir, e))?;
        for record in reader {
            let record = record.map_err(|e| CliError::journal(dir, e))?;
            if record.seq() >= upto {
                break;
            }
            if pattern.matches(record.topic()) {
                in_window.push(record.seq());
            }
        }
        in_window.append(&mut found);
        found = in_window;
        if found.len() as u64 >= n || from == first {
            let k = found
                .len()
                .saturating_sub(usize::try_from(n).unwrap_or(usize::MAX));
            return Ok(found.get(k).copied().unwrap_or(end));
        }
        upto = from;
        window = window.saturating_mul(4);
    }
}
