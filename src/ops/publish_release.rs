//! Publishing a release that has been received (SPEC §9): the receiver's
//! work after the artifact is on disk, whoever received it.
//!
//! [`Publisher::publish`] checks the upload (product, MD5, required
//! metadata), holds the version's lock, applies the publication rules of
//! `release::publish` (a new version is stored; the same artifact again is
//! a no-op or completes an earlier, failed publication; another artifact is
//! a conflict), then moves the artifact into place atomically, writes its
//! `.env` and `.status` and runs the product's script. It answers with a
//! typed [`Published`] or [`PublishError`]; how those become HTTP statuses
//! is `serve::release`'s business.
//!
//! Guarantees: nothing but finished releases appears under
//! `DIR/PRODUCT/VERSION/`; a refused upload leaves nothing behind (the
//! received file is a `TempPath`, removed when dropped, on every path); one
//! publication per product/version at a time (an in-process lock, which
//! dies with the process, so a crash never leaves a stale lock; leftover
//! temporary files are found by [`Publisher::remove_leftovers`]).
//!
//! Which artifact a version has is what its `.status` file records, never
//! just any file in the directory: a release script may write files next
//! to the artifact (a checksum list, a log), and those must not turn an
//! identical re-upload into a conflict.
//!
//! The release directory may hold product directories that are symbolic
//! links to other file systems: an upload is received into the product's
//! directory when it exists (so the final rename stays on one file system),
//! and copied into the version directory when a rename across file systems
//! is unavoidable.
//!
//! Blocking: call it on a thread that may block (the blocking pool), never
//! from async code.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use md5::{Digest, Md5};
use tempfile::{NamedTempFile, TempPath};

use crate::config::ProductConfig;
use crate::error::UsageError;
use crate::release::publish::{
    ReleasePaths, ReleaseStatus, Reupload, check_file_name, is_artifact_name, missing_metadata,
    reupload,
};
use crate::release::script::{self, ScriptEnvironment, ScriptOutcome, ScriptRun};
use crate::release::{
    self, META_VERSION, ReleaseFacts, is_valid_meta_key, is_valid_name, meta_key_rule, name_rule,
};

/// Prefix of the temporary files uploads are received into.
pub const TEMP_PREFIX: &str = ".rp-upload-";
/// Prefix of the temporary files `.env` and `.status` are written through.
pub const META_TEMP_PREFIX: &str = ".rp-tmp-";

/// The release directory, the products' rules and the version locks.
pub struct Publisher {
    dir: PathBuf,
    products: BTreeMap<String, ProductConfig>,
    /// What release scripts inherit, and the secrets kept out of answers.
    script_env: ScriptEnvironment,
    busy: Arc<Mutex<HashSet<(String, String)>>>,
    on_step: Arc<dyn Fn(&PublishStep<'_>) + Send + Sync>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("dir", &self.dir)
            .field("products", &self.products.keys())
            .finish_non_exhaustive()
    }
}

/// One received artifact to publish.
#[derive(Debug)]
pub struct PublishRequest {
    pub product: String,
    /// The artifact's name, kept in the release directory.
    pub file_name: String,
    pub received: ReceivedFile,
    /// The MD5 (hex) the uploader says the artifact has.
    pub md5: String,
    /// Every metadata field; `version` names the version.
    pub meta: BTreeMap<String, String>,
    /// The version's lock, if the receiver took it before the bytes came
    /// in (so a second upload is refused at once); taken here otherwise.
    pub lock: Option<VersionLock>,
}

/// A complete, fsynced file from [`Publisher::temp_file`], with what was
/// computed while it was written.
#[derive(Debug)]
pub struct ReceivedFile {
    pub path: TempPath,
    pub md5: String,
    pub bytes: u64,
}

/// A publication that happened (or had already happened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub product: String,
    pub version: String,
    pub artifact: PathBuf,
    pub md5: String,
    pub bytes: u64,
    pub kind: Publication,
    /// The last run of the release script (`None` when there is no script,
    /// or it has not finished yet).
    pub script: Option<ScriptOutcome>,
    /// The product has a script and its run failed or timed out: the
    /// artifact is stored, the release is not done.
    pub script_failed: bool,
}

/// What this upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publication {
    /// The version is new: the artifact was stored (and its script run).
    Created,
    /// The same artifact was already published: nothing was done.
    Unchanged,
    /// The same artifact, whose earlier publication had been cut short or
    /// whose script had failed: it was completed, the script run again.
    Completed,
}

