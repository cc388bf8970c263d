//! Secret hygiene: every command, with `-vv`, with `--dry-run`, and in each
//! failure mode (401/403, 5xx, timeouts, bad config, unreachable hosts),
//! runs with distinctive values in every secret variable rp-devops knows
//! (GitLab token, CI job token, git token, Freshdesk key, release secret,
//! webhook secret and signing key, escalation token). None may appear, in
//! any form (as is, percent-encoded, base64 as in Basic auth), in stdout,
//! stderr, `serve`'s log, an HTTP answer, a file written under the test's
//! directories, or a request body sent to GitLab or Freshdesk; and a secret
//! never travels to the other service's host, even in a header. A panic
//! anywhere is a finding too.

mod support;

#[path = "support/git.rs"]
mod git_support;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::fake_freshdesk::{self, FakeFreshdesk, NewConversation};
use support::fake_gitlab::merge_requests::NewMr;
use support::fake_gitlab::{self, PROJECT_ID};
use support::release::Form;
use support::{FakeGitLab, Fault, fixture};

/// The GitLab token the fake accepts, and one it refuses.
const GITLAB_TOKEN: &str = fake_gitlab::TOKEN;
const WRONG_GITLAB_TOKEN: &str = "glpat-WRONG-hyg13ne-4d2f9a7c";
const JOB_TOKEN: &str = fake_gitlab::JOB_TOKEN;
const GIT_TOKEN: &str = "gittok-hyg13ne-88b1c0d4";
const WRONG_GIT_TOKEN: &str = "gittok-WRONG-hyg13ne-1e2d";
const FRESHDESK_KEY: &str = fake_freshdesk::API_KEY;
const WRONG_FRESHDESK_KEY: &str = "fdkey-WRONG-hyg13ne-61e0";
const RELEASE_SECRET: &str = "relsec-hyg13ne-0c9d77ab";
const WRONG_RELEASE_SECRET: &str = "relsec-WRONG-hyg13ne-9911";
const WEBHOOK_SECRET: &str = "whsecret-hyg13ne-3a1f5c";
/// `whsec_` + base64 of "hyg13ne-signing-key-123456".
const SIGNING_KEY: &str = "whsec_aHlnMTNuZS1zaWduaW5nLWtleS0xMjM0NTY=";
const ESCALATION_TOKEN: &str = "esctok-hyg13ne-5b7e21";
const WRONG_ESCALATION_TOKEN: &str = "esctok-WRONG-hyg13ne-77";

/// Every secret, by name, with what must never be seen of it.
fn secrets() -> Vec<(&'static str, &'static str)> {
    vec![
        ("GitLab token", GITLAB_TOKEN),
        ("wrong GitLab token", WRONG_GITLAB_TOKEN),
        ("CI job token", JOB_TOKEN),
        ("git token", GIT_TOKEN),
        ("wrong git token", WRONG_GIT_TOKEN),
        ("Freshdesk key", FRESHDESK_KEY),
        ("wrong Freshdesk key", WRONG_FRESHDESK_KEY),
        ("release secret", RELEASE_SECRET),
        ("wrong release secret", WRONG_RELEASE_SECRET),
        ("webhook secret", WEBHOOK_SECRET),
        ("webhook signing key", SIGNING_KEY),
        ("escalation token", ESCALATION_TOKEN),
        ("wrong escalation token", WRONG_ESCALATION_TOKEN),
    ]
}

/// The forms a secret could leak in.
fn needles() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, value) in secrets() {
        let mut forms = vec![value.to_owned()];
        let encoded =
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        forms.push(encoded);
        forms.push(BASE64.encode(format!("{value}:X"))); // Freshdesk's Basic auth
        forms.push(BASE64.encode(format!("oauth2:{value}"))); // git's Basic auth
        // Any base64 of the secret starts like this (whole 3-byte groups).
        let aligned = &value.as_bytes()[..value.len() / 3 * 3];
        forms.push(BASE64.encode(aligned));
        if let Some(key) = value.strip_prefix("whsec_") {
            forms.push(key.to_owned());
            if let Ok(bytes) = BASE64.decode(key) {
                forms.push(String::from_utf8_lossy(&bytes).into_owned());
            }
        }
        forms.sort();
        forms.dedup();
        for form in forms {
            out.push((name.to_owned(), form));
        }
    }
    out
}

/// Collects findings; asserts at the end of a test that there are none.
struct Hygiene {
    needles: Vec<(String, String)>,
    findings: Vec<String>,
    /// Cases looked at, for the assertion message.
    cases: usize,
    /// Texts (outputs, answers, logs, files, request bodies) looked through.
    checked: usize,
}

impl Hygiene {
    fn new() -> Self {
        Self {
            needles: needles(),
            findings: Vec::new(),
            cases: 0,
            checked: 0,
        }
    }

