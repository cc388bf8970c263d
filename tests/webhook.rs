//! The GitLab merge-request webhook end to end: a real `rp-devops serve`
//! process, the real payload of `tests/fixtures/gitlab/`, the fake GitLab
//! behind it.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::fake_gitlab::merge_requests::{BOT_USERNAME, NewMr};
use support::fake_gitlab::{PROJECT_ID, TOKEN};
use support::{FakeGitLab, Fault};

const SECRET: &str = "hook-secret-never-logged-7d1e";
const SIGNING: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BOARD: &[&str] = &["to do", "in development", "in review", "test"];
/// The webhook section comes last, so a test can append keys to it.
const CONFIG: &str = "workflow:\n  labels: [\"to do\", \"in development\", \"in review\", \"test\"]\n  on_open: in review\n  on_merge: test\n\
webhook:\n  secret_env: RP_WEBHOOK_SECRET\n";

struct Server {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Server {
    fn start(gitlab: &FakeGitLab, extra_config: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rp-devops.yml"),
            format!("{CONFIG}{extra_config}"),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rp-devops"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("RP_GITLAB_URL", &gitlab.url)
            .env("RP_GITLAB_TOKEN", TOKEN)
            .env("RP_WEBHOOK_SECRET", SECRET)
            .env("RP_HTTP_RETRY_BASE", "20ms")
            .env("RP_HTTP_RETRY_BUDGET", "1s")
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = Self {
            dir,
            port: 0,
            child: Some(child),
        };
        let started = Instant::now();
        loop {
            let log = server.log();
            if let Some(port) = log
                .lines()
                .find_map(|l| l.strip_prefix("listening on http://127.0.0.1:"))
                .and_then(|p| p.trim().parse().ok())
            {
                server.port = port;
                break;
            }
            if let Some(status) = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("serve exited with {status}: {log}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "serve did not start: {log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Lines saying an event was handled.
    fn handled(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| {
                l.starts_with("webhook: !") && !l.contains("retrying") && !l.contains("not handled")
            })
            .count()
    }

    fn wait_handled(&self, n: usize) {
        wait_for(
            Duration::from_secs(60),
            || self.handled() >= n,
            || self.log(),
        );
    }

    /// POST a payload; (status, answer).
    fn post(&self, body: &[u8], headers: &[(&str, String)]) -> (u16, Value) {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut request = agent
            .post(&format!("http://127.0.0.1:{}/hooks/gitlab", self.port))
            .header("content-type", "application/json")
            .header("x-gitlab-event", "Merge Request Hook");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut response = request.send(body).unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A delivery as GitLab makes it: token and a fresh event UUID.
    fn deliver(&self, body: &[u8], uuid: &str) -> (u16, Value) {
        self.post(
            body,
            &[
                ("x-gitlab-token", SECRET.to_owned()),
                ("x-gitlab-event-uuid", uuid.to_owned()),
                ("idempotency-key", uuid.to_owned()),
            ],
        )
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().unwrap().id();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            assert!(
                started.elapsed() < limit,
                "serve did not exit: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for(limit: Duration, mut done: impl FnMut() -> bool, context: impl Fn() -> String) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out; {}", context());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The real payload, made about MR `iid` of the fake's project.
fn payload(iid: u64, action: &str, changes: Value) -> Vec<u8> {
    let path = support::fixture("gitlab/webhook-merge-request.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["project"]["id"] = json!(PROJECT_ID);
    v["object_attributes"]["iid"] = json!(iid);
    v["object_attributes"]["target_project_id"] = json!(PROJECT_ID);
    v["object_attributes"]["source_project_id"] = json!(PROJECT_ID);
    v["object_attributes"]["action"] = json!(action);
    v["changes"] = changes;
    serde_json::to_vec(&v).unwrap()
}

/// A fake GitLab with the board labels and one MR per (source, target)
/// version pair, each mentioning its own issue.
fn gitlab_with(mrs: &[(&str, &str)]) -> FakeGitLab {
    let gitlab = FakeGitLab::start();
    gitlab.add_labels(PROJECT_ID, BOARD);
    for (n, (source, target)) in mrs.iter().enumerate() {
        let issue = gitlab.add_issue("issue", "", &["to do"], "opened");
        let source_branch = format!("feature/{n}");
        let target_branch = format!("release/{n}");
        gitlab.put_file(PROJECT_ID, &source_branch, "VERSION", source);
        gitlab.put_file(PROJECT_ID, &target_branch, "VERSION", target);
        gitlab.add_mr(NewMr {
            description: format!("Fixes #{issue}"),
            source_branch,
            target_branch,
            ..NewMr::default()
        });
    }
    gitlab
}

fn open_threads(gitlab: &FakeGitLab, iid: u64) -> usize {
    gitlab
        .mr(iid)
        .discussions
        .iter()
        .filter(|d| d.notes[0].author == BOT_USERNAME && !d.resolved())
        .count()
}

fn issue_labels(gitlab: &FakeGitLab, iid: u64) -> Vec<String> {
    gitlab
        .issues()
        .into_iter()
        .find(|i| i.project_id == PROJECT_ID && i.iid == iid)
        .unwrap()
        .labels
}

fn sign(id: &str, timestamp: u64, body: &[u8]) -> String {
    let key = BASE64.decode(SIGNING.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn open_event_checks_versions_and_moves_issues_in_the_background() {
    let gitlab = gitlab_with(&[("5.3.1", "5.4.0")]);
    let server = Server::start(&gitlab, "", &[]);
    let (status, answer) = server.deliver(&payload(1, "open", json!({})), "uuid-open-1");
    assert_eq!(status, 200);
    assert_eq!(answer["status"], "accepted");
    server.wait_handled(1);
    assert_eq!(open_threads(&gitlab, 1), 1);
    assert_eq!(issue_labels(&gitlab, 1), ["in review"]);
    let log = server.log();
    assert!(log.contains("POST /hooks/gitlab\" 200"), "{log}");
    assert!(log.contains("webhook: !1 in project 855 (open): check-versions opened the thread; transition-issues to \"in review\": 1 moved"), "{log}");
    assert!(!log.contains(SECRET) && !log.contains(TOKEN), "{log}");

    // Closed and other events are ignored with 200 and no GitLab request.
    gitlab.reset_requests();
    for action in ["close", "approved"] {
        let (status, answer) = server.deliver(&payload(1, action, json!({})), action);
        assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")));
    }
    let (status, _) = server.deliver(br#"{"object_kind":"push"}"#, "push-1");
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(200));
    assert!(gitlab.requests().is_empty());
}

#[test]
fn wrong_token_and_bad_signatures_get_401() {
    let gitlab = gitlab_with(&[("5.3.1", "5.4.0")]);
    let server = Server::start(
        &gitlab,
        "  signing_key_env: RP_WEBHOOK_SIGNING_KEY\n",
        &[("RP_WEBHOOK_SIGNING_KEY", SIGNING)],
    );
    let body = payload(1, "open", json!({}));
    let token = ("x-gitlab-token", SECRET.to_owned());
    let (status, answer) = server.post(&body, &[]);
    assert_eq!(status, 401, "{answer}");
    let (status, _) = server.post(&body, &[("x-gitlab-token", "wrong".to_owned())]);
    assert_eq!(status, 401);
    // Right token, but no signature, a bad one, or a stale one.
    let (status, answer) = server.post(&body, std::slice::from_ref(&token));
    assert_eq!(status, 401);
    assert_eq!(answer["error"], "missing webhook-id");
    let ts = now();
    let headers = |id: &str, ts: u64, sig: String| {
        vec![
            token.clone(),
            ("webhook-id", id.to_owned()),
            ("idempotency-key", id.to_owned()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", sig),
        ]
    };
    let (status, answer) = server.post(&body, &headers("msg_1", ts, sign("msg_1", ts, b"{}")));
    assert_eq!(status, 401);
    assert_eq!(answer["error"], "webhook-signature does not match");
    let old = ts - 600;
    let (status, answer) = server.post(&body, &headers("msg_1", old, sign("msg_1", old, &body)));
    assert_eq!(status, 401);
    assert!(
        answer["error"].as_str().unwrap().contains("too far"),
        "{answer}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        gitlab.requests().is_empty(),
        "nothing done for rejected requests"
    );

    // Correctly signed (among other signatures): accepted.
    let good = format!("v1,bm90IGl0 {}", sign("msg_1", ts, &body));
    let (status, answer) = server.post(&body, &headers("msg_1", ts, good));
    assert_eq!(status, 200, "{answer}");
    server.wait_handled(1);
    assert_eq!(open_threads(&gitlab, 1), 1);
    assert!(!server.log().contains(SIGNING));
}

#[test]
fn open_and_update_at_the_same_moment_make_one_thread() {
    let gitlab = gitlab_with(&[("5.3.1", "5.4.0")]);
    // Slow answers widen the window in which two unserialised handlers
    // would both see no thread yet.
    gitlab.random_faults(1.0, 1, vec![Fault::Slow(Duration::from_millis(30))]);
    let server = Server::start(&gitlab, "", &[]);
    let open = payload(1, "open", json!({}));
    let update = payload(1, "update", json!({}));
    std::thread::scope(|scope| {
        scope.spawn(|| assert_eq!(server.deliver(&open, "u-open").0, 200));
        scope.spawn(|| assert_eq!(server.deliver(&update, "u-update").0, 200));
    });
    server.wait_handled(2);
    assert_eq!(open_threads(&gitlab, 1), 1);
    assert_eq!(gitlab.count("POST", "/discussions"), 1);
    assert_eq!(issue_labels(&gitlab, 1), ["in review"]);
}

#[test]
fn the_tokens_user_is_read_once_for_the_servers_lifetime() {
    let gitlab = gitlab_with(&[("5.3.1", "5.4.0"), ("5.3.1", "5.4.0")]);
    let server = Server::start(&gitlab, "", &[]);
    for (n, iid) in [1, 1, 2, 2, 1].into_iter().enumerate() {
        let action = if n < 2 { "open" } else { "update" };
        let uuid = format!("user-once-{n}");
        assert_eq!(
            server.deliver(&payload(iid, action, json!({})), &uuid).0,
            200
        );
        server.wait_handled(n + 1);
    }
    // Threads that carry our marker were judged by their author each time.
    assert_eq!(open_threads(&gitlab, 1), 1);
    assert_eq!(open_threads(&gitlab, 2), 1);
    assert_eq!(gitlab.count("GET", "/api/v4/user"), 1);
}

#[test]
fn a_redelivery_is_done_once() {
    let gitlab = gitlab_with(&[("5.3.1", "5.4.0")]);
    let server = Server::start(&gitlab, "", &[]);
    let body = payload(1, "open", json!({}));
    assert_eq!(server.deliver(&body, "same-uuid").0, 200);
    server.wait_handled(1);
    gitlab.reset_requests();
    let (status, answer) = server.deliver(&body, "same-uuid");
    assert_eq!(status, 200);
    assert_eq!(answer["status"], "duplicate delivery: already handled");
    // Only the UUID header, as older GitLabs send it.
    let (_, answer) = server.post(
        &body,
        &[
            ("x-gitlab-token", SECRET.to_owned()),
            ("x-gitlab-event-uuid", "same-uuid".to_owned()),
        ],
    );
    assert_eq!(answer["status"], "duplicate delivery: already handled");
    std::thread::sleep(Duration::from_millis(300));
    assert!(gitlab.requests().is_empty(), "{:?}", gitlab.requests());
    assert_eq!(server.handled(), 1);
}

#[test]
fn gitlab_down_while_handling_is_retried_and_does_not_block_other_mrs() {
    let gitlab = gitlab_with(&[("5.3.1", "5.4.0"), ("5.3.1", "5.4.0")]);
    let server = Server::start(&gitlab, "", &[]);
    // MR 1's reads fail for a long while (more than the client's own retries).
    for _ in 0..200 {
        gitlab.push_route_fault("GET", "/merge_requests/1", Fault::Status(503, None));
    }
    assert_eq!(
        server.deliver(&payload(1, "open", json!({})), "down-1").0,
        200
    );
    wait_for(
        Duration::from_secs(30),
        || {
            server.log().contains("webhook: !1 in project 855 (open): ")
                && server.log().contains("retrying in")
        },
        || server.log(),
    );
    // Meanwhile MR 2 is handled.
    assert_eq!(
        server.deliver(&payload(2, "open", json!({})), "down-2").0,
        200
    );
    server.wait_handled(1);
    assert_eq!(open_threads(&gitlab, 2), 1);
    assert_eq!(open_threads(&gitlab, 1), 0);
    // GitLab comes back: MR 1 is done.
    gitlab.clear_faults();
    server.wait_handled(2);
    assert_eq!(open_threads(&gitlab, 1), 1);
    assert_eq!(issue_labels(&gitlab, 1), ["in review"]);
    let health = ureq::get(&format!("http://127.0.0.1:{}/healthz", server.port))
        .call()
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[test]
fn a_hundred_events_for_twenty_mrs_at_once() {
    let mrs: Vec<(&str, &str)> = (0..20)
        .map(|n| {
            if n % 2 == 0 {
                ("5.3.1", "5.4.0")
            } else {
                ("5.4.1", "5.4.0")
            }
        })
        .collect();
    let gitlab = gitlab_with(&mrs);
    gitlab.random_faults(1.0, 1, vec![Fault::Slow(Duration::from_millis(5))]);
    let server = Server::start(&gitlab, "", &[]);
    let mut events: Vec<(Vec<u8>, String)> = Vec::new();
    for iid in 1..=20u64 {
        events.push((payload(iid, "open", json!({})), format!("open-{iid}")));
        for k in 0..4 {
            events.push((
                payload(iid, "update", json!({})),
                format!("update-{iid}-{k}"),
            ));
        }
    }
    fastrand::Rng::with_seed(3).shuffle(&mut events);
    let chunks: Vec<Vec<(Vec<u8>, String)>> = events.chunks(10).map(<[_]>::to_vec).collect();
    std::thread::scope(|scope| {
        for chunk in &chunks {
            let server = &server;
            scope.spawn(move || {
                for (body, uuid) in chunk {
                    assert_eq!(server.deliver(body, uuid).0, 200);
                }
            });
        }
    });
    server.wait_handled(100);
    for iid in 1..=20u64 {
        let expected = usize::from(iid % 2 == 1);
        assert_eq!(open_threads(&gitlab, iid), expected, "MR !{iid}");
        assert_eq!(issue_labels(&gitlab, iid), ["in review"], "issue of !{iid}");
    }
    assert_eq!(gitlab.count("POST", "/discussions"), 10);
    assert_eq!(gitlab.count("PUT", ""), 20, "one edit per issue, ever");
    assert!(!server.log().contains("not handled"), "{}", server.log());
}

#[test]
fn draft_ready_and_merge_events() {
    let gitlab = gitlab_with(&[("5.4.1", "5.4.0")]);
    gitlab.edit_mr(1, |mr| mr.draft = true);
    let server = Server::start(&gitlab, "", &[]);
    server.deliver(&payload(1, "open", json!({})), "d-open");
    server.wait_handled(1);
    assert_eq!(issue_labels(&gitlab, 1), ["to do"], "a draft waits");
    // A plain update (a push) moves nothing.
    server.deliver(&payload(1, "update", json!({})), "d-push");
    server.wait_handled(2);
    assert_eq!(issue_labels(&gitlab, 1), ["to do"]);
    // Marked ready.
    gitlab.edit_mr(1, |mr| mr.draft = false);
    let ready = json!({ "draft": { "previous": true, "current": false } });
    server.deliver(&payload(1, "update", ready), "d-ready");
    server.wait_handled(3);
    assert_eq!(issue_labels(&gitlab, 1), ["in review"]);
    // Merged.
    gitlab.edit_mr(1, |mr| mr.state = "merged".into());
    server.deliver(&payload(1, "merge", json!({})), "d-merge");
    server.wait_handled(4);
    assert_eq!(issue_labels(&gitlab, 1), ["test"]);
}

#[test]
fn sigterm_lets_queued_events_finish() {
    let pairs: Vec<(&str, &str)> = (0..6).map(|_| ("5.3.1", "5.4.0")).collect();
    let gitlab = gitlab_with(&pairs);
    // Slow answers keep events queued when the signal arrives.
    gitlab.random_faults(1.0, 1, vec![Fault::Slow(Duration::from_millis(40))]);
    let mut server = Server::start(&gitlab, "", &[]);
    for iid in 1..=6u64 {
        server.deliver(&payload(iid, "open", json!({})), &format!("t-{iid}"));
        server.deliver(&payload(iid, "update", json!({})), &format!("t-u-{iid}"));
    }
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(60)), Some(0));
    assert_eq!(server.handled(), 12, "{}", server.log());
    for iid in 1..=6u64 {
        assert_eq!(open_threads(&gitlab, iid), 1);
    }
    assert!(
        server.log().contains("shut down cleanly"),
        "{}",
        server.log()
    );
}

#[test]
fn serve_refuses_to_start_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rp-devops.yml"), CONFIG).unwrap();
    let out = support::rp_devops(dir.path())
        .env("RP_GITLAB_URL", "http://127.0.0.1:9")
        .env("RP_GITLAB_TOKEN", TOKEN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("RP_WEBHOOK_SECRET"), "{stderr}");
}
