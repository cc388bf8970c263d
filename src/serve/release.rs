//! The release receiver: `POST /api/v1/releases` (SPEC §9).
//!
//! What it guarantees, in order:
//! - the bearer secret is checked (constant time) before one body byte is
//!   read, so an outsider cannot make it store or even read anything;
//! - names that become paths are allow-listed, products must be configured;
//! - the artifact streams to a temporary file in the release directory (same
//!   file system, so the final rename is atomic) while a blocking thread
//!   hashes and writes it; at no point is it held in memory;
//! - nothing but finished releases ever appears under `DIR/PRODUCT/VERSION/`,
//!   and any failure leaves nothing behind (the temporary file is a
//!   `TempPath`, removed when dropped, whatever path the request takes);
//! - one upload per product/version at a time (an in-process lock: it dies
//!   with the process, so a crash never leaves a stale lock behind; leftover
//!   temporary files are removed at start-up);
//! - once an artifact is accepted, storing it and running its script happens
//!   on a tracked task that neither a client hang-up nor SIGTERM interrupts.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::{Stream, StreamExt};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tempfile::TempPath;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::config::{ProductConfig, ReleaseConfig};
use crate::error::UsageError;
use crate::output::Printer;
use crate::release::script::{self, ScriptOutcome, ScriptRun};
use crate::release::{
    self, FIELD_FILE, FIELD_MD5, FIELD_PRODUCT, META_VERSION, ROUTE, ReleaseFacts, is_md5_hex,
    is_valid_meta_key, is_valid_meta_value, is_valid_name, meta_key_rule, name_rule,
};
use crate::settings::{Secret, Settings};

/// Prefix of the temporary files uploads stream into (in the release dir).
pub const TEMP_PREFIX: &str = ".rp-upload-";
/// Room for the multipart framing and metadata fields on top of `max_size`.
const FORM_ALLOWANCE: u64 = 1024 * 1024;
/// Largest metadata field value.
const MAX_FIELD_BYTES: usize = 64 * 1024;
/// A client that sends nothing for this long is dropped (an idle timeout, not
/// a total one: a 5 GB upload on a slow link must not be cut off).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Start write-back of what was written every this many bytes, so the final
/// fsync does not have gigabytes of dirty pages to flush at once.
const WRITEBACK_STEP: u64 = 32 * 1024 * 1024;
/// Batches in flight between the network task and the writer thread.
const WRITER_QUEUE: usize = 4;
/// The network delivers the body in chunks of a few KiB; handing each to the
/// writer thread costs a wake-up and a `write` call, which dominated the
/// server's CPU time. Chunks are gathered into batches of this size first
/// (at most `WRITER_QUEUE` of them in memory).
const WRITER_BATCH: usize = 512 * 1024;

/// Environment variables never passed on to release scripts.
const SCRUBBED_ENV: &[&str] = &[
    "RP_RELEASE_SECRET",
    "RP_GITLAB_TOKEN",
    "GITLAB_TOKEN",
    "RP_WEBHOOK_SECRET",
    "RP_WEBHOOK_SIGNING_KEY",
    "RP_ESCALATE_TOKEN",
    "RP_FRESHDESK_API_KEY",
];

/// The receiver's configuration and state, shared by every request.
pub struct ReleaseReceiver {
    dir: PathBuf,
    secret: Secret,
    max_size: u64,
    products: BTreeMap<String, ProductConfig>,
    scrub_env: Vec<String>,
    idle_timeout: Duration,
    busy: Mutex<HashSet<(String, String)>>,
    tasks: TaskTracker,
    log: Printer,
}

