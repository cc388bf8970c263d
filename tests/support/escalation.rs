//! Test support for the escalation endpoint: a real `rp-devops serve` on a
//! free port, configured with a `freshdesk:` and an `escalation_endpoint:`
//! section, in front of a fake Freshdesk and a fake GitLab.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use super::fake_freshdesk::{self, FakeFreshdesk};
use super::fake_gitlab::{self, FakeGitLab};

/// The bearer token agents enter in the userscript.
pub const TOKEN: &str = "esc-token-must-never-leak-71b0";
/// The project escalations go to.
pub const PROJECT_ID: u64 = 900;
pub const PROJECT: &str = "support/escalations";

pub struct EscalationServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl EscalationServer {
    /// Serve with CORS for `allowed_origin`; `env` is added to (or, with an
    /// empty value, removed from) the server's environment.
    pub fn start(
        gitlab: &FakeGitLab,
        fd: &FakeFreshdesk,
        allowed_origin: &str,
        env: &[(&str, &str)],
    ) -> Self {
        if gitlab.lock().project(PROJECT_ID).is_none() {
            gitlab.add_project(PROJECT_ID, PROJECT);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            "freshdesk:\n  url: {}\n  api_key_env: FD_KEY\n  project: {PROJECT}\n  \
             labels: [freshdesk]\n  link_field: cf_gitlab_issue\n\
             escalation_endpoint:\n  token_env: ESC_TOKEN\n  allowed_origin: {allowed_origin}\n",
            fd.url
        );
        std::fs::write(dir.path().join("rp-devops.yml"), config).expect("config");
        let log = std::fs::File::create(dir.path().join("serve.log")).expect("log");
        let mut cmd = super::rp_devops_std(dir.path());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "-v"])
            .env("RP_GITLAB_URL", &gitlab.url)
            .env("RP_GITLAB_TOKEN", fake_gitlab::TOKEN)
            .env("FD_KEY", fake_freshdesk::API_KEY)
            .env("ESC_TOKEN", TOKEN)
            // Upstream failures come back quickly.
            .env("RP_HTTP_RETRY_BUDGET", "3s");
        for (key, value) in env {
            if value.is_empty() {
                cmd.env_remove(key);
            } else {
                cmd.env(key, value);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rp-devops serve");
        let mut server = Self {
            dir,
            port: 0,
            child: Some(child),
        };
        server.port = server.wait_for_port();
        server
    }

    fn wait_for_port(&mut self) -> u16 {
        let log = self.dir.path().join("serve.log");
        let child = self.child.as_mut().expect("started");
        super::serve_port(child, &log, Duration::from_secs(20))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Stop the server now (the "endpoint down" case).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for EscalationServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An HTTP answer: status, headers (lower-case names), body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Send one request; `headers` as (name, value).
pub fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Answer {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(()).expect("request");
    let mut response = agent.run(request).expect("an HTTP answer");
    Answer {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// `POST /api/v1/escalations/{ticket}` with the token.
pub fn click(server: &EscalationServer, ticket: &str) -> Answer {
    let url = format!("{}/api/v1/escalations/{ticket}", server.url());
    let auth = format!("Bearer {TOKEN}");
    request("POST", &url, &[("Authorization", &auth)])
}
