//! Uploading a release artifact to a release receiver (SPEC §9): check what
//! can be checked before sending, then send with bounded retries.
//!
//! The wire format (the multipart body read once, the MD5 after the file) is
//! `release::upload`; the wait between attempts is the policy every HTTP
//! client shares (`http::retry`). Retried: connection failures and 502, 503
//! and 504 (a proxy in front of the receiver restarting); any other answer
//! is final and returned as it came, for the caller to render.
//!
//! Errors speak of the upload, never of command-line flags: the CLI adds
//! those hints.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::http::RetryPolicy;
use crate::output::Progress;
use crate::release::upload::{
    Answer, Attempt, BadUrl, MetaProblem, SendError, check_meta, endpoint, is_retryable_status,
};
use crate::release::{is_valid_name, name_rule};
use crate::settings::Secret;

/// Attempts in all: the first one plus three retries.
pub const ATTEMPTS: u32 = 4;

/// One artifact to upload.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    /// The receiver's base URL (its route may be included).
    pub url: String,
    pub product: String,
    /// Every metadata field; `version` is required.
    pub meta: BTreeMap<String, String>,
    pub file: PathBuf,
    /// Needed to send; a plan ([`UploadRequest::plan`]) does without.
    pub secret: Option<Secret>,
}

/// A checked request: where it goes and what it sends. What a dry run shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPlan {
    pub endpoint: String,
    /// The artifact's file name, which the receiver keeps.
    pub file_name: String,
    pub bytes: u64,
}

/// What the receiver answered, once it answered something final.
#[derive(Debug, Clone)]
pub struct UploadOutcome {
    pub status: u16,
    /// The receiver's JSON answer (a non-JSON body is `{"error": text}`).
    pub answer: Value,
    pub verdict: Verdict,
}

/// What the answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 201: stored now (and its script, if any, succeeded).
    Released,
    /// Another 2xx: this very artifact was already released (or, from
    /// something that is not our receiver, an answer without a release).
    AlreadyReleased,
    /// An error status with a release in the answer: the artifact is stored
    /// but its script failed or timed out (the answer has its output).
    ScriptFailed,
    /// Any other error status: nothing was released; `error` says why.
    Refused,
}

impl UploadOutcome {
    fn new(answer: Answer) -> Self {
        let is_release = answer.json.get("md5").is_some();
        let verdict = match (answer.status, is_release) {
            (201, _) => Verdict::Released,
            (200..=299, _) => Verdict::AlreadyReleased,
            (_, true) => Verdict::ScriptFailed,
            (_, false) => Verdict::Refused,
        };
        Self {
            status: answer.status,
            answer: answer.json,
            verdict,
        }
    }

    /// Whether the answer describes a stored release (it has its MD5).
    pub fn is_release(&self) -> bool {
        self.answer.get("md5").is_some()
    }

    /// Whether the upload did what was asked.
    pub fn succeeded(&self) -> bool {
        matches!(self.verdict, Verdict::Released | Verdict::AlreadyReleased)
    }

    /// What went wrong, for an outcome that did not succeed: the status and
    /// the receiver's `error` message.
    pub fn failure(&self) -> String {
        let message = match (
            self.answer.get("error").and_then(Value::as_str),
            self.verdict,
        ) {
            (Some(message), _) => message,
            (None, Verdict::ScriptFailed) => {
                "the artifact was stored, but the release script failed or timed out"
            }
            (None, _) => "no message",
        };
        format!("the receiver answered HTTP {}: {message}", self.status)
    }
}

/// Why nothing (or nothing final) came back.
#[derive(Debug)]
pub enum UploadError {
    BadUrl(BadUrl),
    BadProduct(String),
    /// The artifact's file name cannot be a file name on the receiver.
    BadFileName(String),
    BadMeta(MetaProblem),
    NotAFile(PathBuf),
    /// Reading the artifact failed (no point retrying).
    Read {
        path: PathBuf,
        source: io::Error,
    },
    NoSecret,
    /// Every attempt failed to get a final answer.
    Unreachable {
        endpoint: String,
        attempts: u32,
        last_failure: String,
    },
}

impl std::fmt::Display for UploadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadError::BadUrl(e) => e.fmt(f),
            UploadError::BadProduct(name) => f.write_str(&name_rule("product", name)),
            UploadError::BadFileName(name) => f.write_str(&name_rule("file name", name)),
            UploadError::BadMeta(e) => e.fmt(f),
            UploadError::NotAFile(path) => write!(f, "{} is not a file", path.display()),
            UploadError::Read { path, .. } => write!(f, "reading {}", path.display()),
            UploadError::NoSecret => f.write_str("no release secret"),
            UploadError::Unreachable {
                endpoint,
                attempts,
                last_failure,
            } => write!(
                f,
                "upload to {endpoint} failed after {attempts} attempts: {last_failure}"
            ),
        }
    }
}

impl std::error::Error for UploadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UploadError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What the caller hears while an upload runs.
pub trait UploadEvents {
    /// The request checked out; sending starts.
    fn starting(&self, request: &UploadRequest, plan: &UploadPlan);
    /// An attempt starts sending `bytes` of `file_name`: count them here.
    fn sending(&self, file_name: &str, bytes: u64) -> Progress;
    /// Attempt `failed` of `of` got no final answer (`reason`); the next
    /// starts after `delay`.
    fn retrying(&self, failed: u32, of: u32, reason: &str, delay: Duration);
}