    fn check(&mut self, place: &str, text: &str) {
        self.checked += 1;
        for (name, needle) in &self.needles {
            if let Some(at) = text.find(needle.as_str()) {
                let from = text[..at]
                    .char_indices()
                    .rev()
                    .nth(60)
                    .map_or(0, |(i, _)| i);
                let to = (at + needle.len() + 20).min(text.len());
                let to = (to..=text.len())
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(text.len());
                self.findings.push(format!(
                    "{name} ({needle}) in {place}: …{}…",
                    &text[from..to]
                ));
            }
        }
        if text.contains("panicked at") {
            self.findings.push(format!("a panic in {place}: {text}"));
        }
    }

    fn check_output(&mut self, case: &str, out: &Output) {
        self.cases += 1;
        self.check(
            &format!("{case}: stdout"),
            &String::from_utf8_lossy(&out.stdout),
        );
        self.check(
            &format!("{case}: stderr"),
            &String::from_utf8_lossy(&out.stderr),
        );
    }

    /// Every file below `root`, except those the test itself wrote with a
    /// secret in them (token files, the git server's auth script).
    fn check_tree(&mut self, case: &str, root: &Path, except: &[PathBuf]) {
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file() && !except.contains(&path) {
                    let mut bytes = Vec::new();
                    if std::fs::File::open(&path)
                        .and_then(|mut f| f.read_to_end(&mut bytes))
                        .is_ok()
                    {
                        // Compressed git objects hide text: look at what git stores plainly.
                        self.check(
                            &format!("{case}: file {}", path.display()),
                            &String::from_utf8_lossy(&bytes),
                        );
                    }
                }
            }
        }
    }

    /// What was sent to GitLab: paths, queries and bodies carry no secret,
    /// and no header carries another service's secret.
    fn check_gitlab(&mut self, case: &str, gitlab: &FakeGitLab) {
        for r in gitlab.requests() {
            let place = format!("{case}: {} {} sent to GitLab", r.method, r.path);
            self.check(&place, &format!("{}?{}\n{}", r.path, r.query, r.body));
            for (name, value) in &r.headers {
                for foreign in [FRESHDESK_KEY, RELEASE_SECRET, GIT_TOKEN, ESCALATION_TOKEN] {
                    if value.contains(foreign) {
                        self.findings
                            .push(format!("{place}: header {name} carries a foreign secret"));
                    }
                }
            }
        }
    }

    /// What was sent to Freshdesk and its attachment host.
    fn check_freshdesk(&mut self, case: &str, fd: &FakeFreshdesk) {
        for r in fd.requests() {
            let place = format!("{case}: {} {} sent to Freshdesk", r.method, r.path);
            self.check(&place, &format!("{}?{}\n{}", r.path, r.query, r.body));
            for (name, value) in &r.headers {
                for foreign in [GITLAB_TOKEN, WRONG_GITLAB_TOKEN, JOB_TOKEN, RELEASE_SECRET] {
                    if value.contains(foreign) {
                        self.findings
                            .push(format!("{place}: header {name} carries a foreign secret"));
                    }
                }
            }
        }
    }

    fn assert_clean(&self) {
        assert!(self.cases > 0, "no case ran");
        eprintln!(
            "secret hygiene: {} runs or requests, {} texts and files looked through, {} findings",
            self.cases,
            self.checked,
            self.findings.len()
        );
        assert!(
            self.findings.is_empty(),
            "{} finding(s) in {} cases:\n{}",
            self.findings.len(),
            self.cases,
            self.findings.join("\n")
        );
    }
}

/// The real binary, hermetic, with every secret variable set (the GitLab
/// one valid for the fake) and verbose logs.
fn rp(cwd: &Path) -> Command {
    let mut cmd = support::rp_devops_std(cwd);
    cmd.env("RP_GITLAB_TOKEN", GITLAB_TOKEN)
        .env("CI_JOB_TOKEN", JOB_TOKEN)
        .env("RP_GIT_TOKEN", GIT_TOKEN)
        .env("RP_FRESHDESK_API_KEY", FRESHDESK_KEY)
        .env("FD_KEY", FRESHDESK_KEY)
        .env("RP_RELEASE_SECRET", RELEASE_SECRET)
        .env("RP_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("RP_WEBHOOK_SIGNING_KEY", SIGNING_KEY)
        .env("RP_ESCALATE_TOKEN", ESCALATION_TOKEN)
        .env("RP_HTTP_RETRY_BUDGET", "1s")
        .env("RP_HTTP_TIMEOUT", "2s")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run rp-devops")
}

/// A failure mode of the services: how the fakes behave, what the
/// environment says.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Ok,
    DryRun,
    /// A wrong token: 401.
    Unauthorized,
    /// Only `CI_JOB_TOKEN`: 403 on writes.
    JobTokenOnly,
    ServerErrors,
    Timeouts,
    Unreachable,
    /// The token pasted into the GitLab URL (`https://oauth2:TOKEN@host`).
    CredentialsInUrl,
}

