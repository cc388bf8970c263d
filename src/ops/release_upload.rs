//! Uploading a release artifact to a release receiver (SPEC §9): check what
//! can be checked before sending, then send with bounded retries, never
//! sending an artifact again that the receiver may already have.
//!
//! The wire format (the multipart body read once, the MD5 after the file) is
//! `release::upload`; the wait between attempts is the policy every HTTP
//! client shares (`http::retry`). Retried: connection failures and 502, 503
//! and 504 (a proxy in front of the receiver restarting) that come *before*
//! the whole body was sent. After the whole body was sent, such a failure
//! says nothing about the outcome (a proxy gives up with a 504 while the
//! release script runs): the receiver's status route is asked instead, and
//! the upload is settled from what it says: published with the same MD5
//! (done), still in progress (wait, bounded), its script failed, released
//! with other bytes, or no trace of it (only then is it sent again). Any
//! other answer is final and returned as it came, for the caller to render.
//!
//! Errors speak of the upload, never of command-line flags: the CLI adds
//! those hints.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::RetryPolicy;
use crate::output::Progress;
use crate::release::upload::{
    self, Answer, Attempt, BadUrl, MetaProblem, SendError, check_meta, endpoint,
    is_retryable_status, query_status, status_url,
};
use crate::release::{META_VERSION, is_valid_name, name_rule};
use crate::settings::Secret;

/// Attempts in all: the first one plus three retries.
pub const ATTEMPTS: u32 = 4;

/// How long to wait, by default, for a publication the receiver reports in
/// progress (longer than the default script timeout, 15 minutes).
pub const DEFAULT_STATUS_WAIT: Duration = Duration::from_secs(20 * 60);

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
    /// Which certificates an https:// receiver may have (the shared trust
    /// store's configuration).
    pub tls: ureq::tls::TlsConfig,
    /// How long to wait for a publication the receiver reports in progress.
    pub status_wait: Duration,
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
    /// The receiver's JSON answer (a non-JSON body is `{"error": summary}`);
    /// for a [`Verdict::Confirmed`] upload, its status document.
    pub answer: Value,
    pub verdict: Verdict,
    /// The proxy that answered instead of the receiver (its `Server`
    /// header, or "a proxy").
    pub proxy: Option<String>,
    /// When the outcome was learnt from the status route: the failure that
    /// lost the upload's own answer (`HTTP 504 from nginx/1.22.1: ...`).
    pub lost_answer: Option<String>,
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
    /// The upload's own answer was lost after the whole artifact was sent;
    /// the receiver's status route says it is published with this MD5.
    Confirmed,
    /// Any other error status: nothing was released; `error` says why.
    Refused,
}

impl UploadOutcome {
    fn new(answer: Answer) -> Self {
        let is_release = answer.from_receiver && answer.json.get("md5").is_some();
        let verdict = match (answer.status, is_release) {
            (201, _) => Verdict::Released,
            (200..=299, _) => Verdict::AlreadyReleased,
            (_, true) => Verdict::ScriptFailed,
            (_, false) => Verdict::Refused,
        };
        Self {
            status: answer.status,
            proxy: answer.proxy().map(str::to_owned),
            answer: answer.json,
            verdict,
            lost_answer: None,
        }
    }

    /// Whether the answer describes a stored release (it has its MD5).
    pub fn is_release(&self) -> bool {
        self.verdict != Verdict::Refused && self.answer.get("md5").is_some()
    }

    /// Whether the upload did what was asked.
    pub fn succeeded(&self) -> bool {
        matches!(
            self.verdict,
            Verdict::Released | Verdict::AlreadyReleased | Verdict::Confirmed
        )
    }

