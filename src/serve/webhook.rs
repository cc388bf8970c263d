//! GitLab's merge-request webhook: `POST /hooks/gitlab` (SPEC §10).
//!
//! A second door to the same operations as `check-versions` and
//! `transition-issues`. What it guarantees:
//! - `X-Gitlab-Token` is compared in constant time before the body is read;
//!   with `webhook.signing_key_env`, GitLab's signed webhooks (the Standard
//!   Webhooks scheme) are verified too, and stale timestamps refused;
//! - the answer (200) goes out at once; the work happens on a tracked
//!   background task that runs the blocking GitLab client on the blocking
//!   pool, so GitLab's 10-second timeout never disables the hook;
//! - events of one merge request are handled one at a time, in arrival
//!   order (a queue per MR); different MRs proceed side by side, a few at a
//!   time;
//! - a redelivered event (same `Idempotency-Key`, `X-Gitlab-Event-UUID` or
//!   `webhook-id`) is done once: keys are kept in a bounded in-memory set;
//! - when GitLab is down, the event is retried with exponential backoff for
//!   a bounded time, logged, and never blocks other MRs or the server;
//! - on SIGTERM, queued events still run for up to [`DRAIN_LIMIT`] (without
//!   long retries); what is left then is logged and dropped.
//!
//! The payload is only trusted for *which* MR changed and *what* happened;
//! the operations read the MR's current state from GitLab themselves.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::config::WebhookConfig;
use crate::error::UsageError;
use crate::gitlab::{ApiError, GitLab};
use crate::ops::check_versions::{CheckVersionsRequest, ThreadAction, check_versions};
use crate::ops::transition_issues::{
    IssueAction, MrSelector, TransitionRequest, WorkflowPolicy, transition_issues,
};
use crate::output::Printer;
use crate::settings::{Secret, Settings};

pub const ROUTE: &str = "/hooks/gitlab";
/// Largest payload accepted (an MR description is at most 1 MB, and an
/// `update` carries the previous one too).
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Signed webhooks: a timestamp further than this from now is refused.
const SIGNATURE_TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// Redelivery keys remembered (the oldest are forgotten first).
const SEEN_KEYS: usize = 10_000;
/// Longest redelivery key kept (longer ones are cut).
const MAX_KEY_BYTES: usize = 200;
/// Merge requests worked on at the same time.
const CONCURRENT_MRS: usize = 4;
/// An event whose GitLab calls keep failing is retried for this long.
const RETRY_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Longest wait between two tries of one event.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
/// After SIGTERM, queued events still run for this long.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// What the webhook does for one merge-request event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Jobs {
    check_versions: bool,
    transition: bool,
}

/// One accepted event, waiting in its MR's queue.
#[derive(Debug, Clone)]
struct Event {
    project_id: u64,
    iid: u64,
    action: String,
    jobs: Jobs,
    /// The redelivery key, forgotten again if the event finally fails (so a
    /// manual "Resend" from GitLab's hook page does the work).
    key: Option<String>,
}

/// The receiving end of the hook.
pub struct Webhook {
    secret: Secret,
    /// The HMAC key of signed webhooks (decoded from `whsec_<base64>`).
    signing_key: Option<Vec<u8>>,
    gitlab: GitLab,
    versions: CheckVersionsRequest,
    policy: WorkflowPolicy,
    transitions: bool,
    retry_base: Duration,
    log: Printer,
    tasks: TaskTracker,
    permits: Arc<Semaphore>,
    state: Mutex<Queues>,
}

#[derive(Default)]
struct Queues {
    /// Events per MR; an entry exists while that MR's worker runs.
    per_mr: HashMap<(u64, u64), VecDeque<Event>>,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    /// When shutdown was first noticed.
    draining_since: Option<Instant>,
}

