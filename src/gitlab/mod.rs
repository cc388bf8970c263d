//! The GitLab REST API v4 client shared by every command (SPEC §11).
//!
//! Blocking `ureq`; HTTP error statuses are read as values (status, body,
//! headers) and turned into [`ApiError`]s that name the method, the path and
//! GitLab's message — never the token. Retries with exponential backoff and
//! jitter on 429 (honouring `Retry-After`, then `RateLimit-Reset`), 500, 502,
//! 503, 504 and connection errors, within a bounded total time. A write whose
//! answer was lost is checked by the caller's `recover` probe (which looks for
//! the write's marker) before it is sent again. Pagination follows
//! `x-next-page` or `Link`, always against the configured base URL. Redirects
//! to another host are never followed with credentials.
//!
//! Dry-run lives here, not in the operations: a client made by
//! [`GitLab::planning`] reads as usual but records each write as a
//! [`PlannedWrite`] and answers it with [`Written::Planned`], so an operation
//! is written once and `--dry-run` prints the same kind of plan for every
//! command. [`GitLab::offline`] is the dry run with no GitLab URL at all: every
//! list is empty, single reads fail with a clear message, writes are planned.
//!
//! This module knows HTTP and GitLab's conventions; it knows nothing about
//! races, tags or releases.

mod blame;
mod commits;
mod discussions;
mod files;
mod instance;
mod issues;
mod merge_requests;
mod projects;
mod releases;
mod types;
mod uploads;
mod users;

pub use blame::{BlameCommit, BlameRange};
pub use commits::History;
pub use files::FileContent;
pub use instance::{InstanceVersion, TokenInfo};
pub use issues::NewIssue;
pub use projects::is_status;
pub use releases::{Release, ReleaseWrite};
pub use types::{
    Commit, Discussion, DiscussionNote, Issue, Label, MergeRequest, Note, Project, References, User,
};
// Dry-run types are shared with the git client; they live in `planned`.
pub use crate::planned::{PlannedWrite, Written};
pub use uploads::Upload;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::de::DeserializeOwned;

use crate::error::{Setting, UsageError};
use crate::http::retry::{self, Attempt, Outcome};
use crate::http::{RawResponse, may_have_arrived, same_origin, transport_reason};
use crate::settings::{GitLabSettings, GitLabToken, TokenKind};

pub use crate::http::RetryPolicy;

/// A GitLab answer with a status GitLab meant (4xx/5xx), or a transport failure.
#[derive(Debug)]
pub struct ApiError {
    pub method: &'static str,
    pub path: String,
    /// `None` for a transport failure (no answer at all).
    pub status: Option<u16>,
    pub message: String,
    token_source: Option<String>,
    token_kind: Option<TokenKind>,
    base_url: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(
                f,
                "GitLab answered {} {} with {status}: {}",
                self.method, self.path, self.message
            ),
            None => write!(
                f,
                "GitLab request {} {} failed: {}",
                self.method, self.path, self.message
            ),
        }
    }
}

impl std::error::Error for ApiError {}

/// What a failed request most likely means, for the hint under the error.
/// Said in GitLab's terms here ([`ApiError::hint`]); the command line adds
/// the flags, variables and config keys that fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiProblem {
    /// 401 and no token was configured.
    NoToken,
    /// 401: GitLab refused the token from `source`.
    TokenRejected { source: String },
    /// 403 with `CI_JOB_TOKEN`, which cannot write issues, notes, labels or threads.
    JobTokenCannotWrite,
    /// 403 with the token from `source`.
    TokenNotAllowed { source: String },
    /// 404: no such project, or the token's user cannot see it.
    NotFound,
    /// No TLS connection: the server's certificate is not trusted.
    UntrustedCertificate,
    /// No answer at all from `base_url`.
    Unreachable { base_url: String },
}

