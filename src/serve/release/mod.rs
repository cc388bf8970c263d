//! The release receiver's HTTP door: `POST /api/v1/releases` and the
//! release status route `GET /api/v1/releases/PRODUCT/VERSION` (SPEC §9).
//!
//! This module is HTTP only: the route, the bearer check, reading the
//! multipart form ([`form`]) and streaming the artifact to disk
//! ([`writer`]), and turning the outcome of the publish operation
//! (`ops::publish_release`) into a status code and a JSON answer. The
//! publication rules live there, not here.
//!
//! What it guarantees, in order:
//! - the bearer secret is checked (constant time) before one body byte is
//!   read, so an outsider cannot make it store, hash or parse anything (the
//!   body of any refused request is only read and discarded, after the
//!   answer, by `serve::linger`);
//! - the form is bounded: `release.max_fields` metadata fields, 64 KiB per
//!   value, 16 KiB per part header;
//! - names that become paths are allow-listed, products must be configured,
//!   and a second upload of a version in progress is refused, all as soon as
//!   the form says enough, before a large file streams in;
//! - the artifact streams to a temporary file in the release directory while
//!   two blocking threads hash and write it; at no point is it held in
//!   memory;
//! - once an artifact is received, publishing it happens on the blocking
//!   pool as a tracked task that neither a client hang-up nor SIGTERM
//!   interrupts.

mod form;
mod part_header;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio_util::task::TaskTracker;

use super::{Feature, Setup};
use crate::config::ReleaseConfig;
use crate::error::UsageError;
use crate::ops::publish_release::{
    Publication, PublishError, PublishStep, Published, Publisher, VersionStatus,
};
use crate::output::Printer;
use crate::release::ROUTE;
use crate::release::script::{ScriptEnvironment, ScriptOutcome};
use crate::settings::{Secret, Settings};

/// A client that sends nothing for this long is dropped (an idle timeout, not
/// a total one: a 5 GB upload on a slow link must not be cut off).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The receiver's route, when the config file has a `release:` section.
pub fn feature(setup: &Setup<'_>) -> Result<Option<Feature>> {
    let Some(config) = &setup.settings.config.release else {
        return Ok(None);
    };
    let receiver = ReleaseReceiver::new(
        config,
        setup.settings,
        setup.tasks.clone(),
        setup.log.clone(),
        DEFAULT_IDLE_TIMEOUT,
    )?;
    let description = format!(
        "POST {ROUTE}, GET {ROUTE}/PRODUCT/VERSION (release receiver: {} product(s), into {})",
        receiver.publisher.products(),
        receiver.publisher.dir().display()
    );
    Ok(Some(Feature {
        router: Arc::new(receiver).routes(),
        description,
    }))
}

/// The largest request body the receiver accepts, when it is enabled.
pub fn body_limit(settings: &Settings) -> Option<u64> {
    settings
        .config
        .release
        .as_ref()
        .map(|config| form::body_limit(config.max_size))
}

/// The receiver's configuration and state, shared by every request.
pub struct ReleaseReceiver {
    secret: Secret,
    max_size: u64,
    max_fields: usize,
    idle_timeout: Duration,
    publisher: Arc<Publisher>,
    tasks: TaskTracker,
    log: Printer,
}

impl std::fmt::Debug for ReleaseReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseReceiver")
            .field("secret", &self.secret)
            .field("max_size", &self.max_size)
            .field("max_fields", &self.max_fields)
            .field("publisher", &self.publisher)
            .finish_non_exhaustive()
    }
}

impl ReleaseReceiver {
    /// Check the `release:` section and the environment, prepare the release
    /// directory. A missing secret or script is a configuration error.
    pub fn new(
        config: &ReleaseConfig,
        settings: &Settings,
        tasks: TaskTracker,
        log: Printer,
        idle_timeout: Duration,
    ) -> Result<Self> {
        let secret = settings.env.secret(&config.secret_env).ok_or_else(|| {
            UsageError::new(format!(
                "the release receiver needs a secret, but {} is not set",
                config.secret_env
            ))
            .with_hint(format!(
                "set {} in the service environment (e.g. an EnvironmentFile= in the systemd unit); \
                 release.secret_env names the variable",
                config.secret_env
            ))
        })?;
        // Release scripts get the server's environment without any secret
        // rp-devops knows about, and their output comes back without them.
        let secrets = settings.known_secrets();
        let script_env =
            ScriptEnvironment::new(settings.env.iter(), &secrets.names, secrets.redactor());
        let step_log = log.clone();
        let publisher = Publisher::open(config.dir.clone(), config.products.clone(), script_env)?
            .on_step(move |step| log_step(&step_log, step));
        for (path, removed) in publisher.remove_leftovers()? {
            match removed {
                Ok(()) => log.info(format!(
                    "release: removed {} left by an interrupted upload",
                    path.display()
                )),
                Err(e) => log.warn(format!("cannot remove {}: {e}", path.display())),
            }
        }
        Ok(Self {
            secret,
            max_size: config.max_size,
            max_fields: config.max_fields,
            idle_timeout,
            publisher: Arc::new(publisher),
            tasks,
            log,
        })
    }

