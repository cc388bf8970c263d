//! The client side of `POST /api/v1/releases`: a multipart body with an exact
//! `Content-Length` that reads the artifact once, hashing it on the way out,
//! one blocking HTTP exchange, the release status query
//! (`GET /api/v1/releases/PRODUCT/VERSION`), and how an answer is read: the
//! receiver's JSON, or a proxy's page summarised in one line with the proxy
//! named (its `Server` header). The retries are `ops::release_upload`'s.
//!
//! The body is laid out up front: a preamble (product, metadata, the `file`
//! part's header), the file, and an epilogue with the `md5` part. The MD5 is
//! always 32 hex digits, so the length is known before the first byte is
//! read; its value is filled in when the file is exhausted.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::Duration;

use super::digest::Md5Hasher;
use super::{
    CI_DEFAULTS, FIELD_FILE, FIELD_MD5, FIELD_PRODUCT, META_VERSION, ROUTE, is_valid_meta_key,
    is_valid_meta_value, is_valid_name, meta_key_rule, name_rule,
};
use ureq::tls::TlsConfig;

use crate::http::RawResponse;
use crate::http::retry::retry_after;
use crate::output::Progress;
use crate::settings::Secret;

/// Why a receiver URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadUrl {
    NotHttp(String),
    /// A query or fragment: the secret goes in a header, never in the URL,
    /// and the route is ours to add. (The URL is kept without them.)
    QueryOrFragment(String),
    /// `user:password@` in the URL. (The URL is kept without them.)
    Credentials(String),
}

impl std::fmt::Display for BadUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadUrl::NotHttp(url) => {
                write!(f, "release URL {url:?} is not an http:// or https:// URL")
            }
            BadUrl::QueryOrFragment(url) => write!(
                f,
                "release URL {url:?} must not have a query or fragment (the secret goes in a header)"
            ),
            BadUrl::Credentials(url) => write!(
                f,
                "release URL {url:?} must not carry credentials (user:password@): the secret \
                 goes in RP_RELEASE_SECRET, sent in a header"
            ),
        }
    }
}

/// The URL as it may be shown: without credentials, query or fragment
/// (any of which may hold a secret).
fn shown(url: &str) -> String {
    let cut = url.find(['?', '#']).map_or(url, |i| &url[..i]);
    crate::git::redact_url(cut)
}

/// `https://h/base` or `https://h/base/` (or the full endpoint) →
/// `https://h/base/api/v1/releases`.
pub fn endpoint(base: &str) -> Result<String, BadUrl> {
    let base = base.trim().trim_end_matches('/');
    let base = base.strip_suffix(ROUTE).unwrap_or(base);
    if !(base.starts_with("http://") || base.starts_with("https://"))
        || base.len() <= "https://".len()
    {
        return Err(BadUrl::NotHttp(shown(base)));
    }
    if base.contains('?') || base.contains('#') {
        return Err(BadUrl::QueryOrFragment(shown(base)));
    }
    if crate::git::redact_url(base) != base {
        return Err(BadUrl::Credentials(shown(base)));
    }
    Ok(format!("{base}{ROUTE}"))
}

/// `GET BASE/healthz` of a receiver (`BASE` as given to `release upload`,
/// with or without the release route): the status it answered, or why
/// there was no answer.
pub fn receiver_health(base: &str, tls: TlsConfig, timeout: Duration) -> Result<u16, String> {
    let endpoint = endpoint(base).map_err(|e| e.to_string())?;
    let root = endpoint.strip_suffix(ROUTE).unwrap_or(&endpoint);
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .tls_config(tls)
            .user_agent(concat!("rp-devops/", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    agent
        .get(format!("{root}/healthz"))
        .call()
        .map(|response| response.status().as_u16())
        .map_err(|e| e.to_string())
}

/// The status route of one version below an upload endpoint. The names are
/// valid names (checked before), so they need no encoding.
pub fn status_url(endpoint: &str, product: &str, version: &str) -> String {
    format!("{endpoint}/{product}/{version}")
}

/// Why an upload's metadata cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaProblem {
    /// `product`, `md5` and `file` are fields of their own.
    Reserved(String),
    BadKey(String),
    /// The value holds a NUL byte.
    BadValue(String),
    NoVersion,
    BadVersion(String),
}

impl std::fmt::Display for MetaProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetaProblem::Reserved(key) => write!(
                f,
                "metadata key {key:?} is reserved (it is a field of its own)"
            ),
            MetaProblem::BadKey(key) => f.write_str(&meta_key_rule(key)),
            MetaProblem::BadValue(key) => write!(f, "metadata {key:?} contains a NUL byte"),
            MetaProblem::NoVersion => f.write_str("no version"),
            MetaProblem::BadVersion(version) => f.write_str(&name_rule("version", version)),
        }
    }
}