impl ApiError {
    /// The likely cause, when there is one to suggest.
    pub fn problem(&self) -> Option<ApiProblem> {
        let source = self.token_source.clone();
        Some(match (self.status, self.token_kind, source) {
            (Some(401), _, None) => ApiProblem::NoToken,
            (Some(401), _, Some(source)) => ApiProblem::TokenRejected { source },
            (Some(403), Some(TokenKind::Job), _) => ApiProblem::JobTokenCannotWrite,
            (Some(403), _, Some(source)) => ApiProblem::TokenNotAllowed { source },
            (Some(404), _, _) => ApiProblem::NotFound,
            (None, _, _) if crate::http::tls::is_untrusted_certificate(&self.message) => {
                ApiProblem::UntrustedCertificate
            }
            (None, _, _) => ApiProblem::Unreachable {
                base_url: self.base_url.clone(),
            },
            _ => return None,
        })
    }

    /// A likely fix, in GitLab's terms (no command-line flag: `serve` logs
    /// this too).
    pub fn hint(&self) -> Option<String> {
        self.problem().map(|problem| problem.hint())
    }
}

impl ApiProblem {
    /// The likely fix, in GitLab's terms.
    pub fn hint(&self) -> String {
        match self {
            ApiProblem::NoToken => {
                "GitLab wants a token and none is configured: use one with the `api` scope"
                    .to_owned()
            }
            ApiProblem::TokenRejected { source } => format!(
                "GitLab rejected the token from {source}: check that it is valid, not expired \
                 and has the `api` scope"
            ),
            ApiProblem::JobTokenCannotWrite => "CI_JOB_TOKEN can read merge requests and files \
                but cannot create issues, notes, discussions or labels, edit issues or resolve \
                threads: use a project access token with the `api` scope (Reporter role or \
                higher; Developer to resolve merge-request threads)"
                .to_owned(),
            ApiProblem::TokenNotAllowed { source } => format!(
                "the token from {source} may not do this: it needs the `api` scope and at least \
                 the Reporter role on the project"
            ),
            ApiProblem::NotFound => "check the project ID or path and that the token's user \
                can see the project"
                .to_owned(),
            ApiProblem::UntrustedCertificate => crate::http::tls::UNTRUSTED_HINT.to_owned(),
            ApiProblem::Unreachable { base_url } => format!("is GitLab reachable at {base_url}?"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// How a client treats writes.
#[derive(Clone)]
enum Mode {
    /// Send everything.
    Live,
    /// Read for real, record writes.
    Planning(Arc<Mutex<Vec<PlannedWrite>>>),
    /// No GitLab at all: lists are empty, single reads fail, writes recorded.
    Offline(Arc<Mutex<Vec<PlannedWrite>>>),
}

/// What a request carries.
#[derive(Clone, Copy)]
enum Payload<'a> {
    None,
    Json(&'a serde_json::Value),
    /// A file, as the `file` part of a multipart form (uploads).
    File(&'a uploads::FilePart<'a>),
}

/// Characters escaped in one path segment: everything but unreserved ones,
/// so `group/sub/project` becomes `group%2Fsub%2Fproject`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The project of an offline dry run that has none configured: its planned
/// writes show the path as GitLab's API documentation does, `projects/:id`.
/// No GitLab project has this ID or path (IDs are numbers, paths have no `:`).
pub const PROJECT_PLACEHOLDER: &str = ":id";

/// Encode a value as one URL path segment or query value.
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

pub struct GitLab {
    agent: ureq::Agent,
    base_url: String,
    api: String,
    token: Option<GitLabToken>,
    retry: RetryPolicy,
    on_retry: Arc<dyn Fn(&str) + Send + Sync>,
    mode: Mode,
    /// The token's own user, once read (see `users.rs`); shared by clones.
    me: Arc<std::sync::OnceLock<User>>,
}

impl Clone for GitLab {
    /// A clone shares the agent (its connection pool) and, in dry-run mode,
    /// the list of planned writes.
    fn clone(&self) -> Self {
        Self {
            agent: self.agent.clone(),
            base_url: self.base_url.clone(),
            api: self.api.clone(),
            token: self.token.clone(),
            retry: self.retry,
            on_retry: self.on_retry.clone(),
            mode: self.mode.clone(),
            me: self.me.clone(),
        }
    }
}

impl fmt::Debug for GitLab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitLab")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|t| &t.source))
            .finish()
    }
}

impl GitLab {
    /// A client for the configured instance; a missing URL is a usage error
    /// (tagged [`Setting::GitLabUrl`], so the command line can say how to set it).
    pub fn new(settings: &GitLabSettings, retry: RetryPolicy) -> Result<Self> {
        let base_url = settings.url.clone().ok_or_else(|| {
            UsageError::new("no GitLab URL is configured").for_setting(Setting::GitLabUrl)
        })?;
        let agent = ureq::Agent::config_builder()
            .tls_config(settings.trust.tls_config()?)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(retry.timeout))
            .user_agent(concat!("rp-devops/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Self {
            agent,
            api: format!("{base_url}/api/v4"),
            base_url,
            token: settings.token.clone(),
            retry,
            on_retry: Arc::new(|_| {}),
            mode: Mode::Live,
            me: Arc::default(),
        })
    }

    /// The dry-run client with no GitLab URL configured: nothing is read from
    /// anywhere (lists are empty, so everything looks new), single-object
    /// reads fail saying a URL is needed, and writes are planned.
    pub fn offline() -> Self {
        Self {
            agent: ureq::Agent::new_with_defaults(),
            base_url: String::new(),
            api: String::new(),
            token: None,
            retry: RetryPolicy::default(),
            on_retry: Arc::new(|_| {}),
            mode: Mode::Offline(Arc::default()),
            me: Arc::default(),
        }
    }

    /// This client in dry-run mode: reads as usual, writes recorded.
    pub fn planning(mut self) -> Self {
        if matches!(self.mode, Mode::Live) {
            self.mode = Mode::Planning(Arc::default());
        }
        self
    }

    /// Called with a one-line reason before each retry (for stderr).
    pub fn on_retry(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_retry = Arc::new(f);
        self
    }

    /// Whether writes are planned instead of sent.
    pub fn is_dry_run(&self) -> bool {
        !matches!(self.mode, Mode::Live)
    }

    /// Whether this is the dry run without any GitLab (see [`GitLab::offline`]).
    pub fn is_offline(&self) -> bool {
        matches!(self.mode, Mode::Offline(_))
    }

    /// The writes planned so far, in order (empty for a live client).
    pub fn planned(&self) -> Vec<PlannedWrite> {
        match &self.mode {
            Mode::Live => Vec::new(),
            Mode::Planning(plan) | Mode::Offline(plan) => {
                plan.lock().map(|p| p.clone()).unwrap_or_default()
            }
        }
    }

    /// Record a planned write, or `false` for a live client.
    fn plan(&self, method: Method, path: &str, summary: &str) -> bool {
        match &self.mode {
            Mode::Live => false,
            Mode::Planning(plan) | Mode::Offline(plan) => {
                if let Ok(mut plan) = plan.lock() {
                    plan.push(PlannedWrite {
                        method: method.as_str().to_owned(),
                        path: path.to_owned(),
                        summary: summary.to_owned(),
                    });
                }
                true
            }
        }
    }

    /// The error for a single-object read in an offline dry run.
    fn offline_read(&self, path: &str) -> anyhow::Error {
        UsageError::new(format!(
            "a dry run without a GitLab URL cannot read GET {path}"
        ))
        .with_hint("with a GitLab URL configured, a dry run reads GitLab and still writes nothing")
        .for_setting(Setting::GitLabUrl)
        .into()
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `projects/<id or encoded path>`; [`PROJECT_PLACEHOLDER`] stays as it is.
    pub fn project_path(project: &str) -> String {
        if project == PROJECT_PLACEHOLDER {
            return format!("projects/{PROJECT_PLACEHOLDER}");
        }
        format!("projects/{}", encode(project))
    }

    /// GET one JSON document.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        if self.is_offline() {
            return Err(self.offline_read(path));
        }
        let response = self.request(Method::Get, path, Payload::None, &mut || Ok(false))?;
        parse(Method::Get, path, &response)
    }

