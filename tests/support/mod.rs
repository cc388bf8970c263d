//! Test support shared by the integration tests: a stateful fake GitLab that
//! answers with the real JSON shapes of `tests/fixtures/gitlab/`, and helpers
//! to run the real `rp-devops` binary in a hermetic environment.

#![allow(dead_code)]

pub mod escalation;
pub mod fake_freshdesk;
pub mod fake_gitlab;
pub mod gle;
pub mod proxy;
pub mod release;
pub mod tls;

use std::path::{Path, PathBuf};

#[allow(unused_imports)]
pub use fake_gitlab::{FakeGitLab, Fault};

/// The port a `serve --listen 127.0.0.1:0` started as `child` listens on,
/// read from the start-up line in its log at `log`; panics with the log if it
/// exits or has not started within `limit`.
pub fn serve_port(child: &mut std::process::Child, log: &Path, limit: std::time::Duration) -> u16 {
    let started = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(port) = text
            .lines()
            .find_map(|l| l.strip_prefix("listening on http://127.0.0.1:"))
            .and_then(|p| p.trim().parse().ok())
        {
            return port;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("serve exited with {status}: {text}");
        }
        assert!(started.elapsed() < limit, "serve did not start: {text}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A `tests/fixtures/...` path.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The real binary with a cleared environment: only PATH, a temporary HOME
/// and what the test sets. Retries are fast so fault tests stay quick.
pub fn rp_devops(home: &Path) -> assert_cmd::Command {
    assert_cmd::Command::from_std(rp_devops_std(home))
}

/// The same, as a plain `std::process::Command` (to run several at once).
pub fn rp_devops_std(home: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rp-devops"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("RP_HTTP_RETRY_BASE", "20ms")
        .env("RP_HTTP_RETRY_BUDGET", "30s")
        .current_dir(home);
    cmd
}

/// The binary set up to talk to `gitlab` with a valid token and project.
pub fn rp_devops_with(gitlab: &FakeGitLab, home: &Path) -> assert_cmd::Command {
    assert_cmd::Command::from_std(rp_devops_std_with(gitlab, home))
}

pub fn rp_devops_std_with(gitlab: &FakeGitLab, home: &Path) -> std::process::Command {
    let mut cmd = rp_devops_std(home);
    cmd.env("RP_GITLAB_URL", &gitlab.url)
        .env("RP_GITLAB_TOKEN", fake_gitlab::TOKEN)
        .env("RP_PROJECT", fake_gitlab::PROJECT_PATH);
    cmd
}
