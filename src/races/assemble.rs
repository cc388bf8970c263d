//! Turning lines into reports: the line prefix, interleaved log lines,
//! `go test -json` events, and where a report ends.
//!
//! Fed only the lines the stream hands on: an anchor line found by the fast
//! search, then every line while a report is open. Emits each finished
//! report; never reads or prints anything itself.

use md5::{Digest, Md5};
use serde::Deserialize;

use super::grammar::{self, Line};
use super::stream::LINE_CAP;
use super::{Access, REPORT_CAP, RaceReport, Runtime};

/// This many interleaved lines in a row and the report is taken as cut off.
pub(super) const NOISE_LIMIT: u32 = 1000;
/// Frames kept per access: identity needs the first few; the text has all.
const MAX_FRAMES: usize = 256;

/// One event of `go test -json`; the other fields differ per test and package
/// and are not part of the report.
#[derive(Deserialize)]
struct TestEvent {
    #[serde(rename = "Action")]
    _action: String,
    #[serde(rename = "Output")]
    output: Option<String>,
}

#[derive(Default)]
pub(super) struct Assembler {
    draft: Option<Draft>,
    /// `go test -json` output not yet ended by a newline: an event's
    /// `Output` may hold part of a line.
    json_pending: String,
    /// Input line of the event where `json_pending` began, and its offset.
    json_pending_from: u64,
    json_pending_offset: u64,
    last_line: u64,
}

impl Assembler {
    /// Whether the next line must be fed, rather than skipped by the fast
    /// search: inside a report, or a JSON anchor line is half received.
    pub(super) fn in_report(&self) -> bool {
        self.draft.is_some() || !self.json_pending.is_empty()
    }

    pub(super) fn feed(
        &mut self,
        raw: &[u8],
        number: u64,
        offset: u64,
        emit: &mut dyn FnMut(RaceReport),
    ) {
        if number != self.last_line + 1 {
            // Lines were skipped: a pending partial line has lost its end.
            self.json_pending.clear();
        }
        self.last_line = number;
        match json_event(raw) {
            Some(event) => {
                let Some(output) = event.output else {
                    // An event without output (`run`, `pass`…) inside a
                    // report is as good as an interleaved line.
                    self.foreign_line(emit);
                    return;
                };
                if self.json_pending.is_empty() {
                    self.json_pending_from = number;
                    self.json_pending_offset = offset;
                }
                self.json_pending.push_str(&output);
                let mut pending = std::mem::take(&mut self.json_pending);
                // A line completed here began in the event that started it.
                let mut at = (self.json_pending_from, self.json_pending_offset);
                let mut consumed = 0;
                while let Some(n) = pending[consumed..].find('\n') {
                    let line = &pending[consumed..consumed + n];
                    let line = line.strip_suffix('\r').unwrap_or(line);
                    self.line(line, raw, at, emit);
                    consumed += n + 1;
                    at = (number, offset);
                }
                if consumed > 0 {
                    // What is left began in this event.
                    pending.drain(..consumed);
                    self.json_pending_from = number;
                    self.json_pending_offset = offset;
                }
                // A partial line is kept only while it can matter: inside a
                // report, or when it may be the start of an anchor line.
                if pending.len() <= LINE_CAP
                    && (self.draft.is_some() || pending.contains("WARNING: "))
                {
                    self.json_pending = pending;
                }
            }
            None => {
                self.json_pending.clear();
                // `from_utf8` checks ASCII a word at a time; the lossy
                // conversion only when it must replace something.
                match std::str::from_utf8(raw) {
                    Ok(line) => self.line(line, raw, (number, offset), emit),
                    Err(_) => self.line(&String::from_utf8_lossy(raw), raw, (number, offset), emit),
                }
            }
        }
    }

    /// End of input: an open report was cut off.
    pub(super) fn finish(&mut self, emit: &mut dyn FnMut(RaceReport)) {
        if let Some(draft) = self.draft.take() {
            draft.finish(true, emit);
        }
    }