/// An upload's metadata from its sources, each winning over the one before:
/// GitLab CI's predefined variables ([`CI_DEFAULTS`], looked up with `ci`),
/// the pairs of a metadata file, and `KEY=VALUE` fields. A field without `=`
/// is returned as the error.
pub fn merge_meta<'a>(
    ci: impl Fn(&str) -> Option<&'a str>,
    file_pairs: Vec<(String, String)>,
    fields: &[String],
) -> Result<BTreeMap<String, String>, String> {
    let mut meta = BTreeMap::new();
    for (key, var) in CI_DEFAULTS {
        if let Some(value) = ci(var) {
            meta.insert((*key).to_owned(), value.to_owned());
        }
    }
    meta.extend(file_pairs);
    for field in fields {
        let (key, value) = field.split_once('=').ok_or_else(|| field.clone())?;
        meta.insert(key.trim().to_owned(), value.to_owned());
    }
    Ok(meta)
}

/// The checks the receiver would make on the metadata, made before sending:
/// every key a lower-case identifier and not a field name, no NUL in a
/// value, a `version` that can be a directory name.
pub fn check_meta(meta: &BTreeMap<String, String>) -> Result<(), MetaProblem> {
    for (key, value) in meta {
        if key == FIELD_PRODUCT || key == FIELD_MD5 || key == FIELD_FILE {
            return Err(MetaProblem::Reserved(key.clone()));
        }
        if !is_valid_meta_key(key) {
            return Err(MetaProblem::BadKey(key.clone()));
        }
        if !is_valid_meta_value(value) {
            return Err(MetaProblem::BadValue(key.clone()));
        }
    }
    match meta.get(META_VERSION) {
        None => Err(MetaProblem::NoVersion),
        Some(version) if !is_valid_name(version) => Err(MetaProblem::BadVersion(version.clone())),
        Some(_) => Ok(()),
    }
}

/// The multipart framing of one upload, independent of the file's bytes.
#[derive(Debug, Clone)]
pub struct MultipartLayout {
    boundary: String,
    preamble: Vec<u8>,
    file_len: u64,
}

impl MultipartLayout {
    /// Fields go in this order: `product`, the metadata (sorted), `file`,
    /// `md5`. Names and keys are already validated (no quotes or CR/LF).
    pub fn new(
        product: &str,
        meta: &BTreeMap<String, String>,
        file_name: &str,
        file_len: u64,
    ) -> Self {
        // A boundary that occurs in no field value (the file is opaque, but a
        // 128-bit random boundary will not be in it either).
        let boundary = loop {
            let candidate = format!(
                "rp-devops-{:016x}{:016x}",
                fastrand::u64(..),
                fastrand::u64(..)
            );
            if !meta.values().any(|v| v.contains(&candidate)) {
                break candidate;
            }
        };
        let mut preamble = Vec::new();
        let mut field = |name: &str, value: &str| {
            preamble.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        };
        field(FIELD_PRODUCT, product);
        for (key, value) in meta {
            field(key, value);
        }
        preamble.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{FIELD_FILE}\"; filename=\"{file_name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        Self {
            boundary,
            preamble,
            file_len,
        }
    }

    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    fn epilogue(&self, md5_hex: &str) -> Vec<u8> {
        format!(
            "\r\n--{b}\r\nContent-Disposition: form-data; name=\"{FIELD_MD5}\"\r\n\r\n{md5_hex}\r\n--{b}--\r\n",
            b = self.boundary
        )
        .into_bytes()
    }

    /// The exact body length.
    pub fn content_length(&self) -> u64 {
        self.preamble.len() as u64 + self.file_len + self.epilogue(&"0".repeat(32)).len() as u64
    }

    /// The body as a reader over `file` (which must hold `file_len` bytes).
    pub fn body<'a, R: Read>(&'a self, file: R, progress: &'a Progress) -> UploadBody<'a, R> {
        UploadBody {
            layout: self,
            file,
            hasher: Md5Hasher::new(),
            stage: Stage::Preamble(0),
            file_left: self.file_len,
            md5: None,
            progress,
            file_error: false,
            finished: false,
        }
    }
}

