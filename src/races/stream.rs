//! Reading a log in bounded memory: one fixed read buffer, lines split with
//! `memchr`, and a fast search for report anchors between reports.
//!
//! Race reports are rare in logs that are gigabytes long, so outside a report
//! nothing is done line by line: the buffer is searched for `WARNING: ` with a
//! SIMD substring finder, and only a line holding a plausible anchor is handed
//! on. Lines are cut at [`LINE_CAP`]; the rest of a longer line is skipped
//! without being kept, so a single 100 MB line costs no more memory than a
//! short one. This module knows nothing about report grammar beyond the
//! anchor words; the assembler decides what a line means.

use std::io::{self, Read};

use memchr::memmem::Finder;

/// Bytes asked of the input per read; the buffer never grows past this.
/// Large enough that a read always asks for more than the 256 KiB a caller's
/// `BufReader` holds, so it reads straight into this buffer (with 256 KiB
/// here, every read went through the caller's buffer: 3× the system time).
pub const READ_BUFFER: usize = 1024 * 1024;
/// Longest line kept; the rest of a longer line is skipped.
pub const LINE_CAP: usize = 64 * 1024;

const _: () = assert!(
    LINE_CAP * 2 <= READ_BUFFER,
    "a capped line must leave room to read"
);

/// Common start of every anchor: one search finds Go and TSan reports alike.
const ANCHOR_START: &[u8] = b"WARNING: ";
/// What may follow [`ANCHOR_START`] on an anchor line.
const ANCHOR_RESTS: [&[u8]; 2] = [b"DATA RACE", b"ThreadSanitizer: data race"];

/// Lines of an input, with a fast way to skip to the next anchor line.
pub(super) struct Lines<R> {
    input: R,
    /// Always `READ_BUFFER` long; `start..end` holds unread bytes.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    bytes: u64,
    /// Newlines consumed so far, so the next line is number `newlines + 1`.
    newlines: u64,
    /// The rest of an over-long line is still to be skipped.
    skipping: bool,
    anchor: Finder<'static>,
    /// Bytes looked at by the searches (newlines, anchors): the work done,
    /// which must stay proportional to the input whatever its lines hold.
    examined: u64,
}

impl<R: Read> Lines<R> {
    pub(super) fn new(input: R) -> Self {
        Self {
            input,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            eof: false,
            bytes: 0,
            newlines: 0,
            skipping: false,
            anchor: Finder::new(ANCHOR_START),
            examined: 0,
        }
    }

    pub(super) fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Bytes the searches looked at so far (see [`ScanStats::examined`](super::ScanStats)).
    pub(super) fn bytes_examined(&self) -> u64 {
        self.examined
    }

    /// Size of the read buffer: constant, whatever was read (for tests).
    #[cfg(test)]
    pub(super) fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Skip whole lines until one holds a possible report anchor within its
    /// first [`LINE_CAP`] bytes; the next [`Lines::next_line`] returns it.
    /// Returns false at the end of the input.
    ///
    /// Linear in the input whatever its lines hold: newlines are looked for
    /// only in bytes not looked at before (a line of a million `WARNING: `
    /// words is one pass, not one look back per word), the rest of a line
    /// past the cap is skipped at once, and the part of a line carried over
    /// to the next read is not searched again.
    pub(super) fn skip_to_anchor(&mut self, progress: &mut dyn FnMut(u64)) -> io::Result<bool> {
        // Bytes at the front of the unread part already searched: the start
        // of the current line, holding no newline and no anchor.
        let mut searched = 0;
        loop {
            if self.skipping {
                if !self.finish_long_line(progress)? {
                    return Ok(false);
                }
                searched = 0;
            }
            let hay = &self.buf[self.start..self.end];
            let mut from = searched;
            // Start of the line holding `from`; newlines were looked for up to
            // `looked`. `start` is always a line start, so the line begins in
            // the buffer.
            let mut line_start = 0;
            let mut looked = from;
            while let Some(found) = self.anchor.find(&hay[from..]) {
                let at = from + found;
                self.examined += (found + ANCHOR_START.len()) as u64;
                if let Some(n) = memchr::memrchr(b'\n', &hay[looked..at]) {
                    line_start = looked + n + 1;
                }
                self.examined += (at - looked) as u64;
                looked = at;
                if at - line_start >= LINE_CAP {
                    // Nothing later on this line is kept: on to the next one.
                    let Some(n) = memchr::memchr(b'\n', &hay[at..]) else {
                        self.examined += (hay.len() - at) as u64;
                        break;
                    };
                    self.examined += n as u64 + 1;
                    from = at + n + 1;
                    line_start = from;
                    looked = from;
                    continue;
                }
                if maybe_anchor(&hay[at..]) {
                    self.newlines += count_newlines(&hay[..line_start]);
                    self.examined += line_start as u64;
                    self.start += line_start;
                    return Ok(true);
                }
                from = at + 1;
            }
            // `hay[..searched]` holds no newline.
            if let Some(last) = memchr::memrchr(b'\n', &hay[searched..]) {
                let last = searched + last;
                self.examined += (hay.len() - last) as u64;
                self.newlines += count_newlines(&hay[..=last]);
                self.examined += last as u64 + 1;
                self.start += last + 1;
            } else {
                self.examined += (hay.len() - searched) as u64;
            }
            let partial = self.end - self.start;
            if partial >= LINE_CAP {
                // Anything later on this line is past the cap: not kept.
                self.start = self.end;
                self.skipping = true;
            }
            // Every `WARNING: ` found so far was decided; only one cut by the
            // end of the buffer must be looked at again.
            searched = partial.saturating_sub(ANCHOR_START.len() - 1);
            if !self.fill(progress)? {
                return Ok(false);
            }
        }
    }

