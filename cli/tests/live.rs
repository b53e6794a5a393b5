//! `evbus stats` against a real loopback server (the `prometheus`
//! example's own `serve`, compiled in), `evbus demo`, and `evbus
//! completions`.

#[path = "../../evbus/examples/prometheus.rs"]
#[allow(dead_code, unreachable_pub, unexpected_cfgs)]
mod example;

mod common;

use std::{
    net::{Ipv4Addr, TcpListener},
    thread,
};

use common::evbus;
use evbus::{Bus, Filter, SubscribeOptions, metrics::Snapshot};
use example::{Http, Kind, serve};
use predicates::prelude::*;

#[test]
fn stats_shows_fill_rates_and_drops_per_subscription() {
    let bus = Bus::<Http>::new();
    let _keeps_up = bus
        .subscribe_with(
            Filter::kinds(&[Kind::Request]).unwrap(),
            SubscribeOptions::new().name("keeps-up").capacity(64),
        )
        .unwrap();
    let _stalled = bus
        .subscribe_with(
            Filter::kinds(&[Kind::Request]).unwrap(),
            SubscribeOptions::new().name("stalled").capacity(8),
        )
        .unwrap();
    for i in 0..20 {
        bus.publish(Http::Request {
            path: "/",
            micros: i,
        })
        .unwrap();
    }
    // Bound before the server thread starts: the command's connects queue
    // until it accepts them.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = {
        let bus = bus.clone();
        thread::spawn(move || {
            serve(
                &listener,
                || Snapshot::capture(&bus).to_prometheus_text(),
                Some(2),
            )
        })
    };
    let out = evbus()
        .args(["stats", "--count", "2", "--interval", "0.05"])
        .arg(format!("http://{addr}/metrics"))
        .assert()
        .success();
    assert_eq!(server.join().unwrap().unwrap(), 2);
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    // Two plain blocks (not a terminal), one row per subscription each.
    assert_eq!(text.matches("[live ").count(), 2, "{text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.contains("stalled")).collect();
    assert_eq!(rows.len(), 2, "{text}");
    // 20 published into a ring of 8: 8 queued (100 %), 12 dropped.
    let fields: Vec<&str> = rows[1].split_whitespace().collect();
    assert_eq!(&fields[..3], ["stalled", "8/8", "100%"], "{}", rows[1]);
    assert_eq!(fields[4], "12", "{}", rows[1]);
    let keeps: Vec<&str> = text.lines().filter(|l| l.contains("keeps-up")).collect();
    assert_eq!(
        keeps[1].split_whitespace().nth(1),
        Some("20/64"),
        "{}",
        keeps[1]
    );
}

#[test]
fn stats_errors_say_what_to_do() {
    // A port nobody listens on: bind, read the port, close.
    let port = common::unused_port();
    evbus()
        .args(["stats", "--count", "1"])
        .arg(format!("http://127.0.0.1:{port}/metrics"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("could not scrape"))
        .stderr(predicate::str::contains("is the service running"));
    for bad in ["localhost:9898", "ftp://example.com/metrics", "http://:9/"] {
        evbus()
            .args(["stats", bad])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("hint:"));
    }
    evbus()
        .args(["stats", "http://127.0.0.1:9/", "--interval", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--interval"));
    // A server that answers 404.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || serve(&listener, String::new, Some(1)));
    evbus()
        .args(["stats", "--count", "1"])
        .arg(format!("http://{addr}/nothing-here"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("answered HTTP 404"));
    server.join().unwrap().unwrap();
}

#[test]
fn demo_runs_and_checks_itself() {
    evbus()
        .args(["demo", "--seconds", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("evbus demo: ran"))
        .stdout(predicate::str::contains("[live "))
        .stdout(predicate::str::contains("exporter"))
        .stdout(predicate::str::contains("check: OK"));
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        evbus()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("inspect"));
    }
    evbus().args(["completions", "tcsh"]).assert().code(2);
}

#[test]
fn every_subcommand_has_an_example_in_its_help() {
    for cmd in [
        "demo",
        "bench",
        "tail",
        "query",
        "replay",
        "inspect",
        "export",
        "import",
        "stats",
        "completions",
    ] {
        evbus()
            .args([cmd, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("evbus ").and(predicate::str::contains("Example")));
    }
}

#[test]
fn bench_runs_a_scenario_and_writes_the_chart() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("bench.svg");
    evbus()
        .args(["bench", "--quick", "--rounds", "1", "--only", "3", "--svg"])
        .arg(&svg)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "| 3. no subscribers | ns/publish |",
        ))
        .stderr(predicate::str::contains(
            "evbus bench: scenario 3 (1/1): no subscribers",
        ))
        .stderr(predicate::str::contains("(1 groups)"));
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("evbus bench --quick --rounds 1 --only 3"));
    evbus().args(["bench", "--only", "15"]).assert().code(2);
    evbus()
        .args(["bench", "--only", "3", "--svg"])
        .arg(dir.path().join("missing/bench.svg"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("does not exist"));
}