    /// One line of text: `raw` is the input line it came from (the JSON
    /// event for `go test -json`), at input line number and byte offset `at`.
    fn line(&mut self, line: &str, raw: &[u8], at: (u64, u64), emit: &mut dyn FnMut(RaceReport)) {
        if let Some((anchor, runtime)) = grammar::anchor(line) {
            if let Some(open) = self.draft.take() {
                // The next report began before this one closed.
                open.finish(true, emit);
            }
            self.draft = Some(Draft::new(line, anchor, runtime, at, raw));
            return;
        }
        let Some(draft) = self.draft.as_mut() else {
            return;
        };
        if let Some(truncated) = draft.push(line, raw, at.0) {
            if let Some(done) = self.draft.take() {
                done.finish(truncated, emit);
            }
        }
    }

    fn foreign_line(&mut self, emit: &mut dyn FnMut(RaceReport)) {
        if let Some(draft) = self.draft.as_mut() {
            if let Some(truncated) = draft.foreign() {
                if let Some(done) = self.draft.take() {
                    done.finish(truncated, emit);
                }
            }
        }
    }
}

/// A line that is a `go test -json` event, decoded.
fn json_event(raw: &[u8]) -> Option<TestEvent> {
    let trimmed = raw.trim_ascii_start();
    if !trimmed.starts_with(b"{\"") || memchr::memmem::find(trimmed, b"\"Action\"").is_none() {
        return None;
    }
    serde_json::from_slice(trimmed).ok()
}

/// A report being read.
struct Draft {
    runtime: Runtime,
    /// What preceded `WARNING` on the anchor line; every report line carries
    /// it (digits may differ: timestamps tick).
    prefix: String,
    text: String,
    accesses: Vec<Access>,
    line: u64,
    offset: u64,
    /// Over the raw input lines of the report (see [`RaceReport::raw_digest`]).
    raw: Md5,
    /// The input line last added to `raw` (one JSON event may hold several
    /// report lines).
    raw_line: u64,
    /// Frames now belong to the last access (not to a `created at` block).
    in_access: bool,
    foreign_run: u32,
    after_summary: bool,
    /// The last report line was a Go function line; its location follows.
    dangling_frame: bool,
}

impl Draft {
    fn new(
        line: &str,
        at: usize,
        runtime: Runtime,
        (number, offset): (u64, u64),
        raw: &[u8],
    ) -> Self {
        // A delimiter glued to the end of the previous output is not part of
        // the prefix the other lines carry.
        let prefix = line[..at].trim_end_matches('=');
        let mut text = String::with_capacity(4096);
        text.push_str(line[at..].trim_end());
        let mut digest = Md5::new();
        digest.update(raw);
        digest.update(b"\n");
        Self {
            runtime,
            prefix: prefix.to_owned(),
            text,
            accesses: Vec::with_capacity(2),
            line: number,
            offset,
            raw: digest,
            raw_line: number,
            in_access: false,
            foreign_run: 0,
            after_summary: false,
            dangling_frame: false,
        }
    }

    /// Take one line; `Some(truncated)` when the report has ended.
    fn push(&mut self, line: &str, raw: &[u8], number: u64) -> Option<bool> {
        let body = if self.prefix.is_empty() {
            line
        } else {
            match strip_prefix_loosely(line, &self.prefix) {
                Some(body) => body,
                None => return self.foreign(),
            }
        };
        if self.after_summary {
            // TSan closes with its delimiter right after SUMMARY; whatever
            // comes instead, the report is complete.
            return Some(false);
        }
        let kind = grammar::classify(self.runtime, body);
        if kind == Line::Foreign {
            return self.foreign();
        }
        if kind != Line::Delimiter && self.text.len() + 1 + body.len() > REPORT_CAP {
            return Some(true);
        }
        if number != self.raw_line {
            self.raw.update(raw);
            self.raw.update(b"\n");
            self.raw_line = number;
        }
        match kind {
            Line::Delimiter => return Some(!self.looks_complete()),
            Line::Blank => {}
            _ => self.foreign_run = 0,
        }
        self.text.push('\n');
        self.text.push_str(body);
        match kind {
            Line::Blank => {}
            Line::Frame(_) => self.dangling_frame = self.runtime == Runtime::Go,
            _ => self.dangling_frame = false,
        }
        match kind {
            Line::Access => {
                self.accesses.push(Access {
                    header: body.trim().to_owned(),
                    frames: Vec::new(),
                    locations: Vec::new(),
                });
                self.in_access = true;
            }
            Line::Frame(function) if self.in_access => {
                let location = match self.runtime {
                    Runtime::Go => None,
                    Runtime::ThreadSanitizer => grammar::tsan_frame_location(body.trim()),
                };
                if let Some(access) = self.accesses.last_mut() {
                    if access.frames.len() < MAX_FRAMES {
                        access.frames.push(function.to_owned());
                        access.locations.push(location.map(str::to_owned));
                    }
                }
            }
            Line::Location if self.in_access && self.runtime == Runtime::Go => {
                // The location line under the Go frame just read.
                if let Some(access) = self.accesses.last_mut() {
                    if let Some(slot @ None) = access.locations.last_mut() {
                        *slot = Some(body.trim().to_owned());
                    }
                }
            }
            Line::OtherBlock => self.in_access = false,
            Line::Summary => {
                self.in_access = false;
                self.after_summary = true;
            }
            _ => {}
        }
        None
    }