impl std::fmt::Debug for ReleaseReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseReceiver")
            .field("dir", &self.dir)
            .field("secret", &self.secret)
            .field("max_size", &self.max_size)
            .field("products", &self.products.keys())
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
        for (name, product) in &config.products {
            if !is_valid_name(name) {
                return Err(UsageError::new(format!(
                    "release.products: {}",
                    name_rule("product name", name)
                ))
                .into());
            }
            if let Some(script) = &product.script {
                if !script.is_file() {
                    return Err(UsageError::new(format!(
                        "release.products.{name}.script: {} is not a file",
                        script.display()
                    ))
                    .into());
                }
            }
            for key in &product.required {
                if !is_valid_meta_key(key) {
                    return Err(UsageError::new(format!(
                        "release.products.{name}.required: {}",
                        meta_key_rule(key)
                    ))
                    .into());
                }
            }
        }
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating release directory {}", dir.display()))?;
        remove_leftovers(&dir, &log)?;
        let mut scrub_env: Vec<String> = SCRUBBED_ENV.iter().map(|s| (*s).to_owned()).collect();
        scrub_env.push(config.secret_env.clone());
        Ok(Self {
            dir,
            secret,
            max_size: config.max_size,
            products: config.products.clone(),
            scrub_env,
            idle_timeout,
            busy: Mutex::new(HashSet::new()),
            tasks,
            log,
        })
    }

    pub fn routes(self: Arc<Self>) -> Router {
        Router::new().route(ROUTE, post(receive).with_state(self))
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

    fn product(&self, name: &str) -> Result<&ProductConfig, Rejection> {
        if !is_valid_name(name) {
            return Err(Rejection::unprocessable(name_rule("product", name)));
        }
        self.products.get(name).ok_or_else(|| {
            Rejection::new(
                StatusCode::NOT_FOUND,
                format!(
                    "unknown product {name:?}: it has no release.products entry on this server"
                ),
            )
        })
    }

    fn try_lock(self: &Arc<Self>, product: &str, version: &str) -> Result<VersionLock, Rejection> {
        let key = (product.to_owned(), version.to_owned());
        let mut busy = self
            .busy
            .lock()
            .map_err(|_| Rejection::internal("release lock poisoned"))?;
        if !busy.insert(key.clone()) {
            return Err(Rejection::new(
                StatusCode::CONFLICT,
                format!("another upload of {product} {version} is in progress"),
            ));
        }
        Ok(VersionLock {
            receiver: self.clone(),
            key,
        })
    }

    /// The checks made on the request head alone, before one body byte is
    /// read; then the body as a multipart stream.
    fn open_form(&self, request: Request) -> Result<multer::Multipart<'static>, Rejection> {
        self.authorize(request.headers())?;
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let boundary = multer::parse_boundary(content_type).map_err(|_| {
            Rejection::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a multipart/form-data body",
            )
        })?;
        let limit = self.max_size.saturating_add(FORM_ALLOWANCE);
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(self.too_large());
        }
        let body = idle_timeout(request.into_body().into_data_stream(), self.idle_timeout);
        let constraints =
            multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit));
        Ok(multer::Multipart::with_constraints(
            body,
            boundary,
            constraints,
        ))
    }

    /// Read the whole form; everything up to the point where the artifact is
    /// complete, verified and locked.
    async fn receive_form(
        self: &Arc<Self>,
        multipart: &mut multer::Multipart<'static>,
    ) -> Result<Upload, Rejection> {
        let mut form = Form::default();
        while let Some(mut field) = multipart
            .next_field()
            .await
            .map_err(|e| self.multipart_error(e))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            if name == FIELD_FILE {
                if form.file.is_some() {
                    return Err(Rejection::unprocessable("more than one `file` part"));
                }
                let file_name = field
                    .file_name()
                    .map(str::to_owned)
                    .ok_or_else(|| Rejection::unprocessable("the `file` part has no filename"))?;
                if !is_valid_name(&file_name) {
                    return Err(Rejection::unprocessable(name_rule("file name", &file_name)));
                }
                if file_name.ends_with(".env") || file_name.ends_with(".status") {
                    return Err(Rejection::unprocessable(format!(
                        "file name {file_name:?} is not allowed: .env and .status are kept for the release's metadata"
                    )));
                }
                let received = self.receive_file(&mut field).await?;
                form.file = Some((file_name, received));
            } else {
                let value = read_text(&mut field, &name).await.map_err(|e| match e {
                    FieldError::Multipart(e) => self.multipart_error(e),
                    FieldError::Rejected(r) => r,
                })?;
                form.set(name, value)?;
            }
            // Fail fast, before a large file streams in, once we know enough.
            if let Some(product) = &form.product {
                self.product(product)?;
            }
            if let Some(version) = form.meta.get(META_VERSION) {
                if !is_valid_name(version) {
                    return Err(Rejection::unprocessable(name_rule("version", version)));
                }
                if let (Some(product), None) = (&form.product, &form.lock) {
                    form.lock = Some(self.try_lock(product, version)?);
                }
            }
        }

        let Some((file_name, file)) = form.file else {
            return Err(Rejection::unprocessable(
                "no `file` part: send the artifact as -F file=@PATH",
            ));
        };
        let Some(product) = form.product else {
            return Err(Rejection::unprocessable("no `product` field"));
        };
        let product_config = self.product(&product)?;
        let Some(md5) = form.md5 else {
            return Err(Rejection::unprocessable(
                "no `md5` field: send the artifact's MD5 in hex",
            ));
        };
        if md5 != file.md5 {
            return Err(Rejection::unprocessable(format!(
                "MD5 mismatch: the form says {md5}, the received {} bytes have {}; nothing was stored",
                file.bytes, file.md5
            )));
        }
        let mut missing: Vec<&str> = std::iter::once(META_VERSION)
            .chain(product_config.required.iter().map(String::as_str))
            .filter(|key| !form.meta.contains_key(*key))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            return Err(Rejection::unprocessable(format!(
                "missing required metadata for {product}: {}",
                missing.join(", ")
            )));
        }
        let version = form.meta.get(META_VERSION).cloned().unwrap_or_default();
        let lock = match form.lock {
            Some(lock) => lock,
            None => self.try_lock(&product, &version)?,
        };
        Ok(Upload {
            product,
            version,
            file_name,
            file,
            meta: form.meta,
            lock,
        })
    }

    /// Stream the `file` part into a temporary file, hashing on a blocking
    /// thread so network reads, hashing and disk writes overlap.
    async fn receive_file(&self, field: &mut multer::Field<'_>) -> Result<Received, Rejection> {
        let temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.dir)
            .map_err(|e| {
                self.log.warn(format!(
                    "release: cannot create a temporary file in {}: {e}",
                    self.dir.display()
                ));
                Rejection::internal("cannot create a temporary file in the release directory")
            })?;
        let (file, path) = temp.into_parts();
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let writer = tokio::task::spawn_blocking(move || write_and_hash(file, rx));
        let mut bytes: u64 = 0;
        let mut batch: Vec<u8> = Vec::with_capacity(WRITER_BATCH);
        let mut writer_alive = true;
        loop {
            let chunk = match field.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return Err(self.multipart_error(e)),
            };
            bytes += chunk.len() as u64;
            if bytes > self.max_size {
                return Err(self.too_large());
            }
            batch.extend_from_slice(&chunk);
            if batch.len() >= WRITER_BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(WRITER_BATCH));
                if tx
                    .send(WriterMessage::Chunk(Bytes::from(full)))
                    .await
                    .is_err()
                {
                    // The writer stopped early: its error says why.
                    writer_alive = false;
                    break;
                }
            }
        }
        if writer_alive && !batch.is_empty() {
            let _ = tx.send(WriterMessage::Chunk(Bytes::from(batch))).await;
        }
        let _ = tx.send(WriterMessage::Finish).await;
        drop(tx);
        let written = writer
            .await
            .map_err(|_| Rejection::internal("the upload writer crashed"))?
            .map_err(|e| {
                self.log
                    .warn(format!("release: writing {}: {e}", path.display()));
                if e.raw_os_error() == Some(libc::ENOSPC) {
                    Rejection::new(
                        StatusCode::INSUFFICIENT_STORAGE,
                        "no space left in the release directory",
                    )
                } else {
                    Rejection::internal("writing the upload to disk failed")
                }
            })?;
        Ok(Received {
            path,
            md5: written.0,
            bytes: written.1,
        })
    }

    /// Answer with an error; server-side failures are logged too.
    fn reject(&self, rejection: Rejection) -> Response {
        if rejection.status.is_server_error() {
            self.log.warn(format!("release: {}", rejection.message));
        }
        rejection.into_response()
    }

    fn too_large(&self) -> Rejection {
        Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the artifact is larger than this server's release.max_size ({})",
                bytesize::ByteSize(self.max_size)
            ),
        )
        .final_answer()
    }

    fn multipart_error(&self, error: multer::Error) -> Rejection {
        match error {
            multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
                self.too_large()
            }
            multer::Error::StreamReadFailed(e) => {
                let timed_out = e
                    .downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::TimedOut);
                let rejection = if timed_out {
                    Rejection::new(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "no data for {}; upload abandoned",
                            humantime::format_duration(self.idle_timeout)
                        ),
                    )
                } else {
                    Rejection::new(StatusCode::BAD_REQUEST, "the upload was cut off")
                };
                rejection.final_answer()
            }
            other => Rejection::new(
                StatusCode::BAD_REQUEST,
                format!("malformed multipart body: {other}"),
            )
            .final_answer(),
        }
    }

    /// Store a verified upload and run its script; runs on the task tracker.
    async fn publish(
        self: Arc<Self>,
        upload: Upload,
    ) -> Result<(StatusCode, ReleaseAnswer), Rejection> {
        let Upload {
            product,
            version,
            file_name,
            file,
            meta,
            lock: _lock,
        } = upload;
        let version_dir = self.dir.join(&product).join(&version);
        let artifact = version_dir.join(&file_name);
        let env_path = version_dir.join(format!("{file_name}.env"));
        let status_path = version_dir.join(format!("{file_name}.status"));
        let product_config = self.product(&product)?.clone();

        let existing = {
            let version_dir = version_dir.clone();
            blocking(move || existing_release(&version_dir)).await?
        };
        let created = match existing {
            None => true,
            Some(name) if name != file_name => {
                return Err(Rejection::new(
                    StatusCode::CONFLICT,
                    format!(
                        "{product} {version} is already released as {name}; a released version cannot change"
                    ),
                ));
            }
            Some(_) => false,
        };

        // Whether an earlier publication of this artifact was cut short (a
        // crash before its .env or .status was written).
        let mut incomplete = false;
        let mut status = if created {
            let dir = self.dir.clone();
            let (product, version, target) = (product.clone(), version.clone(), artifact.clone());
            let Received { path, md5, bytes } = file;
            let status = ReleaseStatus {
                md5,
                bytes,
                script: None,
            };
            let record = status.clone();
            let status_path = status_path.clone();
            blocking(move || {
                place_artifact(&dir, &product, &version, path, &target)?;
                write_atomically(&status_path, &record.to_json())
            })
            .await?;
            self.log.info(format!(
                "release: stored {} ({}, md5 {})",
                artifact.display(),
                bytesize::ByteSize(status.bytes),
                status.md5
            ));
            status
        } else {
            let (artifact, status_path, env_path) =
                (artifact.clone(), status_path.clone(), env_path.clone());
            let (recorded, complete) =
                blocking(move || recorded_status(&artifact, &status_path, &env_path)).await?;
            incomplete = !complete;
            if recorded.md5 != file.md5 {
                return Err(Rejection::new(
                    StatusCode::CONFLICT,
                    format!(
                        "{product} {version} is already released with a different {file_name} (md5 {}); a released version cannot change",
                        recorded.md5
                    ),
                ));
            }
            // `file` (the identical copy) is dropped here, which removes it.
            recorded
        };

        let rerun = !created
            && (incomplete
                || product_config.script.is_some()
                    && !status.script.as_ref().is_some_and(ScriptOutcome::succeeded));
        if created || rerun {
            let facts = ReleaseFacts {
                product: &product,
                version: &version,
                file: &file_name,
                md5: &status.md5,
            };
            let vars = release::release_variables(&facts, &meta);
            let text = release::env_file_text(&vars);
            {
                let env_path = env_path.clone();
                blocking(move || write_atomically(&env_path, &text)).await?;
            }
            if let Some(script_path) = &product_config.script {
                if !created {
                    self.log.info(format!(
                        "release: {product} {version} re-uploaded after a failed or unfinished publication; running the script again"
                    ));
                }
                let outcome = script::run(ScriptRun {
                    script: script_path,
                    artifact: &artifact,
                    env_file: &env_path,
                    vars: &vars,
                    timeout: product_config.timeout,
                    scrub: &self.scrub_env,
                })
                .await;
                self.log.info(format!(
                    "release: {} {product} {version}: {}",
                    script_path.display(),
                    match (outcome.timed_out, outcome.exit_code) {
                        (true, _) => "timed out".to_owned(),
                        (false, Some(code)) => format!("exit {code}"),
                        (false, None) => "killed or not started".to_owned(),
                    }
                ));
                status.script = Some(outcome);
            }
            if rerun || product_config.script.is_some() {
                let (status_path, text) = (status_path.clone(), status.to_json());
                blocking(move || write_atomically(&status_path, &text)).await?;
            }
        } else if !created {
            self.log.info(format!(
                "release: {product} {version} {file_name} re-uploaded unchanged; nothing to do"
            ));
        }

        let failed = status.script.as_ref().is_some_and(|s| !s.succeeded())
            && product_config.script.is_some();
        let code = if failed {
            StatusCode::INTERNAL_SERVER_ERROR
        } else if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((
            code,
            ReleaseAnswer {
                product,
                version,
                path: artifact.display().to_string(),
                md5: status.md5,
                bytes: status.bytes,
                script: status.script,
            },
        ))
    }
}

