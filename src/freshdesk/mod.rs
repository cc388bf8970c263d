//! The Freshdesk API v2 client (used by `escalate`).
//!
//! Blocking `ureq`, with the same rules as the GitLab client (SPEC §11):
//! error statuses are read as values; 429 (honouring `Retry-After`), 502,
//! 503, 504 and connection errors are retried with backoff within a bounded
//! time; a note whose answer was lost is looked for before it is sent again;
//! pagination follows `Link: <…>; rel="next"` against the configured base
//! URL only. Every error names the ticket and carries Freshdesk's own
//! message (`errors[]`), never the API key.
//!
//! Attachments are downloaded from their pre-signed URLs (on another host,
//! so without credentials) into files, bounded in size; an expired URL is
//! replaced by a fresh one from a new read of the ticket.
//!
//! In dry-run mode reads go out as usual and writes are recorded, not sent.
//! This module knows Freshdesk's HTTP conventions, nothing about GitLab.

mod types;

pub use types::{Agent, AgentContact, Attachment, Contact, Conversation, Ticket};

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::UsageError;
use crate::gitlab::{PlannedWrite, Written};
use crate::http::retry::{self, Attempt, Outcome};
use crate::http::tls::{self, TrustStore};
use crate::http::{RawResponse, RetryPolicy, may_have_arrived, same_origin, transport_reason};
use crate::settings::Secret;

/// Largest JSON answer read.
const MAX_ANSWER: u64 = 64 * 1024 * 1024;
/// Conversations per page: Freshdesk's maximum.
const PER_PAGE: u32 = 100;

/// A Freshdesk answer with an error status, or a transport failure.
#[derive(Debug)]
pub struct FreshdeskError {
    pub method: &'static str,
    pub path: String,
    pub ticket: Option<u64>,
    /// `None` for a transport failure (no answer at all).
    pub status: Option<u16>,
    pub message: String,
    key_source: String,
    base_url: String,
}

impl fmt::Display for FreshdeskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.ticket {
            Some(id) => format!("Freshdesk ticket {id}: "),
            None => "Freshdesk: ".to_owned(),
        };
        match self.status {
            Some(status) => write!(
                f,
                "{what}{} {} answered {status}: {}",
                self.method, self.path, self.message
            ),
            None => write!(
                f,
                "{what}{} {} failed: {}",
                self.method, self.path, self.message
            ),
        }
    }
}

impl std::error::Error for FreshdeskError {}

impl FreshdeskError {
    /// A likely fix, for the `hint:` line.
    pub fn hint(&self) -> Option<String> {
        match self.status {
            Some(401) => Some(format!(
                "Freshdesk rejected the API key from {}: copy it from your Freshdesk profile \
                 settings (\"Your API Key\")",
                self.key_source
            )),
            Some(403) => Some(
                "the API key's agent may not do this: it needs access to the ticket's group \
                 and the permission to edit tickets"
                    .to_owned(),
            ),
            Some(404) if self.ticket.is_some() => Some(format!(
                "check the ticket number and that it exists at {}",
                self.base_url
            )),
            None if tls::is_untrusted_certificate(&self.message) => {
                Some(tls::UNTRUSTED_HINT.to_owned())
            }
            None => Some(format!(
                "is Freshdesk reachable at {}? (freshdesk.domain or freshdesk.url)",
                self.base_url
            )),
            _ => None,
        }
    }
}

/// What a ticket update changes; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketUpdate {
    /// The whole tag list (Freshdesk replaces it).
    pub tags: Option<Vec<String>>,
    pub custom_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

impl TicketUpdate {
    pub fn is_empty(&self) -> bool {
        self.tags.is_none() && self.custom_fields.is_none()
    }
}

/// How an attachment download ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Download {
    /// Stored; this many bytes.
    Saved(u64),
    /// Larger than the limit given; nothing kept.
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Put,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

