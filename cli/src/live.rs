/// One row of the live table, from two snapshots `dt` apart.
struct LiveRow {
    name: String,
    capacity: usize,
    queued: usize,
    delivered_per_s: f64,
    dropped: u64,
    dropped_per_s: f64,
}

/// Where the live table goes.
trait LiveView {
    fn draw(&mut self, at: Duration, rows: &[LiveRow]);
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
}

impl Bars {
    fn new() -> Self {
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
        }
    }
}

impl LiveView for Bars {
    fn draw(&mut self, at: Duration, rows: &[LiveRow]) {
        self.header.set_message(format!(
            "live at {:.1} s: ring fill, deliveries/s, drops (every {} s)",
            at.as_secs_f64(),
            REFRESH.as_secs()
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