    /// What went wrong, for an outcome that did not succeed: the status, who
    /// answered when it was a proxy, and the `error` message.
    pub fn failure(&self) -> String {
        let message = match (
            self.answer
                .get("error")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty()),
            self.verdict,
        ) {
            (Some(message), _) => message,
            (None, Verdict::ScriptFailed) => {
                "the artifact was stored, but the release script failed or timed out"
            }
            (None, _) => "no message",
        };
        let who = match &self.proxy {
            Some(proxy) => format!("{proxy} answered instead of the receiver:"),
            None => "the receiver answered".to_owned(),
        };
        let lost = match &self.lost_answer {
            Some(lost) => format!(" (the upload's own answer was lost: {lost})"),
            None => String::new(),
        };
        format!("{who} HTTP {}: {message}{lost}", self.status)
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
    /// The receiver's certificate was refused (not trusted, expired, for
    /// another name).
    Tls {
        endpoint: String,
        message: String,
    },
    /// Every attempt failed to get a final answer.
    Unreachable {
        endpoint: String,
        attempts: u32,
        last_failure: String,
    },
    /// The whole artifact was sent, its answer was lost (`lost`), and the
    /// receiver could not say what became of it (`why`).
    OutcomeUnknown {
        endpoint: String,
        lost: String,
        why: String,
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
            UploadError::Tls { endpoint, message } => {
                write!(f, "TLS with {endpoint} failed: {message}")
            }
            UploadError::OutcomeUnknown {
                endpoint,
                lost,
                why,
            } => write!(
                f,
                "the artifact was sent to {endpoint} but its answer was lost ({lost}), \
                 and the receiver could not say whether it was released: {why}"
            ),
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
    /// The whole artifact was sent but its answer was lost (`lost`): the
    /// receiver's status route is asked what became of it.
    fn settling(&self, lost: &str);
    /// The receiver is still publishing it; asked again after `delay`.
    fn still_in_progress(&self, waited: Duration, delay: Duration);
    /// The receiver has no trace of the upload: it will be sent again.
    fn no_trace(&self);
    /// The connection broke while the artifact was being sent (`reason`):
    /// the receiver is asked whether it refuses the upload at all.
    fn broken_while_sending(&self, reason: &str);
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
/// up to `retry.max_delay`), settle a lost answer through the status route,
/// and return the first final answer.
pub fn upload(
    request: &UploadRequest,
    retry: &RetryPolicy,
    events: &dyn UploadEvents,
) -> Result<UploadOutcome, UploadError> {
    let plan = request.plan()?;
    let secret = request.secret.as_ref().ok_or(UploadError::NoSecret)?;
    events.starting(request, &plan);
    let agent = upload::agent(request.tls.clone());
    let attempt = Attempt {
        agent: &agent,
        url: &plan.endpoint,
        secret,
        product: &request.product,
        meta: &request.meta,
        file: &request.file,
        file_name: &plan.file_name,
    };
    let version = request.meta.get(META_VERSION).map_or("", String::as_str);
    let status = StatusCheck {
        agent: &agent,
        url: status_url(&plan.endpoint, &request.product, version),
        secret,
        wait: request.status_wait,
        events,
    };
    let mut failure = String::new();
    // A body sent whole whose answer was lost: its MD5 and what lost it.
    let mut unsettled: Option<Unsettled> = None;
    for n in 1..=ATTEMPTS {
        let mut server_wait = None;
        if let Some(sent) = &unsettled {
            match status.settle(sent) {
                Settled::Done(outcome) => return Ok(*outcome),
                Settled::GaveUp(why) => return Err(sent.unknown(&plan.endpoint, why)),
                Settled::NoTrace => unsettled = None,
                Settled::Unanswered(why, wait) => {
                    failure = why;
                    server_wait = wait;
                }
            }
        }
        if unsettled.is_none() {
            let progress = events.sending(&plan.file_name, plan.bytes);
            let result = attempt.send(&progress);
            progress.finish();
            server_wait = match result {
                Ok(answer) if is_retryable_status(answer.status) => {
                    failure = answer.line();
                    match &answer.sent {
                        Some(md5) => {
                            unsettled = Some(Unsettled {
                                md5: md5.clone(),
                                lost: failure.clone(),
                            });
                        }
                        // The last attempt's gateway error is the answer.
                        None if n == ATTEMPTS => return Ok(UploadOutcome::new(answer)),
                        None => {}
                    }
                    answer.retry_after
                }
                Ok(answer) => return Ok(UploadOutcome::new(answer)),
                Err(SendError::File(source)) => {
                    return Err(UploadError::Read {
                        path: request.file.clone(),
                        source,
                    });
                }
                Err(SendError::Tls(message)) => {
                    return Err(UploadError::Tls {
                        endpoint: plan.endpoint,
                        message,
                    });
                }
                Err(SendError::Transport {
                    message,
                    sent,
                    started,
                }) => {
                    failure = message;
                    if let Some(md5) = sent {
                        unsettled = Some(Unsettled {
                            md5,
                            lost: failure.clone(),
                        });
                    } else if started {
                        // Broken while sending: a proxy that hangs up after
                        // relaying an early refusal (Go's, like Caddy's,
                        // does) looks just like this. Ask the receiver
                        // whether it would take the upload at all before
                        // sending it again.
                        events.broken_while_sending(&failure);
                        if let Some(refusal) = status.would_refuse(plan.bytes) {
                            return Ok(refusal);
                        }
                    }
                    None
                }
            };
        }
        if n < ATTEMPTS {
            // No total budget here, unlike the GitLab client: the upload
            // itself may rightly take longer than any budget.
            let delay = retry.delay(n, server_wait).min(retry.max_delay);
            events.retrying(n, ATTEMPTS, &failure, delay);
            std::thread::sleep(delay);
        }
    }
    if let Some(sent) = unsettled {
        // The last attempt sent everything: one more look before giving up.
        return match status.settle(&sent) {
            Settled::Done(outcome) => Ok(*outcome),
            Settled::NoTrace => Err(UploadError::Unreachable {
                endpoint: plan.endpoint,
                attempts: ATTEMPTS,
                last_failure: format!("{failure}; the receiver has no trace of the upload"),
            }),
            Settled::GaveUp(why) | Settled::Unanswered(why, _) => {
                Err(sent.unknown(&plan.endpoint, why))
            }
        };
    }
    Err(UploadError::Unreachable {
        endpoint: plan.endpoint,
        attempts: ATTEMPTS,
        last_failure: failure,
    })
}

/// An artifact sent whole whose answer was lost.
struct Unsettled {
    md5: String,
    /// What lost the answer (`HTTP 504 from nginx/1.22.1: ...`).
    lost: String,
}

impl Unsettled {
    fn unknown(&self, endpoint: &str, why: String) -> UploadError {
        UploadError::OutcomeUnknown {
            endpoint: endpoint.to_owned(),
            lost: self.lost.clone(),
            why,
        }
    }
}

/// What the status route said about an unsettled upload.
enum Settled {
    /// The outcome is known.
    Done(Box<UploadOutcome>),
    /// The receiver has no trace of it: send it again.
    NoTrace,
    /// The status route did not answer (the receiver restarting behind its
    /// proxy): ask again on the next attempt, after the server's wait.
    Unanswered(String, Option<Duration>),
    /// Still in progress after the whole wait.
    GaveUp(String),
}

/// Asking the receiver's status route about one version.
struct StatusCheck<'a> {
    agent: &'a ureq::Agent,
    url: String,
    secret: &'a Secret,
    wait: Duration,
    events: &'a dyn UploadEvents,
}

impl StatusCheck<'_> {
    /// The receiver's refusal of an upload of `bytes` (wrong secret,
    /// unknown product, bad name, too large), if it would refuse it.
    fn would_refuse(&self, bytes: u64) -> Option<UploadOutcome> {
        let answer = query_status(self.agent, &self.url, self.secret, Some(bytes)).ok()?;
        answer.is_refusal().then(|| UploadOutcome::new(answer))
    }

