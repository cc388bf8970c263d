//! The printer: stdout is for results, stderr for people (SPEC §2).
//!
//! One place decides human or JSON output, how chatty stderr is, and how
//! progress shows: an indicatif bar on a terminal, a few plain lines in CI
//! logs. Commands never call `println!` themselves.
//!
//! Colour only on a terminal and never with `NO_COLOR` set; in a GitLab job
//! (`CI` set) long phases are wrapped in collapsible log sections; every
//! command has a one-line summary for a person reading a job log.

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::gitlab::PlannedWrite;
use crate::settings::{Env, Settings};

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
    /// Colour on stderr: a terminal, and no `NO_COLOR`.
    colour: bool,
    /// In a CI job (`CI` set): collapsible sections around long phases.
    ci: bool,
}

/// Whether to colour a stream: only a terminal, never with `NO_COLOR` set
/// to anything (<https://no-color.org>), never on a `dumb` terminal.
pub fn use_colour(is_terminal: bool, env: &Env) -> bool {
    is_terminal && env.get("NO_COLOR").is_none() && env.get("TERM") != Some("dumb")
}

/// `text` in an SGR colour (`31` red, `33` yellow, `32` green) when `on`.
pub fn paint(text: &str, sgr: &str, on: bool) -> String {
    if on {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

impl Printer {
    pub fn new(settings: &Settings) -> Self {
        let stderr_is_terminal = std::io::stderr().is_terminal();
        Self {
            format: settings.output,
            verbosity: settings.verbosity,
            stderr_is_terminal,
            colour: use_colour(stderr_is_terminal, &settings.env),
            ci: settings.env.get("CI").is_some(),
        }
    }

    /// Whether stdout may carry colour (human output on a terminal, no
    /// `NO_COLOR`); decided like stderr's.
    pub fn stdout_colour(&self, env: &Env) -> bool {
        self.format == OutputFormat::Human && use_colour(std::io::stdout().is_terminal(), env)
    }

    /// A collapsible section of the job log around a long phase, closed when
    /// the returned guard is dropped. Only in CI (`CI` set) and when stderr
    /// is not a terminal; `name` is the section's id (`[a-z0-9_]`).
    pub fn section(&self, name: &str, title: impl Display) -> Section {
        if !self.ci || self.stderr_is_terminal || self.verbosity < 0 {
            return Section { name: None };
        }
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        eprintln!(
            "\x1b[0Ksection_start:{}:{name}[collapsed=true]\r\x1b[0K{title}",
            unix_now()
        );
        Section { name: Some(name) }
    }

    /// The command's one-line summary, for a person reading a job log. With
    /// `--json` it goes to stderr (stdout holds the document, often
    /// redirected to a file in CI); a human result carries it on stdout.
    pub fn summary(&self, line: impl Display) {
        if self.format == OutputFormat::Json && self.verbosity >= 0 {
            eprintln!("{line}");
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
        eprintln!("{} {message}", paint("warning:", "33", self.colour));
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

/// Which line of a human rendering is the command's summary.
#[derive(Debug, Clone, Copy)]
pub enum SummaryLine {
    First,
    Last,
}

/// The summary line of a human rendering (for [`Printer::summary`]), so a
/// command's summary is the very line its human output shows.
pub fn summary_of(
    pick: SummaryLine,
    render: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> String {
    let mut buffer = Vec::new();
    if render(&mut buffer).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buffer);
    let mut lines = text.lines().map(str::trim_end).filter(|l| !l.is_empty());
    match pick {
        SummaryLine::First => lines.next(),
        SummaryLine::Last => lines.next_back(),
    }
    .unwrap_or_default()
    .to_owned()
}

/// An open collapsible section of a GitLab job log; dropping it closes it.
pub struct Section {
    name: Option<String>,
}

impl Drop for Section {
    fn drop(&mut self) {
        if let Some(name) = &self.name {
            eprintln!("\x1b[0Ksection_end:{}:{name}\r\x1b[0K", unix_now());
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
