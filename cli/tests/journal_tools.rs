//! `evbus tail`, `query`, `inspect`, `export`, `import` and `replay` on
//! journals and sessions the tests write, and their errors.

mod common;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::Stdio,
    sync::mpsc,
    thread,
    time::Duration,
};

use assert_cmd::Command;
use common::{MS, T0, corrupt_record, create_journal, evbus, lines, orders, write_orders};
use evbus_core::Envelope;
use evbus_journal::{Codec, SessionReader};
use predicates::prelude::*;
use serde_json::Value;

fn json_lines(out: &[u8]) -> Vec<Value> {
    lines(out)
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// `evbus export JOURNAL --session SESSION`, for more arguments.
fn export(journal: &Path, session: &Path) -> Command {
    let mut cmd = evbus();
    cmd.arg("export").arg(journal).arg("--session").arg(session);
    cmd
}

/// `evbus import SESSION --journal JOURNAL`, for more arguments.
fn import(session: &Path, journal: &Path) -> Command {
    let mut cmd = evbus();
    cmd.arg("import").arg(session).arg("--journal").arg(journal);
    cmd
}

/// `evbus inspect JOURNAL`, for more arguments.
fn inspect(journal: &Path) -> Command {
    let mut cmd = evbus();
    cmd.arg("inspect").arg(journal);
    cmd
}

/// `evbus replay SOURCE`, for more arguments.
fn replay(source: &Path) -> Command {
    let mut cmd = evbus();
    cmd.arg("replay").arg(source);
    cmd
}

/// The JSON lines a command prints, after checking that it succeeds.
fn json_out(cmd: &mut Command) -> Vec<Value> {
    json_lines(&cmd.assert().success().get_output().stdout)
}

/// The `seq` of each JSON row.
fn seq_column(rows: &[Value]) -> Vec<u64> {
    rows.iter().map(|r| r["seq"].as_u64().unwrap()).collect()
}

#[test]
fn tail_prints_the_last_records_as_a_table_or_json() {
    let dir = common::orders_journal(10); // 15 records
    let out = evbus().arg("tail").arg(dir.path()).assert().success();
    let table = lines(&out.get_output().stdout);
    assert_eq!(table.len(), 11, "{table:?}"); // header + 10
    assert!(table[0].starts_with("   seq  time (UTC)"), "{}", table[0]);
    assert!(
        table[1]
            .trim_start()
            .starts_with("5  2026-11-29T18:00:00.050Z  orders.placed"),
        "{}",
        table[1]
    );
    assert!(
        table[10].contains(r#"{"order":9,"total":90}"#),
        "{}",
        table[10]
    );

    let out = evbus()
        .args([
            "tail",
            "--format",
            "json",
            "-n",
            "3",
            "--topic",
            "orders.shipped",
        ])
        .arg(dir.path())
        .assert()
        .success();
    let rows = json_lines(&out.get_output().stdout);
    // The last 3 shipped records: 7, 10 and 13.
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["seq"], 7);
    let rows = &rows[2..];
    assert_eq!(rows[0]["seq"], 13);
    assert_eq!(rows[0]["topic"], "orders.shipped");
    assert_eq!(rows[0]["tenant"], "acme");
    assert_eq!(rows[0]["payload"], serde_json::json!({"order": 8}));
    assert!(rows[0]["causation_id"].is_string());

    let mut tail = evbus();
    tail.args([
        "tail",
        "--format",
        "json",
        "--since",
        "2026-11-29T18:00:00.130Z",
    ])
    .arg(dir.path());
    assert_eq!(seq_column(&json_out(&mut tail)), [13, 14]);
}

#[test]
fn tail_finds_the_last_matches_of_a_rare_topic_far_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = create_journal(dir.path(), Codec::Json);
    // Rare records at 0, 500 and 1000, then 2000 of noise: several
    // windows back.
    for i in 0..3000u64 {
        let topic = if i % 500 == 0 && i <= 1000 {
            "rare.event"
        } else {
            "noise.tick"
        };
        journal
            .append(&Envelope::on(topic, serde_json::json!(i)).unwrap())
            .unwrap();
    }
    journal.close().unwrap();
    let seqs = |n: &str| -> Vec<u64> {
        seq_column(&json_out(
            evbus()
                .args(["tail", "--format", "json", "--topic", "rare.*", "-n", n])
                .arg(dir.path()),
        ))
    };
    assert_eq!(seqs("2"), [500, 1000]);
    assert_eq!(seqs("10"), [0, 500, 1000]);
    assert_eq!(seqs("0"), Vec::<u64>::new());
}

