//! Serves a live bus's metrics as Prometheus text over HTTP on 127.0.0.1.
//!
//! ```text
//! cargo run -p evbus --features metrics --example prometheus -- [PORT] [--requests N]
//! cargo run -p evbus --features latency --example prometheus   # plus latency summaries
//! curl http://127.0.0.1:PORT/metrics
//! ```
//!
//! `PORT` 0 (the default) picks a free port; the address is printed on the
//! first line. The bus carries traffic from one publisher thread to three
//! subscriptions: `fast` keeps up, `slow` (`DropOldest`) falls behind and
//! lags, `stalled` never reads and drops. Every request to `/metrics` (or
//! `/`) renders a fresh [`Snapshot`]. With `--requests N` the server exits
//! after N requests; without it, it runs until killed.
//!
//! `evbus/tests/prometheus_scrape.rs` includes this file and scrapes
//! [`serve`] over loopback.

use std::{
    io::{self, BufRead, BufReader, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    process::ExitCode,
    thread,
    time::Duration,
};

use evbus::{
    Bus, Event, EventKind, Filter, Overflow, SubscribeOptions,
    metrics::{CONTENT_TYPE, Snapshot},
};

/// The kinds of the example's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Request,
    Error,
}

impl EventKind for Kind {
    const ALL: &'static [Self] = &[Kind::Request, Kind::Error];

    fn topic(self) -> &'static str {
        match self {
            Kind::Request => "http.request",
            Kind::Error => "http.error",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What the example's publisher sends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Http {
    Request { path: &'static str, micros: u32 },
    Error { status: u16 },
}

impl Event for Http {
    type Kind = Kind;

    fn kind(&self) -> Kind {
        match self {
            Http::Request { .. } => Kind::Request,
            Http::Error { .. } => Kind::Error,
        }
    }
}

/// The longest request head the server reads.
const MAX_HEAD: usize = 8 * 1024;

/// Serves HTTP on `listener`, one connection at a time, answering
/// `GET /metrics` (and `GET /`) with `render()`, anything else with 404 or
/// 405. Returns after `max_requests` requests if given (a failed
/// connection counts too), else only on an accept error.
///
/// A client that sends nothing for 5 seconds is dropped, so one stuck
/// connection cannot stop the server for good.
///
/// # Errors
///
/// The error of `accept`.
pub(crate) fn serve(
    listener: &TcpListener,
    render: impl Fn() -> String,
    max_requests: Option<u64>,
) -> io::Result<u64> {
    let mut served = 0;
    while max_requests.is_none_or(|max| served < max) {
        let (stream, peer) = listener.accept()?;
        served += 1;
        if let Err(err) = respond(stream, &render) {
            eprintln!("prometheus example: {peer}: {err}");
        }
    }
    Ok(served)
}

/// Reads one request head and writes one response.
fn respond(stream: TcpStream, render: &impl Fn() -> String) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers, up to the blank line, within MAX_HEAD bytes.
    let mut read = request_line.len();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        read += n;
        if n == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if read > MAX_HEAD {
            return write_response(
                &stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            );
        }
    }
    let mut parts = request_line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("GET"), Some("/metrics" | "/")) => {
            write_response(&stream, "200 OK", CONTENT_TYPE, &render())
        }
        (Some("GET"), Some(_)) => {
            write_response(&stream, "404 Not Found", "text/plain", "not found\n")
        }
        _ => write_response(
            &stream,
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n",
        ),
    }
}

fn write_response(
    mut stream: &TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// Command-line options.
#[derive(Debug, PartialEq)]
pub(crate) struct Options {
    pub(crate) port: u16,
    pub(crate) max_requests: Option<u64>,
}

/// Parses `[PORT] [--requests N]`.
pub(crate) fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        port: 0,
        max_requests: None,
    };
    let mut args = args.into_iter();
    let mut port_seen = false;
    while let Some(arg) = args.next() {
        if arg == "--requests" {
            let n = args.next().ok_or("--requests needs a number")?;
            let n = n
                .parse()
                .map_err(|_| format!("--requests: {n:?} is not a count"))?;
            options.max_requests = Some(n);
        } else if !port_seen {
            options.port = arg
                .parse()
                .map_err(|_| format!("{arg:?} is not a port (0-65535)"))?;
            port_seen = true;
        } else {
            return Err(format!("unexpected argument {arg:?}"));
        }
    }
    Ok(options)
}

/// Subscribes `fast`, `slow` and `stalled` and starts their threads and a
/// publisher; they run until the process exits.
fn start_traffic(bus: &Bus<Http>) -> Result<(), evbus::SubscribeError> {
    let mut fast = bus.subscribe_with(
        Filter::pattern("http.>")?,
        SubscribeOptions::new().name("fast"),
    )?;
    let mut slow = bus.subscribe_with(
        Filter::kinds(&[Kind::Request])?,
        SubscribeOptions::new()
            .name("slow")
            .capacity(64)
            .overflow(Overflow::DropOldest),
    )?;
    let stalled = bus.subscribe_with(
        Filter::kinds(&[Kind::Error])?,
        SubscribeOptions::new().name("stalled").capacity(16),
    )?;
    thread::spawn(move || for _ in fast.iter() {});
    thread::spawn(move || {
        for _ in slow.iter() {
            thread::sleep(Duration::from_millis(2));
        }
    });
    // Never reads; kept alive so its ring stays registered.
    thread::spawn(move || {
        let _stalled = stalled;
        loop {
            thread::park();
        }
    });
    let mut publisher = bus.publisher();
    thread::spawn(move || {
        const PATHS: [&str; 3] = ["/", "/login", "/api/orders"];
        for round in 0_u32.. {
            for i in 0..50 {
                let ev = if (round + i) % 17 == 0 {
                    Http::Error { status: 503 }
                } else {
                    Http::Request {
                        path: PATHS[(i % 3) as usize],
                        micros: 100 + (round * 7 + i) % 900,
                    }
                };
                if publisher.publish(ev).is_err() {
                    return;
                }
            }
            thread::sleep(Duration::from_millis(5));
        }
    });
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(err) => {
            eprintln!("prometheus example: {err}");
            eprintln!("usage: prometheus [PORT] [--requests N]");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, options.port))) {
        Ok(l) => l,
        Err(err) => {
            eprintln!(
                "prometheus example: cannot bind 127.0.0.1:{}: {err}",
                options.port
            );
            return ExitCode::FAILURE;
        }
    };
    let bus = Bus::<Http>::new();
    // With the `latency` feature, sample 1 event in 16 of every
    // subscription (made below) into per-thread HDR histograms.
    #[cfg(feature = "latency")]
    let latency = {
        let latency = evbus::metrics::LatencyHistograms::new();
        latency.install(&bus, std::num::NonZeroU32::new(16).expect("16 is not 0"));
        latency
    };
    if let Err(err) = start_traffic(&bus) {
        eprintln!("prometheus example: {err}");
        return ExitCode::FAILURE;
    }
    match listener.local_addr() {
        Ok(addr) => println!("serving evbus metrics on http://{addr}/metrics"),
        Err(err) => {
            eprintln!("prometheus example: {err}");
            return ExitCode::FAILURE;
        }
    }
    let render = || {
        let snapshot = Snapshot::capture(&bus);
        #[cfg(feature = "latency")]
        let snapshot = snapshot.with_latency(&latency);
        snapshot.to_prometheus_text()
    };
    match serve(&listener, render, options.max_requests) {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("prometheus example: accept: {err}");
            ExitCode::FAILURE
        }
    }
}
