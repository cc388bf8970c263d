//! `rp-devops doctor` end to end: the real binary against the fake GitLab
//! (with its /version, /personal_access_tokens/self and /user routes), the
//! fake Freshdesk and a real `rp-devops serve` as the release receiver.
//! What is checked is what a person debugging a job reads: one line per
//! check, where each setting came from, the exit code, and that no secret
//! is ever printed.

mod support;

use serde_json::Value;
use support::fake_freshdesk::{self, FakeFreshdesk};
use support::fake_gitlab::{PROJECT_ID, TOKEN};
use support::release::{Receiver, SECRET};
use support::{FakeGitLab, rp_devops, rp_devops_with};

const BOARD: &[&str] = &["to do", "in review", "test"];

fn config(freshdesk: &FakeFreshdesk) -> String {
    format!(
        "races:\n  labels: [\"race condition\"]\n\
         versions:\n  file: VERSION\n  compare: minor\n\
         workflow:\n  labels: [\"to do\", \"in review\", \"test\"]\n  on_open: in review\n  on_merge: test\n\
         freshdesk:\n  url: {}\n  api_key_env: FD_KEY\n",
        freshdesk.url
    )
}

struct Setup {
    gitlab: FakeGitLab,
    freshdesk: FakeFreshdesk,
    home: tempfile::TempDir,
}

impl Setup {
    /// A healthy setup: labels exist, VERSION on the default branch.
    fn new() -> Self {
        let gitlab = FakeGitLab::start();
        let freshdesk = FakeFreshdesk::start();
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("rp-devops.yml"), config(&freshdesk)).unwrap();
        gitlab.add_labels(PROJECT_ID, BOARD);
        gitlab.add_labels(PROJECT_ID, &["race condition", "freshdesk"]);
        gitlab.put_file(PROJECT_ID, "master", "VERSION", "5.4.0\n");
        Self {
            gitlab,
            freshdesk,
            home,
        }
    }

    fn run(&self, env: &[(&str, &str)]) -> (i32, String, String) {
        let mut cmd = rp_devops_with(&self.gitlab, self.home.path());
        cmd.env("FD_KEY", fake_freshdesk::API_KEY);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.arg("doctor").output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn json(&self, env: &[(&str, &str)]) -> (i32, Value) {
        let mut env = env.to_vec();
        env.push(("RP_OUTPUT", "json"));
        let (code, stdout, stderr) = self.run(&env);
        let json = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"));
        (code, json)
    }
}

/// `check name → (status, detail)` of the first check with that name.
fn check(json: &Value, name: &str) -> (String, String) {
    let found = json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {json}"));
    (
        found["status"].as_str().unwrap_or_default().to_owned(),
        found["detail"].as_str().unwrap_or_default().to_owned(),
    )
}

fn setting_source(json: &Value, name: &str) -> String {
    json["settings"]
        .as_array()
        .expect("settings")
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["source"].as_str())
        .unwrap_or_else(|| panic!("no {name} setting in {json}"))
        .to_owned()
}

#[test]
fn a_healthy_setup_passes_every_check_and_never_shows_a_secret() {
    let t = Setup::new();
    let receiver = Receiver::start();
    let url = receiver.url();
    let env = [
        ("RP_RELEASE_URL", url.as_str()),
        ("RP_RELEASE_SECRET", SECRET),
        ("RP_GIT_TOKEN", "git-token-never-shown-42"),
    ];
    let (code, stdout, stderr) = t.run(&env);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for line in [
        "ok       gitlab            GitLab 17.5.1-ee answers at http://127.0.0.1:",
        "ok       token             the token from RP_GITLAB_TOKEN (rp-devops): scopes api; expires 2099-12-31",
        "ok       project           restorepoint/product (id 855), default branch master",
        "ok       labels            races.labels exist in restorepoint/product: race condition",
        "ok       labels            workflow.labels exist in restorepoint/product: to do, in review, test",
        "ok       labels            freshdesk.labels exist in restorepoint/product: freshdesk",
        "ok       version-file      VERSION on master reads 5.4.0",
        "ok       freshdesk         Freshdesk answers at http://127.0.0.1:",
        "ok       release-receiver  http://127.0.0.1:",
    ] {
        assert!(stdout.contains(line), "no `{line}` in\n{stdout}");
    }
    assert!(stdout.contains("GitLab URL"), "{stdout}");
    assert!(stdout.contains("(RP_GITLAB_URL)"), "{stdout}");
    assert!(stdout.contains("(RP_PROJECT)"), "{stdout}");
    assert!(
        stdout.ends_with("doctor: 9 ok, 0 warning(s), 0 failed, 0 skipped\n"),
        "{stdout}"
    );
    for secret in [
        TOKEN,
        fake_freshdesk::API_KEY,
        SECRET,
        "git-token-never-shown-42",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "a secret was printed"
        );
    }
    // Only reads.
    assert!(t.gitlab.requests().iter().all(|r| r.method == "GET"));

    let (code, json) = t.json(&env);
    assert_eq!(code, 0);
    assert_eq!(json["ok"], true);
    assert_eq!(setting_source(&json, "GitLab token"), "RP_GITLAB_TOKEN");
    assert_eq!(setting_source(&json, "project"), "RP_PROJECT");
    assert!(setting_source(&json, "config file").contains("rp-devops.yml"));
    let text = json.to_string();
    assert!(!text.contains(TOKEN) && !text.contains(SECRET));

    // The shape users script against, with this run's ports and paths
    // replaced.
    let home = t.home.path().display().to_string();
    let stable = text
        .replace(&t.gitlab.url, "http://gitlab.test")
        .replace(&t.freshdesk.url, "http://freshdesk.test")
        .replace(&url, "http://receiver.test")
        .replace(&home, "/home/ci");
    let stable: Value = serde_json::from_str(&stable).unwrap();
    insta::assert_json_snapshot!("doctor_json_shape", stable);
}

