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

use std::process::ExitCode;

use clap::Parser;
use evbus_benches::report::{self, Progress, ReportArgs};

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
    #[command(flatten)]
    report: ReportArgs,
}

fn main() -> ExitCode {
    // Bad arguments print a usage error and exit with status 2; `--help`
    // and `--version` print and exit with 0.
    let args = Args::parse().report;
    let report = report::run(&args.options, |p| {
        if let Progress::Started { number, name } = p {
            eprintln!("bench-report: scenario {number}: {name}");
        }
    });
    report.print();
    if let Some(path) = &args.svg {
        let command = format!("bench-report {}", args.options.describe());
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

    use evbus_benches::report::ReportArgs;

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
        .unwrap()
        .report;
        assert!(args.options.quick);
        assert_eq!(args.options.rounds, Some(2));
        assert_eq!(args.options.only, [1, 3]);
        assert_eq!(args.svg.as_deref(), Some(std::path::Path::new("x.svg")));
        assert_eq!(args.options.describe(), "--quick --rounds 2 --only 1,3");
        let none = parse(&[]).unwrap().report;
        assert_eq!(none, ReportArgs::default());
        assert_eq!(none.options.describe(), "");
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