    /// Whether a delimiter now closes a whole report, rather than opening
    /// the next one after this report was cut off: a Go report has both
    /// accesses and no function line waiting for its location, a TSan report
    /// has had its SUMMARY (a delimiter after it never gets here).
    fn looks_complete(&self) -> bool {
        match self.runtime {
            Runtime::Go => self.accesses.len() >= 2 && !self.dangling_frame,
            Runtime::ThreadSanitizer => false,
        }
    }

    /// An interleaved line: dropped, but too many in a row end the report.
    fn foreign(&mut self) -> Option<bool> {
        self.foreign_run += 1;
        (self.foreign_run >= NOISE_LIMIT).then_some(true)
    }

    fn finish(mut self, truncated: bool, emit: &mut dyn FnMut(RaceReport)) {
        // A report without a single access line says nothing about a race
        // (e.g. cut right after its WARNING line): not worth an issue.
        if self.accesses.is_empty() {
            return;
        }
        let kept = self.text.trim_end().len();
        self.text.truncate(kept);
        emit(RaceReport {
            runtime: self.runtime,
            text: self.text,
            accesses: self.accesses,
            truncated,
            line: self.line,
            offset: self.offset,
            raw_digest: self.raw.finalize().into(),
        });
    }
}

/// `line` without `prefix`, where a run of digits matches any run of digits
/// (timestamps tick, and RFC 3339 fractions drop trailing zeros), and a line
/// that stops where only the prefix's trailing whitespace is left is a blank
/// report line (some log pipelines trim trailing spaces).
fn strip_prefix_loosely<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let (l, p) = (line.as_bytes(), prefix.as_bytes());
    let (mut i, mut j) = (0, 0);
    while j < p.len() {
        if i == l.len() {
            return p[j..].iter().all(u8::is_ascii_whitespace).then_some("");
        }
        if p[j].is_ascii_digit() && l[i].is_ascii_digit() {
            while j < p.len() && p[j].is_ascii_digit() {
                j += 1;
            }
            while i < l.len() && l[i].is_ascii_digit() {
                i += 1;
            }
        } else if p[j] == l[i] {
            i += 1;
            j += 1;
        } else {
            return None;
        }
    }
    line.get(i..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_with_other_digits() {
        let prefix = "Nov 28 03:12:44 testbox-07 app[31337]: ";
        assert_eq!(
            strip_prefix_loosely("Nov 28 03:12:45 testbox-07 app[31337]: Write", prefix),
            Some("Write")
        );
        assert_eq!(
            strip_prefix_loosely("Nov 28 03:12:45 testbox-08 cron[31337]: Write", prefix),
            None
        );
        assert_eq!(strip_prefix_loosely("short", prefix), None);
        assert_eq!(
            strip_prefix_loosely("Nov 28 03:12:44 testbox-07 app[31337]:", prefix),
            Some("")
        );
        let cri = "2026-11-28T12:52:21.123456789Z stderr F ";
        assert_eq!(
            strip_prefix_loosely("2026-11-28T12:52:21.1234Z stderr F   main.main()", cri),
            Some("  main.main()")
        );
        assert_eq!(
            strip_prefix_loosely("2026-11-28T12:52:21.1234Z stdout F   main.main()", cri),
            None
        );
    }
}
