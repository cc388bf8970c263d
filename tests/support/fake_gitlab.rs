//! An in-process, stateful fake GitLab (REST API v4) on 127.0.0.1.
//!
//! It keeps projects, issues and notes, answers with the shapes captured
//! from a real GitLab (`tests/fixtures/gitlab/*.json`, every field kept),
//! checks `PRIVATE-TOKEN`/`JOB-TOKEN` like GitLab does, paginates with
//! `x-next-page` and `Link`, records every request, and injects faults on
//! demand: error statuses with `Retry-After`, dropped connections, slow
//! answers, and writes that are applied but whose answer is lost. A fault can
//! be aimed at one route ([`FakeGitLab::push_route_fault`]) or at whatever
//! request comes next ([`FakeGitLab::push_faults`]).
//!
//! Projects are looked up by id or by URL-encoded path
//! ([`FakeGitLab::add_project`]); request bodies that are not JSON
//! (multipart uploads, form posts) reach the routes as raw text.

pub mod blame;
pub mod instance;
pub mod merge_requests;
pub mod packages;
pub mod releases;
mod uploads;

#[allow(unused_imports)]
pub use uploads::FakeUpload;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

pub const TOKEN: &str = "glpat-fake-valid-token-0123456789";
pub const JOB_TOKEN: &str = "fake-ci-job-token-abcdef";
pub const PROJECT_ID: u64 = 855;
pub const PROJECT_PATH: &str = "restorepoint/product";

/// What to do to one request instead of (or besides) answering it.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status (and `Retry-After` seconds if given), change nothing.
    Status(u16, Option<u64>),
    /// Close the connection without answering, change nothing.
    Drop,
    /// Apply the request, then close the connection without answering.
    LostAnswer,
    /// Answer normally, computed when the request arrives, but deliver the
    /// answer only after this delay (a slow network or proxy).
    Slow(Duration),
}

impl Fault {
    /// A short name per kind of fault, for counting them.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Status(429, _) => "429",
            Fault::Status(500..=599, _) => "5xx",
            Fault::Status(..) => "other status",
            Fault::Drop => "reset",
            Fault::LostAnswer => "lost answer",
            Fault::Slow(_) => "slow",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The body as text (invalid UTF-8 replaced), for JSON and forms.
    pub body: String,
    /// The body's bytes, for binary uploads (generic packages).
    pub raw: Bytes,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct FakeIssue {
    /// The project the issue belongs to.
    pub project_id: u64,
    pub iid: u64,
    pub id: u64,
    pub title: String,
    pub description: String,
    pub labels: Vec<String>,
    pub state: String,
    pub notes: Vec<FakeNote>,
}

#[derive(Debug, Clone)]
pub struct FakeNote {
    pub id: u64,
    pub body: String,
}

/// A fault for the first request that matches a method and a path suffix.
#[derive(Debug, Clone)]
struct RouteFault {
    method: String,
    suffix: String,
    fault: Fault,
}

/// A project the fake knows: its id and full path.
#[derive(Debug, Clone)]
pub struct FakeProject {
    pub id: u64,
    pub path: String,
}

pub struct State {
    pub projects: Vec<FakeProject>,
    pub issues: Vec<FakeIssue>,
    next_id: u64,
    requests: Vec<RecordedRequest>,
    faults: VecDeque<Fault>,
    route_faults: Vec<RouteFault>,
    /// Random faults: probability, and the faults to pick from.
    random_faults: Option<(f64, Vec<Fault>)>,
    rng: fastrand::Rng,
    /// Faults delivered so far, per kind (see [`Fault::kind`]).
    injected: std::collections::BTreeMap<&'static str, usize>,
    per_page_max: usize,
    /// Send only `Link` headers (no `x-next-page`), pointing at this host.
    link_only_host: Option<String>,
    pub base_url: String,
    /// Merge requests, discussions, files, labels (`fake_gitlab/merge_requests.rs`).
    pub mr: merge_requests::MrStore,
    pub uploads: uploads::Uploads,
    /// Blame of repository files (`fake_gitlab/blame.rs`).
    pub blame: blame::BlameStore,
}

/// A running fake GitLab; stops when dropped.
pub struct FakeGitLab {
    pub url: String,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn template(name: &str) -> Value {
    let path = super::fixture(&format!("gitlab/{name}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl FakeGitLab {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake GitLab");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr: SocketAddr = listener.local_addr().expect("local addr");
        let url = format!("http://{addr}");
        let state = Arc::new(Mutex::new(State {
            projects: vec![FakeProject {
                id: PROJECT_ID,
                path: PROJECT_PATH.to_owned(),
            }],
            issues: Vec::new(),
            next_id: 69_000,
            requests: Vec::new(),
            faults: VecDeque::new(),
            route_faults: Vec::new(),
            random_faults: None,
            rng: fastrand::Rng::with_seed(7),
            injected: Default::default(),
            per_page_max: 100,
            link_only_host: None,
            base_url: url.clone(),
            mr: Default::default(),
            uploads: uploads::Uploads::default(),
            blame: Default::default(),
        }));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(serve(listener, shared, rx));
        });
        Self {
            url,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// The fake's state, for routes and assertions in other support files.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make another project known (by id and by path), e.g. a fork.
    pub fn add_project(&self, id: u64, path: &str) {
        self.lock().projects.push(FakeProject {
            id,
            path: path.to_owned(),
        });
    }

    /// Aim `fault` at the first later request whose method is `method` and
    /// whose path ends with `path_suffix` (e.g. `"POST", "/discussions"`).
    pub fn push_route_fault(&self, method: &str, path_suffix: &str, fault: Fault) {
        self.lock().route_faults.push(RouteFault {
            method: method.to_owned(),
            suffix: path_suffix.to_owned(),
            fault,
        });
    }

    /// Queue faults for the next requests, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    /// Make a share of all following requests fail with one of `faults`.
    pub fn random_faults(&self, rate: f64, seed: u64, faults: Vec<Fault>) {
        let mut state = self.lock();
        state.rng = fastrand::Rng::with_seed(seed);
        state.random_faults = Some((rate, faults));
    }

    /// Faults delivered so far, per kind (see [`Fault::kind`]).
    pub fn faults_injected(&self) -> std::collections::BTreeMap<&'static str, usize> {
        self.lock().injected.clone()
    }