impl UploadRequest {
    /// Everything that can be checked without sending, in the order a user
    /// fixes them: the URL, the names, the metadata, the file.
    pub fn plan(&self) -> Result<UploadPlan, UploadError> {
        let endpoint = endpoint(&self.url).map_err(UploadError::BadUrl)?;
        if !is_valid_name(&self.product) {
            return Err(UploadError::BadProduct(self.product.clone()));
        }
        let file_name = file_name(&self.file);
        if !is_valid_name(&file_name) {
            return Err(UploadError::BadFileName(file_name));
        }
        check_meta(&self.meta).map_err(UploadError::BadMeta)?;
        let metadata = std::fs::metadata(&self.file).map_err(|source| UploadError::Read {
            path: self.file.clone(),
            source,
        })?;
        if !metadata.is_file() {
            return Err(UploadError::NotAFile(self.file.clone()));
        }
        Ok(UploadPlan {
            endpoint,
            file_name,
            bytes: metadata.len(),
        })
    }
}

/// Upload `request`: check it, send it, retry connection failures and
/// 502/503/504 with the shared backoff (a server's `Retry-After` is honoured,
/// up to `retry.max_delay`), and return the first final answer.
pub fn upload(
    request: &UploadRequest,
    retry: &RetryPolicy,
    events: &dyn UploadEvents,
) -> Result<UploadOutcome, UploadError> {
    let plan = request.plan()?;
    let secret = request.secret.as_ref().ok_or(UploadError::NoSecret)?;
    events.starting(request, &plan);
    let attempt = Attempt {
        url: &plan.endpoint,
        secret,
        product: &request.product,
        meta: &request.meta,
        file: &request.file,
        file_name: &plan.file_name,
    };
    let mut failure = String::new();
    for n in 1..=ATTEMPTS {
        let progress = events.sending(&plan.file_name, plan.bytes);
        let result = attempt.send(&progress);
        progress.finish();
        let server_wait = match result {
            Ok(answer) if is_retryable_status(answer.status) && n < ATTEMPTS => {
                failure = format!(
                    "HTTP {}{}",
                    answer.status,
                    answer
                        .error_message()
                        .filter(|m| !m.is_empty())
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                );
                answer.retry_after
            }
            Ok(answer) => return Ok(UploadOutcome::new(answer)),
            Err(SendError::File(source)) => {
                return Err(UploadError::Read {
                    path: request.file.clone(),
                    source,
                });
            }
            Err(SendError::Transport(e)) => {
                failure = e;
                None
            }
        };
        if n < ATTEMPTS {
            // No total budget here, unlike the GitLab client: the upload
            // itself may rightly take longer than any budget.
            let delay = retry.delay(n, server_wait).min(retry.max_delay);
            events.retrying(n, ATTEMPTS, &failure, delay);
            std::thread::sleep(delay);
        }
    }
    Err(UploadError::Unreachable {
        endpoint: plan.endpoint,
        attempts: ATTEMPTS,
        last_failure: failure,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(dir: &Path) -> UploadRequest {
        let file = dir.join("rp-1.0.tgz");
        std::fs::write(&file, b"artifact").unwrap();
        UploadRequest {
            url: "http://127.0.0.1:9/".to_owned(),
            product: "rp".to_owned(),
            meta: BTreeMap::from([("version".to_owned(), "1.0".to_owned())]),
            file,
            secret: None,
        }
    }

    #[test]
    fn a_plan_checks_everything_before_sending() {
        let dir = tempfile::tempdir().unwrap();
        let ok = request(dir.path());
        assert_eq!(
            ok.plan().unwrap(),
            UploadPlan {
                endpoint: "http://127.0.0.1:9/api/v1/releases".to_owned(),
                file_name: "rp-1.0.tgz".to_owned(),
                bytes: 8,
            }
        );
        let mut bad = ok.clone();
        bad.product = "../rp".to_owned();
        assert!(matches!(bad.plan(), Err(UploadError::BadProduct(_))));
        let mut bad = ok.clone();
        bad.meta.clear();
        assert!(matches!(
            bad.plan(),
            Err(UploadError::BadMeta(MetaProblem::NoVersion))
        ));
        let mut bad = ok.clone();
        bad.file = dir.path().join("dist");
        std::fs::create_dir(&bad.file).unwrap();
        assert!(matches!(bad.plan(), Err(UploadError::NotAFile(_))));
        let mut bad = ok.clone();
        bad.file = dir.path().join("missing.tgz");
        assert!(matches!(bad.plan(), Err(UploadError::Read { .. })));
        let mut bad = ok;
        bad.url = "ftp://x".to_owned();
        assert!(matches!(bad.plan(), Err(UploadError::BadUrl(_))));
    }

    #[test]
    fn verdicts() {
        let verdict = |status, json: Value| {
            UploadOutcome::new(Answer {
                status,
                json,
                retry_after: None,
            })
            .verdict
        };
        let release = serde_json::json!({"md5": "x"});
        assert_eq!(verdict(201, release.clone()), Verdict::Released);
        assert_eq!(verdict(200, release.clone()), Verdict::AlreadyReleased);
        assert_eq!(verdict(500, release), Verdict::ScriptFailed);
        assert_eq!(
            verdict(409, serde_json::json!({"error": "no"})),
            Verdict::Refused
        );
    }
}