/// The webhook's route, when the config file has a `webhook:` section.
pub fn feature(setup: &super::Setup<'_>) -> Result<Option<super::Feature>> {
    let Some(config) = &setup.settings.config.webhook else {
        return Ok(None);
    };
    let hook = Webhook::new(
        config,
        setup.settings,
        setup.tasks.clone(),
        setup.log.clone(),
    )?;
    let description = format!(
        "POST {ROUTE} (GitLab merge-request webhook: {})",
        hook.describe()
    );
    Ok(Some(super::Feature {
        router: Arc::new(hook).routes(),
        description,
    }))
}

impl Webhook {
    /// Set up from the `webhook:` section; refuses to start without the
    /// secret (or with a malformed signing key).
    pub fn new(
        config: &WebhookConfig,
        settings: &Settings,
        tasks: TaskTracker,
        log: Printer,
    ) -> Result<Self> {
        let secret = settings.env.secret(&config.secret_env).ok_or_else(|| {
            UsageError::new(format!(
                "the GitLab webhook needs its secret token in {} (webhook.secret_env names the \
                 variable); it is the \"Secret token\" of the project's webhook",
                config.secret_env
            ))
        })?;
        let signing_key = match &config.signing_key_env {
            None => None,
            Some(name) => {
                let value = settings.env.secret(name).ok_or_else(|| {
                    UsageError::new(format!(
                        "webhook.signing_key_env names {name}, which is not set"
                    ))
                })?;
                Some(decode_signing_key(value.expose()).ok_or_else(|| {
                    UsageError::new(format!(
                        "{name} is not a webhook signing token (whsec_ followed by base64)"
                    ))
                })?)
            }
        };
        let versions = CheckVersionsRequest::new("", 0, &settings.config.versions)?;
        let policy = WorkflowPolicy::from(&settings.config.workflow);
        let transitions = policy.on_open.is_some() || policy.on_merge.is_some();
        let gitlab = settings.gitlab_client(&log)?;
        Ok(Self {
            secret,
            signing_key,
            gitlab,
            versions,
            policy,
            transitions,
            retry_base: settings.retry.base,
            log,
            tasks,
            permits: Arc::new(Semaphore::new(CONCURRENT_MRS)),
            state: Mutex::new(Queues::default()),
        })
    }