    pub fn clear_faults(&self) {
        let mut state = self.lock();
        state.faults.clear();
        state.route_faults.clear();
        state.random_faults = None;
    }

    /// Pages at most this long, whatever `per_page` asks (to test pagination).
    pub fn set_page_size(&self, max: usize) {
        self.lock().per_page_max = max.max(1);
    }

    /// Paginate with `Link` only, naming another host in it.
    pub fn link_only_pagination(&self, host: &str) {
        self.lock().link_only_host = Some(host.to_owned());
    }

    pub fn add_issue(&self, title: &str, description: &str, labels: &[&str], state: &str) -> u64 {
        self.add_issue_in(PROJECT_ID, title, description, labels, state)
    }

    /// An issue in another project (see [`FakeGitLab::add_project`]).
    pub fn add_issue_in(
        &self,
        project_id: u64,
        title: &str,
        description: &str,
        labels: &[&str],
        state: &str,
    ) -> u64 {
        let mut s = self.lock();
        let iid = s.next_iid(project_id);
        s.next_id += 1;
        let id = s.next_id;
        s.issues.push(FakeIssue {
            project_id,
            iid,
            id,
            title: title.to_owned(),
            description: description.to_owned(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            state: state.to_owned(),
            notes: Vec::new(),
        });
        iid
    }

    pub fn set_issue_state(&self, iid: u64, state: &str) {
        let mut s = self.lock();
        if let Some(issue) = s
            .issues
            .iter_mut()
            .find(|i| i.project_id == PROJECT_ID && i.iid == iid)
        {
            issue.state = state.to_owned();
        }
    }

    pub fn issues(&self) -> Vec<FakeIssue> {
        self.lock().issues.clone()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// How many requests matched `method` and a path ending in `suffix`.
    pub fn count(&self, method: &str, suffix: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .count()
    }

    pub fn reset_requests(&self) {
        self.lock().requests.clear();
    }
}

impl State {
    /// The next issue iid in a project.
    pub fn next_iid(&self, project_id: u64) -> u64 {
        self.issues
            .iter()
            .filter(|i| i.project_id == project_id)
            .count() as u64
            + 1
    }

    pub fn project(&self, id: u64) -> Option<&FakeProject> {
        self.projects.iter().find(|p| p.id == id)
    }
}

impl Drop for FakeGitLab {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<Mutex<State>>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => continue,
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
            // A service error makes hyper close the connection without an
            // answer: that is how Drop and LostAnswer faults are delivered.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let raw = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(Dropped),
    };
    let request = RecordedRequest {
        method,
        path,
        query,
        body: String::from_utf8_lossy(&raw).into_owned(),
        raw: raw.clone(),
        headers,
    };

    let fault = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.requests.push(request.clone());
        let aimed = s
            .route_faults
            .iter()
            .position(|f| f.method == request.method && request.path.ends_with(&f.suffix))
            .map(|i| s.route_faults.remove(i).fault);
        let queued = aimed.or_else(|| s.faults.pop_front());
        let fault = queued.or_else(|| {
            let (rate, faults) = s.random_faults.clone()?;
            if s.rng.f64() < rate && !faults.is_empty() {
                let pick = s.rng.usize(..faults.len());
                Some(faults[pick].clone())
            } else {
                None
            }
        });
        if let Some(fault) = &fault {
            *s.injected.entry(fault.kind()).or_default() += 1;
        }
        fault
    };
    match fault {
        Some(Fault::Status(status, retry_after)) => {
            let mut response = json_response(
                status,
                &json!({ "message": format!("{status} injected fault") }),
            );
            if let Some(secs) = retry_after {
                response.headers_mut().insert(
                    "retry-after",
                    secs.to_string().parse().expect("header value"),
                );
            }
            return Ok(response);
        }
        Some(Fault::Drop) => return Err(Dropped),
        Some(Fault::Slow(delay)) => {
            let response = {
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                route(&mut s, &request)
            };
            tokio::time::sleep(delay).await;
            return Ok(response);
        }
        Some(Fault::LostAnswer) => {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            let _ = route(&mut s, &request);
            return Err(Dropped);
        }
        None => {}
    }
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    Ok(route(&mut s, &request))
}

pub fn json_response(status: u16, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

pub fn message(status: u16, text: &str) -> Response<Full<Bytes>> {
    json_response(status, &json!({ "message": text }))
}

pub fn query_params(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

pub fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

pub fn header<'a>(request: &'a RecordedRequest, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

enum Caller {
    Private,
    Job,
}

fn route(s: &mut State, request: &RecordedRequest) -> Response<Full<Bytes>> {
    let caller = match (
        header(request, "private-token"),
        header(request, "job-token"),
    ) {
        (Some(TOKEN), _) => Caller::Private,
        (None, Some(JOB_TOKEN)) => Caller::Job,
        _ => return message(401, "401 Unauthorized"),
    };
    if let Some(answer) = instance::route(s, request, matches!(caller, Caller::Job)) {
        return answer;
    }
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    if segments == ["api", "v4", "user"] && request.method == "GET" {
        // A job token cannot read its user, as on GitLab.
        return match caller {
            Caller::Private => json_response(200, &merge_requests::bot_user_json()),
            Caller::Job => message(403, "403 Forbidden"),
        };
    }
    let ["api", "v4", "projects", project, rest @ ..] = segments.as_slice() else {
        return message(404, "404 Not Found");
    };
    let project = decode(project);
    let Some(project) = s
        .projects
        .iter()
        .find(|p| p.id.to_string() == project || p.path == project)
        .cloned()
    else {
        return message(404, "404 Project Not Found");
    };
    if let Some(answer) = releases::route(s, &project, request, rest) {
        return answer;
    }
    if let Some(answer) = packages::route(s, &project, request, rest) {
        return answer;
    }
    if let Some(answer) = blame::route(s, &project, request, rest) {
        return answer;
    }
    let write = request.method != "GET";
    if write && matches!(caller, Caller::Job) {
        return message(403, "403 Forbidden");
    }
    let is_json =
        header(request, "content-type").is_none_or(|t| t.to_ascii_lowercase().contains("json"));
    let body: Value = if request.body.trim().is_empty() || !is_json {
        // Multipart uploads and form posts reach their routes as raw text.
        json!({})
    } else {
        match serde_json::from_str(&request.body) {
            Ok(v) => v,
            Err(_) => return json_response(400, &json!({ "error": "body is not valid JSON" })),
        }
    };
    let params = query_params(&request.query);
    let pid = project.id;
    match (request.method.as_str(), rest) {
        ("GET", ["issues"]) => list_issues(s, pid, request, &params),
        ("POST", ["issues"]) => create_issue(s, pid, &body),
        ("PUT", ["issues", iid]) => update_issue(s, pid, iid, &body),
        ("GET", ["issues", iid]) => match find_issue(s, pid, iid) {
            Some(issue) => json_response(200, &issue_json(s, issue)),
            None => message(404, "404 Issue Not Found"),
        },
        ("GET", ["issues", iid, "notes"]) => list_notes(s, pid, request, iid, &params),
        ("POST", ["issues", iid, "notes"]) => create_note(s, pid, iid, &body),
        ("POST", ["uploads"]) => uploads::create(s, pid, request),
        _ => merge_requests::route(s, &project, request, rest, &body, &params)
            .unwrap_or_else(|| message(404, "404 Not Found")),
    }
}

pub fn find_issue<'a>(s: &'a State, project_id: u64, iid: &str) -> Option<&'a FakeIssue> {
    let iid: u64 = iid.parse().ok()?;
    s.issues
        .iter()
        .find(|i| i.project_id == project_id && i.iid == iid)
}

pub fn issue_json(s: &State, issue: &FakeIssue) -> Value {
    let mut v = template("issue.json");
    let project_path = s
        .project(issue.project_id)
        .map_or(PROJECT_PATH, |p| p.path.as_str());
    let web_url = format!("{}/{project_path}/-/issues/{}", s.base_url, issue.iid);
    v["id"] = json!(issue.id);
    v["iid"] = json!(issue.iid);
    v["project_id"] = json!(issue.project_id);
    v["title"] = json!(issue.title);
    v["description"] = json!(issue.description);
    v["labels"] = json!(issue.labels);
    v["state"] = json!(issue.state);
    v["web_url"] = json!(web_url);
    v["user_notes_count"] = json!(issue.notes.len());
    v["references"] = json!({
        "short": format!("#{}", issue.iid),
        "relative": format!("#{}", issue.iid),
        "full": format!("{project_path}#{}", issue.iid),
    });
    if issue.state == "opened" {
        v["closed_at"] = Value::Null;
        v["closed_by"] = Value::Null;
    }
    v
}

fn note_json(issue: &FakeIssue, note: &FakeNote) -> Value {
    let mut v = template("note.json");
    v["id"] = json!(note.id);
    v["body"] = json!(note.body);
    v["noteable_id"] = json!(issue.id);
    v["noteable_iid"] = json!(issue.iid);
    v["noteable_type"] = json!("Issue");
    v["system"] = json!(false);
    v
}

/// Slice `items` per `page`/`per_page` and add GitLab's pagination headers.
pub fn paginate(
    s: &State,
    request: &RecordedRequest,
    params: &HashMap<String, String>,
    items: Vec<Value>,
) -> Response<Full<Bytes>> {
    let per_page = params
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 100)
        .min(s.per_page_max);
    let page = params
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut response = json_response(200, &Value::Array(slice));
    let headers = response.headers_mut();
    let next = if page < pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    if let Some(host) = &s.link_only_host {
        if !next.is_empty() {
            let mut query: Vec<String> = request
                .query
                .split('&')
                .filter(|kv| !kv.starts_with("page=") && !kv.is_empty())
                .map(str::to_owned)
                .collect();
            query.push(format!("page={next}"));
            let link = format!("<{host}{}?{}>; rel=\"next\"", request.path, query.join("&"));
            headers.insert("link", link.parse().expect("link header"));
        }
    } else {
        headers.insert("x-next-page", next.parse().expect("header"));
        headers.insert("x-page", page.to_string().parse().expect("header"));
        headers.insert("x-per-page", per_page.to_string().parse().expect("header"));
        headers.insert("x-total", total.to_string().parse().expect("header"));
        headers.insert("x-total-pages", pages.to_string().parse().expect("header"));
    }
    response
}