    /// GET every page of a list (`per_page=100`).
    pub fn get_all<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>> {
        if self.is_offline() {
            return Ok(Vec::new());
        }
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut next = Some(format!("{path}{separator}per_page=100"));
        let mut items = Vec::new();
        let mut pages = 0;
        while let Some(page_path) = next.take() {
            pages += 1;
            if pages > 10_000 {
                anyhow::bail!("GET {path}: more than 10000 pages, giving up");
            }
            let response =
                self.request(Method::Get, &page_path, Payload::None, &mut || Ok(false))?;
            let mut page: Vec<T> = parse(Method::Get, &page_path, &response)?;
            let got = page.len();
            items.append(&mut page);
            next = self.next_page(path, separator, &response);
            if got == 0 {
                break;
            }
        }
        Ok(items)
    }

    /// The next page's path: `x-next-page` first, else `Link: <…>; rel="next"`
    /// rebased onto our own base URL.
    fn next_page(&self, path: &str, separator: char, response: &RawResponse) -> Option<String> {
        if let Some(page) = response.header("x-next-page").map(str::trim) {
            if !page.is_empty() {
                return Some(format!(
                    "{path}{separator}per_page=100&page={}",
                    encode(page)
                ));
            }
            return None;
        }
        let link = response.header("link")?;
        link.split(',').find_map(|part| {
            let (url, params) = part.split_once(';')?;
            if !params.contains("rel=\"next\"") {
                return None;
            }
            let url = url.trim().trim_start_matches('<').trim_end_matches('>');
            // Whatever host the Link names, only its path after /api/v4/ is
            // used, so credentials never go anywhere but the configured URL.
            url.split_once("/api/v4/").map(|(_, rest)| rest.to_owned())
        })
    }

