//! An in-process, stateful fake Freshdesk (API v2) on 127.0.0.1.
//!
//! It keeps tickets with their conversations and attachments and answers
//! with the shapes documented by Freshdesk (`tests/fixtures/freshdesk/`):
//! a ticket (`include=requester` adds the requester), conversations paged
//! with `per_page` (at most 100) and `Link: <…>; rel="next"`, the ten-only
//! `include=conversations`, private notes, ticket updates (tags replace the
//! list; unknown custom fields are refused). It checks the Basic auth
//! (`API_KEY:X`) like Freshdesk.
//!
//! Attachments are served by a second listener, like Freshdesk's CDN: their
//! URLs carry a one-off token that can be made to expire, and a request that
//! brings credentials along is refused (as S3 does a pre-signed URL with an
//! `Authorization` header).
//!
//! Faults are the fake GitLab's: aimed at one route
//! ([`FakeFreshdesk::push_route_fault`]) or at the next request.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::fake_gitlab::{Fault, RecordedRequest, decode, header, json_response, query_params};

pub const API_KEY: &str = "fd-fake-api-key-4f1c2e";
/// The agent the API key belongs to (author of notes added through the API).
pub const AGENT_ID: u64 = 77_001;
/// Custom ticket fields defined in the fake account.
pub const ACCOUNT_CUSTOM_FIELDS: &[&str] = &["cf_gitlab_issue", "category"];
/// The requester of tickets made by [`FakeFreshdesk::add_ticket`].
pub const REQUESTER_ID: u64 = 5_001;

