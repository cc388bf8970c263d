//! The fake GitLab's instance-level routes, read by `doctor`:
//! `GET /version`, `GET /personal_access_tokens/self` (the token describes
//! itself: name, scopes, expiry; GitLab 15.5 and later). (`GET /user` is
//! `fake_gitlab.rs`'s.)
//!
//! Like GitLab, none of them takes `CI_JOB_TOKEN` (401). What the token
//! says about itself can be set per test; a fake can also play a GitLab
//! older than 15.5, which answers 404 for `/personal_access_tokens/self`.
//! The state lives here, keyed by the fake's URL, so that `fake_gitlab.rs`
//! only needs its dispatch line.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use http_body_util::Full;
use hyper::Response;
use hyper::body::Bytes;
use serde_json::json;

use super::{FakeGitLab, RecordedRequest, State, json_response, message};

pub const GITLAB_VERSION: &str = "17.5.1-ee";

#[derive(Debug, Clone)]
struct Instance {
    scopes: Vec<String>,
    expires_at: Option<String>,
    revoked: bool,
    knows_token_self: bool,
}

impl Default for Instance {
    fn default() -> Self {
        Self {
            scopes: vec!["api".to_owned()],
            expires_at: Some("2099-12-31".to_owned()),
            revoked: false,
            knows_token_self: true,
        }
    }
}

static INSTANCES: LazyLock<Mutex<HashMap<String, Instance>>> = LazyLock::new(Mutex::default);

fn instances() -> MutexGuard<'static, HashMap<String, Instance>> {
    INSTANCES.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeGitLab {
    /// The scopes the valid token reports (default `api`).
    pub fn set_token_scopes(&self, scopes: &[&str]) {
        instances().entry(self.url.clone()).or_default().scopes =
            scopes.iter().map(|s| s.to_string()).collect();
    }

    /// The token's expiry date (`YYYY-MM-DD`), or `None` for never.
    pub fn set_token_expiry(&self, date: Option<&str>) {
        instances().entry(self.url.clone()).or_default().expires_at = date.map(str::to_owned);
    }

    pub fn revoke_token(&self) {
        instances().entry(self.url.clone()).or_default().revoked = true;
    }

    /// Play a GitLab older than 15.5: no `/personal_access_tokens/self`.
    pub fn without_token_self(&self) {
        instances()
            .entry(self.url.clone())
            .or_default()
            .knows_token_self = false;
    }
}

/// Answer an instance-level route; `None` for any other path.
pub fn route(
    s: &State,
    request: &RecordedRequest,
    job_token: bool,
) -> Option<Response<Full<Bytes>>> {
    let route = match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/api/v4/version") => "version",
        ("GET", "/api/v4/personal_access_tokens/self") => "token",
        _ => return None,
    };
    if job_token {
        return Some(message(401, "401 Unauthorized"));
    }
    let instance = instances().get(&s.base_url).cloned().unwrap_or_default();
    Some(match route {
        "version" => json_response(
            200,
            &json!({ "version": GITLAB_VERSION, "revision": "4f2c9e1d", "kas": { "enabled": false } }),
        ),
        "token" if !instance.knows_token_self => message(404, "404 Not Found"),
        _ => json_response(
            200,
            &json!({
                "id": 4242,
                "name": "rp-devops",
                "revoked": instance.revoked,
                "created_at": "2026-01-05T09:00:00.000Z",
                "description": "",
                "scopes": instance.scopes,
                "user_id": 9001,
                "last_used_at": "2026-12-01T06:00:00.000Z",
                "active": !instance.revoked,
                "expires_at": instance.expires_at,
            }),
        ),
    })
}