enum Stage {
    Preamble(usize),
    File,
    Epilogue(Vec<u8>, usize),
}

/// Preamble, then the file through MD5, then the epilogue with the digest.
pub struct UploadBody<'a, R> {
    layout: &'a MultipartLayout,
    file: R,
    hasher: Md5Hasher,
    stage: Stage,
    file_left: u64,
    md5: Option<String>,
    progress: &'a Progress,
    file_error: bool,
    /// The whole body was handed to the connection.
    finished: bool,
}

impl<R> UploadBody<'_, R> {
    /// The file's MD5 (hex), once it has been read to its end.
    pub fn md5(&self) -> Option<&str> {
        self.md5.as_deref()
    }

    /// The file's MD5, once the whole body (the `md5` part too) was sent.
    pub fn sent(&self) -> Option<&str> {
        self.md5.as_deref().filter(|_| self.finished)
    }

    /// Whether any of the body was handed to the connection.
    pub fn started(&self) -> bool {
        !matches!(self.stage, Stage::Preamble(0))
    }

    /// Whether reading the artifact itself failed (no point retrying).
    pub fn file_failed(&self) -> bool {
        self.file_error
    }
}

impl<R: Read> Read for UploadBody<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.stage {
                Stage::Preamble(pos) => {
                    let rest = &self.layout.preamble[*pos..];
                    if rest.is_empty() {
                        self.stage = Stage::File;
                        continue;
                    }
                    let n = rest.len().min(buf.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    *pos += n;
                    return Ok(n);
                }
                Stage::File => {
                    if self.file_left == 0 {
                        let md5 = match std::mem::take(&mut self.hasher).finish_hex() {
                            Ok(md5) => md5,
                            Err(e) => {
                                self.file_error = true;
                                return Err(e.into());
                            }
                        };
                        self.stage = Stage::Epilogue(self.layout.epilogue(&md5), 0);
                        self.md5 = Some(md5);
                        continue;
                    }
                    let want = usize::try_from(self.file_left)
                        .unwrap_or(usize::MAX)
                        .min(buf.len());
                    let n = match self.file.read(&mut buf[..want]) {
                        Ok(0) => {
                            self.file_error = true;
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "the artifact got shorter while it was being sent",
                            ));
                        }
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            self.file_error = true;
                            return Err(e);
                        }
                    };
                    self.hasher.update(&buf[..n]);
                    self.file_left -= n as u64;
                    self.progress.inc(n as u64);
                    return Ok(n);
                }
                Stage::Epilogue(bytes, pos) => {
                    let rest = &bytes[*pos..];
                    let n = rest.len().min(buf.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    *pos += n;
                    if *pos == bytes.len() {
                        self.finished = true;
                    }
                    return Ok(n);
                }
            }
        }
    }
}

/// What came back: the receiver's answer, or a proxy's in its place.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// The receiver's JSON document; anything else (a proxy's HTML error
    /// page, plain text) becomes `{"error": "<one-line summary>"}`.
    pub json: serde_json::Value,
    /// Whether the body was JSON, i.e. the receiver's own answer (relayed
    /// by any proxy in front), rather than a proxy's page.
    pub from_receiver: bool,
    /// The `Server` header: which proxy answered, when one did.
    pub server: Option<String>,
    /// How long the server (or a proxy in front of it) asked us to wait.
    pub retry_after: Option<Duration>,
    /// The artifact's MD5, when the whole body had been sent before this
    /// answer came (so the receiver may have it even if this is an error).
    pub sent: Option<String>,
}

impl Answer {
    /// Read an answer (at most 1 MiB of it).
    pub fn read(
        response: &mut ureq::http::Response<ureq::Body>,
        sent: Option<String>,
    ) -> io::Result<Self> {
        let raw = RawResponse::read(response, 1024 * 1024)?;
        let parsed = serde_json::from_str::<serde_json::Value>(&raw.body)
            .ok()
            .filter(serde_json::Value::is_object);
        let from_receiver = parsed.is_some();
        let json = parsed.unwrap_or_else(|| serde_json::json!({ "error": summarize(&raw.body) }));
        Ok(Self {
            status: raw.status,
            json,
            from_receiver,
            server: raw.header("server").map(|s| one_line(s, 80)),
            retry_after: retry_after(&raw),
            sent,
        })
    }

    /// The `error` message: the receiver's, or the summary of a proxy's page.
    pub fn error_message(&self) -> Option<&str> {
        self.json
            .get("error")
            .and_then(|v| v.as_str())
            .filter(|m| !m.is_empty())
    }

