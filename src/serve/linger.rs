//! Lingering close (SPEC §9, `serve.linger`): the body a handler refused to
//! read is read and thrown away *after* the answer, for a bounded time and a
//! bounded number of bytes.
//!
//! Why: a handler that refuses a request from its head (a wrong secret, a
//! declared size over the limit) or part-way through its body answers at
//! once. If the connection were then closed with body bytes still arriving,
//! the kernel would answer them with a reset, and a client or proxy still
//! sending (nginx streams the body it buffered; `curl -H 'Expect:'` sends
//! without waiting) would see a broken pipe instead of the answer: nginx
//! turns that into a 502. Reading on lets them finish sending and read the
//! answer, as nginx and Apache do for their own clients.
//!
//! How: the middleware hands the handler a body that, when dropped unread,
//! gives the rest of the connection's body back; once the handler's answer
//! is on its way, a task reads and discards that rest. The decision to
//! refuse is the handler's, made before it reads (or reads on); nothing read
//! here is stored or hashed. The task reads until the client has sent
//! everything, or `max_bytes` were read, or `time` is up. At `max_bytes` it
//! stops reading but keeps the connection open until `time` is up (or the
//! client is done): a proxy that writes a buffered body as fast as it can
//! (nginx with request buffering on) only looks at the answer once its
//! writes block, and closing instead would reset it into a 502.
//!
//! A client that asked `Expect: 100-continue` and was refused before the
//! handler read anything never got its `100 Continue` (hyper sends it only
//! when the body is first read, and never once an answer has started): it
//! sends no body, so there is nothing to wait for, and the connection is
//! closed at once (some clients, ureq among them, wait for that close).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use hyper::body::Frame;

use crate::output::Printer;

/// How long and how much the body of a refused request is read.
#[derive(Clone)]
pub struct Linger {
    /// At most this long after the answer; zero turns lingering off.
    pub time: Duration,
    /// At most this many bytes (the largest body any route accepts).
    pub max_bytes: u64,
    pub log: Printer,
}

/// The middleware: run the handler with a watched body, then read what it
/// left unread.
pub async fn linger(State(linger): State<Linger>, mut request: Request, next: Next) -> Response {
    if linger.time.is_zero() {
        return next.run(request).await;
    }
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let unread: Unread = Arc::default();
    let body = std::mem::take(request.body_mut());
    *request.body_mut() = Body::new(WatchedBody {
        inner: Some(body),
        read: false,
        finished: false,
        unread: unread.clone(),
    });
    let response = next.run(request).await;
    let rest = unread.lock().ok().and_then(|mut rest| rest.take());
    if let Some(Rest { body, read }) = rest {
        if read || !expects_continue {
            tokio::spawn(linger.discard(body, response.status().as_u16()));
        }
    }
    response
}

/// Where a body dropped before its end leaves the rest.
type Unread = Arc<Mutex<Option<Rest>>>;

/// The rest of a body, and whether the handler had started reading it (so
/// the client was told to send it).
struct Rest {
    body: Body,
    read: bool,
}

/// Why discarding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The client sent the whole body.
    End,
    /// The client went away or sent garbage.
    ClientGone,
    TooMuch,
    TimeUp,
}

impl Linger {
    async fn discard(self, mut rest: Body, status: u16) {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.time;
        let mut read: u64 = 0;
        let max_bytes = self.max_bytes;
        let reading = async {
            loop {
                match rest.frame().await {
                    None => return Stop::End,
                    Some(Err(_)) => return Stop::ClientGone,
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            read += data.len() as u64;
                            if read >= max_bytes {
                                return Stop::TooMuch;
                            }
                        }
                    }
                }
            }
        };
        let stop = tokio::time::timeout_at(deadline, reading)
            .await
            .unwrap_or(Stop::TimeUp);
        if stop == Stop::TooMuch {
            // Read no more, but let the client (or proxy) block on its
            // writes and find the answer, until the time is up.
            tokio::time::sleep_until(deadline).await;
        }
        // Dropping `rest` now lets hyper close the connection.
        drop(rest);
        self.log.detail(format!(
            "lingered after {status}: discarded {read} bytes in {}ms ({})",
            started.elapsed().as_millis(),
            match stop {
                Stop::End => "the client finished sending",
                Stop::ClientGone => "the client went away",
                Stop::TooMuch => "size limit reached; held the connection until serve.linger",
                Stop::TimeUp => "serve.linger reached; closing",
            }
        ));
    }
}

/// The request body as the handler sees it; dropped before its end, it
/// leaves the rest in `unread`.
struct WatchedBody {
    inner: Option<Body>,
    read: bool,
    finished: bool,
    unread: Unread,
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        this.read = true;
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            // At its end, or broken: nothing left worth reading.
            this.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner
            .as_ref()
            .map(HttpBody::size_hint)
            .unwrap_or_default()
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        if self.finished || inner.is_end_stream() {
            return;
        }
        if let Ok(mut unread) = self.unread.lock() {
            *unread = Some(Rest {
                body: inner,
                read: self.read,
            });
        }
    }
}