#[test]
fn tail_follow_prints_records_another_process_appends() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = create_journal(dir.path(), Codec::Json);
    journal.append(&orders(1).0[0]).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("evbus");
    let mut child = std::process::Command::new(bin)
        .args([
            "tail", "--follow", "--format", "json", "--count", "3", "--topic", "audit.*",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    for i in 0..3u64 {
        journal
            .append(&Envelope::on("noise.tick", serde_json::json!(i)).unwrap())
            .unwrap();
        journal
            .append(&Envelope::on("audit.login", serde_json::json!({"user": i})).unwrap())
            .unwrap();
    }
    // A bound, not a timing assertion: a hung tail fails instead of hanging.
    let got: Vec<Value> = (0..3)
        .map(|_| {
            serde_json::from_str(&rx.recv_timeout(Duration::from_secs(60)).expect("a line"))
                .unwrap()
        })
        .collect();
    assert_eq!(seq_column(&got), [2, 4, 6]);
    assert_eq!(got[2]["payload"]["user"], 2);
    // --count 3: it exits by itself.
    assert!(child.wait().unwrap().success());
}

#[test]
fn query_filters_by_topic_time_correlation_and_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let correlation = write_orders(dir.path(), Codec::Json, 10);
    let seqs = |args: &[&str]| -> Vec<u64> {
        seq_column(&json_out(
            evbus()
                .arg("query")
                .arg(dir.path())
                .args(["--format", "json"])
                .args(args),
        ))
    };
    assert_eq!(seqs(&["--topic", "orders.shipped"]), [1, 4, 7, 10, 13]);
    assert_eq!(seqs(&["--correlation", &correlation.to_string()]), [0, 1]);
    assert_eq!(seqs(&["--tenant", "globex"]), [2, 5, 8, 11, 14]);
    assert_eq!(
        seqs(&[
            "--from",
            "2026-11-29T18:00:00.020Z",
            "--to",
            "2026-11-29T18:00:00.050Z"
        ]),
        [2, 3, 4]
    );
    assert_eq!(
        seqs(&["--topic", "orders.*", "--tenant", "acme", "--limit", "2"]),
        [0, 1]
    );
    // The table, and the stats line on stderr.
    evbus()
        .arg("query")
        .arg(dir.path())
        .args(["--topic", "orders.shipped"])
        .assert()
        .success()
        .stdout(predicate::str::contains("orders.shipped").count(5))
        .stderr(predicate::str::contains("5 records matched"));
}

#[test]
fn bad_input_fails_with_exit_codes_and_hints() {
    let dir = common::orders_journal(2);
    let missing = dir.path().join("nope");
    for cmd in ["tail", "query", "inspect", "replay"] {
        evbus()
            .arg(cmd)
            .arg(&missing)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("does not exist"))
            .stderr(predicate::str::contains("hint:"));
    }
    // An empty directory is not a journal.
    let empty = tempfile::tempdir().unwrap();
    evbus()
        .arg("tail")
        .arg(empty.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no journal in"))
        .stderr(predicate::str::contains(".seg"));
    // A bad pattern, time, id or speed is a usage error.
    for args in [
        &["query", "--topic", "orders.>.x"][..],
        &["tail", "--topic", "a..b"],
        &["query", "--from", "last tuesday"],
        &["query", "--correlation", "not-an-id"],
        &["replay", "--speed", "fast"],
        &["replay", "--speed", "0x"],
    ] {
        evbus()
            .args(&args[..1])
            .arg(dir.path())
            .args(&args[1..])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("invalid value"));
    }
    evbus()
        .arg("query")
        .arg(dir.path())
        .args([
            "--from",
            "2026-11-29T19:00:00Z",
            "--to",
            "2026-11-29T18:00:00Z",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--to"));
    evbus().args(["tail", "--bogus"]).assert().code(2);
    evbus().assert().code(2);
}

#[test]
fn inspect_reports_segments_topics_span_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    write_orders(dir.path(), Codec::Postcard, 10);
    inspect(dir.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("codec     postcard"))
        .stdout(predicate::str::contains("segments  1"))
        .stdout(predicate::str::contains("records   15 (seq 0..=14)"))
        .stdout(predicate::str::contains(
            "time      2026-11-29T18:00:00.000Z .. 2026-11-29T18:00:00.140Z (0.140 s)",
        ))
        .stdout(predicate::str::contains("\n  orders.placed         10\n"))
        .stdout(predicate::str::contains("\n  orders.shipped         5\n"))
        .stdout(predicate::str::contains(
            "check     ok: every frame's CRC matched",
        ));
}

