//! The HTTP server behind `rp-devops serve` (SPEC §10).
//!
//! This module is the assembly: [`Routes::from_settings`] asks each feature
//! module (`release`, `webhook`; the escalation endpoint next) for its
//! [`Feature`], merges the routers and lists what is served;
//! [`serve`] runs the result with what every route needs: an access log line
//! per request, a header-read timeout, a body-size cap for small routes, and
//! a graceful shutdown on SIGTERM/SIGINT that lets in-flight requests (and
//! the work they started) finish.
//!
//! A feature module is HTTP only: it parses the request, calls its operation
//! (`ops/`) on the blocking pool (`spawn_blocking`, or
//! `Setup::tasks.spawn_blocking` for work that must outlive a client
//! hang-up), and maps the typed outcome to a status code.

pub mod escalation;
pub mod release;
pub mod webhook;

use std::net::SocketAddr;
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
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tower::Service;

use crate::output::Printer;
use crate::settings::Settings;

/// A client must send its request head within this time.
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
        let router = router
            .layer(DefaultBodyLimit::max(SMALL_BODY_LIMIT))
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

/// Serve `routes` on `listener` until the first signal; then stop accepting,
/// let in-flight requests and tracked tasks finish, and return. A second
/// signal during that wait stops at once.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    log: Printer,
    mut signals: ShutdownSignals,
) -> Result<()> {
    let Routes { router, tasks, .. } = routes;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
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
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    let mut router = router.clone();
                    router.call(request.map(Body::new))
                });
                let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                let log = log.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        log.detail(format!("connection from {peer}: {e}"));
                    }
                });
            }
            () = signals.recv() => break,
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

/// Resolves on the first SIGTERM or SIGINT, and again on each later one.
pub struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    pub fn new() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
