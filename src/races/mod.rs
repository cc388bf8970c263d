//! Race-detector reports in logs: finding them, reading them, and telling
//! which ones are the same race (SPEC §4).
//!
//! No GitLab client and no printing here. `scan` reads a stream in bounded
//! memory and hands each report to a callback.
//!
//! The work is split by concern:
//! - [`input`]: which files a run reads (directories walked, stdin, gzip)
//!   and what it saw of each race ([`RaceSighting`]);
//! - [`issue`]: a race's GitLab issue as text: labels, the marker, matching
//!   a race to an existing issue, issue and note bodies;
//! - [`stream`]: chunked reading, the fast search for report anchors outside
//!   reports, and line splitting with a cap on line length;
//! - [`assemble`]: turning lines into reports (line prefixes, interleaved
//!   lines, `go test -json` events, where a report ends);
//! - [`grammar`]: what a line of a Go or ThreadSanitizer report looks like;
//! - [`frames`]: which frame of a stack identifies a race, and how function
//!   names are normalised so builds and hosts agree.

mod assemble;
pub mod blame;
mod frames;
mod grammar;
pub mod input;
pub mod issue;
mod stream;
#[cfg(test)]
mod tests;

use std::io::Read;

use md5::{Digest, Md5};

pub use input::{AccessSite, KeptReport, RaceSighting, Scan, SightingId, Sightings, Source};
pub use stream::{LINE_CAP, READ_BUFFER};

/// A report's text is cut here; the report ends and is marked truncated.
pub const REPORT_CAP: usize = 1024 * 1024;

/// Which runtime printed a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Runtime {
    Go,
    ThreadSanitizer,
}

/// One side of a race: the access line and its stack, function names as printed.
///
/// For ThreadSanitizer the frames are the function text between `#N ` and the
/// location; frames of the TSan runtime itself (module `libtsan`, the
/// interceptors) are left out, since their module is not kept here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub header: String,
    pub frames: Vec<String>,
    /// Each frame's source location as printed (`/src/x.go:12 +0x1f`,
    /// `x.cc:12:5`), when the report gave one; as long as `frames`.
    pub locations: Vec<Option<String>>,
}

impl Access {
    /// The frame that identifies this side (the first outside the runtimes):
    /// its function as printed and its location.
    pub fn top(&self) -> Option<(&str, Option<&str>)> {
        let i = frames::top_frame_index(&self.frames)?;
        Some((
            self.frames[i].as_str(),
            self.locations.get(i).and_then(|l| l.as_deref()),
        ))
    }

    /// What the access was, from its header: `Write`, `Previous read`,
    /// `Read of size 8`…
    pub fn kind(&self) -> &str {
        let header = self.header.trim_end_matches(':');
        let end = [" at 0x", " by "]
            .iter()
            .filter_map(|w| header.find(w))
            .min()
            .unwrap_or(header.len());
        &header[..end]
    }
}

/// One report, with the line prefix removed and interleaved lines dropped.
#[derive(Debug, Clone)]
pub struct RaceReport {
    pub runtime: Runtime,
    /// The report's lines, verbatim but for the prefix, joined with `\n`:
    /// from the `WARNING` line to the last line before the closing
    /// delimiter (the `==================` delimiters are not included).
    pub text: String,
    /// In order of appearance: the current access, then the previous one.
    pub accesses: Vec<Access>,
    pub truncated: bool,
    /// 1-based line number of the `WARNING` line in its input.
    pub line: u64,
    /// Byte offset of the `WARNING` line in its input (after decompression).
    pub offset: u64,
    /// MD5 of the report's raw lines, line prefixes included (for
    /// `go test -json`, the JSON events): what tells two occurrences of one
    /// race at the same place apart, e.g. by their timestamps.
    pub raw_digest: [u8; 16],
}

/// The identity of a race: hex of a hash over the unordered pair of top frames.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Fingerprint(pub String);

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Bumped whenever the identity rules change, so old and new fingerprints
/// never collide by accident.
const FINGERPRINT_VERSION: &str = "rp-devops race v1";
/// GitLab's limit on issue titles, in characters.
const TITLE_MAX_CHARS: usize = 255;

