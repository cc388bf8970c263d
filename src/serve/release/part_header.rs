//! The multipart parser with a bound on part headers (431 past it).
//!
//! `multer` buffers a part's header until its blank line, however long it
//! is (up to the whole body's limit, `max_size`): an outsider with the
//! secret, or a broken client, could make the receiver hold gigabytes of
//! "header" in memory. [`MultipartForm`] wraps the parser so that the body
//! it reads knows when a header (rather than a part's data) is being read,
//! and fails the read once the header is too long.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::body::Bytes;
use futures_util::Stream;

/// Largest part header block (and preamble before the first part): a
/// `Content-Disposition` with a 255-byte file name and a `Content-Type`
/// need a few hundred bytes.
pub(super) const MAX_PART_HEADER: usize = 16 * 1024;

/// The multipart parser over the request body, and what the body needs to
/// know to bound part headers.
pub(super) struct MultipartForm {
    parts: multer::Multipart<'static>,
    header: Arc<HeaderRead>,
    /// Part header reads so far.
    headers_read: u64,
}

/// Shared by the form reader and the body under the parser: which part
/// header read is under way (0: none, a part's data is being read) and how
/// many times the parser has been asked for it so far.
#[derive(Default)]
struct HeaderRead {
    phase: AtomicU64,
    round: AtomicU64,
}

impl MultipartForm {
    pub(super) fn new<S>(body: S, boundary: String, constraints: multer::Constraints) -> Self
    where
        S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    {
        let header = Arc::new(HeaderRead::default());
        let body = PartHeaderLimit {
            inner: Box::pin(body),
            header: header.clone(),
            phase: 0,
            seen: 0,
            over_in_round: None,
        };
        Self {
            parts: multer::Multipart::with_constraints(body, boundary, constraints),
            header,
            headers_read: 0,
        }
    }

    /// The next part, its header bounded by [`MAX_PART_HEADER`].
    pub(super) async fn next_field(&mut self) -> multer::Result<Option<multer::Field<'static>>> {
        let header = self.header.clone();
        self.headers_read += 1;
        header.phase.store(self.headers_read, Ordering::Relaxed);
        let mut next = std::pin::pin!(self.parts.next_field());
        let field = std::future::poll_fn(|cx| {
            header.round.fetch_add(1, Ordering::Relaxed);
            next.as_mut().poll(cx)
        })
        .await;
        header.phase.store(0, Ordering::Relaxed);
        field
    }
}

/// The error a too long part header turns into (inside the parser's
/// `StreamReadFailed`).
#[derive(Debug)]
pub(super) struct PartHeaderTooLarge;

impl std::fmt::Display for PartHeaderTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "part header longer than {MAX_PART_HEADER} bytes")
    }
}

impl std::error::Error for PartHeaderTooLarge {}

/// The body as the multipart parser reads it. While a part's data is read,
/// chunks pass through untouched. While a part header is read, the bytes
/// delivered are counted: the parser asks again only when what it has does
/// not yet hold the whole header, so being asked again after more than
/// [`MAX_PART_HEADER`] bytes means the header is too long. (Counting alone
/// would not do: the chunk that completes a header usually carries the
/// part's data too.) The parser thus never buffers more than the limit plus
/// one chunk of a header.
struct PartHeaderLimit {
    inner: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>,
    header: Arc<HeaderRead>,
    /// The header read being counted, the bytes delivered for it, and the
    /// round in which they passed the limit.
    phase: u64,
    seen: usize,
    over_in_round: Option<u64>,
}

impl Stream for PartHeaderLimit {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let phase = this.header.phase.load(Ordering::Relaxed);
        if phase == 0 {
            return this.inner.as_mut().poll_next(cx);
        }
        if phase != this.phase {
            this.phase = phase;
            this.seen = 0;
            this.over_in_round = None;
        }
        let round = this.header.round.load(Ordering::Relaxed);
        if this.over_in_round.is_some_and(|over| round > over) {
            return Poll::Ready(Some(Err(io::Error::other(PartHeaderTooLarge))));
        }
        let polled = this.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            this.seen += chunk.len();
            if this.seen > MAX_PART_HEADER && this.over_in_round.is_none() {
                this.over_in_round = Some(round);
            }
        }
        polled
    }
}