    /// For the start-up message.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("check-versions on {}", self.versions.file)];
        if self.transitions {
            parts.push("transition-issues".to_owned());
        } else {
            parts.push("no transitions (workflow.on_open/on_merge unset)".to_owned());
        }
        if self.signing_key.is_some() {
            parts.push("signed".to_owned());
        }
        parts.join(", ")
    }

    pub fn routes(self: Arc<Self>) -> Router {
        Router::new().route(ROUTE, post(receive)).with_state(self)
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remember a redelivery key; `false` when it was seen before.
    fn first_delivery(&self, key: &str) -> bool {
        let mut state = self.lock();
        if state.seen.contains(key) {
            return false;
        }
        state.seen.insert(key.to_owned());
        state.seen_order.push_back(key.to_owned());
        while state.seen_order.len() > SEEN_KEYS {
            if let Some(old) = state.seen_order.pop_front() {
                state.seen.remove(&old);
            }
        }
        true
    }

    fn forget(&self, key: &str) {
        let mut state = self.lock();
        state.seen.remove(key);
        state.seen_order.retain(|k| k != key);
    }

    /// Queue an event behind the others of its MR, starting a worker for
    /// the MR if none runs.
    fn enqueue(self: &Arc<Self>, event: Event) {
        let key = (event.project_id, event.iid);
        let mut state = self.lock();
        if let Some(queue) = state.per_mr.get_mut(&key) {
            queue.push_back(event);
            return;
        }
        state.per_mr.insert(key, VecDeque::from([event]));
        drop(state);
        let this = self.clone();
        self.tasks.spawn(async move { this.drain(key).await });
    }

    /// One MR's worker: its events one after the other, until none is left.
    async fn drain(self: Arc<Self>, key: (u64, u64)) {
        loop {
            let event = {
                let mut state = self.lock();
                let next = state.per_mr.get_mut(&key).and_then(VecDeque::pop_front);
                if next.is_none() {
                    state.per_mr.remove(&key);
                }
                next
            };
            let Some(event) = event else { return };
            if self.drain_expired() {
                self.log.warn(format!(
                    "webhook: shutting down; dropped the {} event of !{} in project {} (not handled)",
                    event.action, event.iid, event.project_id
                ));
                continue;
            }
            self.handle(event).await;
        }
    }

    /// Whether shutdown began more than [`DRAIN_LIMIT`] ago.
    fn drain_expired(&self) -> bool {
        self.shutting_down()
            .is_some_and(|since| since.elapsed() > DRAIN_LIMIT)
    }

    /// When shutdown began (noticed through the closed task tracker).
    fn shutting_down(&self) -> Option<Instant> {
        if !self.tasks.is_closed() {
            return None;
        }
        let mut state = self.lock();
        Some(*state.draining_since.get_or_insert_with(Instant::now))
    }

    /// Run one event's jobs, retrying while GitLab is unreachable.
    async fn handle(self: &Arc<Self>, event: Event) {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let outcome = {
                let Ok(_permit) = self.permits.acquire().await else {
                    return;
                };
                let this = self.clone();
                let job = event.clone();
                tokio::task::spawn_blocking(move || this.run_jobs(&job)).await
            };
            let err = match outcome {
                Ok(Ok(())) => return,
                Ok(Err(err)) => err,
                Err(join) => {
                    self.log.warn(format!(
                        "webhook: the {} event of !{} in project {} failed: {join}",
                        event.action, event.iid, event.project_id
                    ));
                    self.give_up(&event);
                    return;
                }
            };
            let delay = self
                .retry_base
                .saturating_mul(1 << attempt.min(16))
                .min(MAX_RETRY_DELAY);
            let transient = is_transient(&err);
            let in_window = started.elapsed() + delay < RETRY_WINDOW;
            if transient && in_window && self.shutting_down().is_none() {
                self.log.warn(format!(
                    "webhook: !{} in project {} ({}): {}; retrying in {:.1}s",
                    event.iid,
                    event.project_id,
                    event.action,
                    one_line(&err),
                    delay.as_secs_f64()
                ));
                self.backoff(delay).await;
                continue;
            }
            self.log.warn(format!(
                "webhook: !{} in project {} ({}) not handled: {}",
                event.iid,
                event.project_id,
                event.action,
                one_line(&err)
            ));
            self.give_up(&event);
            return;
        }
    }

    /// Wait `delay`, or less when shutdown begins meanwhile (then one last
    /// try follows at once).
    async fn backoff(&self, delay: Duration) {
        let until = Instant::now() + delay;
        while Instant::now() < until && self.shutting_down().is_none() {
            let left = until.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(Duration::from_millis(100))).await;
        }
    }

    fn give_up(&self, event: &Event) {
        if let Some(key) = &event.key {
            self.forget(key);
        }
    }

    /// The operations for one event (blocking: runs on the blocking pool).
    /// Each job is idempotent, so a retry after a partial failure is safe.
    fn run_jobs(&self, event: &Event) -> Result<()> {
        let project = event.project_id.to_string();
        let mut done = Vec::new();
        if event.jobs.check_versions {
            let mut request = self.versions.clone();
            request.project = project.clone();
            request.mr = event.iid;
            let outcome = check_versions(&self.gitlab, &request)?;
            done.push(format!(
                "check-versions {}",
                match outcome.action {
                    ThreadAction::Created => "opened the thread",
                    ThreadAction::Updated => "updated the thread",
                    ThreadAction::Exists => "thread already open",
                    ThreadAction::Acknowledged => "thread resolved by a person",
                    ThreadAction::Resolved => "resolved the thread",
                    ThreadAction::Nothing => "nothing to do",
                }
            ));
        }
        if event.jobs.transition && self.transitions {
            let request = TransitionRequest {
                project: project.clone(),
                mr: MrSelector::Iid(event.iid),
                to: None,
                policy: self.policy.clone(),
            };
            let outcome = transition_issues(&self.gitlab, &request)?;
            let count = |a: IssueAction| outcome.issues.iter().filter(|t| t.action == a).count();
            done.push(format!(
                "transition-issues to {:?}: {} moved, {} unchanged, {} skipped",
                outcome.label.as_deref().unwrap_or("-"),
                count(IssueAction::Moved),
                count(IssueAction::Unchanged),
                outcome.issues.len() - count(IssueAction::Moved) - count(IssueAction::Unchanged),
            ));
        }
        self.log.info(format!(
            "webhook: !{} in project {} ({}): {}",
            event.iid,
            project,
            event.action,
            if done.is_empty() {
                "nothing to do".to_owned()
            } else {
                done.join("; ")
            }
        ));
        Ok(())
    }
}