/// Why an upload was not published. Nothing was changed.
#[derive(Debug)]
pub enum PublishError {
    UnknownProduct(String),
    /// A product or version that cannot be a directory name, or a file name
    /// that cannot be stored.
    BadName(String),
    Md5Mismatch {
        claimed: String,
        actual: String,
        bytes: u64,
    },
    MissingMetadata {
        product: String,
        fields: Vec<String>,
    },
    /// Another upload of this version is being received or published.
    InProgress {
        product: String,
        version: String,
    },
    /// The version is released under another file name.
    AlreadyReleasedAs {
        product: String,
        version: String,
        file_name: String,
    },
    /// The version is released with other content under this file name.
    DifferentArtifact {
        product: String,
        version: String,
        file_name: String,
        md5: String,
    },
    /// The file system failed us.
    Storage(io::Error),
    Internal(&'static str),
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::UnknownProduct(name) => write!(
                f,
                "unknown product {name:?}: it has no release.products entry on this server"
            ),
            PublishError::BadName(message) => f.write_str(message),
            PublishError::Md5Mismatch {
                claimed,
                actual,
                bytes,
            } => write!(
                f,
                "MD5 mismatch: the form says {claimed}, the received {bytes} bytes have {actual}; nothing was stored"
            ),
            PublishError::MissingMetadata { product, fields } => write!(
                f,
                "missing required metadata for {product}: {}",
                fields.join(", ")
            ),
            PublishError::InProgress { product, version } => {
                write!(f, "another upload of {product} {version} is in progress")
            }
            PublishError::AlreadyReleasedAs {
                product,
                version,
                file_name,
            } => write!(
                f,
                "{product} {version} is already released as {file_name}; a released version cannot change"
            ),
            PublishError::DifferentArtifact {
                product,
                version,
                file_name,
                md5,
            } => write!(
                f,
                "{product} {version} is already released with a different {file_name} (md5 {md5}); a released version cannot change"
            ),
            PublishError::Storage(e) => write!(f, "storing the release failed: {e}"),
            PublishError::Internal(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for PublishError {}

impl From<io::Error> for PublishError {
    fn from(e: io::Error) -> Self {
        PublishError::Storage(e)
    }
}

/// What a publication is doing, as it does it (for the server's log).
#[derive(Debug)]
pub enum PublishStep<'a> {
    Stored {
        artifact: &'a Path,
        bytes: u64,
        md5: &'a str,
    },
    Unchanged {
        product: &'a str,
        version: &'a str,
        file_name: &'a str,
    },
    /// An earlier publication of this artifact failed or was cut short.
    RunningScriptAgain { product: &'a str, version: &'a str },
    ScriptFinished {
        script: &'a Path,
        product: &'a str,
        version: &'a str,
        outcome: &'a ScriptOutcome,
    },
}

/// Where a version stands, for the release status route (SPEC §9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionStatus {
    pub product: String,
    pub version: String,
    /// The stored artifact's file name, MD5 and size, once stored.
    pub file: Option<String>,
    pub md5: Option<String>,
    pub bytes: Option<u64>,
    pub state: VersionState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionState {
    /// Stored, and its script (if any) succeeded: released.
    Published,
    /// An upload of it is being received or published (its script runs).
    InProgress,
    /// Stored, but its script failed, timed out or never finished (or the
    /// publication was cut short): an identical upload completes it.
    ScriptFailed,
}

impl VersionState {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Published => "published",
            VersionState::InProgress => "in-progress",
            VersionState::ScriptFailed => "script-failed",
        }
    }
}

/// Holds a product/version for one upload; released when dropped.
#[derive(Debug)]
pub struct VersionLock {
    busy: Arc<Mutex<HashSet<(String, String)>>>,
    key: (String, String),
}

impl VersionLock {
    fn is_for(&self, product: &str, version: &str) -> bool {
        self.key.0 == product && self.key.1 == version
    }
}

impl Drop for VersionLock {
    fn drop(&mut self) {
        if let Ok(mut busy) = self.busy.lock() {
            busy.remove(&self.key);
        }
    }
}

