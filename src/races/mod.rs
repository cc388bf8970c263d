//! Race-detector reports in logs: finding them, reading them, and telling
//! which ones are the same race (SPEC §4).
//!
//! Pure logic over bytes: no GitLab, no printing. `scan` reads a stream in
//! bounded memory and hands each report to a callback.
//!
//! PLACEHOLDER API — the parser lands in its own commit.

use std::io::Read;

/// Which runtime printed a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Runtime {
    Go,
    ThreadSanitizer,
}

/// One side of a race: the access line and its stack, function names as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub header: String,
    pub frames: Vec<String>,
}

/// One report, with the line prefix removed and interleaved lines dropped.
#[derive(Debug, Clone)]
pub struct RaceReport {
    pub runtime: Runtime,
    /// The report's lines, verbatim but for the prefix, joined with `\n`.
    pub text: String,
    /// In order of appearance: the current access, then the previous one.
    pub accesses: Vec<Access>,
    pub truncated: bool,
    /// 1-based line number of the `WARNING` line in its input.
    pub line: u64,
}

/// The identity of a race: hex of a hash over the unordered pair of top frames.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub String);

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl RaceReport {
    pub fn top_frames(&self) -> (Option<String>, Option<String>) {
        todo!()
    }
    pub fn fingerprint(&self) -> Fingerprint {
        todo!()
    }
    pub fn title(&self) -> String {
        todo!()
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct ScanStats {
    pub bytes: u64,
    pub reports: u64,
    pub truncated: u64,
}

/// Read `input` to its end, calling `on_progress` with bytes read and
/// `on_report` for each report found.
pub fn scan(
    _input: impl Read,
    _on_progress: &mut dyn FnMut(u64),
    _on_report: &mut dyn FnMut(RaceReport),
) -> std::io::Result<ScanStats> {
    todo!()
}