/// `POST /hooks/gitlab`.
async fn receive(State(hook): State<Arc<Webhook>>, request: Request) -> Response {
    let headers = request.headers().clone();
    let token = header(&headers, "x-gitlab-token").unwrap_or_default();
    if !bool::from(token.as_bytes().ct_eq(hook.secret.expose().as_bytes())) {
        return answer(StatusCode::UNAUTHORIZED, "wrong or missing X-Gitlab-Token");
    }
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload too large (or cut off)",
            );
        }
    };
    if let Some(key) = &hook.signing_key {
        if let Err(why) = verify_signature(key, &headers, &body, now_unix()) {
            return answer(StatusCode::UNAUTHORIZED, why);
        }
    }
    let payload: Payload = match serde_json::from_slice(&body) {
        Ok(payload) => payload,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                &format!("not a GitLab webhook payload: {e}"),
            );
        }
    };
    let Some((project_id, iid, action, jobs)) = interpret(&payload) else {
        return answer(StatusCode::OK, "ignored");
    };
    let key = ["idempotency-key", "x-gitlab-event-uuid", "webhook-id"]
        .into_iter()
        .find_map(|name| header(&headers, name).filter(|v| !v.trim().is_empty()))
        .map(|v| cut(v.trim(), MAX_KEY_BYTES).to_owned());
    if let Some(key) = &key {
        if !hook.first_delivery(key) {
            return answer(StatusCode::OK, "duplicate delivery: already handled");
        }
    }
    hook.enqueue(Event {
        project_id,
        iid,
        action,
        jobs,
        key,
    });
    answer(StatusCode::OK, "accepted")
}

fn answer(status: StatusCode, message: &str) -> Response {
    let key = if status.is_success() {
        "status"
    } else {
        "error"
    };
    (status, axum::Json(serde_json::json!({ key: message }))).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The parts of a merge-request event payload the hook reads.
#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(default)]
    object_kind: String,
    #[serde(default)]
    project: Option<PayloadProject>,
    #[serde(default)]
    object_attributes: Option<Attributes>,
    #[serde(default)]
    changes: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct PayloadProject {
    id: u64,
}

#[derive(Debug, Deserialize)]
struct Attributes {
    iid: u64,
    #[serde(default)]
    target_project_id: Option<u64>,
    #[serde(default)]
    action: Option<String>,
}

/// A merge-request event as the hook reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MrEvent {
    pub project_id: u64,
    pub iid: u64,
    pub action: String,
    /// Whether the event runs check-versions.
    pub check_versions: bool,
    /// Whether the event runs the transition of the MR's issues.
    pub transition: bool,
}

/// What the route makes of a delivery's body, for fuzz targets and property
/// tests: the payload parsed and interpreted as [`receive`] does, or `None`
/// for an event the hook ignores.
pub fn interpret_payload(body: &[u8]) -> Result<Option<MrEvent>, serde_json::Error> {
    let payload: Payload = serde_json::from_slice(body)?;
    Ok(
        interpret(&payload).map(|(project_id, iid, action, jobs)| MrEvent {
            project_id,
            iid,
            action,
            check_versions: jobs.check_versions,
            transition: jobs.transition,
        }),
    )
}

