//! `evbus`: the evbus command.
//!
//! - `evbus demo`: a monitoring scenario on one bus, with a live table;
//! - `evbus bench`: the benchmark report, with a progress bar per scenario;
//! - `evbus tail|query|replay|inspect|export|import`: operator tools for a
//!   journal (evbus-journal) and its session files; `replay` can deliver to
//!   a webhook endpoint (evbus-webhook) or a JetStream stream (evbus-nats);
//! - `evbus stats URL`: a live table from a running service's Prometheus
//!   endpoint;
//! - `evbus webhook sign|verify|secret`: Standard Webhooks signatures, and
//!   a signed request sent to an endpoint (evbus-webhook);
//! - `evbus completions SHELL`: shell completions.
//!
//! Exit status: 0 when the command did its job, 1 when it failed (a missing
//! or damaged journal, an unreachable endpoint, a failed check), 2 for a
//! usage error (an unknown option, a bad pattern, time or URL). Progress
//! bars and live tables draw only on a terminal; otherwise the commands
//! print plain lines, and `--quiet` leaves those out too.

mod bench;
mod demo;
mod error;
mod inspect;
mod live;
mod nats;
mod query;
mod records;
mod replay;
mod stats;
mod tail;
mod transfer;
mod ui;
mod webhook;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::ui::Ui;

/// The evbus command: demo, benchmarks, journal tools, live stats.
#[derive(Debug, Parser)]
#[command(name = "evbus", version, propagate_version = true)]
#[command(after_help = "\
Examples:
  evbus demo
  evbus tail ./journal --follow
  evbus inspect ./journal
  evbus stats http://127.0.0.1:9898/metrics

Exit status: 0 ok, 1 failure, 2 usage error.")]
struct Cli {
    /// No progress bars, live tables or progress lines: only results and
    /// errors.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A few seconds of a monitoring scenario on one bus: publishers,
    /// fast, wildcard and stalled subscribers, a live table of ring fill
    /// and drops, and a final check.
    Demo(demo::DemoArgs),
    /// The benchmark report: every scenario for evbus and its peers, a
    /// Markdown table, and an SVG chart. Build with --release.
    Bench(bench::BenchArgs),
    /// Print a journal's last records, and with --follow the new ones as
    /// they are appended.
    Tail(tail::TailArgs),
    /// Find records by topic, time range, correlation id, session or
    /// tenant.
    Query(query::QueryArgs),
    /// Replay a journal or session file, filtered and paced, with a
    /// progress bar and a report.
    Replay(replay::ReplayArgs),
    /// Segments, records per topic, time span and a CRC check of every
    /// frame; --repair cuts damage out.
    Inspect(inspect::InspectArgs),
    /// Write a journal's records to a session file (JSON Lines).
    Export(transfer::ExportArgs),
    /// Append a session file's envelopes to a journal.
    Import(transfer::ImportArgs),
    /// A live table of a running service's subscriptions, from its
    /// Prometheus endpoint.
    Stats(stats::StatsArgs),
    /// Sign a webhook body (and send it), verify a received request, or
    /// make a secret (Standard Webhooks, as evbus-webhook delivers them).
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  evbus completions bash > ~/.local/share/bash-completion/completions/evbus
  evbus completions zsh > ~/.zfunc/_evbus")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ui = Ui::detect(cli.quiet);
    let result = match &cli.command {
        Command::Demo(args) => demo::run(args, ui),
        Command::Bench(args) => bench::run(args, ui),
        Command::Tail(args) => tail::run(args),
        Command::Query(args) => query::run(args, ui),
        Command::Replay(args) => replay::run(args, ui),
        Command::Inspect(args) => inspect::run(args, ui),
        Command::Export(args) => transfer::export(args, ui),
        Command::Import(args) => transfer::import(args, ui),
        Command::Stats(args) => stats::run(args, ui),
        Command::Webhook(command) => webhook::run(command, ui),
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "evbus", &mut std::io::stdout());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn command_is_well_formed() {
        Cli::command().debug_assert();
    }
}
