//! `evbus bench`: the benchmark report of `evbus_benches::report` (the
//! same scenarios as `bench-report`), with a progress line per scenario,
//! the Markdown tables on standard output, and an SVG chart.

use std::{collections::HashMap, time::Instant};

use evbus_benches::report::{self, Options, Progress, ReportArgs};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{error::CliError, ui::Ui};

/// `evbus bench`'s options.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  cargo run --release -p evbus-cli -- bench --quick --svg bench.svg
  evbus bench --only 1,3 --rounds 3

Build with --release: a debug build measures the debug build. A full run
takes several minutes; BENCHMARKS.md defines every row.")]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    report: ReportArgs,
}

/// Runs `evbus bench`.
pub(crate) fn run(args: &BenchArgs, ui: Ui) -> Result<(), CliError> {
    let ReportArgs { options, svg } = &args.report;
    // Fail before minutes of measuring, not after.
    if let Some(path) = svg
        && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(CliError::failure(format!(
            "--svg {}: the directory {} does not exist",
            path.display(),
            parent.display()
        )));
    }
    if cfg!(debug_assertions) && !ui.quiet {
        eprintln!(
            "evbus bench: this is a debug build; for figures that mean anything, run it with --release"
        );
    }
    let total = options.scenarios().count();
    let mut bars = Bars::new(ui, options);
    let mut started = Instant::now();
    let report = report::run(options, |p| match p {
        Progress::Started { number, name } => {
            started = Instant::now();
            bars.start(number, name, total);
        }
        Progress::Finished { number, name } => bars.finish(number, name, started.elapsed()),
    });
    report.print();
    if let Some(path) = svg {
        let command = format!("evbus bench {}", options.describe());
        let groups = report
            .write_svg(path, command.trim_end())
            .map_err(|e| CliError::failure(format!("--svg {}: {e}", path.display())))?;
        if !ui.quiet {
            eprintln!("evbus bench: wrote {} ({groups} groups)", path.display());
        }
    }
    Ok(())
}

/// A spinner per scenario on a terminal (running, then its time); plain
/// lines otherwise.
struct Bars {
    ui: Ui,
    multi: Option<MultiProgress>,
    bars: HashMap<u32, ProgressBar>,
    done: usize,
}

impl Bars {
    fn new(ui: Ui, options: &Options) -> Bars {
        let multi = (!ui.quiet && ui.stderr_tty)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let mut bars = HashMap::new();
        if let Some(multi) = &multi {
            // Every selected scenario gets its line up front, waiting.
            let style = ProgressStyle::with_template("{prefix:>4} {spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            for (number, name) in options.scenarios() {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(format!("{number}."));
                bar.set_message(format!("{name}: waiting"));
                bars.insert(number, bar);
            }
        }
        Bars {
            ui,
            multi,
            bars,
            done: 0,
        }
    }

    fn start(&mut self, number: u32, name: &str, total: usize) {
        match self.bars.get(&number) {
            Some(bar) => {
                bar.set_message(format!("{name}: measuring"));
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
            }
            None => self.ui.note(format!(
                "evbus bench: scenario {number} ({}/{total}): {name}",
                self.done + 1
            )),
        }
    }

    fn finish(&mut self, number: u32, name: &str, took: std::time::Duration) {
        self.done += 1;
        if let Some(bar) = self.bars.get(&number) {
            bar.finish_with_message(format!("{name}: done in {:.1} s", took.as_secs_f64()));
        }
        if self.multi.is_some() && self.done == self.bars.len() {
            // The finished lines stay; the tables follow on stdout.
            self.multi = None;
        }
    }
}