/// Which MR and what to do; `None` for events the hook ignores.
fn interpret(payload: &Payload) -> Option<(u64, u64, String, Jobs)> {
    if payload.object_kind != "merge_request" {
        return None;
    }
    let attributes = payload.object_attributes.as_ref()?;
    let project_id = attributes
        .target_project_id
        .or(payload.project.as_ref().map(|p| p.id))?;
    let action = attributes.action.clone().unwrap_or_default();
    let jobs = match action.as_str() {
        "open" | "reopen" => Jobs {
            check_versions: true,
            transition: true,
        },
        "update" => Jobs {
            check_versions: true,
            transition: marked_ready(payload.changes.as_ref()),
        },
        "merge" => Jobs {
            check_versions: false,
            transition: true,
        },
        _ => return None,
    };
    Some((project_id, attributes.iid, action, jobs))
}

/// Whether an `update` turned a draft into a ready MR: `changes.draft`
/// (or the older `work_in_progress`) went from true to false, or the title
/// lost its `Draft:`/`WIP:` prefix.
fn marked_ready(changes: Option<&serde_json::Value>) -> bool {
    let Some(changes) = changes else { return false };
    let flag = |key: &str| {
        let change = changes.get(key)?;
        Some(change.get("previous")?.as_bool()? && !change.get("current")?.as_bool()?)
    };
    if flag("draft").or_else(|| flag("work_in_progress")) == Some(true) {
        return true;
    }
    let title = |which: &str| {
        changes
            .get("title")
            .and_then(|t| t.get(which))
            .and_then(|t| t.as_str())
            .map(is_draft_title)
    };
    title("previous") == Some(true) && title("current") == Some(false)
}

fn is_draft_title(title: &str) -> bool {
    let lower = title.trim_start().to_ascii_lowercase();
    ["draft:", "[draft]", "(draft)", "wip:", "[wip]"]
        .iter()
        .any(|p| lower.starts_with(p))
}

/// `whsec_<base64>` → the key bytes.
pub fn decode_signing_key(token: &str) -> Option<Vec<u8>> {
    let encoded = token.trim().strip_prefix("whsec_")?;
    BASE64.decode(encoded).ok().filter(|k| !k.is_empty())
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Standard Webhooks: `webhook-signature` holds space-separated `v1,<base64
/// HMAC-SHA256 of "id.timestamp.body">`; any one matching is enough, and
/// the timestamp must be within [`SIGNATURE_TOLERANCE`] of `now`.
pub fn verify_signature(
    key: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: u64,
) -> Result<(), &'static str> {
    let id = header(headers, "webhook-id").ok_or("missing webhook-id")?;
    let timestamp = header(headers, "webhook-timestamp").ok_or("missing webhook-timestamp")?;
    let signatures = header(headers, "webhook-signature").ok_or("missing webhook-signature")?;
    let sent: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| "webhook-timestamp is not a Unix time")?;
    if sent.abs_diff(now) > SIGNATURE_TOLERANCE.as_secs() {
        return Err("webhook-timestamp is too far from now (replayed or clock skew)");
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| "bad signing key")?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let any = signatures.split_whitespace().any(|entry| {
        let Some(encoded) = entry.strip_prefix("v1,") else {
            return false;
        };
        match BASE64.decode(encoded) {
            // `verify_slice` compares in constant time.
            Ok(signature) => mac.clone().verify_slice(&signature).is_ok(),
            Err(_) => false,
        }
    });
    if any {
        Ok(())
    } else {
        Err("webhook-signature does not match")
    }
}

/// Worth retrying: GitLab unreachable, rate limited or failing (5xx).
fn is_transient(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|c| c.downcast_ref::<ApiError>())
        .any(|api| match api.status {
            None => true,
            Some(status) => status == 429 || status >= 500,
        })
}