#[test]
fn inspect_finds_damage_and_repair_cuts_it_out() {
    let dir = common::orders_journal(10);
    corrupt_record(dir.path(), 6);
    inspect(dir.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains("records   6 (seq 0..=5)"))
        .stdout(predicate::str::contains("check     DAMAGED"))
        .stderr(predicate::str::contains("the journal is damaged"))
        .stderr(predicate::str::contains("--repair"));
    // Readers refuse it too, with the same advice.
    evbus()
        .arg("tail")
        .arg(dir.path())
        .args(["-n", "100"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("damaged"))
        .stderr(predicate::str::contains("evbus inspect"));
    inspect(dir.path())
        .arg("--repair")
        .assert()
        .success()
        .stdout(predicate::str::contains("repair    removed"))
        .stdout(predicate::str::contains(
            "records   14 (seq 0..=14, 1 missing in gaps)",
        ))
        .stdout(predicate::str::contains("check     ok"));
    inspect(dir.path())
        .arg("--repair")
        .assert()
        .success()
        .stdout(predicate::str::contains("repair    nothing to do"));
}

#[test]
fn export_then_import_round_trips_a_journal() {
    let a = tempfile::tempdir().unwrap();
    write_orders(a.path(), Codec::Json, 6);
    let session = a.path().join("orders.jsonl");
    export(a.path(), &session)
        .args(["--topic", "orders.placed"])
        .assert()
        .success()
        .stderr(predicate::str::contains("exported 6 records (1 topic)"));
    let back: Vec<(u64, Envelope<Value>)> = SessionReader::<_, Value>::open(&session)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // Ids differ per call of `orders`; everything else is fixed.
    let fields = |e: &Envelope<Value>| {
        (
            e.time(),
            e.topic().to_owned(),
            e.tenant().map(str::to_owned),
            e.payload().clone(),
        )
    };
    let placed: Vec<_> = orders(6)
        .0
        .iter()
        .filter(|e| e.topic() == "orders.placed")
        .map(fields)
        .collect();
    assert_eq!(
        back.iter().map(|(_, e)| fields(e)).collect::<Vec<_>>(),
        placed
    );

    let b = tempfile::tempdir().unwrap();
    let into = b.path().join("journal");
    import(&session, &into)
        .assert()
        .success()
        .stderr(predicate::str::contains("imported 6 records"));
    // Importing again appends.
    import(&session, &into)
        .assert()
        .success()
        .stderr(predicate::str::contains("(seq 6..12)"));
    let out = evbus()
        .args(["query", "--format", "json", "--tenant", "globex"])
        .arg(&into)
        .assert()
        .success();
    let rows = json_lines(&out.get_output().stdout);
    assert_eq!(rows.len(), 6);
    assert_eq!(
        rows[0]["payload"],
        serde_json::json!({"order": 1, "total": 10})
    );
}

#[test]
fn export_of_postcard_needs_raw_payloads_and_import_needs_json() {
    let dir = tempfile::tempdir().unwrap();
    write_orders(dir.path(), Codec::Postcard, 2);
    let session = dir.path().join("s.jsonl");
    export(dir.path(), &session)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("postcard"))
        .stderr(predicate::str::contains("--raw-payloads"));
    assert!(!session.exists(), "no half-written session is left");
    export(dir.path(), &session)
        .arg("--raw-payloads")
        .assert()
        .success();
    let (_, first): (u64, Envelope<Value>) = SessionReader::<_, Value>::open(&session)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(first.payload()["codec"], "postcard");
    assert!(first.payload()["hex"].is_string());
    // A postcard journal does not take JSON payloads.
    import(&session, dir.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is a postcard journal"));
    // A session file that is not one.
    let bogus = dir.path().join("bogus.jsonl");
    std::fs::write(&bogus, "{\"hello\": 1}\n").unwrap();
    let fresh = tempfile::tempdir().unwrap();
    for cmd in [&["import"][..], &["replay"]] {
        let mut c = evbus();
        c.args(cmd).arg(&bogus);
        if cmd[0] == "import" {
            c.arg("--journal").arg(fresh.path());
        }
        c.assert()
            .code(1)
            .stderr(predicate::str::contains("session file"))
            .stderr(predicate::str::contains("hint:"));
    }
}

#[test]
fn replay_of_a_journal_reports_and_marks_every_envelope() {
    let dir = common::orders_journal(10);
    let out = replay(dir.path())
        .args(["--topic", "orders.shipped", "--speed", "max"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "replay report: read 15, sent 5 (recorded seq 1..=13), filtered out 10 (topic 10, time 0, correlation 0), failed 0, ended: source exhausted",
        ));
    let sent = json_lines(&out.get_output().stdout);
    assert_eq!(sent.len(), 5);
    assert_eq!(sent[1]["topic"], "orders.shipped");
    assert_eq!(
        sent[1]["replay"],
        serde_json::json!({"dry_run": false, "recorded_seq": 4})
    );
    assert_eq!(sent[1]["payload"], serde_json::json!({"order": 2}));

    replay(dir.path())
        .args(["--dry-run", "--from", "2026-11-29T18:00:00.100Z"])
        .assert()
        .success()
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(
            "would send 5 (recorded seq 10..=14)",
        ));
}

