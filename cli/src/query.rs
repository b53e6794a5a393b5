//! `evbus query`: the records that match a topic pattern, a time range, a
//! correlation id, a session or a tenant, found through the journal's
//! indexes.

use std::path::PathBuf;

use evbus_core::EventId;
use evbus_journal::Query;

use crate::{
    error::CliError,
    records::{self, Format, Selection},
    ui::Ui,
};

/// `evbus query`'s options.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  evbus query ./journal --topic 'orders.*' --from 2026-11-29T18:00:00Z --to 2026-11-29T19:00:00Z
  evbus query ./journal --correlation 0193a5c2-7f1e-7c3a-9d2b-5e8f1a2b3c4d --format json
  evbus query ./journal --tenant acme --limit 20")]
pub(crate) struct QueryArgs {
    /// The journal directory.
    journal: PathBuf,
    #[command(flatten)]
    selection: Selection,
    /// Only records with this correlation id (found through the index).
    #[arg(long, value_name = "ID")]
    correlation: Option<EventId>,
    /// Only records of this session.
    #[arg(long, value_name = "ID")]
    session: Option<String>,
    /// Only records of this tenant.
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
    /// At most this many records.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// How to print records.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Runs `evbus query`.
pub(crate) fn run(args: &QueryArgs, ui: Ui) -> Result<(), CliError> {
    let dir = &args.journal;
    records::check_journal_dir(dir)?;
    let mut query = args.selection.query()?;
    if let Some(id) = args.correlation {
        query = query.correlation(id);
    }
    if let Some(s) = &args.session {
        query = query.session(s);
    }
    if let Some(t) = &args.tenant {
        query = query.tenant(t);
    }
    if let Some(n) = args.limit {
        query = query.limit(n);
    }
    let mut results = Query::run(dir, &query).map_err(|e| CliError::journal(dir, e))?;
    let mut out = records::Out::new();
    if args.format == Format::Table && !out.line(&records::table_header())? {
        return Ok(());
    }
    for record in results.by_ref() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                out.flush()?;
                return Err(CliError::journal(dir, e));
            }
        };
        if !out.record(&record, args.format)? {
            return Ok(());
        }
    }
    if !out.flush()? {
        return Ok(());
    }
    let stats = results.stats();
    if !ui.quiet {
        eprintln!(
            "{} matched; read {} from {} ({} skipped by the indexes), {} bytes",
            records::count(stats.records_matched, "record"),
            records::count(stats.records_read, "record"),
            records::count(stats.segments_opened, "segment"),
            stats.segments_skipped,
            stats.bytes_read
        );
    }
    Ok(())
}