/// The handler: every outcome is a JSON document.
async fn receive(State(receiver): State<Arc<ReleaseReceiver>>, request: Request) -> Response {
    let mut multipart = match receiver.open_form(request) {
        Ok(multipart) => multipart,
        Err(rejection) => return receiver.reject(rejection),
    };
    let upload = match receiver.receive_form(&mut multipart).await {
        Ok(upload) => upload,
        Err(rejection) => {
            if rejection.drain {
                drain(&mut multipart).await;
            }
            return receiver.reject(rejection);
        }
    };
    drop(multipart);
    // Accepted: finish on a tracked task, so a client hang-up (which drops
    // this future) or a shutdown cannot leave a half-published release.
    let task = receiver.tasks.spawn(receiver.clone().publish(upload));
    match task.await {
        Ok(Ok((status, answer))) => (status, axum::Json(answer)).into_response(),
        Ok(Err(rejection)) => receiver.reject(rejection),
        Err(_) => receiver.reject(Rejection::internal("publishing the release crashed")),
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

/// `FILENAME.status`: what is known about a stored artifact, so an identical
/// re-upload needs neither re-hashing nor a second script run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReleaseStatus {
    md5: String,
    bytes: u64,
    /// `None` until the script has finished (or when there is none): a crash
    /// while it ran leaves `None`, and the next identical upload runs it.
    script: Option<ScriptOutcome>,
}

impl ReleaseStatus {
    fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

/// An error answer: `{"error": "..."}`. The connection is closed afterwards,
/// because the request body may not have been read (and must not be).
#[derive(Debug)]
struct Rejection {
    status: StatusCode,
    message: String,
    /// Read (and discard) the rest of the body before answering. A client
    /// that does not read while it sends (most, ours included) would
    /// otherwise see a reset connection instead of this answer. Off where
    /// reading on is pointless or what we refuse to do (too large, cut off).
    drain: bool,
}

impl Rejection {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            drain: true,
        }
    }

    fn final_answer(mut self) -> Self {
        self.drain = false;
        self
    }

    fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
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

/// Holds a product/version for one upload; released when dropped.
struct VersionLock {
    receiver: Arc<ReleaseReceiver>,
    key: (String, String),
}

impl Drop for VersionLock {
    fn drop(&mut self) {
        if let Ok(mut busy) = self.receiver.busy.lock() {
            busy.remove(&self.key);
        }
    }
}

/// The fields seen so far.
#[derive(Default)]
struct Form {
    product: Option<String>,
    md5: Option<String>,
    meta: BTreeMap<String, String>,
    file: Option<(String, Received)>,
    lock: Option<VersionLock>,
}

impl Form {
    fn set(&mut self, name: String, value: String) -> Result<(), Rejection> {
        let duplicate = || Rejection::unprocessable(format!("field {name:?} is given twice"));
        match name.as_str() {
            FIELD_PRODUCT => {
                if self.product.replace(value).is_some() {
                    return Err(duplicate());
                }
            }
            FIELD_MD5 => {
                let value = value.trim().to_ascii_lowercase();
                if !is_md5_hex(&value) {
                    return Err(Rejection::unprocessable(
                        "the `md5` field is not 32 hex digits",
                    ));
                }
                if self.md5.replace(value).is_some() {
                    return Err(duplicate());
                }
            }
            _ => {
                if !is_valid_meta_key(&name) {
                    return Err(Rejection::unprocessable(meta_key_rule(&name)));
                }
                if !is_valid_meta_value(&value) {
                    return Err(Rejection::unprocessable(format!(
                        "metadata {name:?} contains a NUL byte"
                    )));
                }
                if self.meta.contains_key(&name) {
                    return Err(duplicate());
                }
                self.meta.insert(name, value);
            }
        }
        Ok(())
    }
}

/// A complete, hashed temporary file.
struct Received {
    path: TempPath,
    md5: String,
    bytes: u64,
}

/// A verified upload holding its version lock.
struct Upload {
    product: String,
    version: String,
    file_name: String,
    file: Received,
    meta: BTreeMap<String, String>,
    lock: VersionLock,
}

enum WriterMessage {
    Chunk(Bytes),
    /// The part ended normally: fsync and report. A closed channel without
    /// it means the upload was abandoned.
    Finish,
}

/// The writer thread: hash and write every chunk, start write-back as it
/// goes, fsync at the end. Returns the MD5 (hex) and the byte count.
fn write_and_hash(
    mut file: File,
    mut rx: mpsc::Receiver<WriterMessage>,
) -> io::Result<(String, u64)> {
    let mut hasher = Md5::new();
    let mut written: u64 = 0;
    let mut flushed: u64 = 0;
    while let Some(message) = rx.blocking_recv() {
        match message {
            WriterMessage::Chunk(chunk) => {
                hasher.update(&chunk);
                file.write_all(&chunk)?;
                written += chunk.len() as u64;
                if written - flushed >= WRITEBACK_STEP {
                    start_writeback(&file, flushed, written - flushed);
                    flushed = written;
                }
            }
            WriterMessage::Finish => {
                file.sync_all()?;
                return Ok((release::hex(&hasher.finalize()), written));
            }
        }
    }
    Err(io::Error::other("upload abandoned"))
}

/// Ask the kernel to start writing a range back now (without waiting), so
/// the disk works while the network does and the final fsync is short.
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: the descriptor is open for the whole call (we hold `file`);
    // sync_file_range only reads its arguments. Failure is harmless (the
    // final fsync does the work), so the result is ignored.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

enum FieldError {
    Multipart(multer::Error),
    Rejected(Rejection),
}

/// Read the rest of a rejected form and throw it away (bounded by the
/// stream size limit and the idle timeout).
async fn drain(multipart: &mut multer::Multipart<'static>) {
    while let Ok(Some(mut field)) = multipart.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

/// A metadata field's value, at most `MAX_FIELD_BYTES`, as UTF-8.
async fn read_text(field: &mut multer::Field<'_>, name: &str) -> Result<String, FieldError> {
    let mut value = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(FieldError::Multipart)? {
        if value.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(FieldError::Rejected(Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("field {name:?} is longer than {MAX_FIELD_BYTES} bytes"),
            )));
        }
        value.extend_from_slice(&chunk);
    }
    String::from_utf8(value).map_err(|_| {
        FieldError::Rejected(Rejection::unprocessable(format!(
            "field {name:?} is not UTF-8 text"
        )))
    })
}

