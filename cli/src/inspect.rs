//! `evbus inspect`: a journal's segments, records per topic, time span and
//! a check of every frame's CRC; `--repair` cuts damaged ranges out.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use evbus_core::Timestamp;
use evbus_journal::{Journal, JournalOptions, Reader, RepairReport, Start};

use crate::{
    error::CliError,
    records::{self, show_span, show_time},
    ui::Ui,
};

/// `evbus inspect`'s options.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  evbus inspect ./journal
  evbus inspect ./journal --repair    # stop the writer first: repair takes its lock

Exit status: 0 if every frame checked out, 1 if the journal is damaged (or
--repair could not fix it).")]
pub(crate) struct InspectArgs {
    /// The journal directory.
    journal: PathBuf,
    /// Remove damaged ranges and a torn tail, then inspect again. The
    /// records in removed ranges are lost; the report lists them.
    #[arg(long)]
    repair: bool,
}

/// One segment file.
struct Segment {
    first_seq: u64,
    name: String,
    bytes: u64,
    records: u64,
}

/// What a read of the whole journal found.
struct Survey {
    codec: &'static str,
    segments: Vec<Segment>,
    topics: BTreeMap<String, u64>,
    records: u64,
    seqs: Option<(u64, u64)>,
    /// Sequence numbers missing between records (gaps left by a repair or
    /// by retention of the first segments is not a gap).
    gaps: u64,
    times: Option<(Timestamp, Timestamp)>,
    /// The damage that stopped the read, if any.
    damage: Option<evbus_journal::Error>,
    /// Bytes after the last valid frame of the last segment.
    torn_tail: Option<(String, u64, u64)>,
}

/// Runs `evbus inspect`.
pub(crate) fn run(args: &InspectArgs, ui: Ui) -> Result<(), CliError> {
    let dir = &args.journal;
    records::check_journal_dir(dir)?;
    if args.repair {
        let report =
            Journal::repair(dir, JournalOptions::new()).map_err(|e| CliError::journal(dir, e))?;
        print_repair(&report);
        println!();
    }
    let survey = survey(dir, ui)?;
    print_survey(dir, &survey);
    match (&survey.damage, &survey.torn_tail) {
        (Some(e), _) => Err(
            CliError::failure(format!("the journal is damaged: {e}")).hint(format!(
                "`evbus inspect {} --repair` cuts the damaged range out (its records are lost)",
                dir.display()
            )),
        ),
        // A torn tail is what a crash mid-append leaves: the next writer
        // cuts it off on open; nothing acknowledged is in it.
        _ => Ok(()),
    }
}

fn survey(dir: &Path, ui: Ui) -> Result<Survey, CliError> {
    let mut segments = list_segments(dir)?;
    let mut reader = Reader::open(dir, Start::Beginning).map_err(|e| CliError::journal(dir, e))?;
    let codec = records::codec_name(reader.codec());
    let mut survey = Survey {
        codec,
        segments: Vec::new(),
        topics: BTreeMap::new(),
        records: 0,
        seqs: None,
        gaps: 0,
        times: None,
        damage: None,
        torn_tail: None,
    };
    let bar = ui.bar(
        Some(segments.iter().map(|s| s.bytes).sum()),
        "checking {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
    );
    let mut prev: Option<u64> = None;
    for record in reader.by_ref() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                survey.damage = Some(e);
                break;
            }
        };
        let pos = record.position();
        if let Some(s) = segments.iter_mut().find(|s| s.first_seq == pos.segment) {
            s.records += 1;
        }
        if let Some(bar) = &bar {
            let before: u64 = segments
                .iter()
                .filter(|s| s.first_seq < pos.segment)
                .map(|s| s.bytes)
                .sum();
            bar.set_position(before + pos.offset);
        }
        *survey.topics.entry(record.topic().to_owned()).or_default() += 1;
        survey.records += 1;
        let seq = record.seq();
        if let Some(p) = prev {
            survey.gaps += seq.saturating_sub(p + 1);
        }
        prev = Some(seq);
        survey.seqs = Some((survey.seqs.map_or(seq, |s| s.0), seq));
        let t = record.time();
        survey.times = Some(survey.times.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    // Where the reader stopped: in the last segment, bytes past it are a
    // torn tail (or, with `damage`, the damaged range).
    let end = reader.next_position();
    if survey.damage.is_none()
        && let Some(last) = segments.last()
        && last.first_seq == end.segment
        && end.offset < last.bytes
    {
        survey.torn_tail = Some((last.name.clone(), end.offset, last.bytes - end.offset));
    }
    survey.segments = segments;
    Ok(survey)
}

/// The segment files of `dir`, in order, with their sizes.
fn list_segments(dir: &Path) -> Result<Vec<Segment>, CliError> {
    let entries = fs::read_dir(dir)
        .map_err(|e| CliError::failure(format!("cannot list {}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".seg") else {
            continue;
        };
        let Ok(first_seq) = stem.parse::<u64>() else {
            continue;
        };
        let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
        out.push(Segment {
            first_seq,
            name,
            bytes,
            records: 0,
        });
    }
    out.sort_by_key(|s| s.first_seq);
    Ok(out)
}

fn print_survey(dir: &Path, s: &Survey) {
    println!("journal   {}", dir.display());
    println!("codec     {}", s.codec);
    let total: u64 = s.segments.iter().map(|g| g.bytes).sum();
    println!("segments  {} ({total} bytes)", s.segments.len());
    for g in &s.segments {
        println!(
            "  {}  {:>10} bytes  {:>8} records",
            g.name, g.bytes, g.records
        );
    }
    match s.seqs {
        Some((a, b)) if s.gaps > 0 => println!(
            "records   {} (seq {a}..={b}, {} missing in gaps)",
            s.records, s.gaps
        ),
        Some((a, b)) => println!("records   {} (seq {a}..={b})", s.records),
        None => println!("records   0"),
    }
    if let Some((a, b)) = s.times {
        println!(
            "time      {} .. {} ({})",
            show_time(a),
            show_time(b),
            show_span(b.saturating_duration_since(a))
        );
    }
    if !s.topics.is_empty() {
        println!("topics");
        let width = s.topics.keys().map(String::len).max().unwrap_or(0);
        for (topic, n) in &s.topics {
            println!("  {topic:<width$}  {n:>8}");
        }
    }
    match (&s.damage, &s.torn_tail) {
        (Some(e), _) => println!("check     DAMAGED: {e}"),
        (None, Some((seg, offset, bytes))) => println!(
            "check     ok: every complete frame's CRC matched; {seg} ends in a torn tail of {bytes} bytes at offset {offset} (an unfinished append; the next writer or --repair cuts it off)"
        ),
        (None, None) => println!("check     ok: every frame's CRC matched"),
    }
}

fn print_repair(report: &RepairReport) {
    if report.skipped.is_empty() && report.truncated.is_none() {
        println!("repair    nothing to do: no damage found");
        return;
    }
    for s in &report.skipped {
        println!(
            "repair    removed {} bytes at offset {} of {} ({})",
            s.bytes,
            s.offset,
            s.segment.display(),
            s.reason
        );
    }
    if let Some(t) = &report.truncated {
        println!(
            "repair    cut a torn tail of {} bytes at offset {} of {}",
            t.bytes,
            t.offset,
            t.segment.display()
        );
    }
}
