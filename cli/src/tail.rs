//! `evbus tail`: the last records of a journal, then (with `--follow`) the
//! records appended by a writer in any process, as they arrive.

use std::{path::PathBuf, thread, time::Duration};

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
    /// Start this many records before the end (counted before the topic
    /// filter).
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
        None => {
            let (first, end) = records::seq_bounds(dir)?;
            Start::Seq(end.saturating_sub(args.lines).max(first))
        }
    };
    let mut reader = Reader::open(dir, start).map_err(|e| CliError::journal(dir, e))?;
    if args.format == Format::Table {
        println!("{}", records::table_header());
    }
    let mut printed = 0;
    loop {
        if args.count.is_some_and(|n| printed >= n) {
            return Ok(());
        }
        match reader.next() {
            Some(Ok(record)) => {
                if args
                    .topic
                    .as_ref()
                    .is_none_or(|p| p.matches(record.topic()))
                {
                    records::print_record(&record, args.format);
                    printed += 1;
                }
            }
            Some(Err(e)) => return Err(CliError::journal(dir, e)),
            None if args.follow => thread::sleep(POLL),
            None => return Ok(()),
        }
    }
}