pub struct Freshdesk {
    agent: ureq::Agent,
    /// For attachment URLs: another host, no credentials, redirects allowed.
    downloads: ureq::Agent,
    base_url: String,
    api: String,
    authorization: Secret,
    key_source: String,
    retry: RetryPolicy,
    on_retry: Box<dyn Fn(&str) + Send + Sync>,
    dry_run: bool,
    planned: Mutex<Vec<PlannedWrite>>,
    /// Attachment id → a fresh URL, from the last re-read after an expiry.
    fresh_urls: Mutex<HashMap<u64, String>>,
}

impl fmt::Debug for Freshdesk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Freshdesk")
            .field("base_url", &self.base_url)
            .field("key_source", &self.key_source)
            .field("dry_run", &self.dry_run)
            .finish()
    }
}

impl Freshdesk {
    /// A client for `base_url` (`https://acme.freshdesk.com`, no trailing
    /// slash) with the API key read from `key_source`.
    pub fn new(
        base_url: &str,
        api_key: &Secret,
        key_source: &str,
        retry: RetryPolicy,
        trust: &TrustStore,
    ) -> Result<Self> {
        let base_url = normalize_base_url(base_url)?;
        let agent = ureq::Agent::config_builder()
            .tls_config(trust.tls_config()?)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(retry.timeout))
            .user_agent(concat!("rp-devops/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        let downloads = ureq::Agent::config_builder()
            .tls_config(trust.tls_config()?)
            .http_status_as_error(false)
            .max_redirects(5)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(retry.timeout.max(Duration::from_secs(600))))
            .user_agent(concat!("rp-devops/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        // Freshdesk's scheme: the key as user name, any password ("X").
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:X", api_key.expose()));
        Ok(Self {
            agent,
            downloads,
            api: format!("{base_url}/api/v2"),
            base_url,
            authorization: Secret::new(format!("Basic {basic}")),
            key_source: key_source.to_owned(),
            retry,
            on_retry: Box::new(|_| {}),
            dry_run: false,
            planned: Mutex::new(Vec::new()),
            fresh_urls: Mutex::new(HashMap::new()),
        })
    }

    /// Record writes instead of sending them; reads go out as usual.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Called with a one-line reason before each retry (for stderr).
    pub fn on_retry(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_retry = Box::new(f);
        self
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// The writes a dry run did not send, in order.
    pub fn planned(&self) -> Vec<PlannedWrite> {
        self.planned
            .lock()
            .map(|p| p.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Where an agent opens the ticket.
    pub fn ticket_url(&self, ticket: u64) -> String {
        format!("{}/a/tickets/{ticket}", self.base_url)
    }

    /// A lasting link to an attachment, for agents who are logged in (the
    /// API's `attachment_url` expires within minutes).
    pub fn attachment_page_url(&self, attachment: u64) -> String {
        format!("{}/helpdesk/attachments/{attachment}", self.base_url)
    }

    /// The agent the API key belongs to: the cheapest read that proves
    /// Freshdesk answers and takes the key.
    pub fn me(&self) -> Result<Agent> {
        self.get(None, "agents/me")
    }

    /// The ticket with its requester.
    pub fn ticket(&self, id: u64) -> Result<Ticket> {
        self.get(Some(id), &format!("tickets/{id}?include=requester"))
    }

    /// Every conversation of a ticket, oldest first, page by page
    /// (`include=conversations` would stop at ten).
    pub fn conversations(&self, ticket: u64) -> Result<Vec<Conversation>> {
        let first = format!("tickets/{ticket}/conversations?per_page={PER_PAGE}");
        let mut next = Some(first);
        let mut all = Vec::new();
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > 10_000 {
                anyhow::bail!(
                    "Freshdesk ticket {ticket}: more than 10000 pages of conversations, giving up"
                );
            }
            let response =
                self.request(Method::Get, Some(ticket), &path, None, &mut || Ok(false))?;
            let mut page: Vec<Conversation> = parse(Some(ticket), Method::Get, &path, &response)?;
            let got = page.len();
            all.append(&mut page);
            next = next_page(&response);
            if got == 0 {
                break;
            }
        }
        Ok(all)
    }

    /// Download `attachment` of `ticket` into `dest`, reading at most `limit`
    /// bytes. An expired URL (Freshdesk's pre-signed URLs last minutes) is
    /// replaced by a fresh one from a new read of the ticket, once.
    pub fn download(
        &self,
        ticket: u64,
        attachment: &Attachment,
        dest: &Path,
        limit: u64,
    ) -> Result<Download> {
        if attachment.size().is_some_and(|size| size > limit) {
            return Ok(Download::TooLarge);
        }
        let known = self
            .fresh_urls
            .lock()
            .ok()
            .and_then(|urls| urls.get(&attachment.id).cloned());
        let url = known.unwrap_or_else(|| attachment.attachment_url.clone());
        match self.fetch_attachment(ticket, attachment, &url, dest, limit)? {
            Fetched::Done(download) => return Ok(download),
            Fetched::Expired(status) => {
                (self.on_retry)(&format!(
                    "attachment {} ({}) of ticket {ticket}: its URL answered {status} (expired); \
                     reading the ticket again for a fresh one",
                    attachment.id, attachment.name
                ));
            }
        }
        let fresh = self.refresh_attachment_urls(ticket)?;
        let url = fresh.get(&attachment.id).cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "Freshdesk ticket {ticket}: attachment {} ({}) is gone from the ticket",
                attachment.id,
                attachment.name
            )
        })?;
        match self.fetch_attachment(ticket, attachment, &url, dest, limit)? {
            Fetched::Done(download) => Ok(download),
            Fetched::Expired(status) => anyhow::bail!(
                "Freshdesk ticket {ticket}: attachment {} ({}) answered {status} even at a fresh URL",
                attachment.id,
                attachment.name
            ),
        }
    }

    /// Read the ticket and its conversations again and remember each
    /// attachment's current URL.
    fn refresh_attachment_urls(&self, ticket: u64) -> Result<HashMap<u64, String>> {
        let fresh = self.ticket(ticket)?;
        let mut urls: HashMap<u64, String> = fresh
            .attachments
            .iter()
            .map(|a| (a.id, a.attachment_url.clone()))
            .collect();
        for conversation in self.conversations(ticket)? {
            for a in conversation.attachments {
                urls.insert(a.id, a.attachment_url);
            }
        }
        if let Ok(mut known) = self.fresh_urls.lock() {
            known.extend(urls.iter().map(|(k, v)| (*k, v.clone())));
        }
        Ok(urls)
    }

    fn fetch_attachment(
        &self,
        ticket: u64,
        attachment: &Attachment,
        url: &str,
        dest: &Path,
        limit: u64,
    ) -> Result<Fetched> {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            anyhow::bail!(
                "Freshdesk ticket {ticket}: attachment {} ({}) has no usable URL",
                attachment.id,
                attachment.name
            );
        }
        let what = format!("attachment {} ({})", attachment.id, attachment.name);
        let label = format!("Freshdesk ticket {ticket}: GET {what}");
        let mut attempt = || -> Result<Attempt<Fetched>> {
            // A pre-signed URL carries its own authorisation; the API key is
            // sent only when the attachment is served by Freshdesk itself.
            let mut request = self.downloads.get(url);
            if same_origin(url, &self.base_url) {
                request = request.header("Authorization", self.authorization.expose());
            }
            let mut response = match request.call() {
                Ok(response) => response,
                Err(err) if tls::is_tls_failure(&err) => {
                    anyhow::bail!(
                        "Freshdesk ticket {ticket}: downloading {what} failed: {}",
                        transport_reason(&err)
                    )
                }
                Err(err) => {
                    return Ok(Attempt::Retry {
                        reason: transport_reason(&err),
                        applied_maybe: false,
                        wait: None,
                    });
                }
            };
            let status = response.status().as_u16();
            match status {
                200..=299 => {}
                // S3 answers 403 (sometimes 400) to an expired signature.
                400 | 401 | 403 | 404 | 410 => return Ok(Attempt::Done(Fetched::Expired(status))),
                429 | 502 | 503 | 504 => {
                    let raw = RawResponse::read(&mut response, 64 * 1024).ok();
                    return Ok(Attempt::Retry {
                        reason: format!("{status} from the attachment host"),
                        applied_maybe: false,
                        wait: raw.as_ref().and_then(retry::retry_after),
                    });
                }
                other => anyhow::bail!("Freshdesk ticket {ticket}: {what} answered {other}"),
            }
            let mut file = std::fs::File::create(dest)
                .with_context(|| format!("creating {}", dest.display()))?;
            let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
            let copied = std::io::copy(&mut (&mut reader).take(limit + 1), &mut file);
            match copied {
                Ok(n) if n > limit => {
                    drop(file);
                    let _ = std::fs::remove_file(dest);
                    Ok(Attempt::Done(Fetched::Done(Download::TooLarge)))
                }
                Ok(n) => {
                    file.flush()
                        .with_context(|| format!("writing {}", dest.display()))?;
                    Ok(Attempt::Done(Fetched::Done(Download::Saved(n))))
                }
                Err(err) => Ok(Attempt::Retry {
                    reason: format!("download cut off: {err}"),
                    applied_maybe: false,
                    wait: None,
                }),
            }
        };
        let outcome = retry::run(
            &self.retry,
            &label,
            false,
            &*self.on_retry,
            &mut attempt,
            &mut || Ok(false),
        )?;
        match outcome {
            Outcome::Done(fetched) => Ok(fetched),
            Outcome::Applied => unreachable!("a download is not a write"),
            Outcome::GaveUp { message, .. } => {
                anyhow::bail!("Freshdesk ticket {ticket}: downloading {what} failed: {message}")
            }
        }
    }