    pub fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route(ROUTE, post(receive))
            .route(&format!("{ROUTE}/{{product}}/{{version}}"), get(status))
            .with_state(self)
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), Rejection> {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        let Some(given) = given else {
            return Err(Rejection::new(
                StatusCode::UNAUTHORIZED,
                "missing Authorization: Bearer header",
            ));
        };
        // Compare digests, so neither the content nor the length of the
        // secret leaks through timing.
        let given = Md5::digest(given.as_bytes());
        let expected = Md5::digest(self.secret.expose().as_bytes());
        if bool::from(given.as_slice().ct_eq(expected.as_slice())) {
            Ok(())
        } else {
            Err(Rejection::new(
                StatusCode::UNAUTHORIZED,
                "wrong release secret",
            ))
        }
    }

    /// Answer with an error; server-side failures are logged too, with the
    /// details the answer leaves out.
    fn reject(&self, rejection: Rejection) -> Response {
        if let Some(detail) = &rejection.detail {
            self.log
                .warn(format!("release: {}: {detail}", rejection.message));
        } else if rejection.status.is_server_error() {
            self.log.warn(format!("release: {}", rejection.message));
        }
        rejection.into_response()
    }
}

/// The handler: every outcome is a JSON document. A refusal answers at
/// once; what is left of the body is read and discarded after the answer
/// (`serve::linger`), never here.
async fn receive(State(receiver): State<Arc<ReleaseReceiver>>, request: Request) -> Response {
    let mut multipart = match receiver.open_form(request) {
        Ok(multipart) => multipart,
        Err(rejection) => return receiver.reject(rejection),
    };
    let upload = match receiver.receive_form(&mut multipart).await {
        Ok(upload) => upload,
        Err(rejection) => return receiver.reject(rejection),
    };
    drop(multipart);
    // Received: publish on the blocking pool (file system work and the
    // script), as a tracked task, so a client hang-up (which drops this
    // future) or a shutdown cannot leave a half-published release.
    let publisher = receiver.publisher.clone();
    let task = receiver
        .tasks
        .spawn_blocking(move || publisher.publish(upload));
    match task.await {
        Ok(Ok(published)) => answer(published),
        Ok(Err(error)) => receiver.reject(error.into()),
        Err(_) => receiver.reject(Rejection::internal("publishing the release crashed")),
    }
}

/// `?bytes=N` on the status route: would an artifact of N bytes be taken?
#[derive(Debug, Deserialize)]
struct StatusQuery {
    bytes: Option<u64>,
}