    /// POST, PUT or DELETE a JSON body. `recover` is asked, after an attempt
    /// whose answer was lost, whether the write took effect anyway (by looking
    /// for its marker); if it returns `Some`, that is the result. In dry-run
    /// mode nothing is sent: the write is recorded with `summary` and the
    /// answer is [`Written::Planned`].
    pub fn write<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
        summary: &str,
        recover: impl FnMut() -> Result<Option<T>>,
    ) -> Result<Written<T>> {
        self.write_payload(method, path, Payload::Json(body), summary, recover)
    }

    /// [`GitLab::write`] with any payload (a JSON body or a file).
    fn write_payload<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        payload: Payload<'_>,
        summary: &str,
        mut recover: impl FnMut() -> Result<Option<T>>,
    ) -> Result<Written<T>> {
        if self.plan(method, path, summary) {
            return Ok(Written::Planned);
        }
        let mut recovered = None;
        let response = self.request(method, path, payload, &mut || {
            recovered = recover()?;
            Ok(recovered.is_some())
        })?;
        if response.status == 0 {
            return recovered.map(Written::Sent).ok_or_else(|| {
                anyhow::anyhow!("{} {path}: recovered write vanished", method.as_str())
            });
        }
        if response.status == 204 || (method == Method::Delete && response.body.trim().is_empty()) {
            // No content: `T` must accept JSON null (`()`, `Option<_>`, `Value`).
            return parse_body(method, path, response.status, "null").map(Written::Sent);
        }
        parse(method, path, &response).map(Written::Sent)
    }

    /// Send with retries. `applied` is asked before re-sending a write that may
    /// have reached GitLab; `Ok(true)` ends the loop with a status-0 response.
    fn request(
        &self,
        method: Method,
        path: &str,
        payload: Payload<'_>,
        applied: &mut dyn FnMut() -> Result<bool>,
    ) -> Result<RawResponse> {
        let label = format!("{} {path}", method.as_str());
        let outcome = retry::run(
            &self.retry,
            &label,
            method != Method::Get,
            &*self.on_retry,
            &mut || self.attempt(method, path, payload),
            applied,
        )?;
        match outcome {
            Outcome::Done(response) if (200..300).contains(&response.status) => Ok(response),
            Outcome::Done(response) => Err(self
                .api_error(
                    method,
                    path,
                    Some(response.status),
                    gitlab_message(&response),
                )
                .into()),
            Outcome::Applied => Ok(RawResponse {
                status: 0,
                headers: Vec::new(),
                body: String::new(),
            }),
            Outcome::GaveUp { status, message } => {
                Err(self.api_error(method, path, status, message).into())
            }
        }
    }

    fn attempt(
        &self,
        method: Method,
        path: &str,
        payload: Payload<'_>,
    ) -> Result<Attempt<RawResponse>> {
        let url = format!("{}/{}", self.api, path.trim_start_matches('/'));
        let mut redirects = 0;
        let mut url = url;
        loop {
            let result = match method {
                Method::Get => self.authorize(self.agent.get(&url)).call(),
                Method::Delete => self.authorize(self.agent.delete(&url)).call(),
                Method::Post | Method::Put => {
                    let builder = if method == Method::Post {
                        self.agent.post(&url)
                    } else {
                        self.agent.put(&url)
                    };
                    match payload {
                        Payload::None => self.authorize(builder).send_json(serde_json::Value::Null),
                        Payload::Json(body) => self.authorize(builder).send_json(body),
                        Payload::File(part) => {
                            let mut form = part.form()?;
                            self.authorize(builder)
                                .header("Content-Type", form.content_type.as_str())
                                .header("Content-Length", form.len.to_string())
                                .send(ureq::SendBody::from_reader(&mut form.body))
                        }
                    }
                }
            };
            let mut response = match result {
                Ok(response) => response,
                Err(err) if crate::http::tls::is_tls_failure(&err) => {
                    return Err(self
                        .api_error(method, path, None, transport_reason(&err))
                        .into());
                }
                Err(err) => {
                    return Ok(Attempt::Retry {
                        reason: transport_reason(&err),
                        applied_maybe: may_have_arrived(&err),
                        wait: None,
                    });
                }
            };
            let raw = match RawResponse::read(&mut response, 64 * 1024 * 1024) {
                Ok(raw) => raw,
                Err(err) => {
                    return Ok(Attempt::Retry {
                        reason: format!("answer cut off: {err}"),
                        applied_maybe: true,
                        wait: None,
                    });
                }
            };
            let status = raw.status;
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let location = raw.header("location").unwrap_or_default().to_owned();
                if !same_origin(&location, &self.base_url) || redirects >= 3 {
                    return Err(self
                        .api_error(
                            method,
                            path,
                            Some(status),
                            format!("redirected to {location}; not following with credentials to another host"),
                        )
                        .into());
                }
                redirects += 1;
                url = location;
                continue;
            }
            return Ok(match status {
                429 => Attempt::Retry {
                    reason: "429 Too Many Requests".to_owned(),
                    applied_maybe: false,
                    wait: retry::retry_after(&raw),
                },
                503 => Attempt::Retry {
                    reason: "503 Service Unavailable".to_owned(),
                    applied_maybe: false,
                    wait: retry::retry_after(&raw),
                },
                500 | 502 | 504 => Attempt::Retry {
                    reason: format!("{status} {}", gitlab_message(&raw)),
                    applied_maybe: true,
                    wait: None,
                },
                _ => Attempt::Done(raw),
            });
        }
    }

    fn authorize<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) if token.kind == TokenKind::Job => {
                request.header("JOB-TOKEN", token.secret.expose())
            }
            Some(token) => request.header("PRIVATE-TOKEN", token.secret.expose()),
            None => request,
        }
    }

    fn api_error(
        &self,
        method: Method,
        path: &str,
        status: Option<u16>,
        message: String,
    ) -> ApiError {
        ApiError {
            method: method.as_str(),
            path: path.to_owned(),
            status,
            message,
            token_source: self.token.as_ref().map(|t| t.source.clone()),
            token_kind: self.token.as_ref().map(|t| t.kind),
            base_url: self.base_url.clone(),
        }
    }
}

