//! The HTTP server behind `rp-devops serve` (SPEC §10).
//!
//! This module is the assembly: [`Routes::from_settings`] asks each feature
//! module (`release`, `webhook`, `escalation`) for its
//! [`Feature`], merges the routers and lists what is served;
//! [`serve`] runs the result with what every route needs: an access log line
//! per request, a header-read timeout, a body-size cap for small routes, a
//! lingering close after refusals ([`linger`]), a cap on open connections
//! ([`connections`]), optional native TLS ([`tls`], reloaded on SIGHUP), and
//! a graceful shutdown on SIGTERM/SIGINT that lets in-flight requests (and
//! the work they started) finish.
//!
//! A feature module is HTTP only: it parses the request, calls its operation
//! (`ops/`) on the blocking pool (`spawn_blocking`, or
//! `Setup::tasks.spawn_blocking` for work that must outlive a client
//! hang-up), and maps the typed outcome to a status code.

pub mod connections;
pub mod escalation;
pub mod linger;
pub mod release;
pub mod tls;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tower::Service;

use self::connections::{Admission, Connections, Slot};
use self::linger::Linger;
use self::tls::ServerTls;
use crate::output::Printer;
use crate::settings::Settings;

/// A client must send its request head (and finish a TLS handshake) within
/// this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Body cap for routes that read small bodies through axum extractors; the
/// release route streams and enforces `release.max_size` itself.
const SMALL_BODY_LIMIT: usize = 1024 * 1024;

/// What a feature module adds to the server: its routes and a line for the
/// start-up message (`METHOD path (what)`).
pub struct Feature {
    pub router: Router,
    pub description: String,
}

/// What a feature module gets to build its routes from.
pub struct Setup<'a> {
    pub settings: &'a Settings,
    /// The server's log (stderr).
    pub log: &'a Printer,
    /// Work that must finish before the process exits: spawn it here.
    pub tasks: &'a TaskTracker,
}

/// The router and a description of what it serves.
pub struct Routes {
    pub router: Router,
    /// `METHOD path (what)`, for the start-up message.
    pub enabled: Vec<String>,
    /// Work that must finish before the process exits (release publishing).
    pub tasks: TaskTracker,
}

impl Routes {
    /// Enable the routes whose config section is present; `/healthz` always.
    pub fn from_settings(settings: &Settings, log: &Printer) -> Result<Self> {
        let tasks = TaskTracker::new();
        let setup = Setup {
            settings,
            log,
            tasks: &tasks,
        };
        // One line per feature; each is `None` when its section is absent.
        let features = [
            release::feature(&setup)?,
            webhook::feature(&setup)?,
            escalation::feature(&setup)?,
        ];

        let mut router = Router::new().route("/healthz", get(healthz));
        let mut enabled = vec!["GET /healthz".to_owned()];
        for feature in features.into_iter().flatten() {
            router = router.merge(feature.router);
            enabled.push(feature.description);
        }
        // The lingering read after a refusal stops at the largest body any
        // route accepts.
        let max_body = release::body_limit(settings).unwrap_or(0);
        let linger = Linger {
            time: settings.config.serve.linger,
            max_bytes: max_body.max(SMALL_BODY_LIMIT as u64),
            log: log.clone(),
        };
        let router = router
            .layer(DefaultBodyLimit::max(SMALL_BODY_LIMIT))
            .layer(middleware::from_fn_with_state(linger, linger::linger))
            .layer(middleware::from_fn_with_state(log.clone(), access_log));
        Ok(Self {
            router,
            enabled,
            tasks,
        })
    }
}

async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// One line per request on stderr: peer, method, path (never the query, which
/// may carry a token), status, bytes in and out, duration. Headers are never
/// logged. A request whose client went away mid-way is logged as `aborted`.
async fn access_log(State(log): State<Printer>, request: Request, next: Next) -> Response {
    let mut entry = AccessEntry {
        log,
        started: Instant::now(),
        peer: request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string())
            .unwrap_or_else(|| "-".to_owned()),
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        bytes_in: request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| "-".to_owned()),
        status: None,
    };
    let response = next.run(request).await;
    let bytes_out = response
        .body()
        .size_hint()
        .exact()
        .map_or_else(|| "-".to_owned(), |n| n.to_string());
    entry.status = Some((response.status().as_u16(), bytes_out));
    response
}

struct AccessEntry {
    log: Printer,
    started: Instant,
    peer: String,
    method: String,
    path: String,
    bytes_in: String,
    status: Option<(u16, String)>,
}

impl Drop for AccessEntry {
    // Logging on drop also covers requests whose future was dropped because
    // the client hung up.
    fn drop(&mut self) {
        let (status, bytes_out) = match &self.status {
            Some((status, out)) => (status.to_string(), out.as_str()),
            None => ("aborted".to_owned(), "-"),
        };
        self.log.info(format!(
            "{} \"{} {}\" {status} in={} out={bytes_out} {}ms",
            self.peer,
            self.method,
            self.path,
            self.bytes_in,
            self.started.elapsed().as_millis()
        ));
    }
}

/// How the server takes connections.
pub struct ServeOptions {
    /// Open connections at most (`serve.max_connections`).
    pub max_connections: usize,
    /// Serve HTTPS with this certificate (reloaded on SIGHUP).
    pub tls: Option<Arc<ServerTls>>,
}