impl Publisher {
    /// Check the products' rules and prepare the release directory. A
    /// product whose name, script or required keys are wrong is a
    /// configuration error.
    pub fn open(
        dir: PathBuf,
        products: BTreeMap<String, ProductConfig>,
        script_env: ScriptEnvironment,
    ) -> Result<Self> {
        for (name, product) in &products {
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
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating release directory {}", dir.display()))?;
        Ok(Self {
            dir,
            products,
            script_env,
            busy: Arc::default(),
            on_step: Arc::new(|_| {}),
        })
    }

    /// Called at each step of a publication (for the log).
    pub fn on_step(mut self, f: impl Fn(&PublishStep<'_>) + Send + Sync + 'static) -> Self {
        self.on_step = Arc::new(f);
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn products(&self) -> usize {
        self.products.len()
    }

    /// Remove the temporary files an interrupted server left behind, in the
    /// release directory, the product directories (through symbolic links)
    /// and the version directories: each one with the outcome of its
    /// removal.
    pub fn remove_leftovers(&self) -> Result<Vec<(PathBuf, io::Result<()>)>> {
        let mut removed = Vec::new();
        remove_temp_files(&self.dir, &mut removed)
            .with_context(|| format!("reading release directory {}", self.dir.display()))?;
        for product_dir in subdirectories(&self.dir) {
            // Unreadable directories are the next upload's problem, not a
            // reason to refuse to start.
            if remove_temp_files(&product_dir, &mut removed).is_err() {
                continue;
            }
            for version_dir in subdirectories(&product_dir) {
                let _ = remove_temp_files(&version_dir, &mut removed);
            }
        }
        Ok(removed)
    }

    /// A new temporary file to receive an artifact of `product` (when the
    /// form has named it yet) into: in the product's directory when it
    /// exists, which may be a link to another file system, else in the
    /// release directory; either way on the file system the artifact will
    /// live on, so the final rename is atomic. Removed when dropped unless
    /// published.
    pub fn temp_file(&self, product: Option<&str>) -> io::Result<NamedTempFile> {
        let dir = product
            .filter(|p| self.products.contains_key(*p))
            .map(|p| self.dir.join(p))
            .filter(|d| d.is_dir())
            .unwrap_or_else(|| self.dir.clone());
        tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)
    }

    /// The rules of a configured product.
    pub fn product(&self, name: &str) -> Result<&ProductConfig, PublishError> {
        if !is_valid_name(name) {
            return Err(PublishError::BadName(name_rule("product", name)));
        }
        self.products
            .get(name)
            .ok_or_else(|| PublishError::UnknownProduct(name.to_owned()))
    }

    /// Hold `product`/`version` for one upload, or say another one has it.
    pub fn reserve(&self, product: &str, version: &str) -> Result<VersionLock, PublishError> {
        if !is_valid_name(version) {
            return Err(PublishError::BadName(name_rule("version", version)));
        }
        let key = (product.to_owned(), version.to_owned());
        let mut busy = self
            .busy
            .lock()
            .map_err(|_| PublishError::Internal("release lock poisoned"))?;
        if !busy.insert(key.clone()) {
            return Err(PublishError::InProgress {
                product: product.to_owned(),
                version: version.to_owned(),
            });
        }
        Ok(VersionLock {
            busy: self.busy.clone(),
            key,
        })
    }

    /// Where `product`/`version` stands: `None` when there is no trace of it
    /// (nothing stored, no upload under way). Reads the `.status` file, never
    /// the artifact (no hashing: this answers while a script runs).
    pub fn status(
        &self,
        product: &str,
        version: &str,
    ) -> Result<Option<VersionStatus>, PublishError> {
        let has_script = self.product(product)?.script.is_some();
        if !is_valid_name(version) {
            return Err(PublishError::BadName(name_rule("version", version)));
        }
        // The lock first, then the disk: a publication that ends in between
        // reads as in progress, and the client asks again.
        let busy = self
            .busy
            .lock()
            .map_err(|_| PublishError::Internal("release lock poisoned"))?
            .contains(&(product.to_owned(), version.to_owned()));
        let mut status = VersionStatus {
            product: product.to_owned(),
            version: version.to_owned(),
            file: None,
            md5: None,
            bytes: None,
            state: VersionState::InProgress,
        };
        let version_dir = self.dir.join(product).join(version);
        // The published artifact (the one its status file names), whatever
        // else the script left in the directory.
        let Some(file_name) = published_artifact(&version_dir, "")? else {
            return Ok(busy.then_some(status));
        };
        let paths = ReleasePaths::new(&self.dir, product, version, &file_name);
        let recorded = std::fs::read_to_string(&paths.status)
            .ok()
            .and_then(|text| ReleaseStatus::from_json(&text));
        status.bytes = match &recorded {
            Some(recorded) => Some(recorded.bytes),
            None => std::fs::metadata(&paths.artifact).ok().map(|m| m.len()),
        };
        status.md5 = recorded.as_ref().map(|r| r.md5.clone());
        status.file = Some(file_name);
        if !busy {
            let complete = recorded.is_some() && paths.env.is_file();
            status.state = match &recorded {
                Some(r) if reupload(r, complete, &r.md5, has_script) == Reupload::Unchanged => {
                    VersionState::Published
                }
                _ => VersionState::ScriptFailed,
            };
        }
        Ok(Some(status))
    }

    /// Publish a received artifact (see the module docs). Blocks, for as
    /// long as the product's script runs.
    pub fn publish(&self, request: PublishRequest) -> Result<Published, PublishError> {
        let PublishRequest {
            product,
            file_name,
            received,
            md5,
            meta,
            lock,
        } = request;
        let config = self.product(&product)?;
        if !md5.eq_ignore_ascii_case(&received.md5) {
            return Err(PublishError::Md5Mismatch {
                claimed: md5,
                actual: received.md5,
                bytes: received.bytes,
            });
        }
        let missing = missing_metadata(&meta, &config.required);
        if !missing.is_empty() {
            return Err(PublishError::MissingMetadata {
                product,
                fields: missing.into_iter().map(str::to_owned).collect(),
            });
        }
        check_file_name(&file_name).map_err(PublishError::BadName)?;
        let version = meta.get(META_VERSION).cloned().unwrap_or_default();
        let _lock = match lock {
            Some(lock) if lock.is_for(&product, &version) => lock,
            _ => self.reserve(&product, &version)?,
        };
        let paths = ReleasePaths::new(&self.dir, &product, &version, &file_name);
        let has_script = config.script.is_some();

        let (mut status, kind) = match published_artifact(&paths.version_dir, &file_name)? {
            None => {
                let status = ReleaseStatus {
                    file: Some(file_name.clone()),
                    md5: received.md5,
                    bytes: received.bytes,
                    script: None,
                };
                place_artifact(&self.dir, &paths, received.path)?;
                write_atomically(&paths.status, &status.to_json())?;
                (self.on_step)(&PublishStep::Stored {
                    artifact: &paths.artifact,
                    bytes: status.bytes,
                    md5: &status.md5,
                });
                (status, Publication::Created)
            }
            Some(stored) if stored != file_name => {
                return Err(PublishError::AlreadyReleasedAs {
                    product,
                    version,
                    file_name: stored,
                });
            }
            Some(_) => {
                let (mut recorded, complete) = recorded_status(&paths)?;
                recorded.file.get_or_insert_with(|| file_name.clone());
                let kind = match reupload(&recorded, complete, &received.md5, has_script) {
                    Reupload::Conflict => {
                        return Err(PublishError::DifferentArtifact {
                            product,
                            version,
                            file_name,
                            md5: recorded.md5,
                        });
                    }
                    Reupload::Unchanged => Publication::Unchanged,
                    Reupload::Complete => Publication::Completed,
                };
                // The identical copy is not needed: removed here.
                drop(received);
                (recorded, kind)
            }
        };

        if kind == Publication::Unchanged {
            (self.on_step)(&PublishStep::Unchanged {
                product: &product,
                version: &version,
                file_name: &file_name,
            });
        } else {
            let facts = ReleaseFacts {
                product: &product,
                version: &version,
                file: &file_name,
                md5: &status.md5,
            };
            let vars = release::release_variables(&facts, &meta);
            write_atomically(&paths.env, &release::env_file_text(&vars))?;
            if let Some(script_path) = &config.script {
                if kind == Publication::Completed {
                    (self.on_step)(&PublishStep::RunningScriptAgain {
                        product: &product,
                        version: &version,
                    });
                }
                let outcome = script::run_blocking(ScriptRun {
                    script: script_path,
                    artifact: &paths.artifact,
                    env_file: &paths.env,
                    vars: &vars,
                    timeout: config.timeout,
                    environment: &self.script_env,
                });
                (self.on_step)(&PublishStep::ScriptFinished {
                    script: script_path,
                    product: &product,
                    version: &version,
                    outcome: &outcome,
                });
                status.script = Some(outcome);
            }
            if kind == Publication::Completed || has_script {
                write_atomically(&paths.status, &status.to_json())?;
            }
        }

        let script_failed = has_script && status.script.as_ref().is_some_and(|s| !s.succeeded());
        Ok(Published {
            product,
            version,
            artifact: paths.artifact,
            md5: status.md5,
            bytes: status.bytes,
            kind,
            script: status.script,
            script_failed,
        })
    }
}

/// The artifact published for a version, if any: the one a `.status` file
/// records (whatever else a release script wrote next to it), preferring
/// `file_name`. Without any status file (a crash between the rename and
/// writing it, before any script ran) the artifact-like file is taken,
/// `file_name` first.
fn published_artifact(version_dir: &Path, file_name: &str) -> io::Result<Option<String>> {
    let entries = match std::fs::read_dir(version_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut recorded: Vec<String> = Vec::new();
    let mut candidates: Vec<String> = Vec::new();
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(artifact) = name.strip_suffix(".status") {
            if !is_artifact_name(artifact) || !version_dir.join(artifact).is_file() {
                continue;
            }
            let records_it = std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|text| ReleaseStatus::from_json(&text))
                .is_some_and(|status| status.file.as_deref().is_none_or(|f| f == artifact));
            if records_it {
                recorded.push(artifact.to_owned());
            }
        } else if is_artifact_name(&name) {
            candidates.push(name);
        }
    }
    let pick = |mut names: Vec<String>| {
        names.sort();
        if names.iter().any(|n| n == file_name) {
            Some(file_name.to_owned())
        } else {
            names.into_iter().next()
        }
    };
    Ok(if recorded.is_empty() {
        pick(candidates)
    } else {
        pick(recorded)
    })
}

/// The subdirectories of `dir` whose names could be products or versions
/// (symbolic links to directories included), sorted.
fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| is_valid_name(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Remove the upload and metadata temporary files directly in `dir`.
fn remove_temp_files(dir: &Path, removed: &mut Vec<(PathBuf, io::Result<()>)>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_temp = name.starts_with(TEMP_PREFIX) || name.starts_with(META_TEMP_PREFIX);
        if is_temp && entry.file_type().is_ok_and(|t| t.is_file()) {
            let path = entry.path();
            let outcome = std::fs::remove_file(&path);
            removed.push((path, outcome));
        }
    }
    Ok(())
}

/// What the status file says, or (after a crash before it was written) the
/// stored artifact's hash, with no script outcome; and whether the earlier
/// publication completed (status and .env both there).
fn recorded_status(paths: &ReleasePaths) -> io::Result<(ReleaseStatus, bool)> {
    if let Ok(text) = std::fs::read_to_string(&paths.status) {
        if let Some(status) = ReleaseStatus::from_json(&text) {
            return Ok((status, paths.env.is_file()));
        }
    }
    let mut file = File::open(&paths.artifact)?;
    let mut hasher = Md5::new();
    let bytes = io::copy(&mut file, &mut hasher)?;
    Ok((
        ReleaseStatus {
            file: paths
                .artifact
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
            md5: release::hex(&hasher.finalize()),
            bytes,
            script: None,
        },
        false,
    ))
}

/// Move the fsynced temporary file to its place and make the new directory
/// entries durable.
fn place_artifact(dir: &Path, paths: &ReleasePaths, temp: TempPath) -> io::Result<()> {
    let new_product = !paths.product_dir.exists();
    let new_version = !paths.version_dir.exists();
    std::fs::create_dir_all(&paths.version_dir)?;
    set_mode(&temp, 0o644)?;
    // No-clobber: the lock and the existence check make a collision
    // impossible, but a release must never be overwritten even so.
    match temp.persist_noclobber(&paths.artifact) {
        Ok(()) => {}
        Err(e) if e.error.raw_os_error() == Some(libc::EXDEV) => {
            // Received on another file system than the version directory's
            // (a product directory that became a link while the upload
            // streamed in, or a form that named its product after the
            // file): copy it next to its place, then rename there.
            copy_into_place(&e.path, paths)?;
        }
        Err(e) => return Err(e.error),
    }
    sync_dir(&paths.version_dir)?;
    if new_version {
        sync_dir(&paths.product_dir)?;
    }
    if new_product {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Copy `received` into a temporary file in the version directory, make it
/// durable, and rename it to the artifact's name (never over a file).
fn copy_into_place(received: &Path, paths: &ReleasePaths) -> io::Result<()> {
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(&paths.version_dir)?;
    io::copy(&mut File::open(received)?, temp.as_file_mut())?;
    temp.as_file().sync_all()?;
    set_mode(temp.path(), 0o644)?;
    temp.into_temp_path()
        .persist_noclobber(&paths.artifact)
        .map_err(|e| e.error)
}

/// Write `path` via a temporary file next to it and a rename, so a reader
/// sees the old content or the new, never half of it.
fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path has no parent directory"))?;
    let mut temp = tempfile::Builder::new()
        .prefix(META_TEMP_PREFIX)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A publisher over a temporary directory with two products: `app`
    /// (requires `channel`, runs a script that fails while `fail-flag`
    /// exists and counts its runs) and `plain` (no script).
    struct Fixture {
        root: tempfile::TempDir,
        publisher: Publisher,
    }

    impl Fixture {
        fn new() -> Self {
            use std::os::unix::fs::PermissionsExt;
            let root = tempfile::tempdir().unwrap();
            let script = root.path().join("app.sh");
            std::fs::write(
                &script,
                "#!/bin/sh\ndir=$(dirname \"$0\")\necho run >> \"$dir/runs.log\"\n\
                 [ -e \"$dir/fail-flag\" ] && { echo failing; exit 7; }\necho ok\n",
            )
            .unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            // Writes files next to the artifact, as real release scripts do
            // (checksums, a log): many, so that some sort and list before it.
            let writer = root.path().join("writer.sh");
            std::fs::write(
                &writer,
                "#!/bin/sh\ndir=$(dirname \"$1\")\nfor n in 0 1 2 3 4 5 6 7 8 9 a b c d e f; do\n\
                 echo x > \"$dir/$n-extra.txt\"; echo x > \"$dir/zz-$n.txt\"; done\n",
            )
            .unwrap();
            std::fs::set_permissions(&writer, std::fs::Permissions::from_mode(0o755)).unwrap();
            let products = BTreeMap::from([
                (
                    "writer".to_owned(),
                    ProductConfig {
                        required: Vec::new(),
                        script: Some(writer),
                        timeout: Duration::from_secs(20),
                    },
                ),
                (
                    "app".to_owned(),
                    ProductConfig {
                        required: vec!["channel".to_owned()],
                        script: Some(script),
                        timeout: Duration::from_secs(20),
                    },
                ),
                (
                    "plain".to_owned(),
                    ProductConfig {
                        required: Vec::new(),
                        script: None,
                        timeout: Duration::from_secs(20),
                    },
                ),
            ]);
            let publisher = Publisher::open(
                root.path().join("rel"),
                products,
                ScriptEnvironment::default(),
            )
            .unwrap();
            Self { root, publisher }
        }

        /// A received file holding `data`, as the receiver leaves it when
        /// the form did not name the product before the file.
        fn received(&self, data: &[u8]) -> ReceivedFile {
            let temp = self.publisher.temp_file(None).unwrap();
            Self::fill(temp, data)
        }

        fn fill(mut temp: NamedTempFile, data: &[u8]) -> ReceivedFile {
            temp.write_all(data).unwrap();
            ReceivedFile {
                path: temp.into_temp_path(),
                md5: release::hex(&Md5::digest(data)),
                bytes: data.len() as u64,
            }
        }

        fn request(
            &self,
            product: &str,
            file_name: &str,
            data: &[u8],
            meta: &[&str],
        ) -> PublishRequest {
            let received = self.received(data);
            PublishRequest {
                product: product.to_owned(),
                file_name: file_name.to_owned(),
                md5: received.md5.clone(),
                received,
                meta: meta
                    .iter()
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap();
                        (k.to_owned(), v.to_owned())
                    })
                    .collect(),
                lock: None,
            }
        }

        fn publish(
            &self,
            product: &str,
            file_name: &str,
            data: &[u8],
            meta: &[&str],
        ) -> Result<Published, PublishError> {
            self.publisher
                .publish(self.request(product, file_name, data, meta))
        }

        /// Every file under the release dir, relative, sorted.
        fn files(&self) -> Vec<String> {
            fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
                for entry in std::fs::read_dir(dir).unwrap().flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        walk(root, &path, out);
                    } else {
                        out.push(path.strip_prefix(root).unwrap().display().to_string());
                    }
                }
            }
            let mut out = Vec::new();
            walk(self.publisher.dir(), self.publisher.dir(), &mut out);
            out.sort();
            out
        }

        /// The release dir holds `artifact` with its .env and .status, and
        /// nothing else (no temporary file either).
        fn assert_only_release(&self, artifact: &str) {
            let expected = [
                artifact.to_owned(),
                format!("{artifact}.env"),
                format!("{artifact}.status"),
            ];
            assert_eq!(self.files(), expected);
        }

        fn runs(&self) -> usize {
            std::fs::read_to_string(self.root.path().join("runs.log"))
                .map(|t| t.lines().count())
                .unwrap_or(0)
        }
    }

    const APP_META: &[&str] = &["version=1.0", "channel=stable"];

    #[test]
    fn a_new_version_is_stored_with_env_and_status_and_its_script_runs() {
        let fx = Fixture::new();
        let published = fx.publish("app", "app.tgz", b"v1", APP_META).unwrap();
        assert_eq!(published.kind, Publication::Created);
        assert!(!published.script_failed);
        assert_eq!(published.script.as_ref().unwrap().exit_code, Some(0));
        assert_eq!(published.md5, release::hex(&Md5::digest(b"v1")));
        assert_eq!(
            published.artifact,
            fx.publisher.dir().join("app/1.0/app.tgz")
        );
        assert_eq!(std::fs::read(&published.artifact).unwrap(), b"v1");
        fx.assert_only_release("app/1.0/app.tgz");
        let env = std::fs::read_to_string(fx.publisher.dir().join("app/1.0/app.tgz.env")).unwrap();
        assert!(env.lines().any(|l| l == "channel='stable'"), "{env}");
        let status =
            std::fs::read_to_string(fx.publisher.dir().join("app/1.0/app.tgz.status")).unwrap();
        let status = ReleaseStatus::from_json(&status).unwrap();
        assert_eq!(status.md5, published.md5);
        assert!(status.script.unwrap().succeeded());
        assert_eq!(fx.runs(), 1);
    }

    #[test]
    fn the_same_md5_again_changes_nothing_and_runs_nothing() {
        let fx = Fixture::new();
        fx.publish("app", "app.tgz", b"v1", APP_META).unwrap();
        let again = fx.publish("app", "app.tgz", b"v1", APP_META).unwrap();
        assert_eq!(again.kind, Publication::Unchanged);
        assert!(!again.script_failed);
        assert_eq!(fx.runs(), 1);
        fx.assert_only_release("app/1.0/app.tgz");
    }

    #[test]
    fn a_different_artifact_for_a_released_version_is_refused_and_removed() {
        let fx = Fixture::new();
        fx.publish("plain", "p.tgz", b"first", &["version=2"])
            .unwrap();
        let before = fx.files();
        match fx.publish("plain", "p.tgz", b"second", &["version=2"]) {
            Err(PublishError::DifferentArtifact { md5, .. }) => {
                assert_eq!(md5, release::hex(&Md5::digest(b"first")));
            }
            other => panic!("{other:?}"),
        }
        match fx.publish("plain", "other.tgz", b"first", &["version=2"]) {
            Err(PublishError::AlreadyReleasedAs { file_name, .. }) => {
                assert_eq!(file_name, "p.tgz")
            }
            other => panic!("{other:?}"),
        }
        // Neither refused upload left its temporary file; the release is intact.
        assert_eq!(fx.files(), before);
        assert_eq!(
            std::fs::read(fx.publisher.dir().join("plain/2/p.tgz")).unwrap(),
            b"first"
        );
    }

    #[test]
    fn missing_required_fields_are_named_and_nothing_stays() {
        let fx = Fixture::new();
        match fx.publish("app", "a.tgz", b"x", &["channel=beta"]) {
            Err(e @ PublishError::MissingMetadata { .. }) => {
                assert_eq!(e.to_string(), "missing required metadata for app: version");
            }
            other => panic!("{other:?}"),
        }
        match fx.publish("app", "a.tgz", b"x", &[]) {
            Err(PublishError::MissingMetadata { fields, .. }) => {
                assert_eq!(fields, ["channel", "version"])
            }
            other => panic!("{other:?}"),
        }
        assert!(fx.files().is_empty(), "{:?}", fx.files());
        assert_eq!(fx.runs(), 0);
    }

    #[test]
    fn an_md5_mismatch_stores_nothing_and_removes_the_received_file() {
        let fx = Fixture::new();
        let mut request = fx.request("plain", "m.tgz", b"data", &["version=1"]);
        let temp = request.received.path.to_path_buf();
        assert!(temp.is_file());
        request.md5 = "00000000000000000000000000000000".to_owned();
        match fx.publisher.publish(request) {
            Err(e @ PublishError::Md5Mismatch { .. }) => {
                assert!(
                    e.to_string()
                        .starts_with("MD5 mismatch: the form says 0000"),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(!temp.exists());
        assert!(fx.files().is_empty(), "{:?}", fx.files());
    }

    #[test]
    fn a_failed_script_is_run_again_by_an_identical_reupload() {
        let fx = Fixture::new();
        std::fs::write(fx.root.path().join("fail-flag"), "").unwrap();
        let first = fx.publish("app", "app.tgz", b"v1", APP_META).unwrap();
        assert_eq!(first.kind, Publication::Created);
        assert!(first.script_failed);
        assert_eq!(first.script.as_ref().unwrap().exit_code, Some(7));
        // Still failing: run again, still failed.
        let second = fx.publish("app", "app.tgz", b"v1", APP_META).unwrap();
        assert_eq!(
            (second.kind, second.script_failed),
            (Publication::Completed, true)
        );
        std::fs::remove_file(fx.root.path().join("fail-flag")).unwrap();
        let third = fx.publish("app", "app.tgz", b"v1", APP_META).unwrap();
        assert_eq!(
            (third.kind, third.script_failed),
            (Publication::Completed, false)
        );
        let fourth = fx.publish("app", "app.tgz", b"v1", APP_META).unwrap();
        assert_eq!(fourth.kind, Publication::Unchanged);
        assert_eq!(fx.runs(), 3);
    }

    #[test]
    fn a_publication_cut_short_is_completed_by_the_same_artifact() {
        let fx = Fixture::new();
        // What a crash after the rename leaves: the artifact alone.
        let version_dir = fx.publisher.dir().join("app/1.0");
        std::fs::create_dir_all(&version_dir).unwrap();
        std::fs::write(version_dir.join("app.tgz"), b"v1").unwrap();
        let published = fx.publish("app", "app.tgz", b"v1", APP_META).unwrap();
        assert_eq!(published.kind, Publication::Completed);
        assert_eq!(fx.runs(), 1);
        fx.assert_only_release("app/1.0/app.tgz");
    }

    #[test]
    fn one_publication_per_version_at_a_time() {
        let fx = Fixture::new();
        let held = fx.publisher.reserve("plain", "3").unwrap();
        assert!(matches!(
            fx.publisher.reserve("plain", "3"),
            Err(PublishError::InProgress { .. })
        ));
        assert!(matches!(
            fx.publish("plain", "a.tgz", b"a", &["version=3"]),
            Err(PublishError::InProgress { .. })
        ));
        // The holder publishes with its lock; afterwards the version is free.
        let mut request = fx.request("plain", "a.tgz", b"a", &["version=3"]);
        request.lock = Some(held);
        assert_eq!(
            fx.publisher.publish(request).unwrap().kind,
            Publication::Created
        );
        assert_eq!(
            fx.publish("plain", "a.tgz", b"a", &["version=3"])
                .unwrap()
                .kind,
            Publication::Unchanged
        );
        assert!(fx.files().iter().all(|f| !f.contains(TEMP_PREFIX)));
    }

    #[test]
    fn unknown_products_and_bad_names_are_refused() {
        let fx = Fixture::new();
        assert!(matches!(
            fx.publish("nope", "a.tgz", b"a", &["version=1"]),
            Err(PublishError::UnknownProduct(_))
        ));
        assert!(matches!(
            fx.publish("plain", "a.tgz", b"a", &["version=../1"]),
            Err(PublishError::BadName(_))
        ));
        assert!(matches!(
            fx.publish("plain", "a.env", b"a", &["version=1"]),
            Err(PublishError::BadName(_))
        ));
        assert!(fx.files().is_empty(), "{:?}", fx.files());
    }

    #[test]
    fn the_status_of_a_version_follows_its_publication() {
        let fx = Fixture::new();
        let state = |product: &str, version: &str| {
            fx.publisher
                .status(product, version)
                .unwrap()
                .map(|s| s.state)
        };
        assert_eq!(state("app", "1.0"), None);
        // Held by an upload still arriving: in progress, nothing known yet.
        let held = fx.publisher.reserve("app", "1.0").unwrap();
        let status = fx.publisher.status("app", "1.0").unwrap().unwrap();
        assert_eq!(status.state, VersionState::InProgress);
        assert_eq!(status.md5, None);
        drop(held);

        let published = fx.publish("app", "app.tgz", b"v1", APP_META).unwrap();
        let status = fx.publisher.status("app", "1.0").unwrap().unwrap();
        assert_eq!(
            status,
            VersionStatus {
                product: "app".into(),
                version: "1.0".into(),
                file: Some("app.tgz".into()),
                md5: Some(published.md5.clone()),
                bytes: Some(2),
                state: VersionState::Published,
            }
        );
        // Its script failing: script-failed, until an identical upload runs
        // it again successfully.
        std::fs::write(fx.root.path().join("fail-flag"), "").unwrap();
        fx.publish("app", "b.tgz", b"v2", &["version=2.0", "channel=x"])
            .unwrap();
        assert_eq!(state("app", "2.0"), Some(VersionState::ScriptFailed));
        // A publication cut short before its .status: script-failed, no md5
        // (the artifact is not hashed to answer).
        let version_dir = fx.publisher.dir().join("plain/7");
        std::fs::create_dir_all(&version_dir).unwrap();
        std::fs::write(version_dir.join("p.tgz"), b"abc").unwrap();
        let status = fx.publisher.status("plain", "7").unwrap().unwrap();
        assert_eq!(
            (status.state, status.md5, status.bytes),
            (VersionState::ScriptFailed, None, Some(3))
        );
        assert!(matches!(
            fx.publisher.status("nope", "1"),
            Err(PublishError::UnknownProduct(_))
        ));
        assert!(matches!(
            fx.publisher.status("app", "../1"),
            Err(PublishError::BadName(_))
        ));
    }

    #[test]
    fn leftovers_of_an_interrupted_server_are_removed() {
        let fx = Fixture::new();
        fx.publish("plain", "p.tgz", b"one", &["version=1"])
            .unwrap();
        let leftover = fx
            .publisher
            .temp_file(None)
            .unwrap()
            .into_temp_path()
            .keep()
            .unwrap();
        // An upload received in its product's directory, and a `.env` or
        // `.status` cut short in a version directory.
        let in_product = fx
            .publisher
            .temp_file(Some("plain"))
            .unwrap()
            .into_temp_path()
            .keep()
            .unwrap();
        assert_eq!(
            in_product.parent(),
            Some(fx.publisher.dir().join("plain").as_path())
        );
        let version_dir = fx.publisher.dir().join("plain/1");
        let meta = version_dir.join(format!("{META_TEMP_PREFIX}abc123"));
        std::fs::write(&meta, "half").unwrap();
        let removed = fx.publisher.remove_leftovers().unwrap();
        let mut paths: Vec<&Path> = removed.iter().map(|(p, _)| p.as_path()).collect();
        paths.sort();
        let mut expected = vec![leftover.as_path(), in_product.as_path(), meta.as_path()];
        expected.sort();
        assert_eq!(paths, expected);
        assert!(removed.iter().all(|(_, r)| r.is_ok()));
        assert!(!leftover.exists() && !in_product.exists() && !meta.exists());
        fx.assert_only_release("plain/1/p.tgz");
    }

    #[test]
    fn files_the_script_writes_next_to_the_artifact_never_make_a_reupload_conflict() {
        let fx = Fixture::new();
        let first = fx
            .publish("writer", "w.tgz", b"w1", &["version=1"])
            .unwrap();
        assert_eq!(first.kind, Publication::Created);
        assert!(!first.script_failed, "{:?}", first.script);
        let version_dir = fx.publisher.dir().join("writer/1");
        assert!(version_dir.join("0-extra.txt").is_file());
        // The same artifact again: unchanged, whatever else is there.
        let again = fx
            .publish("writer", "w.tgz", b"w1", &["version=1"])
            .unwrap();
        assert_eq!(again.kind, Publication::Unchanged);
        // Another name is refused naming the published artifact, and other
        // bytes are a conflict about it.
        match fx.publish("writer", "other.tgz", b"w1", &["version=1"]) {
            Err(PublishError::AlreadyReleasedAs { file_name, .. }) => {
                assert_eq!(file_name, "w.tgz")
            }
            other => panic!("{other:?}"),
        }
        match fx.publish("writer", "w.tgz", b"w2", &["version=1"]) {
            Err(PublishError::DifferentArtifact { file_name, .. }) => {
                assert_eq!(file_name, "w.tgz")
            }
            other => panic!("{other:?}"),
        }
        let status = std::fs::read_to_string(version_dir.join("w.tgz.status")).unwrap();
        let status = ReleaseStatus::from_json(&status).unwrap();
        assert_eq!(status.file.as_deref(), Some("w.tgz"));
    }

    /// A directory on another file system than the test's temporary
    /// directory (`/dev/shm` is a tmpfs on Linux).
    fn other_file_system(than: &Path) -> tempfile::TempDir {
        use std::os::unix::fs::MetadataExt;
        let other = tempfile::tempdir_in("/dev/shm").expect("a tmpfs at /dev/shm");
        assert_ne!(
            std::fs::metadata(other.path()).unwrap().dev(),
            std::fs::metadata(than).unwrap().dev(),
            "/dev/shm must be another file system than {}",
            than.display()
        );
        other
    }

    #[test]
    fn a_product_directory_linked_to_another_file_system_works() {
        let fx = Fixture::new();
        let elsewhere = other_file_system(fx.root.path());
        let target = elsewhere.path().join("plain");
        std::fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(&target, fx.publisher.dir().join("plain")).unwrap();

        // Received where the product lives: on the target's file system.
        let temp = fx.publisher.temp_file(Some("plain")).unwrap();
        assert_eq!(
            std::fs::canonicalize(temp.path().parent().unwrap()).unwrap(),
            std::fs::canonicalize(&target).unwrap()
        );
        let received = Fixture::fill(temp, b"linked");
        let published = fx
            .publisher
            .publish(PublishRequest {
                product: "plain".to_owned(),
                file_name: "l.tgz".to_owned(),
                md5: received.md5.clone(),
                received,
                meta: BTreeMap::from([("version".to_owned(), "1".to_owned())]),
                lock: None,
            })
            .unwrap();
        assert_eq!(published.kind, Publication::Created);
        assert_eq!(std::fs::read(target.join("1/l.tgz")).unwrap(), b"linked");

        // Received in the release directory (the form named the product
        // after the file): copied across, nothing left behind.
        let published = fx
            .publish("plain", "l.tgz", b"other-fs", &["version=2"])
            .unwrap();
        assert_eq!(published.kind, Publication::Created);
        assert_eq!(std::fs::read(target.join("2/l.tgz")).unwrap(), b"other-fs");
        let mut left: Vec<String> = std::fs::read_dir(fx.publisher.dir())
            .unwrap()
            .chain(std::fs::read_dir(target.join("2")).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["l.tgz", "l.tgz.env", "l.tgz.status", "plain"]);
    }
}
