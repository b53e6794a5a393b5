//! The live table of `evbus demo` and `evbus stats`: per subscription, its
//! ring fill, deliveries per second and drops, redrawn in place with
//! indicatif on a terminal, or printed as plain text blocks otherwise.

use std::{collections::BTreeMap, time::Duration};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::ui::Ui;

/// One row of the live table, from two snapshots `dt` apart.
pub(crate) struct LiveRow {
    pub(crate) name: String,
    pub(crate) capacity: usize,
    pub(crate) queued: usize,
    pub(crate) delivered_per_s: f64,
    pub(crate) dropped: u64,
    pub(crate) dropped_per_s: f64,
}

/// The view for `ui`: bars on a terminal, plain text otherwise, nothing with
/// `--quiet`. `refresh` is named in the bars' header.
pub(crate) fn view(ui: Ui, refresh: Duration) -> Box<dyn LiveView> {
    if ui.quiet {
        Box::new(Silent)
    } else if ui.stdout_tty {
        Box::new(Bars::new(refresh))
    } else {
        Box::new(PlainText)
    }
}

/// `--quiet`: no live table.
struct Silent;

impl LiveView for Silent {
    fn draw(&mut self, _: Duration, _: &[LiveRow]) {}
}

/// Where the live table goes.
pub(crate) trait LiveView {
    /// Draws one refresh, `at` after the start.
    fn draw(&mut self, at: Duration, rows: &[LiveRow]);
    /// Ends the table (the last refresh stays on screen).
    fn finish(&mut self) {}
}

/// Not a terminal: a plain text block per refresh, no escape codes.
struct PlainText;

impl LiveView for PlainText {
    fn draw(&mut self, at: Duration, rows: &[LiveRow]) {
        println!(
            "[live {:>4.1} s] {:<12} {:>13} {:>6} {:>13} {:>8} {:>11}",
            at.as_secs_f64(),
            "subscription",
            "fill",
            "",
            "delivered/s",
            "dropped",
            "dropped/s"
        );
        for r in rows {
            println!(
                "{:>13} {:<12} {:>6}/{:<6} {:>5.0}% {:>13.0} {:>8} {:>11.0}",
                "",
                r.name,
                r.queued,
                r.capacity,
                100.0 * r.queued as f64 / r.capacity.max(1) as f64,
                r.delivered_per_s,
                r.dropped,
                r.dropped_per_s
            );
        }
    }
}

/// A terminal: a fill bar per subscription, redrawn in place.
struct Bars {
    multi: MultiProgress,
    header: ProgressBar,
    bars: BTreeMap<String, ProgressBar>,
    style: ProgressStyle,
    refresh: Duration,
}

impl Bars {
    fn new(refresh: Duration) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let header = multi.add(ProgressBar::new(1));
        header.set_style(ProgressStyle::with_template("{msg}").expect("valid template"));
        Self {
            multi,
            header,
            bars: BTreeMap::new(),
            style: ProgressStyle::with_template(
                "{prefix:<12} [{bar:30.cyan/blue}] {pos:>5}/{len:<5} {msg}",
            )
            .expect("valid template")
            .progress_chars("#>-"),
            refresh,
        }
    }
}

impl LiveView for Bars {
    fn draw(&mut self, at: Duration, rows: &[LiveRow]) {
        self.header.set_message(format!(
            "live at {:.1} s: ring fill, deliveries/s, drops (every {:.1} s)",
            at.as_secs_f64(),
            self.refresh.as_secs_f64()
        ));
        for r in rows {
            let bar = self.bars.entry(r.name.clone()).or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(r.capacity as u64));
                bar.set_style(self.style.clone());
                bar.set_prefix(r.name.clone());
                bar
            });
            bar.set_position(r.queued as u64);
            bar.set_message(format!(
                "{:>8.0} delivered/s  dropped {:>6} ({:>6.0}/s)",
                r.delivered_per_s, r.dropped, r.dropped_per_s
            ));
        }
        // Subscriptions that left the bus keep their last line, marked.
        for (name, bar) in &self.bars {
            if !rows.iter().any(|r| &r.name == name) && !bar.is_finished() {
                bar.abandon_with_message("unsubscribed");
            }
        }
    }

    fn finish(&mut self) {
        for bar in self.bars.values() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
        self.header.abandon();
        println!();
    }
}
