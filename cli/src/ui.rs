//! How the command talks to the person running it: progress bars on a
//! terminal, plain lines otherwise, nothing with `--quiet`.

use std::{io::IsTerminal, time::Duration};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Where output goes and how much of it there is, fixed at start-up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ui {
    /// `--quiet`: no progress bars, live tables or progress lines.
    pub(crate) quiet: bool,
    /// Standard error is a terminal (progress bars draw there).
    pub(crate) stderr_tty: bool,
    /// Standard output is a terminal (live tables draw there).
    pub(crate) stdout_tty: bool,
}

impl Ui {
    /// Reads whether the standard streams are terminals.
    pub(crate) fn detect(quiet: bool) -> Ui {
        Ui {
            quiet,
            stderr_tty: std::io::stderr().is_terminal(),
            stdout_tty: std::io::stdout().is_terminal(),
        }
    }

    /// A progress bar on standard error for `len` items (`{rate}` in the
    /// template: items per second, whole) (or a spinner
    /// when `len` is unknown), or `None` when it would not be seen: not a
    /// terminal, or `--quiet`. Callers print plain lines instead
    /// ([`Ui::note`]).
    pub(crate) fn bar(&self, len: Option<u64>, template: &str) -> Option<ProgressBar> {
        if self.quiet || !self.stderr_tty {
            return None;
        }
        let bar = match len {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
            None => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            }
        };
        // The templates are constants of this crate; a bad one is a bug
        // shown as a plain bar rather than a panic.
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(
                style
                    .with_key(
                        "rate",
                        |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{:.0}/s", state.per_sec());
                        },
                    )
                    .progress_chars("#>-"),
            );
        }
        Some(bar)
    }

    /// A plain progress line on standard error, unless `--quiet` or a
    /// progress bar shows the same thing.
    pub(crate) fn note(&self, line: impl std::fmt::Display) {
        if !self.quiet && !self.stderr_tty {
            eprintln!("{line}");
        }
    }
}