    /// The proxy that answered instead of the receiver (its `Server` header,
    /// when it sent one).
    pub fn proxy(&self) -> Option<&str> {
        if self.from_receiver {
            None
        } else {
            Some(self.server.as_deref().unwrap_or("a proxy"))
        }
    }

    /// One line: the status, who answered when it was not the receiver,
    /// and the message (`HTTP 502 from nginx/1.22.1: 502 Bad Gateway`).
    pub fn line(&self) -> String {
        let mut line = format!("HTTP {}", self.status);
        if let Some(server) = self.server.as_deref().filter(|_| !self.from_receiver) {
            line.push_str(&format!(" from {server}"));
        }
        if let Some(message) = self.error_message() {
            line.push_str(&format!(": {message}"));
        }
        line
    }
}

/// Why an upload attempt produced no answer.
#[derive(Debug)]
pub enum SendError {
    /// Reading the artifact failed: retrying would not help.
    File(io::Error),
    /// Connection refused, reset, timed out, DNS...: worth retrying.
    /// `sent` is the artifact's MD5 when the whole body had been sent;
    /// `started` whether any of it had.
    Transport {
        message: String,
        sent: Option<String>,
        started: bool,
    },
    /// The TLS handshake failed (a certificate not trusted, expired, for
    /// another name): retrying cannot help.
    Tls(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::File(e) => write!(f, "reading the artifact: {e}"),
            SendError::Transport { message, .. } => f.write_str(message),
            SendError::Tls(message) => f.write_str(message),
        }
    }
}

/// The size of the writes an upload is sent in: large, so sending costs few
/// system calls (ureq's default is 128 KiB).
const SEND_BUFFER: usize = 1024 * 1024;

/// The HTTP agent for uploads and status queries: no redirects (the secret
/// never goes elsewhere), no overall timeout (a 5 GB upload takes what it
/// takes, and the answer waits for the release script), the shared trust
/// store's TLS settings.
pub fn agent(tls: TlsConfig) -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .output_buffer_size(SEND_BUFFER)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_global(None)
            .tls_config(tls)
            .user_agent(concat!("rp-devops/", env!("CARGO_PKG_VERSION")))
            .build(),
    )
}

/// One upload attempt: POST the body, read the answer.
pub struct Attempt<'a> {
    pub agent: &'a ureq::Agent,
    pub url: &'a str,
    pub secret: &'a Secret,
    pub product: &'a str,
    pub meta: &'a BTreeMap<String, String>,
    pub file: &'a Path,
    pub file_name: &'a str,
}

impl Attempt<'_> {
    /// Send once. `progress` gets the file's bytes as they go out.
    pub fn send(&self, progress: &Progress) -> Result<Answer, SendError> {
        let file = File::open(self.file).map_err(SendError::File)?;
        let len = file.metadata().map_err(SendError::File)?.len();
        let layout = MultipartLayout::new(self.product, self.meta, self.file_name, len);
        // ureq reads the body straight into its output buffer, one read per
        // write to the socket, so the file is read, hashed and sent in
        // pieces of that size; no buffering of our own.
        let mut body = layout.body(file, progress);
        let result = self
            .agent
            .post(self.url)
            .header("Authorization", format!("Bearer {}", self.secret.expose()))
            .header("Content-Type", layout.content_type())
            .header("Content-Length", layout.content_length().to_string())
            // Let the server refuse (wrong secret, body too large) before
            // the body is sent.
            .header("Expect", "100-continue")
            .send(ureq::SendBody::from_reader(&mut body));
        let sent = body.sent().map(str::to_owned);
        let started = body.started();
        let mut response = match result {
            Ok(response) => response,
            Err(e) => {
                if body.file_failed() {
                    if let ureq::Error::Io(io) = e {
                        return Err(SendError::File(io));
                    }
                    return Err(SendError::File(io::Error::other(e.to_string())));
                }
                if crate::http::tls::is_tls_failure(&e) {
                    return Err(SendError::Tls(e.to_string()));
                }
                return Err(SendError::Transport {
                    message: crate::http::transport_reason(&e),
                    sent,
                    started,
                });
            }
        };
        Answer::read(&mut response, sent.clone()).map_err(|e| SendError::Transport {
            message: format!("reading the answer: {e}"),
            sent,
            started,
        })
    }
}