#[derive(Debug, Clone)]
pub struct FakeAttachment {
    pub id: u64,
    pub name: String,
    pub content_type: String,
    pub content: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct FakeConversation {
    pub id: u64,
    pub body: String,
    pub private: bool,
    pub incoming: bool,
    pub user_id: u64,
    pub from_email: Option<String>,
    pub created_at: String,
    pub attachments: Vec<FakeAttachment>,
}

#[derive(Debug, Clone)]
pub struct FakeTicket {
    pub id: u64,
    pub subject: String,
    pub description: String,
    pub status: u64,
    pub priority: u64,
    pub tags: Vec<String>,
    pub custom_fields: serde_json::Map<String, Value>,
    pub attachments: Vec<FakeAttachment>,
    pub conversations: Vec<FakeConversation>,
    pub created_at: String,
}

/// A conversation to add.
#[derive(Debug, Clone, Default)]
pub struct NewConversation {
    pub body: String,
    pub private: bool,
    pub incoming: bool,
    pub from_email: Option<String>,
    /// Default: now.
    pub created_at: Option<String>,
    /// (name, content type, content)
    pub attachments: Vec<(String, String, Vec<u8>)>,
}

struct RouteFault {
    method: String,
    suffix: String,
    fault: Fault,
}

pub struct State {
    pub tickets: BTreeMap<u64, FakeTicket>,
    next_id: u64,
    requests: Vec<RecordedRequest>,
    faults: VecDeque<Fault>,
    route_faults: Vec<RouteFault>,
    /// Random faults: probability, and the faults to pick from.
    random_faults: Option<(f64, Vec<Fault>)>,
    rng: fastrand::Rng,
    /// Faults delivered so far, per kind (see [`Fault::kind`]).
    injected: std::collections::BTreeMap<&'static str, usize>,
    /// Token → (attachment id, expired).
    tokens: HashMap<String, (u64, bool)>,
    /// The next this many attachment URLs handed out are already expired.
    expire_next_urls: usize,
    /// Answers of the attachment host: (token, status).
    pub downloads: Vec<(String, u16)>,
    base_url: String,
    cdn_url: String,
}

/// A running fake Freshdesk (API and attachment host); stops when dropped.
pub struct FakeFreshdesk {
    /// The API's base URL (what `freshdesk.url` is set to).
    pub url: String,
    /// The attachment host.
    pub cdn_url: String,
    state: Arc<Mutex<State>>,
    shutdown: Vec<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn fixture(name: &str) -> Value {
    let path = super::fixture(&format!("freshdesk/{name}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Now, as Freshdesk writes times.
pub fn now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
}

impl FakeFreshdesk {
    pub fn start() -> Self {
        let api = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake Freshdesk");
        let cdn = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake attachment host");
        api.set_nonblocking(true).expect("nonblocking");
        cdn.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", api.local_addr().expect("addr"));
        let cdn_url = format!("http://{}", cdn.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State {
            tickets: BTreeMap::new(),
            next_id: 9_000,
            requests: Vec::new(),
            faults: VecDeque::new(),
            route_faults: Vec::new(),
            random_faults: None,
            rng: fastrand::Rng::with_seed(7),
            injected: Default::default(),
            tokens: HashMap::new(),
            expire_next_urls: 0,
            downloads: Vec::new(),
            base_url: url.clone(),
            cdn_url: cdn_url.clone(),
        }));
        let (api_tx, api_rx) = tokio::sync::oneshot::channel::<()>();
        let (cdn_tx, cdn_rx) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let api = tokio::spawn(serve(api, shared.clone(), api_rx, false));
                let cdn = tokio::spawn(serve(cdn, shared, cdn_rx, true));
                let _ = api.await;
                let _ = cdn.await;
            });
        });
        Self {
            url,
            cdn_url,
            state,
            shutdown: vec![api_tx, cdn_tx],
            thread: Some(thread),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ticket from REQUESTER_ID, created in 2015 (before any issue), with
    /// the account's custom fields (`cf_gitlab_issue`, `category`) empty.
    pub fn add_ticket(&self, id: u64, subject: &str, description_html: &str) {
        let mut custom_fields = serde_json::Map::new();
        for field in ACCOUNT_CUSTOM_FIELDS {
            custom_fields.insert((*field).to_owned(), Value::Null);
        }
        self.lock().tickets.insert(
            id,
            FakeTicket {
                id,
                subject: subject.to_owned(),
                description: description_html.to_owned(),
                status: 2,
                priority: 3,
                tags: Vec::new(),
                custom_fields,
                attachments: Vec::new(),
                conversations: Vec::new(),
                created_at: "2015-08-24T11:56:51Z".to_owned(),
            },
        );
    }

    /// Change a ticket in place.
    pub fn edit_ticket(&self, id: u64, f: impl FnOnce(&mut FakeTicket)) {
        let mut s = self.lock();
        let ticket = s.tickets.get_mut(&id).expect("no such ticket");
        f(ticket);
    }

    pub fn add_ticket_attachment(
        &self,
        ticket: u64,
        name: &str,
        content_type: &str,
        content: &[u8],
    ) -> u64 {
        let mut s = self.lock();
        s.next_id += 1;
        let attachment = FakeAttachment {
            id: s.next_id,
            name: name.to_owned(),
            content_type: content_type.to_owned(),
            content: content.to_vec(),
        };
        let id = attachment.id;
        s.tickets
            .get_mut(&ticket)
            .expect("no such ticket")
            .attachments
            .push(attachment);
        id
    }

    /// Add a conversation; its id.
    pub fn add_conversation(&self, ticket: u64, new: NewConversation) -> u64 {
        let mut s = self.lock();
        s.next_id += 1;
        let id = s.next_id;
        let mut attachments = Vec::new();
        for (name, content_type, content) in new.attachments {
            s.next_id += 1;
            attachments.push(FakeAttachment {
                id: s.next_id,
                name,
                content_type,
                content,
            });
        }
        let conversation = FakeConversation {
            id,
            body: new.body,
            private: new.private,
            incoming: new.incoming,
            user_id: if new.incoming { REQUESTER_ID } else { AGENT_ID },
            from_email: new.from_email,
            created_at: new.created_at.unwrap_or_else(now),
            attachments,
        };
        s.tickets
            .get_mut(&ticket)
            .expect("no such ticket")
            .conversations
            .push(conversation);
        id
    }

    pub fn ticket(&self, id: u64) -> FakeTicket {
        self.lock()
            .tickets
            .get(&id)
            .cloned()
            .expect("no such ticket")
    }

    /// The next `n` attachment URLs handed out are already expired.
    pub fn expire_next_urls(&self, n: usize) {
        self.lock().expire_next_urls = n;
    }

    pub fn push_route_fault(&self, method: &str, path_suffix: &str, fault: Fault) {
        self.lock().route_faults.push(RouteFault {
            method: method.to_owned(),
            suffix: path_suffix.to_owned(),
            fault,
        });
    }

    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    /// Make a share of all following requests (the API's and the
    /// attachment host's) fail with one of `faults`.
    pub fn random_faults(&self, rate: f64, seed: u64, faults: Vec<Fault>) {
        let mut state = self.lock();
        state.rng = fastrand::Rng::with_seed(seed);
        state.random_faults = Some((rate, faults));
    }

    pub fn clear_faults(&self) {
        let mut state = self.lock();
        state.faults.clear();
        state.route_faults.clear();
        state.random_faults = None;
    }

    /// Faults delivered so far, per kind (see [`Fault::kind`]).
    pub fn faults_injected(&self) -> std::collections::BTreeMap<&'static str, usize> {
        self.lock().injected.clone()
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

    /// Writes (POST, PUT, DELETE) received so far.
    pub fn writes(&self) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.method != "GET")
            .count()
    }
}