    /// The next line with its 1-based number and the byte offset of its
    /// start, without `\n` and a trailing `\r`, cut at [`LINE_CAP`]. `None`
    /// at the end of the input.
    pub(super) fn next_line(
        &mut self,
        progress: &mut dyn FnMut(u64),
    ) -> io::Result<Option<(u64, u64, &[u8])>> {
        if self.skipping && !self.finish_long_line(progress)? {
            return Ok(None);
        }
        // Bytes of the line already known to hold no newline.
        let mut scanned = 0;
        loop {
            let start = self.start;
            let hay = &self.buf[start..self.end];
            let cap = hay.len().min(LINE_CAP + 1);
            let offset = self.offset_of(start);
            if let Some(n) = memchr::memchr(b'\n', &hay[scanned..cap]) {
                let n = scanned + n;
                self.examined += (n + 1 - scanned) as u64;
                self.start += n + 1;
                self.newlines += 1;
                return Ok(Some((
                    self.newlines,
                    offset,
                    strip_cr(&self.buf[start..start + n]),
                )));
            }
            self.examined += (cap - scanned) as u64;
            scanned = cap;
            if hay.len() >= LINE_CAP {
                // Counted when its newline is found by `finish_long_line`.
                self.start += LINE_CAP;
                self.skipping = true;
                return Ok(Some((
                    self.newlines + 1,
                    offset,
                    strip_cr(&self.buf[start..start + LINE_CAP]),
                )));
            }
            if !self.fill(progress)? {
                let start = self.start;
                if start == self.end {
                    return Ok(None);
                }
                self.start = self.end;
                return Ok(Some((
                    self.newlines + 1,
                    self.offset_of(start),
                    strip_cr(&self.buf[start..self.end]),
                )));
            }
        }
    }

    /// Offset in the input of `buf[at]`.
    fn offset_of(&self, at: usize) -> u64 {
        self.bytes - (self.end - at) as u64
    }

    /// Drop bytes up to and including the next newline. False at the end.
    fn finish_long_line(&mut self, progress: &mut dyn FnMut(u64)) -> io::Result<bool> {
        loop {
            if let Some(n) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                self.examined += n as u64 + 1;
                self.start += n + 1;
                self.newlines += 1;
                self.skipping = false;
                return Ok(true);
            }
            self.examined += (self.end - self.start) as u64;
            self.start = self.end;
            if !self.fill(progress)? {
                self.skipping = false;
                return Ok(false);
            }
        }
    }

    /// Move unread bytes to the front and read more after them. False at the
    /// end of the input (nothing more was read).
    fn fill(&mut self, progress: &mut dyn FnMut(u64)) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    self.bytes += n as u64;
                    progress(self.bytes);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether bytes starting with `WARNING: ` may be an anchor. When the buffer
/// ends too early to tell, the line is handed on and checked whole.
fn maybe_anchor(at: &[u8]) -> bool {
    let rest = &at[ANCHOR_START.len()..];
    ANCHOR_RESTS.iter().any(|want| {
        if rest.len() >= want.len() {
            rest.starts_with(want)
        } else {
            want.starts_with(rest)
        }
    })
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Newlines in `hay`. Written so the compiler vectorises it: the fast path
/// counts every byte between reports, so this runs at memory speed.
fn count_newlines(hay: &[u8]) -> u64 {
    const BLOCK: usize = 255;
    let mut total = 0u64;
    let mut blocks = hay.chunks_exact(BLOCK);
    for block in &mut blocks {
        let in_block: u8 = block
            .iter()
            .fold(0u8, |n, &b| n.wrapping_add(u8::from(b == b'\n')));
        total += u64::from(in_block);
    }
    total + blocks.remainder().iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_newlines_across_blocks() {
        let mut hay = vec![b'x'; 1000];
        for i in (0..1000).step_by(7) {
            hay[i] = b'\n';
        }
        let want = hay.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(count_newlines(&hay), want);
        assert_eq!(count_newlines(&[b'\n'; 600]), 600);
        assert_eq!(count_newlines(b""), 0);
    }

    #[test]
    fn anchor_check_waits_for_more_bytes_only_when_it_must() {
        assert!(maybe_anchor(b"WARNING: DATA RACE\n"));
        assert!(maybe_anchor(b"WARNING: Thread"));
        assert!(maybe_anchor(b"WARNING: "));
        assert!(!maybe_anchor(b"WARNING: disk almost full"));
        assert!(!maybe_anchor(
            b"WARNING: ThreadSanitizer: heap-use-after-free"
        ));
    }
}
