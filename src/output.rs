//! The printer: stdout is for results, stderr for people (SPEC §2).
//!
//! One place decides human or JSON output, how chatty stderr is, and how
//! progress shows: an indicatif bar on a terminal, a few plain lines in CI
//! logs. Commands never call `println!` themselves.

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::gitlab::PlannedWrite;
use crate::settings::Settings;

/// What stdout carries: a human rendering or exactly one JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub struct Printer {
    format: OutputFormat,
    verbosity: i8,
    stderr_is_terminal: bool,
}

impl Printer {
    pub fn new(settings: &Settings) -> Self {
        Self {
            format: settings.output,
            verbosity: settings.verbosity,
            stderr_is_terminal: std::io::stderr().is_terminal(),
        }
    }

    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Progress and what happened, on stderr; silenced by `-q`.
    pub fn info(&self, message: impl Display) {
        if self.verbosity >= 0 {
            eprintln!("{message}");
        }
    }

    /// Detail for `-v`.
    pub fn detail(&self, message: impl Display) {
        if self.verbosity >= 1 {
            eprintln!("{message}");
        }
    }

    /// Always shown, even with `-q`.
    pub fn warn(&self, message: impl Display) {
        eprintln!("warning: {message}");
    }

    /// The command's one-line summary for a person reading a job log, on
    /// stderr (stdout holds the result); silenced by `-q`.
    pub fn summary(&self, line: impl Display) {
        if self.verbosity >= 0 {
            eprintln!("{line}");
        }
    }

    /// A write that `--dry-run` did not make: method, path, a summary of the body.
    pub fn would(&self, method: &str, path: &str, summary: impl Display) {
        if self.verbosity >= 0 {
            eprintln!("dry-run: would {method} {path}: {summary}");
        }
    }

    /// The writes a dry run planned instead of sending, one line each, in the
    /// order the operation would have made them. Every command's plan reads
    /// alike because every planned write comes from a client in dry-run mode.
    pub fn planned(&self, writes: &[PlannedWrite]) {
        for write in writes {
            self.would(&write.method, &write.path, &write.summary);
        }
    }

    /// The command's result: exactly one JSON document with `--output json`,
    /// else the human rendering, on stdout.
    pub fn result<T: Serialize>(
        &self,
        value: &T,
        human: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<()> {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        match self.format {
            OutputFormat::Json => {
                serde_json::to_writer_pretty(&mut out, value).context("writing JSON result")?;
                writeln!(out).context("writing JSON result")?;
            }
            OutputFormat::Human => human(&mut out).context("writing result")?,
        }
        out.flush().context("writing result")
    }

    /// A progress indicator over `total` units (bytes, items).
    pub fn progress(&self, total: u64, what: &str) -> Progress {
        if self.verbosity < 0 {
            return Progress::hidden();
        }
        if self.stderr_is_terminal {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(what.to_owned());
            Progress {
                bar: Some(bar),
                plain: None,
            }
        } else {
            Progress {
                bar: None,
                plain: Some(Mutex::new(PlainProgress {
                    what: what.to_owned(),
                    total,
                    done: 0,
                    started: Instant::now(),
                    last_line: Instant::now(),
                    last_quarter: 0,
                })),
            }
        }
    }
}

/// Progress on stderr: a bar on a terminal, else a line at each quarter or
/// every 30 seconds, whichever comes first, so CI logs stay short.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: Option<Mutex<PlainProgress>>,
}

struct PlainProgress {
    what: String,
    total: u64,
    done: u64,
    started: Instant,
    last_line: Instant,
    last_quarter: u64,
}

impl Progress {
    pub fn hidden() -> Self {
        Self {
            bar: None,
            plain: None,
        }
    }

    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
        if let Some(plain) = &self.plain {
            let Ok(mut p) = plain.lock() else { return };
            p.done += n;
            let quarter = p.done.saturating_mul(4).checked_div(p.total).unwrap_or(0);
            if quarter > p.last_quarter && quarter < 4
                || p.last_line.elapsed() >= Duration::from_secs(30)
            {
                p.last_quarter = quarter;
                p.last_line = Instant::now();
                eprintln!(
                    "{}: {} of {} ({}%)",
                    p.what,
                    bytesize::ByteSize(p.done),
                    bytesize::ByteSize(p.total),
                    p.done
                        .saturating_mul(100)
                        .checked_div(p.total)
                        .unwrap_or(100)
                );
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some(plain) = &self.plain {
            let Ok(p) = plain.lock() else { return };
            if p.started.elapsed() >= Duration::from_secs(2) {
                eprintln!(
                    "{}: {} in {:.1}s",
                    p.what,
                    bytesize::ByteSize(p.done),
                    p.started.elapsed().as_secs_f64()
                );
            }
        }
    }
}