fn parse<T: DeserializeOwned>(method: Method, path: &str, response: &RawResponse) -> Result<T> {
    parse_body(method, path, response.status, &response.body)
}

fn parse_body<T: DeserializeOwned>(
    method: Method,
    path: &str,
    status: u16,
    body: &str,
) -> Result<T> {
    serde_json::from_str(body).with_context(|| {
        format!(
            "GitLab's answer to {} {path} is not the JSON expected (status {status}, {} bytes: {:?})",
            method.as_str(),
            body.len(),
            body.chars().take(120).collect::<String>()
        )
    })
}

/// GitLab's own words: `{"message": …}` or `{"error": …}`, else the body's start.
fn gitlab_message(response: &RawResponse) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|v| {
            let m = v.get("message").or_else(|| v.get("error"))?;
            Some(match m {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        });
    from_json.unwrap_or_else(|| {
        let snippet: String = response.body.trim().chars().take(200).collect();
        if snippet.is_empty() {
            "(empty answer)".to_owned()
        } else {
            snippet
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_paths_are_one_segment() {
        assert_eq!(
            GitLab::project_path("group/sub/project"),
            "projects/group%2Fsub%2Fproject"
        );
        assert_eq!(GitLab::project_path("42"), "projects/42");
    }

    #[test]
    fn offline_dry_run_reads_nothing_and_plans_writes() {
        let client = GitLab::offline();
        assert!(client.is_dry_run() && client.is_offline());
        let listed: Vec<Issue> = client.get_all("projects/1/issues").unwrap();
        assert!(listed.is_empty());
        let err = client.get::<Issue>("projects/1/issues/1").unwrap_err();
        assert!(err.to_string().contains("without a GitLab URL"), "{err}");
        let written = client
            .write::<Issue>(
                Method::Post,
                "projects/1/issues",
                &serde_json::json!({"title": "t"}),
                "new issue \"t\"",
                || Ok(None),
            )
            .unwrap();
        assert!(written.is_planned());
        let plan = client.clone().planned();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].method, "POST");
        assert_eq!(plan[0].path, "projects/1/issues");
    }

    fn failed(status: Option<u16>, token: Option<(&str, TokenKind)>) -> ApiError {
        ApiError {
            method: "POST",
            path: "projects/1/issues".to_owned(),
            status,
            message: "no".to_owned(),
            token_source: token.map(|(source, _)| source.to_owned()),
            token_kind: token.map(|(_, kind)| kind),
            base_url: "https://gitlab.example.com".to_owned(),
        }
    }

    #[test]
    fn hints_speak_gitlab_not_command_line_flags() {
        let job = Some(("CI_JOB_TOKEN", TokenKind::Job));
        let private = Some(("RP_GITLAB_TOKEN", TokenKind::Private));
        let cases = [
            (failed(Some(401), None), ApiProblem::NoToken),
            (
                failed(Some(401), private),
                ApiProblem::TokenRejected {
                    source: "RP_GITLAB_TOKEN".to_owned(),
                },
            ),
            (failed(Some(403), job), ApiProblem::JobTokenCannotWrite),
            (
                failed(Some(403), private),
                ApiProblem::TokenNotAllowed {
                    source: "RP_GITLAB_TOKEN".to_owned(),
                },
            ),
            (failed(Some(404), private), ApiProblem::NotFound),
            (
                ApiError {
                    message: "invalid peer certificate: UnknownIssuer".to_owned(),
                    ..failed(None, private)
                },
                ApiProblem::UntrustedCertificate,
            ),
            (
                failed(None, private),
                ApiProblem::Unreachable {
                    base_url: "https://gitlab.example.com".to_owned(),
                },
            ),
        ];
        for (error, problem) in cases {
            assert_eq!(error.problem().as_ref(), Some(&problem));
            let hint = error.hint().unwrap();
            assert!(!hint.contains("--"), "a flag in {hint:?}");
            assert!(!hint.contains("gitlab.url") && !hint.contains("gitlab.project"));
        }
        assert_eq!(failed(Some(422), private).problem(), None);
    }
}