const MODES: &[Mode] = &[
    Mode::Ok,
    Mode::DryRun,
    Mode::Unauthorized,
    Mode::JobTokenOnly,
    Mode::ServerErrors,
    Mode::Timeouts,
    Mode::Unreachable,
    Mode::CredentialsInUrl,
];

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Point `cmd` at `gitlab` the way `mode` says, and make the fake behave.
fn gitlab_mode(cmd: &mut Command, gitlab: &FakeGitLab, mode: Mode) {
    gitlab.clear_faults();
    cmd.env("RP_GITLAB_URL", &gitlab.url)
        .env("RP_PROJECT", fake_gitlab::PROJECT_PATH);
    match mode {
        Mode::Ok => {}
        Mode::DryRun => {
            cmd.arg("--dry-run");
        }
        Mode::Unauthorized => {
            cmd.env("RP_GITLAB_TOKEN", WRONG_GITLAB_TOKEN);
        }
        Mode::JobTokenOnly => {
            cmd.env_remove("RP_GITLAB_TOKEN");
        }
        Mode::ServerErrors => gitlab.random_faults(
            1.0,
            1,
            vec![Fault::Status(503, None), Fault::Status(500, None)],
        ),
        Mode::Timeouts => {
            cmd.env("RP_HTTP_TIMEOUT", "150ms");
            gitlab.random_faults(1.0, 1, vec![Fault::Slow(Duration::from_millis(600))]);
        }
        Mode::Unreachable => {
            cmd.env(
                "RP_GITLAB_URL",
                format!("http://127.0.0.1:{}", closed_port()),
            );
        }
        Mode::CredentialsInUrl => {
            cmd.env(
                "RP_GITLAB_URL",
                format!("http://oauth2:{GITLAB_TOKEN}@127.0.0.1:{}", closed_port()),
            );
        }
    }
}

/// Config files that are wrong in the ways people get them wrong,
/// including a secret pasted where the name of its variable belongs.
fn bad_configs() -> Vec<(&'static str, String)> {
    vec![
        (
            "unknown key",
            "gitlab:\n  tokn: RP_GITLAB_TOKEN\n".to_owned(),
        ),
        ("not YAML", "gitlab: [\n  url: {\n".to_owned()),
        (
            "the token as gitlab.token_env",
            format!("gitlab:\n  token_env: {GITLAB_TOKEN}\n"),
        ),
        (
            "the token as a value of the wrong type",
            format!("races:\n  labels: {{ {GITLAB_TOKEN}: 1 }}\n"),
        ),
        (
            "the key as freshdesk.api_key_env",
            format!("freshdesk:\n  url: http://127.0.0.1:9\n  api_key_env: {FRESHDESK_KEY}\n"),
        ),
        (
            "the secret as release.secret_env",
            format!("release:\n  dir: rel\n  secret_env: {RELEASE_SECRET}\n"),
        ),
    ]
}

/// `rp-devops ARGS` once per bad config file; the GitLab token variable is
/// unset so that `gitlab.token_env` is what names it.
fn bad_config_cases(h: &mut Hygiene, name: &str, cwd: &Path, gitlab: &FakeGitLab, args: &[&str]) {
    for (what, config) in bad_configs() {
        let path = cwd.join("bad-config.yml");
        std::fs::write(&path, config).expect("config");
        let out = run(rp(cwd)
            .env_remove("RP_GITLAB_TOKEN")
            .env_remove("CI_JOB_TOKEN")
            .env("RP_GITLAB_URL", &gitlab.url)
            .env("RP_PROJECT", fake_gitlab::PROJECT_PATH)
            .arg("--config")
            .arg(&path)
            .args(args));
        h.check_output(&format!("{name} with a bad config ({what})"), &out);
        std::fs::remove_file(&path).expect("remove config");
    }
}