impl Drop for FakeFreshdesk {
    fn drop(&mut self) {
        for tx in self.shutdown.drain(..) {
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
    cdn: bool,
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
            let service = hyper::service::service_fn(move |req| handle(req, state.clone(), cdn));
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

type Answer = Response<Full<Bytes>>;

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    cdn: bool,
) -> Result<Answer, Dropped> {
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
        let fault = aimed.or_else(|| s.faults.pop_front()).or_else(|| {
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
    let route = |s: &mut State| {
        if cdn {
            download(s, &request)
        } else {
            route(s, &request)
        }
    };
    match fault {
        Some(Fault::Status(status, retry_after)) => {
            let mut response = json_response(
                status,
                &json!({ "code": "fault", "message": format!("{status} injected fault") }),
            );
            if let Some(secs) = retry_after {
                response.headers_mut().insert(
                    "retry-after",
                    secs.to_string().parse().expect("header value"),
                );
            }
            Ok(response)
        }
        Some(Fault::Drop) => Err(Dropped),
        Some(Fault::LostAnswer) => {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            let _ = route(&mut s);
            Err(Dropped)
        }
        Some(Fault::Slow(delay)) => {
            let response = {
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                route(&mut s)
            };
            tokio::time::sleep(delay).await;
            Ok(response)
        }
        None => {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            Ok(route(&mut s))
        }
    }
}

fn errors(status: u16, message: &str, code: &str) -> Answer {
    json_response(
        status,
        &json!({
            "description": "Validation failed",
            "errors": [{ "field": "", "message": message, "code": code }],
        }),
    )
}

fn route(s: &mut State, request: &RecordedRequest) -> Answer {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{API_KEY}:X"))
    );
    if header(request, "authorization") != Some(expected.as_str()) {
        return json_response(
            401,
            &json!({
                "code": "invalid_credentials",
                "message": "You have to be logged in to perform this action.",
            }),
        );
    }
    if request.method == "GET" && request.path == "/api/v2/agents/me" {
        // The agent the API key belongs to (what `doctor` reads).
        return json_response(
            200,
            &json!({
                "id": AGENT_ID,
                "available": true,
                "occasional": false,
                "contact": { "name": "Support Bot", "email": "support-bot@example.com", "active": true },
            }),
        );
    }
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    let ["api", "v2", "tickets", id, rest @ ..] = segments.as_slice() else {
        return errors(404, "No such route", "invalid_path");
    };
    let Ok(id) = id.parse::<u64>() else {
        return errors(404, "No such route", "invalid_path");
    };
    if !s.tickets.contains_key(&id) {
        return json_response(
            404,
            &json!({ "code": "access_denied", "message": format!("There is no ticket with id {id}") }),
        );
    }
    let params = query_params(&request.query);
    let body: Value = if request.body.trim().is_empty() {
        json!({})
    } else {
        match serde_json::from_str(&request.body) {
            Ok(v) => v,
            Err(_) => return errors(400, "Invalid JSON", "invalid_json"),
        }
    };
    match (request.method.as_str(), rest) {
        ("GET", []) => {
            let mut v = ticket_json(s, id);
            let includes: Vec<&str> = params
                .get("include")
                .map(|i| i.split(',').collect())
                .unwrap_or_default();
            if includes.contains(&"requester") {
                v["requester"] = json!({
                    "id": REQUESTER_ID,
                    "name": "Ada Requester",
                    "email": "ada@customer.example",
                    "mobile": null,
                    "phone": null,
                });
            }
            if includes.contains(&"conversations") {
                // Freshdesk's shortcut stops at ten.
                let ten: Vec<Value> = s.tickets[&id]
                    .conversations
                    .clone()
                    .iter()
                    .take(10)
                    .map(|c| conversation_json(s, id, c))
                    .collect();
                v["conversations"] = Value::Array(ten);
            }
            json_response(200, &v)
        }
        ("GET", ["conversations"]) => list_conversations(s, id, request, &params),
        ("POST", ["notes"]) => add_note(s, id, &body),
        ("PUT", []) => update_ticket(s, id, &body),
        _ => errors(404, "No such route", "invalid_path"),
    }
}

/// A fresh pre-signed URL for an attachment.
fn attachment_url(s: &mut State, attachment: u64) -> String {
    let token = format!("{:016x}{:08x}", fastrand::u64(..), s.tokens.len());
    let expired = s.expire_next_urls > 0;
    if expired {
        s.expire_next_urls -= 1;
    }
    s.tokens.insert(token.clone(), (attachment, expired));
    format!(
        "{}/data/helpdesk/attachments/production/{attachment}/original/{token}",
        s.cdn_url
    )
}

fn attachment_json(s: &mut State, a: &FakeAttachment) -> Value {
    let mut v = fixture("reply-with-attachment.json")["attachments"][0].clone();
    v["id"] = json!(a.id);
    v["name"] = json!(a.name);
    v["content_type"] = json!(a.content_type);
    v["size"] = json!(a.content.len());
    v["attachment_url"] = json!(attachment_url(s, a.id));
    v
}

fn ticket_json(s: &mut State, id: u64) -> Value {
    let t = s.tickets[&id].clone();
    let mut v = fixture("ticket.json");
    v["id"] = json!(t.id);
    v["subject"] = json!(t.subject);
    v["description"] = json!(t.description);
    v["description_text"] = json!(strip_tags(&t.description));
    v["status"] = json!(t.status);
    v["priority"] = json!(t.priority);
    v["requester_id"] = json!(REQUESTER_ID);
    v["tags"] = json!(t.tags);
    v["custom_fields"] = Value::Object(t.custom_fields.clone());
    v["created_at"] = json!(t.created_at);
    v["attachments"] = Value::Array(
        t.attachments
            .iter()
            .map(|a| attachment_json(s, a))
            .collect(),
    );
    v
}

fn conversation_json(s: &mut State, ticket: u64, c: &FakeConversation) -> Value {
    let mut v = fixture("conversations.json")[0].clone();
    v["id"] = json!(c.id);
    v["body"] = json!(c.body);
    v["body_text"] = json!(strip_tags(&c.body));
    v["structured_body"] = Value::Null;
    v["private"] = json!(c.private);
    v["incoming"] = json!(c.incoming);
    v["user_id"] = json!(c.user_id);
    v["from_email"] = json!(c.from_email);
    v["ticket_id"] = json!(ticket);
    v["created_at"] = json!(c.created_at);
    v["updated_at"] = json!(c.created_at);
    v["source"] = json!(if c.private { 2 } else { 0 });
    v["attachments"] = Value::Array(
        c.attachments
            .iter()
            .map(|a| attachment_json(s, a))
            .collect(),
    );
    v
}

fn list_conversations(
    s: &mut State,
    id: u64,
    request: &RecordedRequest,
    params: &HashMap<String, String>,
) -> Answer {
    let per_page = params
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30);
    if per_page == 0 || per_page > 100 {
        return errors(
            400,
            "It should be a Positive Integer less than or equal to 100",
            "invalid_value",
        );
    }
    let page = params
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let all = s.tickets[&id].conversations.clone();
    let slice: Vec<Value> = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|c| conversation_json(s, id, c))
        .collect();
    let mut response = json_response(200, &Value::Array(slice));
    if page * per_page < all.len() {
        let link = format!(
            "<{}{}?per_page={per_page}&page={}>; rel=\"next\"",
            s.base_url,
            request.path,
            page + 1
        );
        response
            .headers_mut()
            .insert("link", link.parse().expect("link header"));
    }
    response
}

fn add_note(s: &mut State, id: u64, body: &Value) -> Answer {
    let Some(text) = body
        .get("body")
        .and_then(Value::as_str)
        .filter(|b| !b.trim().is_empty())
    else {
        return json_response(
            400,
            &json!({"description": "Validation failed", "errors": [{"field": "body", "message": "It should be a/an String", "code": "missing_field"}]}),
        );
    };
    let private = body.get("private").and_then(Value::as_bool).unwrap_or(true);
    s.next_id += 1;
    let conversation = FakeConversation {
        id: s.next_id,
        body: text.to_owned(),
        private,
        incoming: false,
        user_id: AGENT_ID,
        from_email: None,
        created_at: now(),
        attachments: Vec::new(),
    };
    s.tickets
        .get_mut(&id)
        .expect("checked")
        .conversations
        .push(conversation.clone());
    json_response(201, &conversation_json(s, id, &conversation))
}

fn update_ticket(s: &mut State, id: u64, body: &Value) -> Answer {
    if let Some(tags) = body.get("tags") {
        let Some(list) = tags.as_array().filter(|l| l.iter().all(Value::is_string)) else {
            return json_response(
                400,
                &json!({"description": "Validation failed", "errors": [{"field": "tags", "message": "It should be a/an Array", "code": "datatype_mismatch"}]}),
            );
        };
        let tags: Vec<String> = list
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
        s.tickets.get_mut(&id).expect("checked").tags = tags;
    }
    if let Some(fields) = body.get("custom_fields") {
        let Some(fields) = fields.as_object() else {
            return errors(400, "It should be a/an key/value pair", "datatype_mismatch");
        };
        let ticket = s.tickets.get_mut(&id).expect("checked");
        for (key, value) in fields {
            if !ticket.custom_fields.contains_key(key) {
                return json_response(
                    400,
                    &json!({"description": "Validation failed", "errors": [{"field": key, "message": "Unexpected/invalid field in request", "code": "invalid_field"}]}),
                );
            }
            ticket.custom_fields.insert(key.clone(), value.clone());
        }
    }
    json_response(200, &ticket_json(s, id))
}

/// The attachment host: a valid, unexpired token and no credentials.
fn download(s: &mut State, request: &RecordedRequest) -> Answer {
    let token = request
        .path
        .rsplit('/')
        .next()
        .map(decode)
        .unwrap_or_default();
    let answer = |s: &mut State, status: u16, body: Vec<u8>, content_type: &str| {
        s.downloads.push((token.clone(), status));
        Response::builder()
            .status(StatusCode::from_u16(status).expect("status"))
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("response")
    };
    if header(request, "authorization").is_some() {
        return answer(
            s,
            400,
            b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>".to_vec(),
            "application/xml",
        );
    }
    let Some(&(attachment, expired)) = s.tokens.get(&token) else {
        return answer(
            s,
            403,
            b"<Error><Code>AccessDenied</Code></Error>".to_vec(),
            "application/xml",
        );
    };
    if expired {
        return answer(
            s,
            403,
            b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
                .to_vec(),
            "application/xml",
        );
    }
    let found = s
        .tickets
        .values()
        .flat_map(|t| {
            t.attachments
                .iter()
                .chain(t.conversations.iter().flat_map(|c| c.attachments.iter()))
        })
        .find(|a| a.id == attachment)
        .cloned();
    match found {
        Some(a) => answer(s, 200, a.content, &a.content_type),
        None => answer(
            s,
            404,
            b"<Error><Code>NoSuchKey</Code></Error>".to_vec(),
            "application/xml",
        ),
    }
}

/// Freshdesk's `body_text`: the text without tags.
fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