#[test]
fn missing_labels_version_file_and_receiver_fail_with_exit_1() {
    let gitlab = FakeGitLab::start();
    let freshdesk = FakeFreshdesk::start();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("rp-devops.yml"), config(&freshdesk)).unwrap();
    gitlab.add_labels(PROJECT_ID, &["to do"]);
    let t = Setup {
        gitlab,
        freshdesk,
        home,
    };
    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (code, json) = t.json(&[("RP_RELEASE_URL", &dead), ("FD_KEY", "wrong-key")]);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["ok"], false);
    let labels: Vec<(String, String)> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "labels")
        .map(|c| {
            (
                c["status"].as_str().unwrap().to_owned(),
                c["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        labels.iter().any(|(s, d)| s == "fail"
            && d.contains("workflow.labels missing in restorepoint/product")
            && d.ends_with("in review, test")),
        "{labels:?}"
    );
    assert!(
        labels
            .iter()
            .any(|(s, d)| s == "fail" && d.ends_with(": race condition")),
        "{labels:?}"
    );
    let (status, detail) = check(&json, "version-file");
    assert_eq!(status, "fail", "{detail}");
    assert!(detail.contains("VERSION on master: not found"), "{detail}");
    let (status, detail) = check(&json, "freshdesk");
    assert_eq!(status, "fail", "{detail}");
    assert!(detail.contains("401"), "{detail}");
    let (status, detail) = check(&json, "release-receiver");
    assert_eq!(status, "fail", "{detail}");
    assert!(detail.contains("no answer from"), "{detail}");
    assert!(!json.to_string().contains("wrong-key"));
    let _ = &t.freshdesk;
}

#[test]
fn a_token_without_the_api_scope_fails_for_the_configured_commands() {
    let t = Setup::new();
    t.gitlab.set_token_scopes(&["read_api"]);
    let (code, json) = t.json(&[]);
    assert_eq!(code, 1);
    let (status, detail) = check(&json, "token");
    assert_eq!(status, "fail");
    assert!(detail.contains("scopes read_api"), "{detail}");
    assert!(
        detail.contains("scan-races, check-versions, transition-issues, escalate need(s) `api`"),
        "{detail}"
    );
}

#[test]
fn a_token_about_to_expire_is_a_warning() {
    let t = Setup::new();
    let soon = humantime::format_rfc3339(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3 * 86_400),
    )
    .to_string();
    t.gitlab.set_token_expiry(Some(&soon[..10]));
    let (code, json) = t.json(&[]);
    assert_eq!(code, 0, "a warning is not a failure: {json}");
    let (status, detail) = check(&json, "token");
    assert_eq!(status, "warn");
    assert!(detail.contains("renew it"), "{detail}");
}

#[test]
fn a_revoked_or_wrong_token_fails() {
    let t = Setup::new();
    t.gitlab.revoke_token();
    let (code, json) = t.json(&[]);
    assert_eq!(code, 1);
    assert_eq!(check(&json, "token").0, "fail");
    assert!(check(&json, "token").1.contains("revoked"));

    let t = Setup::new();
    let (code, json) = t.json(&[("RP_GITLAB_TOKEN", "glpat-wrong")]);
    assert_eq!(code, 1);
    let (status, detail) = check(&json, "token");
    assert_eq!(status, "fail");
    assert!(
        detail.contains("GitLab rejected the token from RP_GITLAB_TOKEN"),
        "{detail}"
    );
}