/// The GitLab-only commands in every mode.
fn gitlab_command(name: &str, setup: impl Fn(&FakeGitLab, &Path), args: &[&str]) {
    let mut h = Hygiene::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let gitlab = FakeGitLab::start();
    setup(&gitlab, dir.path());
    for &mode in MODES {
        let mut cmd = rp(dir.path());
        cmd.args(["-vv"]);
        gitlab_mode(&mut cmd, &gitlab, mode);
        let out = run(cmd.args(args));
        if matches!(mode, Mode::Ok | Mode::DryRun) {
            assert!(
                out.status.success(),
                "{name} {mode:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        h.check_output(&format!("{name} ({mode:?})"), &out);
        // JSON output too, where errors are shaped differently.
        let mut cmd = rp(dir.path());
        gitlab_mode(&mut cmd, &gitlab, mode);
        let out = run(cmd.arg("--json").args(args));
        h.check_output(&format!("{name} --json ({mode:?})"), &out);
    }
    gitlab.clear_faults();
    bad_config_cases(&mut h, name, dir.path(), &gitlab, args);
    h.check_gitlab(name, &gitlab);
    h.check_tree(name, dir.path(), &[]);
    h.assert_clean();
}

#[test]
fn scan_races_keeps_every_secret() {
    gitlab_command(
        "scan-races",
        |_, dir| {
            let logs = dir.join("logs");
            std::fs::create_dir(&logs).expect("logs");
            for name in ["counter.log", "cache.log", "tsan-cpp.log"] {
                std::fs::copy(fixture(&format!("races/{name}")), logs.join(name)).expect("copy");
            }
        },
        &["scan-races", "--host", "testbox-07", "logs"],
    );
}

#[test]
fn check_versions_keeps_every_secret() {
    gitlab_command(
        "check-versions",
        |gitlab, _| {
            gitlab.put_file(PROJECT_ID, "fix/a", "VERSION", "5.3.1");
            gitlab.put_file(PROJECT_ID, "release/5.4", "VERSION", "5.4.0");
            gitlab.add_mr(NewMr {
                source_branch: "fix/a".into(),
                target_branch: "release/5.4".into(),
                ..NewMr::default()
            });
        },
        &["check-versions", "--mr", "1"],
    );
}

#[test]
fn transition_issues_keeps_every_secret() {
    gitlab_command(
        "transition-issues",
        |gitlab, dir| {
            std::fs::write(
                dir.join("rp-devops.yml"),
                "workflow:\n  labels: [\"to do\", \"in review\", \"test\"]\n  on_open: in review\n  on_merge: test\n",
            )
            .expect("config");
            gitlab.add_labels(PROJECT_ID, &["to do", "in review", "test"]);
            gitlab.add_issue("one", "", &["to do"], "opened");
            gitlab.add_mr(NewMr {
                description: "Fixes #1".into(),
                ..NewMr::default()
            });
        },
        &["transition-issues", "--mr", "1"],
    );
}

// ---------------------------------------------------------------------------

#[test]
fn escalate_keeps_every_secret() {
    let mut h = Hygiene::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let gitlab = FakeGitLab::start();
    gitlab.add_project(900, "support/escalations");
    let fd = FakeFreshdesk::start();
    fd.add_ticket(20, "Backups fail", "<p>Since Monday.</p>");
    fd.add_ticket_attachment(20, "backup.log", "text/plain", b"02:05 ERROR\n");
    fd.add_conversation(
        20,
        NewConversation {
            body: "<p>Logs attached.</p>".into(),
            incoming: true,
            attachments: vec![("a.log".into(), "text/plain".into(), b"log".to_vec())],
            ..Default::default()
        },
    );
    let config = |url: &str| {
        format!(
            "freshdesk:\n  url: {url}\n  project: support/escalations\n  link_field: cf_gitlab_issue\n"
        )
    };
    std::fs::write(dir.path().join("rp-devops.yml"), config(&fd.url)).expect("config");
    // GitLab's modes (Freshdesk well), then Freshdesk's (GitLab well).
    for &mode in MODES {
        let mut cmd = rp(dir.path());
        gitlab_mode(&mut cmd, &gitlab, mode);
        let out = run(cmd.args(["-vv", "escalate", "20"]));
        h.check_output(&format!("escalate (GitLab {mode:?})"), &out);
    }
    gitlab.clear_faults();
    fd.add_ticket(21, "Another", "<p>New.</p>");
    for what in [
        "Freshdesk 401",
        "Freshdesk 5xx",
        "Freshdesk slow",
        "Freshdesk unreachable",
        "a fresh ticket in dry-run",
    ] {
        fd.clear_faults();
        std::fs::write(dir.path().join("rp-devops.yml"), config(&fd.url)).expect("config");
        let mut cmd = rp(dir.path());
        gitlab_mode(&mut cmd, &gitlab, Mode::Ok);
        let mut ticket = "20";
        match what {
            "Freshdesk 401" => {
                cmd.env("RP_FRESHDESK_API_KEY", WRONG_FRESHDESK_KEY);
            }
            "Freshdesk 5xx" => fd.random_faults(1.0, 1, vec![Fault::Status(503, None)]),
            "Freshdesk slow" => {
                cmd.env("RP_HTTP_TIMEOUT", "150ms");
                fd.random_faults(1.0, 1, vec![Fault::Slow(Duration::from_millis(600))]);
            }
            "Freshdesk unreachable" => {
                let url = format!("http://127.0.0.1:{}", closed_port());
                std::fs::write(dir.path().join("rp-devops.yml"), config(&url)).expect("config");
            }
            _ => {
                cmd.arg("--dry-run");
                ticket = "21";
            }
        }
        let out = run(cmd.args(["-vv", "escalate", ticket, "--sync"]));
        h.check_output(&format!("escalate ({what})"), &out);
    }
    fd.clear_faults();
    bad_config_cases(&mut h, "escalate", dir.path(), &gitlab, &["escalate", "20"]);
    h.check_gitlab("escalate", &gitlab);
    h.check_freshdesk("escalate", &fd);
    h.check_tree("escalate", dir.path(), &[]);
    h.assert_clean();
}

// ---------------------------------------------------------------------------

#[test]
fn tag_library_keeps_every_secret() {
    use git_support::{Fixture, HttpGit};
    let mut h = Hygiene::new();
    let fx = Fixture::new();
    let lib = fx.library("web");
    lib.commit("one");
    let http = HttpGit::start(&fx, &fx.path("srv"), GIT_TOKEN);
    let wc = fx.shallow_clone(&http.url(&lib, Some(&format!("oauth2:{GIT_TOKEN}"))), "wc");
    // As in CI: the remote URL carries no credentials.
    fx.git(&wc, &["remote", "set-url", "origin", &http.url(&lib, None)]);
    let gitlab = FakeGitLab::start();
    gitlab.serve_repository(PROJECT_ID, &lib.bare);
    let tag = |extra_env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = rp(&wc);
        cmd.env("HOME", fx.home())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("RP_GITLAB_URL", &gitlab.url)
            .env("RP_PROJECT", fake_gitlab::PROJECT_PATH)
            .envs(extra_env.iter().copied())
            .args(["-vv", "tag-library"])
            .args(args);
        run(&mut cmd)
    };
    let out = tag(&[], &["--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    h.check_output("tag-library --dry-run", &out);
    let out = tag(&[("RP_GIT_TOKEN", WRONG_GIT_TOKEN)], &[]);
    assert!(!out.status.success());
    h.check_output("tag-library with a wrong git token", &out);
    // The GitLab release fails (5xx), the push works.
    gitlab.random_faults(1.0, 1, vec![Fault::Status(503, None)]);
    let out = tag(&[], &["--json"]);
    h.check_output("tag-library, GitLab failing", &out);
    gitlab.clear_faults();
    lib.commit("two");
    let out = tag(&[("RP_GITLAB_TOKEN", WRONG_GITLAB_TOKEN)], &[]);
    h.check_output("tag-library, GitLab token refused", &out);
    lib.commit("three");
    let out = tag(&[], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    h.check_output("tag-library", &out);
    // A remote on a dead host, with the job token in its URL as GitLab CI
    // writes it (`https://gitlab-ci-token:TOKEN@host/...`).
    let dead = format!(
        "http://gitlab-ci-token:{JOB_TOKEN}@127.0.0.1:{}/git/web.git",
        closed_port()
    );
    fx.git(&wc, &["remote", "set-url", "origin", &dead]);
    lib.commit("four");
    let out = tag(&[], &[]);
    assert!(!out.status.success());
    h.check_output("tag-library, remote unreachable", &out);
    fx.git(&wc, &["remote", "set-url", "origin", &http.url(&lib, None)]);
    bad_config_cases(&mut h, "tag-library", &wc, &gitlab, &["tag-library"]);
    h.check_gitlab("tag-library", &gitlab);
    // Files: the working copy (its .git/config above all) and HOME; the
    // git server's own auth script holds the token by design.
    h.check_tree("tag-library", &wc, &[]);
    h.check_tree("tag-library", &fx.home(), &[]);
    h.assert_clean();
}

// ---------------------------------------------------------------------------

/// A real `serve` with every route: release receiver, webhook (signed), the
/// escalation endpoint; stops when dropped.
struct Serve {
    root: tempfile::TempDir,
    port: u16,
    child: std::process::Child,
}

const SAFE_SCRIPT: &str = "#!/bin/sh\necho \"published $(basename \"$1\") as $RELEASE_VERSION\"\n";
/// A script that prints what it was given: its whole environment.
const ENV_SCRIPT: &str = "#!/bin/sh\nenv | sort\n";

impl Serve {
    fn start(gitlab: &FakeGitLab, fd: &FakeFreshdesk, env: &[(&str, &str)]) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path();
        support::release::write_executable(&dir.join("safe.sh"), SAFE_SCRIPT);
        support::release::write_executable(&dir.join("env.sh"), ENV_SCRIPT);
        std::fs::write(
            dir.join("rp-devops.yml"),
            format!(
                "workflow:\n  labels: [\"to do\", \"in review\"]\n  on_open: in review\n\
                 webhook:\n  signing_key_env: RP_WEBHOOK_SIGNING_KEY\n\
                 release:\n  dir: {rel}\n  max_size: 1MiB\n  products:\n    \
                 app:\n      script: {dir}/safe.sh\n    envdump:\n      script: {dir}/env.sh\n\
                 freshdesk:\n  url: {fd}\n  project: support/escalations\n\
                 escalation_endpoint:\n  allowed_origin: https://acme.freshdesk.com\n",
                rel = dir.join("rel").display(),
                dir = dir.display(),
                fd = fd.url,
            ),
        )
        .expect("config");
        let log = std::fs::File::create(dir.join("serve.log")).expect("log");
        let child = rp(dir)
            .env("RP_GITLAB_URL", &gitlab.url)
            .envs(env.iter().copied())
            .args(["-vv", "serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start serve");
        let mut child = child;
        let port = support::serve_port(
            &mut child,
            &root.path().join("serve.log"),
            Duration::from_secs(30),
        );
        Self { root, port, child }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("serve.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// SIGTERM, and wait for a clean exit.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(started.elapsed() < Duration::from_secs(40), "serve hangs");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP request; the answer's status, headers and body as one text.
fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(body.to_vec()).expect("request");
    match agent.run(request) {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let mut text = format!("{status}\n");
            for (name, value) in response.headers() {
                text.push_str(&format!(
                    "{name}: {}\n",
                    String::from_utf8_lossy(value.as_bytes())
                ));
            }
            text.push_str(&response.body_mut().read_to_string().unwrap_or_default());
            (status, text)
        }
        Err(e) => (0, e.to_string()),
    }
}

fn upload(serve: &Serve, secret: &str, product: &str, version: &str, query: &str) -> (u16, String) {
    let data = format!("artifact {product} {version}").into_bytes();
    let form = Form::new()
        .field("product", product)
        .field("version", version)
        .field("md5", &support::release::md5_of(&data))
        .file("a.tgz", &data);
    let content_type = format!("multipart/form-data; boundary={}", form.boundary);
    let body = form.finish();
    let auth = format!("Bearer {secret}");
    http(
        "POST",
        &serve.url(&format!("/api/v1/releases{query}")),
        &[("authorization", &auth), ("content-type", &content_type)],
        &body,
    )
}

fn signed(body: &[u8], id: &str) -> Vec<(String, String)> {
    let key = BASE64
        .decode(SIGNING_KEY.trim_start_matches("whsec_"))
        .expect("key");
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac");
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let signature = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    vec![
        ("webhook-id".into(), id.into()),
        ("idempotency-key".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        ("webhook-signature".into(), signature),
    ]
}

fn hook(
    serve: &Serve,
    token: &str,
    body: &[u8],
    signature: Vec<(String, String)>,
) -> (u16, String) {
    let mut headers: Vec<(&str, &str)> = vec![
        ("content-type", "application/json"),
        ("x-gitlab-event", "Merge Request Hook"),
        ("x-gitlab-token", token),
    ];
    headers.extend(signature.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    http("POST", &serve.url("/hooks/gitlab"), &headers, body)
}

fn mr_payload(iid: u64) -> Vec<u8> {
    let path = fixture("gitlab/webhook-merge-request.json");
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("payload")).expect("JSON");
    v["project"]["id"] = json!(PROJECT_ID);
    v["object_attributes"]["iid"] = json!(iid);
    v["object_attributes"]["target_project_id"] = json!(PROJECT_ID);
    v["object_attributes"]["action"] = json!("open");
    serde_json::to_vec(&v).expect("payload")
}

fn serve_world() -> (FakeGitLab, FakeFreshdesk) {
    let gitlab = FakeGitLab::start();
    gitlab.add_project(900, "support/escalations");
    gitlab.add_labels(PROJECT_ID, &["to do", "in review"]);
    gitlab.add_issue("one", "", &["to do"], "opened");
    gitlab.put_file(PROJECT_ID, "fix/a", "VERSION", "5.3.1");
    gitlab.put_file(PROJECT_ID, "release/5.4", "VERSION", "5.4.0");
    gitlab.add_mr(NewMr {
        description: "Fixes #1".into(),
        source_branch: "fix/a".into(),
        target_branch: "release/5.4".into(),
        ..NewMr::default()
    });
    let fd = FakeFreshdesk::start();
    fd.add_ticket(20, "Backups fail", "<p>Since Monday.</p>");
    (gitlab, fd)
}

#[test]
fn serve_keeps_every_secret_in_answers_logs_and_files() {
    let mut h = Hygiene::new();
    let (gitlab, fd) = serve_world();
    let mut serve = Serve::start(&gitlab, &fd, &[]);
    let mut answers: Vec<(String, (u16, String))> = Vec::new();
    let mut ask = |what: &str, answer: (u16, String)| answers.push((what.to_owned(), answer));

    ask("healthz", http("GET", &serve.url("/healthz"), &[], b""));
    ask("upload", upload(&serve, RELEASE_SECRET, "app", "1.0", ""));
    ask(
        "upload again",
        upload(&serve, RELEASE_SECRET, "app", "1.0", ""),
    );
    ask(
        "upload, wrong secret",
        upload(&serve, WRONG_RELEASE_SECRET, "app", "1.1", ""),
    );
    ask(
        "upload, the secret in the query too",
        upload(
            &serve,
            WRONG_RELEASE_SECRET,
            "app",
            "1.2",
            &format!("?token={RELEASE_SECRET}"),
        ),
    );
    ask(
        "upload, unknown product",
        upload(&serve, RELEASE_SECRET, "nope", "1.0", ""),
    );
    let status_url = serve.url("/api/v1/releases/app/1.0");
    let auth = format!("Bearer {RELEASE_SECRET}");
    ask(
        "release status",
        http("GET", &status_url, &[("authorization", &auth)], b""),
    );
    let body = mr_payload(1);
    ask(
        "webhook",
        hook(&serve, WEBHOOK_SECRET, &body, signed(&body, "msg_1")),
    );
    ask(
        "webhook, wrong token",
        hook(&serve, "wrong", &body, signed(&body, "msg_2")),
    );
    ask(
        "webhook, the signing key as token",
        hook(&serve, SIGNING_KEY, &body, signed(&body, "msg_3")),
    );
    ask(
        "webhook, bad signature",
        hook(&serve, WEBHOOK_SECRET, &body, signed(b"{}", "msg_4")),
    );
    ask(
        "webhook, not JSON",
        hook(
            &serve,
            WEBHOOK_SECRET,
            b"{not json",
            signed(b"{not json", "msg_5"),
        ),
    );
    let esc = serve.url("/api/v1/escalations/20");
    let bearer = format!("Bearer {ESCALATION_TOKEN}");
    ask(
        "escalation",
        http("POST", &esc, &[("authorization", &bearer)], b""),
    );
    let wrong = format!("Bearer {WRONG_ESCALATION_TOKEN}");
    ask(
        "escalation, wrong token",
        http("POST", &esc, &[("authorization", &wrong)], b""),
    );
    ask(
        "escalation preflight",
        http(
            "OPTIONS",
            &esc,
            &[
                ("origin", "https://acme.freshdesk.com"),
                ("access-control-request-method", "POST"),
            ],
            b"",
        ),
    );
    // Upstream failures, answered as 502 with their message.
    fd.random_faults(1.0, 1, vec![Fault::Status(401, None)]);
    ask(
        "escalation, Freshdesk refusing",
        http(
            "POST",
            &serve.url("/api/v1/escalations/21"),
            &[("authorization", &bearer)],
            b"",
        ),
    );
    fd.clear_faults();
    gitlab.random_faults(1.0, 1, vec![Fault::Status(503, None)]);
    fd.add_ticket(22, "Third", "<p>x</p>");
    ask(
        "escalation, GitLab failing",
        http(
            "POST",
            &serve.url("/api/v1/escalations/22"),
            &[("authorization", &bearer)],
            b"",
        ),
    );
    let body = mr_payload(1);
    ask(
        "webhook, GitLab failing",
        hook(&serve, WEBHOOK_SECRET, &body, signed(&body, "msg_6")),
    );
    std::thread::sleep(Duration::from_millis(500));
    gitlab.clear_faults();
    ask(
        "garbage",
        http("GET", &serve.url("/%2e%2e/etc/passwd?x=1"), &[], b""),
    );

    for (what, (status, text)) in &answers {
        assert!(*status > 0, "{what}: no answer: {text}");
        h.cases += 1;
        h.check(&format!("serve: the answer to {what}"), text);
    }
    assert_eq!(answers[1].1.0, 201, "{}", answers[1].1.1);
    serve.stop();
    h.check("serve: its log", &serve.log());
    h.check_gitlab("serve", &gitlab);
    h.check_freshdesk("serve", &fd);
    h.check_tree("serve", serve.root.path(), &[]);
    h.assert_clean();
}

/// Issue 10 part 1 #6: the script's environment is scrubbed of every
/// secret rp-devops knows, so a script that prints it (its output tail is
/// returned to the uploader, and kept in the release's `.status` file) gives
/// nothing away.
#[test]
fn a_release_script_that_prints_its_environment_gives_nothing_away() {
    let mut h = Hygiene::new();
    let (gitlab, fd) = serve_world();
    let mut serve = Serve::start(&gitlab, &fd, &[]);
    let (status, answer) = upload(&serve, RELEASE_SECRET, "envdump", "1.0", "");
    assert_eq!(status, 201, "{answer}");
    h.cases += 1;
    h.check(
        "the answer to an upload whose script prints its environment",
        &answer,
    );
    serve.stop();
    h.check("serve: its log", &serve.log());
    h.check_tree("serve", serve.root.path(), &[]);
    h.assert_clean();
}

#[test]
fn serve_refusing_to_start_keeps_every_secret() {
    let mut h = Hygiene::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "the release secret as release.secret_env",
            format!("release:\n  dir: rel\n  secret_env: {RELEASE_SECRET}\n"),
            vec![],
        ),
        (
            "the webhook secret as webhook.secret_env",
            format!("webhook:\n  secret_env: {WEBHOOK_SECRET}\n"),
            vec![],
        ),
        (
            "the signing key as webhook.signing_key_env",
            format!("webhook:\n  signing_key_env: {SIGNING_KEY}\n"),
            vec![],
        ),
        (
            "the token as escalation_endpoint.token_env",
            format!(
                "freshdesk:\n  url: http://127.0.0.1:9\n  project: a/b\nescalation_endpoint:\n  token_env: {ESCALATION_TOKEN}\n"
            ),
            vec![],
        ),
        (
            "a signing key that is not one",
            "webhook:\n  signing_key_env: BAD_SIGNING_KEY\n".to_owned(),
            vec!["BAD_SIGNING_KEY"],
        ),
        (
            "a release directory that is a file",
            "release:\n  dir: rp-devops.yml\n".to_owned(),
            vec![],
        ),
        (
            "a missing TLS certificate",
            "serve:\n  tls_cert: missing.pem\n  tls_key: missing.key\nwebhook: {}\n".to_owned(),
            vec![],
        ),
    ];
    for (what, config, flags) in cases {
        std::fs::write(dir.path().join("rp-devops.yml"), config).expect("config");
        let mut cmd = rp(dir.path());
        cmd.env("RP_GITLAB_URL", "http://127.0.0.1:9");
        if flags.contains(&"BAD_SIGNING_KEY") {
            cmd.env("BAD_SIGNING_KEY", format!("whsec_{RELEASE_SECRET}!"));
        }
        let out = cmd
            .args(["-vv", "serve", "--listen", "127.0.0.1:0"])
            .output()
            .expect("serve");
        assert!(!out.status.success(), "serve started with {what}");
        h.check_output(&format!("serve with {what}"), &out);
    }
    h.check_tree("serve", dir.path(), &[]);
    h.assert_clean();
}

// ---------------------------------------------------------------------------

#[test]
fn release_upload_keeps_every_secret() {
    let mut h = Hygiene::new();
    let (gitlab, fd) = serve_world();
    let serve = Serve::start(&gitlab, &fd, &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = support::release::artifact(dir.path(), "a.tgz", 5000, 3);
    let file = file.to_str().expect("path");
    let upload = |url: &str, secret: &str, extra: &[&str]| {
        let mut cmd = rp(dir.path());
        cmd.env("RP_RELEASE_SECRET", secret)
            .args(["-vv", "release", "upload", file, "--url", url])
            .args(["--product", "app", "--meta", "version=2.0"])
            .args(extra);
        run(&mut cmd)
    };
    let base = serve.url("");
    let out = upload(&base, RELEASE_SECRET, &["--dry-run"]);
    h.check_output("release upload --dry-run", &out);
    let out = upload(&base, RELEASE_SECRET, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    h.check_output("release upload", &out);
    let out = upload(&base, WRONG_RELEASE_SECRET, &["--json"]);
    assert!(!out.status.success());
    h.check_output("release upload, wrong secret", &out);
    let out = upload(&base, RELEASE_SECRET, &["--meta", "version=3.0", "--json"]);
    h.check_output("release upload, conflicting metadata", &out);
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let out = upload(&dead, RELEASE_SECRET, &[]);
    assert!(!out.status.success());
    h.check_output("release upload, unreachable", &out);
    let with_credentials = format!(
        "http://uploader:{RELEASE_SECRET}@127.0.0.1:{}",
        closed_port()
    );
    let out = upload(&with_credentials, RELEASE_SECRET, &[]);
    assert!(!out.status.success());
    h.check_output("release upload, the secret in the URL", &out);
    let in_query = format!("{base}/?token={RELEASE_SECRET}");
    let out = upload(&in_query, RELEASE_SECRET, &[]);
    assert!(!out.status.success());
    h.check_output("release upload, the secret in the query", &out);
    // A proxy answering 503 to every try.
    let reply: &'static [u8] =
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/html\r\ncontent-length: 21\r\nconnection: close\r\n\r\n<h1>503 upstream</h1>";
    let proxy = support::release::FakeProxy::answering(vec![reply; 4]);
    let out = upload(&proxy.url(), RELEASE_SECRET, &[]);
    h.check_output("release upload, a proxy answering 503", &out);
    bad_config_cases(
        &mut h,
        "release upload",
        dir.path(),
        &gitlab,
        &[
            "release",
            "upload",
            file,
            "--url",
            &base,
            "--product",
            "app",
            "--meta",
            "version=4.0",
        ],
    );
    drop(serve);
    h.check_tree("release upload", dir.path(), &[]);
    h.assert_clean();
}