impl RaceReport {
    /// The normalised top frame of the current and of the previous access;
    /// `None` for a side that is missing or has no frame outside the runtime.
    pub fn top_frames(&self) -> (Option<String>, Option<String>) {
        let side = |i: usize| {
            self.accesses
                .get(i)
                .and_then(|a| frames::top_frame(&a.frames))
        };
        (side(0), side(1))
    }

    pub fn fingerprint(&self) -> Fingerprint {
        match self.top_frames() {
            (Some(a), Some(b)) => {
                // Unordered: the same race is often printed with its two
                // accesses the other way round.
                let (first, second) = if a <= b { (a, b) } else { (b, a) };
                digest(&format!("{FINGERPRINT_VERSION}\npair\n{first}\n{second}"))
            }
            (Some(one), None) | (None, Some(one)) => one_side(&one),
            // Nothing to tell such reports apart by: they share one issue.
            (None, None) => digest(&format!("{FINGERPRINT_VERSION}\nnone")),
        }
    }

    /// The fingerprint each usable side would have alone: what a report cut
    /// off after that side gets. A one-sided report is matched to the full
    /// race through these (SPEC §4: "matched on that side").
    pub fn side_fingerprints(&self) -> Vec<Fingerprint> {
        let (a, b) = self.top_frames();
        let mut sides: Vec<Fingerprint> = a.iter().chain(b.iter()).map(|f| one_side(f)).collect();
        sides.sort();
        sides.dedup();
        sides
    }

    pub fn title(&self) -> String {
        let title = match self.top_frames() {
            (Some(a), Some(b)) if a != b => format!("Data race in {a} vs {b}"),
            (Some(a), _) | (None, Some(a)) => format!("Data race in {a}"),
            (None, None) => "Data race (no usable stack)".to_owned(),
        };
        cut_title(title)
    }
}

fn one_side(frame: &str) -> Fingerprint {
    digest(&format!("{FINGERPRINT_VERSION}\none\n{frame}"))
}

/// The first 16 hex digits of the MD5 of `identity`.
fn digest(identity: &str) -> Fingerprint {
    let digest = Md5::digest(identity.as_bytes());
    Fingerprint(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

fn cut_title(title: String) -> String {
    if title.chars().count() <= TITLE_MAX_CHARS {
        return title;
    }
    let mut cut: String = title.chars().take(TITLE_MAX_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[derive(Debug, Default, Clone, Copy)]
pub struct ScanStats {
    pub bytes: u64,
    pub reports: u64,
    pub truncated: u64,
    /// Bytes the line and anchor searches looked at: proportional to
    /// `bytes` whatever the lines hold (a test's measure of work, never of time).
    pub examined: u64,
}

/// Read `input` to its end, calling `on_progress` with the bytes read so far
/// (about once per read buffer, not per line) and `on_report` for each
/// report found.
///
/// Memory stays bounded whatever the input: one read buffer, one line of at
/// most [`LINE_CAP`] bytes, one report of at most [`REPORT_CAP`] bytes.
/// Invalid UTF-8 is replaced; only errors from `input` are returned.
pub fn scan(
    input: impl Read,
    on_progress: &mut dyn FnMut(u64),
    on_report: &mut dyn FnMut(RaceReport),
) -> std::io::Result<ScanStats> {
    let mut lines = stream::Lines::new(input);
    let mut assembler = assemble::Assembler::default();
    let mut stats = ScanStats::default();
    let mut emit = |report: RaceReport| {
        stats.reports += 1;
        if report.truncated {
            stats.truncated += 1;
        }
        on_report(report);
    };
    loop {
        if !assembler.in_report() && !lines.skip_to_anchor(on_progress)? {
            break;
        }
        match lines.next_line(on_progress)? {
            Some((number, offset, line)) => assembler.feed(line, number, offset, &mut emit),
            None => break,
        }
    }
    assembler.finish(&mut emit);
    stats.bytes = lines.bytes_read();
    stats.examined = lines.bytes_examined();
    Ok(stats)
}