/// A short answer for a connection refused because every slot is busy.
const BUSY_ANSWER: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
Content-Length: 49\r\nRetry-After: 1\r\nConnection: close\r\n\r\n\
{\"error\":\"too many connections; try again later\"}";

/// Serve `routes` on `listener` until the first shutdown signal; then stop
/// accepting, let in-flight requests and tracked tasks finish, and return. A
/// second signal during that wait stops at once. SIGHUP reloads the TLS
/// certificate.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    log: Printer,
    mut signals: ShutdownSignals,
    options: ServeOptions,
) -> Result<()> {
    let Routes { router, tasks, .. } = routes;
    let connections = Connections::new(options.max_connections);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    let mut at_cap = CapReport::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off
                        // instead of spinning.
                        log.warn(format!("accept failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let slot = match connections.admit() {
                    Admission::Admitted { slot, evicted } => {
                        if evicted {
                            at_cap.evicted += 1;
                        }
                        slot
                    }
                    Admission::Full => {
                        at_cap.refused += 1;
                        if options.tls.is_none() {
                            // One try, never a wait: the point is to let go
                            // of the descriptor now.
                            let _ = stream.try_write(BUSY_ANSWER);
                        }
                        drop(stream);
                        at_cap.report(&log, connections.max());
                        continue;
                    }
                };
                at_cap.report(&log, connections.max());
                let _ = stream.set_nodelay(true);
                let connection = Connection {
                    router: router.clone(),
                    http: http.clone(),
                    watcher: graceful.watcher(),
                    log: log.clone(),
                    peer,
                    slot,
                };
                tokio::spawn(connection.run(stream, options.tls.as_ref().map(|t| t.acceptor())));
            }
            _ = signals.hangup.recv() => match &options.tls {
                Some(tls) => match tls.reload() {
                    Ok(()) => log.info(format!(
                        "SIGHUP: reloaded the TLS certificate from {}",
                        tls.files().cert.display()
                    )),
                    Err(e) => log.warn(format!("SIGHUP: keeping the TLS certificate in use: {e:#}")),
                },
                None => log.info("SIGHUP: no TLS certificate to reload"),
            },
            () = stop_signal(&mut signals.term, &mut signals.int) => break,
        }
    }
    drop(listener);
    log.info("shutting down: no new connections; waiting for requests in flight (signal again to stop now)");
    tasks.close();
    let drain = async {
        graceful.shutdown().await;
        tasks.wait().await;
    };
    tokio::select! {
        () = drain => log.info("shut down cleanly"),
        () = signals.recv() => log.warn("second signal: stopping with requests still in flight"),
    }
    Ok(())
}

/// One accepted connection, until it ends or is closed to make room.
struct Connection {
    router: Router,
    http: hyper::server::conn::http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    log: Printer,
    peer: SocketAddr,
    slot: Slot,
}

impl Connection {
    async fn run(self, stream: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
        let close = self.slot.close_token();
        let peer = self.peer;
        let log = self.log.clone();
        let served = async {
            match tls {
                None => self.serve(stream).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => self.serve(stream).await,
                        Ok(Err(e)) => log.detail(format!("TLS handshake with {peer} failed: {e}")),
                        Err(_) => log.detail(format!("TLS handshake with {peer} timed out")),
                    }
                }
            }
        };
        tokio::select! {
            () = served => {}
            () = close.cancelled() => {
                log.detail(format!("closed idle connection from {peer} to make room (serve.max_connections)"));
            }
        }
    }

    async fn serve<S>(self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            router,
            http,
            watcher,
            log,
            peer,
            slot,
        } = self;
        let requests = slot.requests();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            let in_flight = requests.start();
            let response = router.call(request.map(Body::new));
            async move {
                let response = response.await;
                drop(in_flight);
                response
            }
        });
        let connection = watcher.watch(http.serve_connection(TokioIo::new(stream), service));
        if let Err(e) = connection.await {
            log.detail(format!("connection from {peer}: {e}"));
        }
        drop(slot);
    }
}

/// Says, at most once a minute, that the connection cap was reached.
#[derive(Default)]
struct CapReport {
    evicted: u64,
    refused: u64,
    last: Option<Instant>,
}

impl CapReport {
    fn report(&mut self, log: &Printer, max: usize) {
        if self.evicted + self.refused == 0
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_secs(60))
        {
            return;
        }
        log.warn(format!(
            "at the connection limit ({max}, serve.max_connections): closed {} idle connection(s), \
             refused {} while all were busy",
            self.evicted, self.refused
        ));
        self.evicted = 0;
        self.refused = 0;
        self.last = Some(Instant::now());
    }
}

/// The signals `serve` acts on: SIGTERM or SIGINT stop it ([`Self::recv`]
/// resolves on the first one, and again on each later one); SIGHUP reloads
/// the TLS certificate. Installed before the server listens, so a signal
/// sent as soon as it says it listens is never the default action (which
/// for SIGHUP is to exit).
pub struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    pub fn new() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    pub async fn recv(&mut self) {
        stop_signal(&mut self.term, &mut self.int).await;
    }
}

async fn stop_signal(
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_answer_is_well_formed() {
        let text = std::str::from_utf8(BUSY_ANSWER).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
    }
}