/// `GET /api/v1/releases/PRODUCT/VERSION`: what the receiver knows about a
/// version, for a client whose answer was lost (a proxy's 504 while the
/// script ran). Same secret as uploads. With `?bytes=N` it also refuses,
/// with the upload's own 413, an artifact too large to be taken, so a
/// client whose connection a proxy broke can learn why without sending it
/// again.
async fn status(
    State(receiver): State<Arc<ReleaseReceiver>>,
    Path((product, version)): Path<(String, String)>,
    Query(query): Query<StatusQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(rejection) = receiver.authorize(&headers) {
        return receiver.reject(rejection);
    }
    if let Err(error) = receiver.publisher.product(&product) {
        return receiver.reject(error.into());
    }
    if query.bytes.is_some_and(|bytes| bytes > receiver.max_size) {
        return receiver.reject(receiver.too_large());
    }
    let publisher = receiver.publisher.clone();
    let (p, v) = (product.clone(), version.clone());
    let found = tokio::task::spawn_blocking(move || publisher.status(&p, &v)).await;
    match found {
        Ok(Ok(Some(status))) => {
            (StatusCode::OK, axum::Json(StatusAnswer::from(status))).into_response()
        }
        Ok(Ok(None)) => {
            let body = serde_json::json!({
                "error": format!("no trace of {product} {version} on this receiver"),
                "product": product,
                "version": version,
            });
            (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
        }
        Ok(Err(error)) => receiver.reject(error.into()),
        Err(_) => receiver.reject(Rejection::internal("reading the release status crashed")),
    }
}

/// 201 for a new release, 200 for one already there, 500 when its script
/// failed; the same JSON document in each case.
fn answer(published: Published) -> Response {
    let status = if published.script_failed {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if published.kind == Publication::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = ReleaseAnswer {
        product: published.product,
        version: published.version,
        path: published.artifact.display().to_string(),
        md5: published.md5,
        bytes: published.bytes,
        script: published.script,
    };
    (status, axum::Json(body)).into_response()
}

fn log_step(log: &Printer, step: &PublishStep<'_>) {
    log.info(match step {
        PublishStep::Stored {
            artifact,
            bytes,
            md5,
        } => format!(
            "release: stored {} ({}, md5 {md5})",
            artifact.display(),
            bytesize::ByteSize(*bytes)
        ),
        PublishStep::Unchanged {
            product,
            version,
            file_name,
        } => format!(
            "release: {product} {version} {file_name} re-uploaded unchanged; nothing to do"
        ),
        PublishStep::RunningScriptAgain { product, version } => format!(
            "release: {product} {version} re-uploaded after a failed or unfinished publication; running the script again"
        ),
        PublishStep::ScriptFinished {
            script,
            product,
            version,
            outcome,
        } => format!(
            "release: {} {product} {version}: {}",
            script.display(),
            match (outcome.timed_out, outcome.exit_code, &outcome.start_error) {
                (true, _, _) => "timed out".to_owned(),
                (false, Some(code), _) => format!("exit {code}"),
                (false, None, Some(why)) => format!("not started: {why}"),
                (false, None, None) => "killed".to_owned(),
            }
        ),
    });
}

/// The JSON answer of the status route (SPEC §9).
#[derive(Debug, Serialize)]
pub struct StatusAnswer {
    pub product: String,
    pub version: String,
    pub file: Option<String>,
    pub md5: Option<String>,
    pub bytes: Option<u64>,
    /// `published`, `in-progress` or `script-failed`.
    pub state: &'static str,
}

impl From<VersionStatus> for StatusAnswer {
    fn from(status: VersionStatus) -> Self {
        Self {
            state: status.state.as_str(),
            product: status.product,
            version: status.version,
            file: status.file,
            md5: status.md5,
            bytes: status.bytes,
        }
    }
}

/// The JSON answer to an upload (SPEC §9).
#[derive(Debug, Serialize)]
pub struct ReleaseAnswer {
    pub product: String,
    pub version: String,
    pub path: String,
    pub md5: String,
    pub bytes: u64,
    pub script: Option<ScriptOutcome>,
}

/// An error answer: `{"error": "..."}`. The connection is closed afterwards
/// (after the lingering read of what is left of the body).
#[derive(Debug)]
struct Rejection {
    status: StatusCode,
    message: String,
    /// What went wrong in detail (an OS error, a path): for the server's
    /// log, never for the client.
    detail: Option<String>,
}

impl Rejection {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            detail: None,
        }
    }

    fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl From<PublishError> for Rejection {
    fn from(error: PublishError) -> Self {
        let status = match &error {
            PublishError::UnknownProduct(_) => StatusCode::NOT_FOUND,
            PublishError::BadName(_)
            | PublishError::Md5Mismatch { .. }
            | PublishError::MissingMetadata { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            PublishError::InProgress { .. }
            | PublishError::AlreadyReleasedAs { .. }
            | PublishError::DifferentArtifact { .. } => StatusCode::CONFLICT,
            PublishError::Storage(e) => {
                // The OS error and the paths it concerns are the operator's
                // business: the client learns what failed, the log why.
                let (status, message) = if e.raw_os_error() == Some(libc::ENOSPC) {
                    (
                        StatusCode::INSUFFICIENT_STORAGE,
                        "no space left in the release directory",
                    )
                } else {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "storing the release failed; the server's log says why",
                    )
                };
                let mut rejection = Self::new(status, message);
                rejection.detail = Some(error.to_string());
                return rejection;
            }
            PublishError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, error.to_string())
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONNECTION, "close")],
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
