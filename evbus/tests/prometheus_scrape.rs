//! Scrapes the `prometheus` example's server over loopback and parses what
//! it serves with a Prometheus text-format parser.
//!
//! The example file is compiled into this test, so the server under test
//! is the example's own `serve`. Nothing here waits on a clock: the
//! listener is bound before the server thread starts, so the client's
//! connect is queued until the server accepts it.

#[path = "../examples/prometheus.rs"]
#[allow(dead_code)]
mod example;

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, TcpListener, TcpStream},
    thread,
};

use evbus::{Bus, Overflow, SubscribeOptions, metrics::Snapshot};
use example::{Http, Kind, serve};
use prom_text_format_parser::{Scrape, Type};

/// Sends one GET and returns (status line, headers, body).
fn get(addr: std::net::SocketAddr, path: &str) -> (String, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect over loopback");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_owned(), body.to_owned())
}

fn value(scrape: &Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    let metric = scrape
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no family {name}"));
    let sample = metric
        .samples
        .iter()
        .find(|s| label.is_none_or(|(k, v)| s.labels.iter().any(|l| l.key == k && l.value == v)))
        .unwrap_or_else(|| panic!("no sample {name} {label:?}"));
    sample.value.value.as_f64()
}

#[test]
fn scrape_over_loopback() {
    let bus = Bus::<Http>::new();
    let mut fast = bus.subscribe_kinds(&[Kind::Request, Kind::Error]).unwrap();
    let _small = bus
        .subscribe_with(
            evbus::Filter::kinds(&[Kind::Request]).unwrap(),
            SubscribeOptions::new()
                .name("small \"ring\"")
                .capacity(8)
                .overflow(Overflow::DropOldest),
        )
        .unwrap();
    let mut publisher = bus.publisher();
    for i in 0..20 {
        publisher
            .publish(Http::Request {
                path: "/",
                micros: i,
            })
            .unwrap();
    }
    publisher.publish(Http::Error { status: 500 }).unwrap();
    for _ in 0..5 {
        fast.try_recv().unwrap();
    }

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = {
        let bus = bus.clone();
        thread::spawn(move || {
            serve(
                &listener,
                || Snapshot::capture(&bus).to_prometheus_text(),
                Some(3),
            )
        })
    };

    let (status, headers, body) = get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("Content-Type: text/plain; version=0.0.4"),
        "{headers}"
    );
    assert!(body.ends_with('\n'));
    let scrape = Scrape::parse(&body).unwrap_or_else(|e| panic!("{e:?}\n{body}"));
    let published = scrape
        .metrics
        .iter()
        .find(|m| m.name == "evbus_events_published_total")
        .expect("published family");
    assert_eq!(published.kind, Type::Counter);
    assert_eq!(value(&scrape, "evbus_events_published_total", None), 21.0);
    assert_eq!(value(&scrape, "evbus_subscriptions", None), 2.0);
    assert_eq!(
        value(
            &scrape,
            "evbus_subscription_received_total",
            Some(("id", &fast.id().to_string()))
        ),
        5.0
    );
    // 20 requests into a ring of 8 under DropOldest: 12 overwritten. The
    // parser keeps the label value escaped, as it was written.
    let small = Some(("subscription", r#"small \"ring\""#));
    assert_eq!(
        value(&scrape, "evbus_subscription_lagged_total", small),
        12.0
    );
    assert_eq!(value(&scrape, "evbus_subscription_queued", small), 8.0);

    // Counters move between scrapes.
    publisher.publish(Http::Error { status: 502 }).unwrap();
    let (_, _, body) = get(addr, "/");
    let scrape = Scrape::parse(&body).unwrap();
    assert_eq!(value(&scrape, "evbus_events_published_total", None), 22.0);

    let (status, _, _) = get(addr, "/nothing-here");
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    assert_eq!(server.join().unwrap().unwrap(), 3);
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    let args = |a: &[&str]| example::parse_args(a.iter().map(|s| s.to_string()));
    let ok = args(&["9187", "--requests", "2"]).unwrap();
    assert_eq!((ok.port, ok.max_requests), (9187, Some(2)));
    assert_eq!(args(&[]).unwrap().port, 0);
    for bad in [
        &["70000"][..],
        &["http"],
        &["--requests"],
        &["--requests", "-1"],
        &["1", "2"],
    ] {
        assert!(args(bad).is_err(), "accepted {bad:?}");
    }
}