/// The request body as a stream that fails with `TimedOut` when the client
/// sends nothing for `idle`.
fn idle_timeout<S>(stream: S, idle: Duration) -> impl Stream<Item = io::Result<Bytes>> + Send
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin + Send,
{
    futures_util::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(stream))),
            Ok(Some(Err(e))) => Some((Err(io::Error::other(e)), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(io::Error::new(io::ErrorKind::TimedOut, "client idle")),
                None,
            )),
        }
    })
}

/// Run file-system work off the async threads; an I/O error is a 500 whose
/// detail goes to the log, not to the client.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, Rejection> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Rejection::internal(format!(
            "storing the release failed: {e}"
        ))),
        Err(_) => Err(Rejection::internal("storing the release crashed")),
    }
}

/// The artifact already stored for a version, if any.
fn existing_release(version_dir: &Path) -> io::Result<Option<String>> {
    let entries = match std::fs::read_dir(version_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".env") || name.ends_with(".status") {
            continue;
        }
        if entry.file_type()?.is_file() {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// What the status file says, or (after a crash before it was written) the
/// stored artifact's hash, with no script outcome; and whether the earlier
/// publication completed (status and .env both there).
fn recorded_status(
    artifact: &Path,
    status_path: &Path,
    env_path: &Path,
) -> io::Result<(ReleaseStatus, bool)> {
    if let Ok(text) = std::fs::read_to_string(status_path) {
        if let Ok(status) = serde_json::from_str::<ReleaseStatus>(&text) {
            return Ok((status, env_path.is_file()));
        }
    }
    let mut file = File::open(artifact)?;
    let mut hasher = Md5::new();
    let bytes = io::copy(&mut file, &mut hasher)?;
    Ok((
        ReleaseStatus {
            md5: release::hex(&hasher.finalize()),
            bytes,
            script: None,
        },
        false,
    ))
}

/// Move the fsynced temporary file to `DIR/PRODUCT/VERSION/FILENAME` and make
/// the new directory entries durable.
fn place_artifact(
    dir: &Path,
    product: &str,
    version: &str,
    temp: TempPath,
    artifact: &Path,
) -> io::Result<()> {
    let product_dir = dir.join(product);
    let version_dir = product_dir.join(version);
    let new_product = !product_dir.exists();
    let new_version = !version_dir.exists();
    std::fs::create_dir_all(&version_dir)?;
    set_mode(&temp, 0o644)?;
    // No-clobber: the lock and the existence check make a collision
    // impossible, but a release must never be overwritten even so.
    temp.persist_noclobber(artifact).map_err(|e| e.error)?;
    sync_dir(&version_dir)?;
    if new_version {
        sync_dir(&product_dir)?;
    }
    if new_product {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Write `path` via a temporary file next to it and a rename, so a reader
/// sees the old content or the new, never half of it.
fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path has no parent directory"))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".rp-tmp-")
        .tempfile_in(dir)?;
    temp.write_all(text.as_bytes())?;
    temp.as_file().sync_all()?;
    set_mode(temp.path(), 0o644)?;
    temp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Remove temporary files a crashed server left in the release directory.
fn remove_leftovers(dir: &Path, log: &Printer) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading release directory {}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) {
            let path = entry.path();
            match std::fs::remove_file(&path) {
                Ok(()) => log.info(format!(
                    "release: removed {} left by an interrupted upload",
                    path.display()
                )),
                Err(e) => log.warn(format!("cannot remove {}: {e}", path.display())),
            }
        }
    }
    Ok(())
}
