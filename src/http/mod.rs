//! What the blocking service clients (`gitlab/`, `freshdesk/`, the release
//! upload) share about HTTP: how hard to retry and how long to wait between tries, reading an
//! answer whatever its status, and the same-origin check that keeps
//! credentials from following a redirect or a `Link` to another host.
//!
//! No service's conventions live here (paths, auth headers, error bodies):
//! each client keeps those.

pub mod retry;
pub mod tls;

use std::io::Read;

pub use retry::RetryPolicy;

/// A raw answer, read whatever its status.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Read status, headers and at most `limit` bytes of body. An error means
    /// the answer was cut off on the way.
    pub fn read(
        response: &mut ureq::http::Response<ureq::Body>,
        limit: u64,
    ) -> std::io::Result<Self> {
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = String::new();
        response
            .body_mut()
            .as_reader()
            .take(limit)
            .read_to_string(&mut body)?;
        Ok(Self {
            status,
            headers,
            body,
        })
    }
}

/// `scheme://host[:port]` of an absolute URL.
pub fn origin(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&url[..url.len() - rest.len() + end])
}

/// Whether two absolute URLs share scheme, host and port.
pub fn same_origin(a: &str, b: &str) -> bool {
    matches!((origin(a), origin(b)), (Some(x), Some(y)) if x.eq_ignore_ascii_case(y))
}

/// A one-line reason for a transport failure (no answer at all).
pub fn transport_reason(err: &ureq::Error) -> String {
    match err {
        ureq::Error::ConnectionFailed => "connection refused or failed".to_owned(),
        ureq::Error::HostNotFound => "host not found".to_owned(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        other => other.to_string(),
    }
}

/// Whether a transport failure may have happened after the request reached
/// the server (so a write may have taken effect).
pub fn may_have_arrived(err: &ureq::Error) -> bool {
    !matches!(
        err,
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(same_origin(
            "https://gitlab.example.com/api/v4/x",
            "https://gitlab.example.com"
        ));
        assert!(!same_origin(
            "https://evil.example.com/api/v4/x",
            "https://gitlab.example.com"
        ));
        assert!(!same_origin(
            "https://gitlab.example.com:8443/x",
            "https://gitlab.example.com"
        ));
        assert!(!same_origin("/relative", "https://gitlab.example.com"));
        assert_eq!(
            origin("https://a.example.com?x=https://b"),
            Some("https://a.example.com")
        );
    }
}