#[test]
fn replay_of_a_session_keeps_the_recorded_spacing_scaled() {
    let dir = common::orders_journal(4);
    let session = dir.path().join("s.jsonl");
    export(dir.path(), &session).assert().success();
    let output = dir.path().join("out.jsonl");
    // 50 ms recorded at 4x: a short wait, and no timing assertion.
    replay(&session)
        .args(["--speed", "4x", "--output"])
        .arg(&output)
        .assert()
        .success()
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("sent 6 (recorded seq 0..=5)"));
    let sent: Vec<Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sent.len(), 6);
    assert_eq!(sent[5]["time"], T0 + 50 * MS);
}

#[test]
fn progress_is_plain_lines_when_stderr_is_not_a_terminal() {
    let dir = common::orders_journal(20); // 30 records
    let out = replay(dir.path()).arg("--dry-run").assert().success();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    // No bar: no escape codes, no carriage returns, no bar characters.
    assert!(
        !err.contains('\x1b') && !err.contains('\r') && !err.contains("#>"),
        "{err:?}"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[0],
        format!("replay: 30 records from {} (dry run)", dir.path().display())
    );
    assert_eq!(lines[1], "replay: 3/30 records");
    assert_eq!(lines[10], "replay: 30/30 records");
    assert!(lines[11].starts_with("replay report: read 30, would send 30"));
    // --quiet: nothing at all on stderr.
    evbus()
        .args(["replay", "--quiet", "--dry-run"])
        .arg(dir.path())
        .assert()
        .success()
        .stderr(predicate::str::is_empty());
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let dir = common::orders_journal(2000); // 3000 records, ~400 KB of table
    for cmd in ["tail", "query"] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("evbus"))
            .args([cmd, "-n", "3000"][..if cmd == "tail" { 3 } else { 1 }].iter())
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // The reader is dropped: like `| head -1`.
        assert!(first.contains("seq"), "{first}");
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{cmd}: {:?}", out);
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
}

#[test]
fn inspect_reports_a_torn_tail_without_failing() {
    let dir = common::orders_journal(2);
    let segment = dir.path().join(format!("{:020}.seg", 0));
    // Half a frame header: what a crash in the middle of an append leaves.
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(&[0x20, 0, 0]);
    std::fs::write(&segment, bytes).unwrap();
    inspect(dir.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("records   3 (seq 0..=2)"))
        .stdout(predicate::str::contains("ends in a torn tail of 3 bytes"));
    inspect(dir.path())
        .arg("--repair")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "repair    cut a torn tail of 3 bytes",
        ))
        .stdout(predicate::str::contains(
            "check     ok: every frame's CRC matched",
        ));
}

#[test]
fn replay_takes_a_time_range() {
    let dir = common::orders_journal(10);
    replay(dir.path())
        .args([
            "--dry-run",
            "--from",
            "2026-11-29T18:00:00.020Z",
            "--until",
            "2026-11-29T18:00:00.050Z",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "would send 3 (recorded seq 2..=4)",
        ));
    replay(dir.path())
        .args([
            "--from",
            "2026-11-29T19:00:00Z",
            "--until",
            "2026-11-29T18:00:00Z",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--until is before --from"));
}
