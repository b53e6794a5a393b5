//! `bench-report`: every scenario for evbus and its peers, interleaved in one
//! process, printed as a Markdown table with ratios (evbus ÷ peer).
//!
//! ```text
//! cargo run --release -p evbus-benches --bin bench-report -- [--quick] [--rounds N] [--only 1,3] [--svg PATH]
//! cargo run --release -p evbus-cli -- bench [--quick] [--only 1,3] [--svg PATH]   # the same, with progress bars
//! ```
//!
//! `--svg PATH` also writes an SVG bar chart of the rows that have figures
//! for both peers and a unit in nanoseconds. The scenarios live in
//! `evbus_benches::report`; this binary parses the options and prints.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use evbus_benches::report::{self, Options, Progress};

/// Runs every benchmark scenario for evbus, tokio::sync::broadcast and a
/// crossbeam-channel fan-out, interleaved round by round in one process,
/// and prints a Markdown table with the ratios evbus ÷ peer.
///
/// A full run takes several minutes. Scenarios: 1 per delivery (with 1f,
/// the CAS floor, and 1s, single producer), 2 full rings, 3 no
/// subscribers, 4 routing scale, 5 publish latency with churn, 6 a stalled
/// subscriber, 7 one-way latency between threads, 8 two publishers and one
/// consumer. The user scenarios (issue 14) compare every peer (evbus, its
/// single-producer mode, tokio, crossbeam, disruptor, bus, an rtrb
/// fan-out) in a second table: 9 lossless fan-out between threads, 10 full
/// rings, 11 the publish side alone, 12 no subscribers, 13 subscribe at
/// scale, 14 lossless on oversubscribed cores. BENCHMARKS.md describes
/// each row.
#[derive(Debug, Parser)]
#[command(name = "bench-report", version)]
struct Args {
    /// A short run: 3 rounds, 200 iterations per measurement, 20 000
    /// latency samples, 50 000 lossless publishes (scenario 9), 100 000
    /// pinned events (14) and a 5 s subscribe budget (13) (default: 5
    /// rounds, 1 000 iterations, 100 000 samples, 200 000 publishes,
    /// 1 000 000 events, 20 s).
    #[arg(long)]
    quick: bool,
    /// Interleaved rounds per figure, each figure the median over them
    /// (default 5, or 3 with --quick). Scenarios 5 and 6 use at most 5,
    /// scenario 8 at most 3.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    rounds: Option<u16>,
    /// Run only these scenarios, by number (1 to 14), comma-separated.
    #[arg(
        long,
        value_name = "N,M",
        value_delimiter = ',',
        value_parser = clap::value_parser!(u32).range(1..=14)
    )]
    only: Vec<u32>,
    /// Scenario 13: seconds each peer may spend building subscriptions;
    /// past it the report says how many it built (default 20, or 5 with
    /// --quick).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    subscribe_budget: Option<u64>,
    /// Also write an SVG bar chart of the rows measured in ns for all three.
    #[arg(long, value_name = "PATH")]
    svg: Option<PathBuf>,
}

impl Args {
    fn options(&self) -> Options {
        Options {
            quick: self.quick,
            rounds: self.rounds,
            only: self.only.clone(),
            subscribe_budget: self.subscribe_budget,
        }
    }

    /// The options that shaped the figures, for the chart's title (the
    /// output path left out).
    fn describe(&self) -> String {
        self.options().describe()
    }
}

fn main() -> ExitCode {
    // Bad arguments print a usage error and exit with status 2; `--help`
    // and `--version` print and exit with 0.
    let args = Args::parse();
    let report = report::run(&args.options(), |p| {
        if let Progress::Started { number, name } = p {
            eprintln!("bench-report: scenario {number}: {name}");
        }
    });
    report.print();
    if let Some(path) = &args.svg {
        let command = format!("bench-report {}", args.describe());
        match report.write_svg(path, command.trim_end()) {
            Ok(n) => eprintln!("bench-report: wrote {} ({n} groups)", path.display()),
            Err(e) => {
                eprintln!("bench-report: --svg: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser, error::ErrorKind};

    use super::Args;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("bench-report").chain(args.iter().copied()))
    }

    #[test]
    fn command_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn options_parse() {
        let args = parse(&[
            "--quick", "--rounds", "2", "--only", "1,3", "--svg", "x.svg",
        ])
        .unwrap();
        assert!(args.quick);
        assert_eq!(args.rounds, Some(2));
        assert_eq!(args.only, [1, 3]);
        assert_eq!(args.svg.as_deref(), Some(std::path::Path::new("x.svg")));
        assert_eq!(args.describe(), "--quick --rounds 2 --only 1,3");
        let none = parse(&[]).unwrap();
        assert!(none.only.is_empty() && none.rounds.is_none() && none.svg.is_none());
        assert_eq!(none.describe(), "");
    }

    #[test]
    fn bad_arguments_are_usage_errors_with_status_2() {
        for (args, kind) in [
            (&["--only", "15"][..], ErrorKind::ValueValidation),
            (&["--only", "x"][..], ErrorKind::ValueValidation),
            (&["--rounds", "0"][..], ErrorKind::ValueValidation),
            (&["--subscribe-budget", "0"][..], ErrorKind::ValueValidation),
            (&["--svg"][..], ErrorKind::InvalidValue),
            (&["--bogus"][..], ErrorKind::UnknownArgument),
        ] {
            let err = parse(args).expect_err("rejected");
            assert_eq!(err.kind(), kind, "{args:?}");
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn help_and_version_exit_0_without_running() {
        for (flag, kind) in [
            ("--help", ErrorKind::DisplayHelp),
            ("-V", ErrorKind::DisplayVersion),
        ] {
            let err = parse(&[flag]).expect_err("help and version stop the parse");
            assert_eq!(err.kind(), kind);
            assert_eq!(err.exit_code(), 0);
        }
    }
}