#[test]
fn an_older_gitlab_without_token_self_falls_back_to_the_user() {
    let t = Setup::new();
    t.gitlab.without_token_self();
    let (code, json) = t.json(&[]);
    assert_eq!(code, 0, "{json}");
    let (status, detail) = check(&json, "token");
    assert_eq!(status, "warn");
    assert!(
        detail.contains("is valid (acts as @rp-devops-bot)"),
        "{detail}"
    );
}

/// In a CI job with only the job token: what it cannot do, and every
/// setting traced to its CI variable.
#[test]
fn ci_job_token_says_which_configured_commands_cannot_run() {
    let t = Setup::new();
    let home = t.home.path();
    let out = rp_devops(home)
        .env("CI", "true")
        .env("CI_SERVER_URL", &t.gitlab.url)
        .env("CI_PROJECT_ID", PROJECT_ID.to_string())
        .env("CI_JOB_TOKEN", support::fake_gitlab::JOB_TOKEN)
        .env("FD_KEY", fake_freshdesk::API_KEY)
        .args(["--json", "doctor"])
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{json}");
    assert_eq!(setting_source(&json, "GitLab URL"), "CI_SERVER_URL");
    assert_eq!(setting_source(&json, "project"), "CI_PROJECT_ID");
    assert_eq!(setting_source(&json, "GitLab token"), "CI_JOB_TOKEN");
    let (status, detail) = check(&json, "gitlab");
    assert_eq!(status, "ok", "{detail}");
    assert!(detail.contains("CI_JOB_TOKEN may not read it"), "{detail}");
    let (status, detail) = check(&json, "token");
    assert_eq!(status, "fail");
    assert!(
        detail.contains("CI_JOB_TOKEN reads merge requests"),
        "{detail}"
    );
    assert!(detail.contains("scan-races"), "{detail}");
    // The job token can still read the project.
    assert_eq!(check(&json, "project").0, "ok");
}

#[test]
fn an_unreachable_gitlab_is_one_failure_and_the_rest_is_skipped() {
    let home = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = rp_devops(home.path())
        .env("RP_GITLAB_URL", &dead)
        .env("RP_GITLAB_TOKEN", TOKEN)
        .env("RP_HTTP_RETRY_BUDGET", "1s")
        .args(["--json", "doctor"])
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let (status, detail) = check(&json, "gitlab");
    assert_eq!(status, "fail");
    assert!(
        detail.contains(&format!("no answer from GitLab at {dead}")),
        "{detail}"
    );
    assert_eq!(check(&json, "token").0, "skipped");
    assert_eq!(check(&json, "project").0, "skipped");
    assert_eq!(check(&json, "freshdesk").0, "skipped");
}

#[test]
fn no_configuration_at_all_says_what_is_missing() {
    let home = tempfile::tempdir().unwrap();
    let out = rp_devops(home.path()).arg("doctor").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("fail     gitlab            no GitLab URL is configured"),
        "{stdout}"
    );
    assert!(stdout.contains("none (no ./rp-devops.yml)"), "{stdout}");
}

/// On the serve host: the secrets of the routes configured are listed as
/// set or not set, never shown.
#[test]
fn serve_secrets_are_listed_as_set_or_not_set() {
    let gitlab = FakeGitLab::start();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("rp-devops.yml"),
        "webhook:\n  secret_env: HOOK_SECRET\nrelease:\n  dir: rel\n",
    )
    .unwrap();
    let out = rp_devops_with(&gitlab, home.path())
        .env("HOOK_SECRET", "hook-secret-value-never-shown")
        .args(["--json", "doctor"])
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let shown = |name: &str| {
        json["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| (s["value"].to_string(), s["source"].to_string()))
            .unwrap_or_else(|| panic!("no {name} in {json}"))
    };
    assert_eq!(
        shown("webhook secret"),
        (
            "\"set\"".to_owned(),
            "\"HOOK_SECRET (webhook.secret_env)\"".to_owned()
        )
    );
    assert_eq!(
        shown("receiver secret"),
        (
            "\"not set\"".to_owned(),
            "\"RP_RELEASE_SECRET (release.secret_env)\"".to_owned()
        )
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("hook-secret-value-never-shown"));
}