/// Ask the status route of one version (`url` from [`status_url`]); with
/// `bytes`, also whether an artifact of that size would be accepted (the
/// receiver answers its 413 if not).
pub fn query_status(
    agent: &ureq::Agent,
    url: &str,
    secret: &Secret,
    bytes: Option<u64>,
) -> Result<Answer, String> {
    let url = match bytes {
        Some(bytes) => format!("{url}?bytes={bytes}"),
        None => url.to_owned(),
    };
    let mut response = agent
        .get(&url)
        .header("Authorization", format!("Bearer {}", secret.expose()))
        .config()
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .call()
        .map_err(|e| crate::http::transport_reason(&e))?;
    Answer::read(&mut response, None).map_err(|e| format!("reading the answer: {e}"))
}

impl Answer {
    /// A status answer saying the receiver knows the product but has no
    /// trace of the version.
    pub fn is_no_trace(&self) -> bool {
        self.status == 404 && self.from_receiver && self.json.get("version").is_some()
    }

    /// A status answer refusing the upload itself (wrong secret, unknown
    /// product, bad name, too large): what the upload would get too.
    pub fn is_refusal(&self) -> bool {
        self.from_receiver
            && (400..500).contains(&self.status)
            && !self.is_no_trace()
            && self.status != 429
    }
}

/// A non-JSON body in one line: an HTML page's `<title>` (or first
/// `<h1>`), else the first line of text; at most 120 characters.
pub fn summarize(body: &str) -> String {
    let lower = body.to_ascii_lowercase();
    let inside = |tag: &str| -> Option<&str> {
        let open = lower.find(&format!("<{tag}"))?;
        let start = open + lower[open..].find('>')? + 1;
        let end = start + lower[start..].find(&format!("</{tag}"))?;
        Some(&body[start..end])
    };
    let text = inside("title")
        .or_else(|| inside("h1"))
        .map(strip_tags)
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| {
            let text = if lower.contains("<html") || lower.contains("<body") {
                strip_tags(body)
            } else {
                body.to_owned()
            };
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or_default()
                .to_owned()
        });
    one_line(&text, 120)
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whitespace collapsed, control characters dropped, cut at `max` chars.
fn one_line(text: &str, max: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut line: String = words
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if line.chars().count() > max {
        line = line.chars().take(max).collect::<String>() + "…";
    }
    line
}