fn list_issues(
    s: &State,
    project_id: u64,
    request: &RecordedRequest,
    params: &HashMap<String, String>,
) -> Response<Full<Bytes>> {
    let wanted: Vec<&str> = params
        .get("labels")
        .map(|l| l.split(',').filter(|l| !l.is_empty()).collect())
        .unwrap_or_default();
    let state = params.get("state").map(String::as_str).unwrap_or("all");
    let items = s
        .issues
        .iter()
        .filter(|i| i.project_id == project_id)
        .filter(|i| wanted.iter().all(|w| i.labels.iter().any(|l| l == w)))
        .filter(|i| state == "all" || i.state == state)
        .map(|i| issue_json(s, i))
        .collect();
    paginate(s, request, params, items)
}

pub fn labels_of(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => s
            .split(',')
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn create_issue(s: &mut State, project_id: u64, body: &Value) -> Response<Full<Bytes>> {
    let Some(title) = body
        .get("title")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
    else {
        return json_response(400, &json!({ "error": "title is missing" }));
    };
    if title.chars().count() > 255 {
        return json_response(
            400,
            &json!({ "message": { "title": ["is too long (maximum is 255 characters)"] } }),
        );
    }
    s.next_id += 1;
    let issue = FakeIssue {
        project_id,
        iid: s.next_iid(project_id),
        id: s.next_id,
        title: title.to_owned(),
        description: body
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        labels: body.get("labels").map(labels_of).unwrap_or_default(),
        state: "opened".to_owned(),
        notes: Vec::new(),
    };
    let answer = issue_json(s, &issue);
    s.issues.push(issue);
    json_response(201, &answer)
}

fn update_issue(s: &mut State, project_id: u64, iid: &str, body: &Value) -> Response<Full<Bytes>> {
    let Ok(iid) = iid.parse::<u64>() else {
        return message(404, "404 Issue Not Found");
    };
    let Some(issue) = s
        .issues
        .iter_mut()
        .find(|i| i.project_id == project_id && i.iid == iid)
    else {
        return message(404, "404 Issue Not Found");
    };
    match body.get("state_event").and_then(Value::as_str) {
        Some("reopen") => issue.state = "opened".to_owned(),
        Some("close") => issue.state = "closed".to_owned(),
        _ => {}
    }
    if let Some(description) = body.get("description").and_then(Value::as_str) {
        issue.description = description.to_owned();
    }
    if let Some(labels) = body.get("labels") {
        issue.labels = labels_of(labels);
    }
    if let Some(add) = body.get("add_labels") {
        for label in labels_of(add) {
            if !issue.labels.contains(&label) {
                issue.labels.push(label);
            }
        }
    }
    if let Some(remove) = body.get("remove_labels") {
        let remove = labels_of(remove);
        issue.labels.retain(|l| !remove.contains(l));
    }
    let issue = issue.clone();
    json_response(200, &issue_json(s, &issue))
}

fn list_notes(
    s: &State,
    project_id: u64,
    request: &RecordedRequest,
    iid: &str,
    params: &HashMap<String, String>,
) -> Response<Full<Bytes>> {
    let Some(issue) = find_issue(s, project_id, iid) else {
        return message(404, "404 Issue Not Found");
    };
    let items = issue.notes.iter().map(|n| note_json(issue, n)).collect();
    paginate(s, request, params, items)
}

/// The quick actions this fake knows (`/reopen`, `/close`) as GitLab finds
/// them: at the start of a line, outside fenced code; and the text without
/// those lines.
fn quick_actions(text: &str) -> (String, Vec<String>) {
    let mut kept = String::with_capacity(text.len());
    let mut actions = Vec::new();
    let mut fence: Option<&str> = None;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        let trimmed = bare.trim_start();
        match fence {
            Some(open) if trimmed.starts_with(open) => fence = None,
            None if trimmed.starts_with("```") => fence = Some("```"),
            None if trimmed.starts_with("~~~") => fence = Some("~~~"),
            // GitLab: a command at the start of its line, in any case, with
            // trailing blanks or arguments (which these two ignore).
            None if matches!(
                bare.split(' ')
                    .next()
                    .map(str::to_ascii_lowercase)
                    .as_deref(),
                Some("/reopen" | "/close")
            ) =>
            {
                actions.push(
                    bare.split(' ')
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase(),
                );
                continue;
            }
            _ => {}
        }
        kept.push_str(line);
    }
    (kept, actions)
}

fn create_note(s: &mut State, project_id: u64, iid: &str, body: &Value) -> Response<Full<Bytes>> {
    let Some(text) = body
        .get("body")
        .and_then(Value::as_str)
        .filter(|b| !b.trim().is_empty())
    else {
        return json_response(400, &json!({ "error": "body is missing" }));
    };
    s.next_id += 1;
    let id = s.next_id;
    let Ok(iid) = iid.parse::<u64>() else {
        return message(404, "404 Issue Not Found");
    };
    let Some(issue) = s
        .issues
        .iter_mut()
        .find(|i| i.project_id == project_id && i.iid == iid)
    else {
        return message(404, "404 Issue Not Found");
    };
    // GitLab runs the quick actions of a note and keeps the rest of it.
    let (text, actions) = quick_actions(text);
    for action in actions {
        match action.as_str() {
            "/reopen" => issue.state = "opened".to_owned(),
            "/close" => issue.state = "closed".to_owned(),
            _ => {}
        }
    }
    let note = FakeNote { id, body: text };
    issue.notes.push(note.clone());
    let issue = issue.clone();
    json_response(201, &note_json(&issue, &note))
}
