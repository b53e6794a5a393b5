//! `evbus export` and `evbus import`: a journal's records to a session file
//! (JSON Lines) and back, to share a recording or move it between machines.

use std::{
    fs::File,
    io::BufReader,
    path::{Path, PathBuf},
};

use evbus_core::Envelope;
use evbus_journal::{Codec, Error, Journal, JournalOptions, Query, SessionReader, write_session};
use serde_json::Value;

use crate::{
    error::CliError,
    records::{self, Selection},
    replay::session_error,
    ui::Ui,
};

/// `evbus export`'s options.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  evbus export ./journal --session orders.jsonl --topic 'orders.>'
  evbus export ./journal --session last-hour.jsonl --from 1h
  evbus export ./postcard-journal --session raw.jsonl --raw-payloads")]
pub(crate) struct ExportArgs {
    /// The journal directory.
    journal: PathBuf,
    /// The session file to write (replaced atomically: it never holds half
    /// a session).
    #[arg(long, value_name = "FILE.jsonl")]
    session: PathBuf,
    #[command(flatten)]
    selection: Selection,
    /// Export payloads that are not JSON (the postcard codec is not
    /// self-describing) as `{"codec","len","hex"}` objects. Without it,
    /// exporting a postcard journal is refused.
    #[arg(long)]
    raw_payloads: bool,
}

/// `evbus import`'s options.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  evbus import orders.jsonl --journal ./journal       # creates it (JSON codec) if it does not exist
  evbus export ./a --session s.jsonl && evbus import s.jsonl --journal ./b")]
pub(crate) struct ImportArgs {
    /// The session file to read.
    session: PathBuf,
    /// The journal directory to append to. It is created (with the JSON
    /// codec) if it does not exist; an existing one must use the JSON
    /// codec, since session payloads are JSON.
    #[arg(long, value_name = "DIR")]
    journal: PathBuf,
}

/// Runs `evbus export`.
pub(crate) fn export(args: &ExportArgs, ui: Ui) -> Result<(), CliError> {
    let dir = &args.journal;
    records::check_journal_dir(dir)?;
    let (first, end) = records::seq_bounds(dir)?;
    let query = args.selection.query()?;
    let results = Query::run(dir, &query).map_err(|e| CliError::journal(dir, e))?;
    let bar = ui.bar(
        Some(end - first),
        "export {bar:30} {pos}/{len} records  {rate}",
    );
    let mut failed: Option<CliError> = None;
    let raw = args.raw_payloads;
    let envelopes = results.map_while(|r| {
        let converted =
            r.map_err(|e| CliError::journal(dir, e)).and_then(|rec| {
                if let Some(bar) = &bar {
                    bar.set_position(rec.seq() - first);
                }
                if rec.codec() != Codec::Json && !raw {
                    return Err(CliError::failure(
                    "this journal's payloads are postcard, which only their Rust type can decode",
                )
                .hint("pass --raw-payloads to export them as {\"codec\",\"len\",\"hex\"} objects"));
                }
                records::envelope(&rec).map_err(|e| CliError::journal(dir, e))
            });
        match converted {
            Ok(e) => Some(e),
            Err(e) => {
                failed = Some(e);
                None
            }
        }
    });
    let written = write_session::<Value, _>(&args.session, envelopes);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Some(e) = failed {
        // The half-written session is not left behind.
        if written.is_ok() {
            let _ = std::fs::remove_file(&args.session);
        }
        return Err(e);
    }
    let header = written.map_err(|e| session_error(&args.session, &e))?;
    if !ui.quiet {
        eprintln!(
            "exported {} ({}) to {}",
            records::count(header.count, "record"),
            records::count(header.topics.len() as u64, "topic"),
            args.session.display()
        );
    }
    Ok(())
}

/// Runs `evbus import`.
pub(crate) fn import(args: &ImportArgs, ui: Ui) -> Result<(), CliError> {
    let file = &args.session;
    if !file.is_file() {
        return Err(
            CliError::failure(format!("{} is not a file", file.display()))
                .hint("pass a session file (.jsonl), as `evbus export` writes it"),
        );
    }
    let reader =
        SessionReader::<BufReader<File>, Value>::open(file).map_err(|e| session_error(file, &e))?;
    let mut journal = open_json_journal(&args.journal)?;
    let bar = ui.bar(
        Some(reader.header().count),
        "import {bar:30} {pos}/{len} records  {rate}",
    );
    let first = journal.next_seq();
    let mut batch: Vec<Envelope<Value>> = Vec::with_capacity(256);
    let dir = args.journal.clone();
    let flush = |journal: &mut Journal, batch: &mut Vec<Envelope<Value>>| {
        journal
            .append_batch(batch.iter())
            .map_err(|e| CliError::journal(&dir, e))?;
        batch.clear();
        Ok::<(), CliError>(())
    };
    for item in reader {
        let (_, envelope) = item.map_err(|e| session_error(file, &e))?;
        batch.push(envelope);
        if let Some(bar) = &bar {
            bar.inc(1);
        }
        if batch.len() == batch.capacity() {
            flush(&mut journal, &mut batch)?;
        }
    }
    flush(&mut journal, &mut batch)?;
    let end = journal.next_seq();
    journal
        .close()
        .map_err(|e| CliError::journal(&args.journal, e))?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if !ui.quiet {
        eprintln!(
            "imported {} into {} (seq {first}..{end})",
            records::count(end - first, "record"),
            args.journal.display()
        );
    }
    Ok(())
}

/// Opens the JSON journal in `dir`, or creates one.
fn open_json_journal(dir: &Path) -> Result<Journal, CliError> {
    // Synced once per batch of appends (the default policy).
    let opened = Journal::open(dir, JournalOptions::new().codec(Codec::Json));
    opened.map_err(|e| match e {
        Error::CodecMismatch { found, .. } => CliError::failure(format!(
            "{} is a {} journal; session payloads are JSON",
            dir.display(),
            records::codec_name(found)
        ))
        .hint("import into a new directory (it is created with the JSON codec)"),
        e => CliError::journal(dir, e),
    })
}