/// Whether an answer is worth another attempt (a proxy in front of the
/// receiver restarting or overloaded).
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 502..=504)
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};

    fn meta() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("channel".to_owned(), "stable".to_owned()),
            ("version".to_owned(), "1.2.3".to_owned()),
        ])
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint("https://u.example.com/").unwrap(),
            "https://u.example.com/api/v1/releases"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:8080/api/v1/releases").unwrap(),
            "http://127.0.0.1:8080/api/v1/releases"
        );
        assert!(matches!(endpoint("u.example.com"), Err(BadUrl::NotHttp(_))));
        // Secrets in the URL are refused, and not repeated.
        let err = endpoint("https://ci:s3cr3t@u.example.com/").unwrap_err();
        assert_eq!(err, BadUrl::Credentials("https://u.example.com".into()));
        assert!(!err.to_string().contains("s3cr3t"));
        let err = endpoint("https://u.example.com/?token=s3cr3t#x").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        let err = endpoint("ftp://u:s3cr3t@u.example.com/?token=s3cr3t").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        assert!(matches!(
            endpoint("https://u.example.com/?token=x"),
            Err(BadUrl::QueryOrFragment(_))
        ));
    }

    #[test]
    fn non_json_answers_are_summarised_in_one_line() {
        let nginx = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
            <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n\
            </body>\r\n</html>\r\n";
        assert_eq!(summarize(nginx), "502 Bad Gateway");
        assert_eq!(
            summarize("<HTML><BODY><H1>Gateway\n Timeout</H1><p>x</p></BODY></HTML>"),
            "Gateway Timeout"
        );
        assert_eq!(
            summarize("<html><body><p>\n\n  upstream  went away </p></body></html>"),
            "upstream went away"
        );
        assert_eq!(summarize("\n\nplain text\nsecond line"), "plain text");
        assert_eq!(summarize(""), "");
        let long = summarize(&"x".repeat(500));
        assert_eq!(long.chars().count(), 121);
        assert_eq!(
            status_url("https://u.example.com/api/v1/releases", "rp", "1.2"),
            "https://u.example.com/api/v1/releases/rp/1.2"
        );
    }

    #[test]
    fn metadata_sources_in_order_of_precedence() {
        let ci = |var: &str| match var {
            "CI_COMMIT_SHA" => Some("abc"),
            "CI_COMMIT_TAG" => Some("v1"),
            _ => None,
        };
        let file = vec![
            ("tag".to_owned(), "from-file".to_owned()),
            ("channel".to_owned(), "beta".to_owned()),
        ];
        let fields = ["channel=stable".to_owned(), " note =a=b".to_owned()];
        let meta = merge_meta(ci, file, &fields).unwrap();
        let got: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(
            got,
            [
                ("channel", "stable"),
                ("commit", "abc"),
                ("note", "a=b"),
                ("tag", "from-file")
            ]
        );
        assert_eq!(
            merge_meta(ci, Vec::new(), &["novalue".to_owned()]),
            Err("novalue".to_owned())
        );
    }

    #[test]
    fn metadata_is_checked_as_the_receiver_would() {
        assert_eq!(check_meta(&meta()), Ok(()));
        let with = |key: &str, value: &str| {
            let mut m = meta();
            m.insert(key.to_owned(), value.to_owned());
            check_meta(&m)
        };
        assert_eq!(with("md5", "x"), Err(MetaProblem::Reserved("md5".into())));
        assert_eq!(
            with("LD_PRELOAD", "x"),
            Err(MetaProblem::BadKey("LD_PRELOAD".into()))
        );
        assert_eq!(
            with("note", "a\0b"),
            Err(MetaProblem::BadValue("note".into()))
        );
        assert_eq!(
            with("version", "../1"),
            Err(MetaProblem::BadVersion("../1".into()))
        );
        let mut m = meta();
        m.remove("version");
        assert_eq!(check_meta(&m), Err(MetaProblem::NoVersion));
    }

    #[test]
    fn body_has_the_announced_length_and_md5_after_the_file() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let layout = MultipartLayout::new("rp", &meta(), "rp-1.2.3.tgz", data.len() as u64);
        let progress = Progress::hidden();
        let mut body = layout.body(&data[..], &progress);
        let mut out = Vec::new();
        // Small reads exercise every stage boundary.
        let mut buf = [0u8; 777];
        loop {
            let n = body.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out.len() as u64, layout.content_length());
        let expected = crate::release::hex(&Md5::digest(&data));
        assert_eq!(body.md5(), Some(expected.as_str()));
        assert_eq!(body.sent(), Some(expected.as_str()));
        let text = String::from_utf8_lossy(&out);
        let file_at = text
            .find("name=\"file\"; filename=\"rp-1.2.3.tgz\"")
            .unwrap();
        let md5_at = text.find(&format!("\r\n\r\n{expected}\r\n--")).unwrap();
        assert!(text.find("name=\"product\"").unwrap() < file_at);
        assert!(file_at < md5_at);
        assert!(text.ends_with(&format!("--{}--\r\n", layout.boundary)));
    }

    #[test]
    fn a_file_that_shrinks_is_an_error_not_a_short_body() {
        let layout = MultipartLayout::new("rp", &meta(), "a.tgz", 10);
        let progress = Progress::hidden();
        let mut body = layout.body(&b"12345"[..], &progress);
        let mut out = Vec::new();
        let err = body.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(body.file_failed());
    }

    #[test]
    fn the_server_parses_what_the_client_builds() {
        let data = b"artifact bytes".to_vec();
        let layout = MultipartLayout::new("rp", &meta(), "a.tgz", data.len() as u64);
        let progress = Progress::hidden();
        let mut encoded = Vec::new();
        layout
            .body(&data[..], &progress)
            .read_to_end(&mut encoded)
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let fields = rt.block_on(async {
            let stream = futures_util::stream::once(async move {
                Ok::<_, std::io::Error>(axum::body::Bytes::from(encoded))
            });
            let boundary = multer::parse_boundary(layout.content_type()).unwrap();
            let mut multipart = multer::Multipart::new(stream, boundary);
            let mut fields = Vec::new();
            while let Some(field) = multipart.next_field().await.unwrap() {
                let name = field.name().unwrap().to_owned();
                let file_name = field.file_name().map(str::to_owned);
                let bytes = field.bytes().await.unwrap();
                fields.push((name, file_name, bytes.to_vec()));
            }
            fields
        });
        let names: Vec<&str> = fields.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(names, ["product", "channel", "version", "file", "md5"]);
        assert_eq!(fields[3].1.as_deref(), Some("a.tgz"));
        assert_eq!(fields[3].2, data);
        assert_eq!(
            String::from_utf8_lossy(&fields[4].2),
            crate::release::hex(&Md5::digest(&data))
        );
    }
}