    fn settle(&self, sent: &Unsettled) -> Settled {
        self.events.settling(&sent.lost);
        let started = Instant::now();
        let mut delay = Duration::from_secs(1);
        loop {
            let answer = match query_status(self.agent, &self.url, self.secret, None) {
                Ok(answer) => answer,
                Err(e) => return Settled::Unanswered(format!("asking {}: {e}", self.url), None),
            };
            if answer.is_no_trace() {
                self.events.no_trace();
                return Settled::NoTrace;
            }
            if answer.is_refusal() {
                // The receiver refuses the upload itself (a wrong secret):
                // that is what its lost answer said too.
                let mut outcome = UploadOutcome::new(answer);
                outcome.lost_answer = Some(sent.lost.clone());
                return Settled::Done(Box::new(outcome));
            }
            if answer.status != 200 || !answer.from_receiver {
                let why = format!("asking {}: {}", self.url, answer.line());
                return Settled::Unanswered(why, answer.retry_after);
            }
            let state = answer.json.get("state").and_then(Value::as_str);
            let md5 = answer.json.get("md5").and_then(Value::as_str);
            let same = md5.is_some_and(|m| m.eq_ignore_ascii_case(&sent.md5));
            let outcome = |status: u16, verdict: Verdict, error: Option<String>| {
                let mut json = answer.json.clone();
                if let (Some(error), Some(object)) = (error, json.as_object_mut()) {
                    object.insert("error".to_owned(), Value::String(error));
                }
                Settled::Done(Box::new(UploadOutcome {
                    status,
                    answer: json,
                    verdict,
                    proxy: None,
                    lost_answer: Some(sent.lost.clone()),
                }))
            };
            let name = || {
                let field = |k: &str| answer.json.get(k).and_then(Value::as_str).unwrap_or("?");
                format!("{} {}", field("product"), field("version"))
            };
            match state {
                Some("published") if same => return outcome(200, Verdict::Confirmed, None),
                Some("published" | "script-failed") if md5.is_some() && !same => {
                    let error = format!(
                        "{} is already released with another artifact (md5 {}); a released \
                         version cannot change",
                        name(),
                        md5.unwrap_or("?")
                    );
                    return outcome(409, Verdict::Refused, Some(error));
                }
                Some("script-failed") => {
                    let error = format!(
                        "{} was stored, but its release script failed, timed out or did not \
                         finish (the receiver's log has its output)",
                        name()
                    );
                    return outcome(500, Verdict::ScriptFailed, Some(error));
                }
                Some("in-progress") => {
                    let waited = started.elapsed();
                    if waited + delay > self.wait {
                        return Settled::GaveUp(format!(
                            "{} was still being published after {}",
                            name(),
                            humantime::format_duration(Duration::from_secs(waited.as_secs()))
                        ));
                    }
                    self.events.still_in_progress(waited, delay);
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                _ => {
                    return Settled::Unanswered(
                        format!("{} answered an unknown state: {}", self.url, answer.json),
                        None,
                    );
                }
            }
        }
    }
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
            tls: ureq::tls::TlsConfig::default(),
            status_wait: DEFAULT_STATUS_WAIT,
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
                from_receiver: true,
                server: None,
                retry_after: None,
                sent: None,
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