/// The error and its causes on one line, for the log.
fn one_line(err: &anyhow::Error) -> String {
    err.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(text: &str) -> Payload {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn the_real_payload() {
        let p = payload(include_str!(
            "../../tests/fixtures/gitlab/webhook-merge-request.json"
        ));
        let (project, iid, action, jobs) = interpret(&p).unwrap();
        assert_eq!((project, iid, action.as_str()), (14, 1, "open"));
        assert_eq!(
            jobs,
            Jobs {
                check_versions: true,
                transition: true
            }
        );
    }

    #[test]
    fn events() {
        let event = |action: &str, changes: &str| {
            payload(&format!(
                r#"{{"object_kind":"merge_request","project":{{"id":5}},"object_attributes":{{"iid":3,"action":"{action}"}},"changes":{changes}}}"#
            ))
        };
        let jobs = |p: &Payload| interpret(p).map(|e| e.3);
        assert_eq!(
            jobs(&event("update", "{}")),
            Some(Jobs {
                check_versions: true,
                transition: false
            })
        );
        for ready in [
            r#"{"draft":{"previous":true,"current":false}}"#,
            r#"{"work_in_progress":{"previous":true,"current":false}}"#,
            r#"{"title":{"previous":"Draft: x","current":"x"}}"#,
            r#"{"title":{"previous":"[WIP] x","current":"x"}}"#,
        ] {
            assert!(jobs(&event("update", ready)).unwrap().transition, "{ready}");
        }
        for not_ready in [
            r#"{"draft":{"previous":false,"current":true}}"#,
            r#"{"title":{"previous":"x","current":"Draft: x"}}"#,
            r#"{"title":{"previous":"a","current":"b"}}"#,
        ] {
            assert!(
                !jobs(&event("update", not_ready)).unwrap().transition,
                "{not_ready}"
            );
        }
        assert_eq!(
            jobs(&event("merge", "{}")),
            Some(Jobs {
                check_versions: false,
                transition: true
            })
        );
        assert_eq!(jobs(&event("close", "{}")), None);
        assert_eq!(jobs(&event("approved", "{}")), None);
        assert!(interpret(&payload(r#"{"object_kind":"push"}"#)).is_none());
    }

    fn signed(key: &[u8], id: &str, ts: u64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }

    fn headers(id: &str, ts: u64, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        h.insert("webhook-signature", signature.parse().unwrap());
        h
    }

    #[test]
    fn signatures() {
        let key = decode_signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"object_kind":"merge_request"}"#;
        let now = 1_700_000_000;
        let good = signed(&key, "msg_1", now, body);
        assert_eq!(
            verify_signature(&key, &headers("msg_1", now, &good), body, now),
            Ok(())
        );
        // Several entries: any one matching is enough.
        let several = format!("v1,AAAA {good} v2,zzz");
        assert_eq!(
            verify_signature(&key, &headers("msg_1", now, &several), body, now),
            Ok(())
        );
        // Another body, id or key: refused.
        assert!(verify_signature(&key, &headers("msg_1", now, &good), b"{}", now).is_err());
        assert!(verify_signature(&key, &headers("msg_2", now, &good), body, now).is_err());
        let other = signed(b"other key", "msg_1", now, body);
        assert!(verify_signature(&key, &headers("msg_1", now, &other), body, now).is_err());
        // Stale or future timestamps, even correctly signed.
        let old = now - 301;
        let stale = signed(&key, "msg_1", old, body);
        assert!(verify_signature(&key, &headers("msg_1", old, &stale), body, now).is_err());
        let future = now + 301;
        let ahead = signed(&key, "msg_1", future, body);
        assert!(verify_signature(&key, &headers("msg_1", future, &ahead), body, now).is_err());
        assert!(verify_signature(&key, &HeaderMap::new(), body, now).is_err());
        assert_eq!(decode_signing_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), None);
        assert_eq!(decode_signing_key("whsec_***"), None);
    }
}