    /// Add a private note (HTML) to a ticket. `marker` is a string only this
    /// note contains: after a lost answer the conversations are searched for
    /// it before the note is sent again.
    pub fn add_private_note(
        &self,
        ticket: u64,
        html: &str,
        marker: &str,
    ) -> Result<Written<Conversation>> {
        let path = format!("tickets/{ticket}/notes");
        let body = json!({ "body": html, "private": true });
        if self.plan(
            Method::Post,
            &path,
            "private note on the ticket linking the GitLab issue",
        ) {
            return Ok(Written::Planned);
        }
        let mut found = None;
        let response = self.request(Method::Post, Some(ticket), &path, Some(&body), &mut || {
            found = self
                .conversations(ticket)?
                .into_iter()
                .find(|c| c.body.contains(marker));
            Ok(found.is_some())
        })?;
        if response.status == 0 {
            return found.map(Written::Sent).ok_or_else(|| {
                anyhow::anyhow!("Freshdesk ticket {ticket}: recovered note vanished")
            });
        }
        parse(Some(ticket), Method::Post, &path, &response).map(Written::Sent)
    }

    /// Change a ticket's tags and custom fields (idempotent: the same update
    /// twice leaves the same ticket).
    pub fn update_ticket(&self, ticket: u64, update: &TicketUpdate) -> Result<Written<()>> {
        let path = format!("tickets/{ticket}");
        let mut body = serde_json::Map::new();
        let mut summary = Vec::new();
        if let Some(tags) = &update.tags {
            body.insert("tags".to_owned(), json!(tags));
            summary.push(format!("tags {}", tags.join(", ")));
        }
        if let Some(fields) = &update.custom_fields {
            body.insert("custom_fields".to_owned(), json!(fields));
            summary.push(format!(
                "custom fields {}",
                fields.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if self.plan(Method::Put, &path, &summary.join("; ")) {
            return Ok(Written::Planned);
        }
        let body = serde_json::Value::Object(body);
        self.request(Method::Put, Some(ticket), &path, Some(&body), &mut || {
            Ok(false)
        })?;
        Ok(Written::Sent(()))
    }

    /// In dry-run mode, record the write and say so.
    fn plan(&self, method: Method, path: &str, summary: &str) -> bool {
        if !self.dry_run {
            return false;
        }
        let write = PlannedWrite {
            method: method.as_str().to_owned(),
            path: format!("freshdesk:/api/v2/{path}"),
            summary: summary.to_owned(),
        };
        match self.planned.lock() {
            Ok(mut planned) => planned.push(write),
            Err(poisoned) => poisoned.into_inner().push(write),
        }
        true
    }

    fn get<T: DeserializeOwned>(&self, ticket: Option<u64>, path: &str) -> Result<T> {
        let response = self.request(Method::Get, ticket, path, None, &mut || Ok(false))?;
        parse(ticket, Method::Get, path, &response)
    }

    /// Send with retries; a status-0 answer means `applied` found the write.
    fn request(
        &self,
        method: Method,
        ticket: Option<u64>,
        path: &str,
        body: Option<&serde_json::Value>,
        applied: &mut dyn FnMut() -> Result<bool>,
    ) -> Result<RawResponse> {
        let label = format!("Freshdesk {} /api/v2/{path}", method.as_str());
        let outcome = retry::run(
            &self.retry,
            &label,
            method != Method::Get,
            &*self.on_retry,
            &mut || self.attempt(method, path, body),
            applied,
        )?;
        match outcome {
            Outcome::Done(response) if (200..300).contains(&response.status) => Ok(response),
            Outcome::Done(response) => Err(self
                .error(
                    method,
                    ticket,
                    path,
                    Some(response.status),
                    freshdesk_message(&response),
                )
                .into()),
            Outcome::Applied => Ok(RawResponse {
                status: 0,
                headers: Vec::new(),
                body: String::new(),
            }),
            Outcome::GaveUp { status, message } => {
                Err(self.error(method, ticket, path, status, message).into())
            }
        }
    }

    fn attempt(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Attempt<RawResponse>> {
        let url = format!("{}/{}", self.api, path.trim_start_matches('/'));
        let auth = self.authorization.expose();
        let result = match method {
            Method::Get => self.agent.get(&url).header("Authorization", auth).call(),
            Method::Post | Method::Put => {
                let builder = if method == Method::Post {
                    self.agent.post(&url)
                } else {
                    self.agent.put(&url)
                };
                builder
                    .header("Authorization", auth)
                    .send_json(body.cloned().unwrap_or(serde_json::Value::Null))
            }
        };
        let mut response = match result {
            Ok(response) => response,
            Err(err) if tls::is_tls_failure(&err) => {
                return Ok(Attempt::Done(RawResponse {
                    status: 0,
                    headers: Vec::new(),
                    body: transport_reason(&err),
                }));
            }
            Err(err) => {
                return Ok(Attempt::Retry {
                    reason: transport_reason(&err),
                    applied_maybe: may_have_arrived(&err),
                    wait: None,
                });
            }
        };
        let raw = match RawResponse::read(&mut response, MAX_ANSWER) {
            Ok(raw) => raw,
            Err(err) => {
                return Ok(Attempt::Retry {
                    reason: format!("answer cut off: {err}"),
                    applied_maybe: true,
                    wait: None,
                });
            }
        };
        Ok(match raw.status {
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
                reason: format!("{} {}", raw.status, freshdesk_message(&raw)),
                applied_maybe: true,
                wait: None,
            },
            301 | 302 | 303 | 307 | 308 => {
                // Never follow with the API key; a Freshdesk domain that
                // moved is a configuration matter.
                let location = raw.header("location").unwrap_or_default().to_owned();
                Attempt::Done(RawResponse {
                    body: format!(
                        "{{\"message\": \"redirected to {}; not following with credentials\"}}",
                        location.escape_default()
                    ),
                    ..raw
                })
            }
            _ => Attempt::Done(raw),
        })
    }

    fn error(
        &self,
        method: Method,
        ticket: Option<u64>,
        path: &str,
        status: Option<u16>,
        message: String,
    ) -> FreshdeskError {
        FreshdeskError {
            method: method.as_str(),
            path: format!("/api/v2/{}", path.trim_start_matches('/')),
            ticket,
            status,
            message,
            key_source: self.key_source.clone(),
            base_url: self.base_url.clone(),
        }
    }
}

enum Fetched {
    Done(Download),
    /// The URL answered this status: most likely its signature expired.
    Expired(u16),
}

/// `https://acme.freshdesk.com/` or `…/api/v2` → `https://acme.freshdesk.com`.
fn normalize_base_url(url: &str) -> Result<String> {
    let trimmed = url.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/api/v2").unwrap_or(trimmed);
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://"))
        || trimmed.len() <= "https://".len()
    {
        return Err(UsageError::new(format!(
            "Freshdesk URL {url:?} is not an http:// or https:// URL (freshdesk.url)"
        ))
        .into());
    }
    Ok(trimmed.to_owned())
}

/// The next page from `Link: <…>; rel="next"`, as a path under `/api/v2/`:
/// whatever host the header names, requests stay on the configured one.
fn next_page(response: &RawResponse) -> Option<String> {
    let link = response.header("link")?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        if !params.contains("rel=\"next\"") && !params.contains("rel=next") {
            return None;
        }
        let url = url.trim().trim_start_matches('<').trim_end_matches('>');
        url.split_once("/api/v2/").map(|(_, rest)| rest.to_owned())
    })
}

fn parse<T: DeserializeOwned>(
    ticket: Option<u64>,
    method: Method,
    path: &str,
    response: &RawResponse,
) -> Result<T> {
    serde_json::from_str(&response.body).with_context(|| {
        let what = ticket.map_or_else(String::new, |id| format!("Freshdesk ticket {id}: "));
        format!(
            "{what}the answer to {} /api/v2/{path} is not the JSON expected (status {}, {} bytes: {:?})",
            method.as_str(),
            response.status,
            response.body.len(),
            response.body.chars().take(120).collect::<String>()
        )
    })
}

/// Freshdesk's own words: `errors[]` (field: message), else `message`, else
/// `description`, else the start of the body.
fn freshdesk_message(response: &RawResponse) -> String {
    let value: Option<serde_json::Value> = serde_json::from_str(&response.body).ok();
    if let Some(value) = &value {
        if let Some(errors) = value.get("errors").and_then(|e| e.as_array()) {
            let parts: Vec<String> = errors
                .iter()
                .filter_map(|e| {
                    let message = e.get("message").and_then(|m| m.as_str())?;
                    Some(match e.get("field").and_then(|f| f.as_str()) {
                        Some(field) if !field.is_empty() => format!("{field}: {message}"),
                        _ => message.to_owned(),
                    })
                })
                .collect();
            if !parts.is_empty() {
                return parts.join("; ");
            }
        }
        for key in ["message", "description"] {
            if let Some(text) = value.get(key).and_then(|m| m.as_str()) {
                return text.to_owned();
            }
        }
    }
    let snippet: String = response.body.trim().chars().take(200).collect();
    if snippet.is_empty() {
        "(empty answer)".to_owned()
    } else {
        snippet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(body: &str, headers: &[(&str, &str)]) -> RawResponse {
        RawResponse {
            status: 400,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_owned(),
        }
    }

    #[test]
    fn messages_come_from_errors_then_message() {
        let validation = r#"{"description":"Validation failed","errors":[{"field":"tags","message":"It should be a/an Array","code":"datatype_mismatch"}]}"#;
        assert_eq!(
            freshdesk_message(&raw(validation, &[])),
            "tags: It should be a/an Array"
        );
        let auth = r#"{"code":"invalid_credentials","message":"You have to be logged in to perform this action."}"#;
        assert_eq!(
            freshdesk_message(&raw(auth, &[])),
            "You have to be logged in to perform this action."
        );
        assert_eq!(freshdesk_message(&raw("", &[])), "(empty answer)");
    }

    #[test]
    fn next_page_stays_on_our_host() {
        let response = raw(
            "[]",
            &[(
                "Link",
                "<https://evil.example.com/api/v2/tickets/20/conversations?per_page=100&page=2>; rel=\"next\"",
            )],
        );
        assert_eq!(
            next_page(&response).as_deref(),
            Some("tickets/20/conversations?per_page=100&page=2")
        );
        assert_eq!(next_page(&raw("[]", &[])), None);
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            normalize_base_url("https://acme.freshdesk.com/api/v2/").unwrap(),
            "https://acme.freshdesk.com"
        );
        assert!(normalize_base_url("acme.freshdesk.com").is_err());
    }

    #[test]
    fn the_key_never_shows_in_debug() {
        let client = Freshdesk::new(
            "https://acme.freshdesk.com",
            &Secret::new("fd-key-123456"),
            "RP_FRESHDESK_API_KEY",
            RetryPolicy::default(),
            &TrustStore::new(None, None, Vec::new()),
        )
        .unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("fd-key"), "{debug}");
    }
}
