//! `evbus stats`: scrape a running service's Prometheus endpoint (the text
//! `evbus-metrics` renders) and show a live table of each subscription's
//! delivery rate, ring fill and drops.

use std::{
    collections::BTreeMap,
    thread,
    time::{Duration, Instant},
};

use crate::{
    error::CliError,
    live::{self, LiveRow},
    ui::Ui,
};

/// `evbus stats`'s options.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  evbus stats http://127.0.0.1:9898/metrics
  evbus stats http://127.0.0.1:9898/metrics --interval 0.5 --count 10

The endpoint serves evbus-metrics' Prometheus text (Snapshot::to_prometheus_text);
`cargo run -p evbus --features metrics --example prometheus` starts one.")]
pub(crate) struct StatsArgs {
    /// The endpoint, `http://HOST:PORT/PATH` (or https).
    url: String,
    /// Seconds between scrapes.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    interval: f64,
    /// Stop after this many scrapes (default: until interrupted).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
}

/// One subscription's series in a scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SubSeries {
    pub(crate) name: String,
    pub(crate) delivered: f64,
    pub(crate) dropped: f64,
    pub(crate) queued: f64,
    pub(crate) capacity: f64,
}

/// Runs `evbus stats`.
pub(crate) fn run(args: &StatsArgs, ui: Ui) -> Result<(), CliError> {
    check_url(&args.url)?;
    if !(args.interval.is_finite() && args.interval >= 0.05 && args.interval <= 3600.0) {
        return Err(CliError::usage(format!(
            "--interval {} is out of range: use 0.05 to 3600 seconds",
            args.interval
        )));
    }
    let interval = Duration::from_secs_f64(args.interval);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut view = live::view(ui, interval);
    let started = Instant::now();
    let mut last: Option<(Instant, BTreeMap<String, SubSeries>)> = None;
    let mut scrapes = 0;
    loop {
        let text = scrape(&agent, &args.url)?;
        let now = Instant::now();
        let subs = parse(&text);
        if subs.is_empty() && !text.contains("evbus_") {
            return Err(CliError::failure(format!(
                "{} answered, but with no evbus metrics",
                args.url
            ))
            .hint(
                "point it at the path that serves Snapshot::to_prometheus_text (often /metrics)",
            ));
        }
        let rows = rows(
            &subs,
            last.as_ref().map(|(t, s)| (now.duration_since(*t), s)),
        );
        scrapes += 1;
        view.draw(started.elapsed(), &rows);
        last = Some((now, subs));
        if args.count.is_some_and(|n| scrapes >= n) {
            view.finish();
            return Ok(());
        }
        thread::sleep(interval);
    }
}

/// Only `http://host[:port][/path]` and `https://..` URLs.
fn check_url(url: &str) -> Result<(), CliError> {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err(CliError::usage(format!("`{url}` is not an http:// URL"))
            .hint("pass the metrics endpoint, like http://127.0.0.1:9898/metrics"));
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit_once(':').map_or(authority, |(h, port)| {
        if port.parse::<u16>().is_ok() { h } else { "" }
    });
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(CliError::usage(format!("`{url}` has no valid host[:port]"))
            .hint("pass the metrics endpoint, like http://127.0.0.1:9898/metrics"));
    }
    Ok(())
}

fn scrape(agent: &ureq::Agent, url: &str) -> Result<String, CliError> {
    let response = agent.get(url).call();
    let mut response = response.map_err(|e| match e {
        ureq::Error::StatusCode(code) => CliError::failure(format!("{url} answered HTTP {code}"))
            .hint("check the path: it should serve the Prometheus text (often /metrics)"),
        e => CliError::failure(format!("could not scrape {url}: {e}"))
            .hint("is the service running and serving its metrics on that address?"),
    })?;
    response
        .body_mut()
        .read_to_string()
        .map_err(|e| CliError::failure(format!("reading the answer of {url} failed: {e}")))
}

/// The `evbus_subscription_*` series of a Prometheus text, by `id`.
pub(crate) fn parse(text: &str) -> BTreeMap<String, SubSeries> {
    let mut out: BTreeMap<String, SubSeries> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("evbus_subscription_") else {
            continue;
        };
        let Some((name_labels, value)) = rest.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let Some((metric, labels)) = name_labels.split_once('{') else {
            continue;
        };
        let labels = parse_labels(labels.strip_suffix('}').unwrap_or(labels));
        let Some(id) = labels.get("id") else { continue };
        let entry = out.entry(id.clone()).or_default();
        if let Some(name) = labels.get("subscription") {
            entry.name.clone_from(name);
        }
        match metric {
            "delivered_total" => entry.delivered = value,
            "dropped_total" => entry.dropped = value,
            "queued" => entry.queued = value,
            "capacity" => entry.capacity = value,
            _ => {}
        }
    }
    out
}

/// `a="x",b="y\"z"` to a map, unescaping `\\`, `\"` and `\n`.
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if name.is_empty() || chars.next() != Some('"') {
            return out;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => {}
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(name.trim().to_owned(), value);
        if chars.next() != Some(',') {
            return out;
        }
    }
}

/// The live rows: rates against the previous scrape, `dt` earlier.
fn rows(
    now: &BTreeMap<String, SubSeries>,
    before: Option<(Duration, &BTreeMap<String, SubSeries>)>,
) -> Vec<LiveRow> {
    now.iter()
        .map(|(id, s)| {
            let rate = |f: fn(&SubSeries) -> f64| match before {
                Some((dt, b)) if !dt.is_zero() => {
                    let prev = b.get(id).map_or(0.0, f);
                    ((f(s) - prev).max(0.0)) / dt.as_secs_f64()
                }
                _ => 0.0,
            };
            LiveRow {
                name: if s.name.is_empty() {
                    format!("#{id}")
                } else {
                    s.name.clone()
                },
                capacity: s.capacity as usize,
                queued: s.queued as usize,
                delivered_per_s: rate(|s| s.delivered),
                dropped: s.dropped as u64,
                dropped_per_s: rate(|s| s.dropped),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_unescape() {
        let l = parse_labels(r#"subscription="a\"b\\c",id="7""#);
        assert_eq!(l["subscription"], "a\"b\\c");
        assert_eq!(l["id"], "7");
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("http://127.0.0.1:9898/metrics").is_ok());
        assert!(check_url("http://localhost/metrics").is_ok());
        assert!(check_url("https://metrics.example.com/metrics").is_ok());
        for bad in [
            "127.0.0.1:9898",
            "https://:443/",
            "http://a b/",
            "http://",
            "http://:80/",
            "ftp://x",
        ] {
            assert_eq!(check_url(bad).unwrap_err().exit_code(), 2, "{bad}");
        }
    }
}
