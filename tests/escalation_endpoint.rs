//! `serve`'s escalation endpoint (SPEC §8, §10): the real server in front of
//! the fake Freshdesk and the fake GitLab.

mod support;

use support::escalation::{EscalationServer, PROJECT_ID, TOKEN, click, request};
use support::fake_freshdesk::{FakeFreshdesk, NewConversation};
use support::fake_gitlab::{FakeGitLab, Fault};

const ORIGIN: &str = "https://acme.freshdesk.com";

fn setup() -> (FakeGitLab, FakeFreshdesk) {
    let gitlab = FakeGitLab::start();
    let fd = FakeFreshdesk::start();
    fd.add_ticket(20, "Backups fail at night", "<p>Since Monday.</p>");
    fd.add_conversation(
        20,
        NewConversation {
            body: "<p>Logs attached.</p>".into(),
            incoming: true,
            created_at: Some("2015-08-25T09:00:00Z".into()),
            attachments: vec![("a.log".into(), "text/plain".into(), b"log".to_vec())],
            ..Default::default()
        },
    );
    (gitlab, fd)
}

fn issues(gitlab: &FakeGitLab) -> usize {
    gitlab
        .issues()
        .iter()
        .filter(|i| i.project_id == PROJECT_ID)
        .count()
}

#[test]
fn a_click_creates_the_issue_and_the_next_one_finds_it() {
    let (gitlab, fd) = setup();
    let server = EscalationServer::start(&gitlab, &fd, ORIGIN, &[]);
    let first = click(&server, "20");
    assert_eq!(first.status, 201, "{}", first.body);
    let json = first.json();
    assert_eq!(json["action"], "created");
    let iid = json["issue"]["iid"].as_u64().expect("iid");
    let web_url = json["issue"]["web_url"]
        .as_str()
        .expect("web_url")
        .to_owned();
    assert!(web_url.ends_with(&format!("/support/escalations/-/issues/{iid}")));
    assert_eq!(json["notes_added"], 1);

    let second = click(&server, "20");
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.json()["action"], "unchanged");
    assert_eq!(second.json()["issue"]["web_url"], web_url.as_str());
    assert_eq!(issues(&gitlab), 1);

    // A click later copies what was said since (the endpoint syncs).
    fd.add_conversation(
        20,
        NewConversation {
            body: "<p>Still failing.</p>".into(),
            incoming: true,
            ..Default::default()
        },
    );
    let third = click(&server, "20");
    assert_eq!(third.status, 200);
    assert_eq!(third.json()["action"], "synced");
    assert_eq!(third.json()["notes_added"], 1);
    assert_eq!(issues(&gitlab), 1);

    // The log has one line per escalation and never the token.
    let log = server.log();
    assert!(log.contains("escalation of ticket 20: created"), "{log}");
    assert!(!log.contains(TOKEN), "{log}");
}

#[test]
fn a_wrong_or_missing_token_is_401_and_reads_nothing() {
    let (gitlab, fd) = setup();
    let server = EscalationServer::start(&gitlab, &fd, ORIGIN, &[]);
    let url = format!("{}/api/v1/escalations/20", server.url());
    for headers in [
        vec![("Authorization", "Bearer wrong-token")],
        vec![("Authorization", &*format!("Basic {TOKEN}"))],
        vec![],
    ] {
        let answer = request("POST", &url, &headers);
        assert_eq!(answer.status, 401, "{headers:?}: {}", answer.body);
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
        assert!(answer.json()["error"].as_str().is_some());
    }
    assert!(fd.requests().is_empty(), "Freshdesk was read");
    assert!(gitlab.requests().is_empty(), "GitLab was read");
}

#[test]
fn only_numeric_ticket_ids_exist() {
    let (gitlab, fd) = setup();
    let server = EscalationServer::start(&gitlab, &fd, ORIGIN, &[]);
    for id in [
        "abc",
        "-1",
        "1.5",
        "0",
        "20x",
        "99999999999999999999999",
        "%2e%2e",
    ] {
        let answer = click(&server, id);
        assert_eq!(answer.status, 404, "{id}: {}", answer.body);
        assert!(answer.json()["error"].as_str().is_some(), "{id}");
    }
    assert!(fd.requests().is_empty());
    // A number Freshdesk does not know: 404 too, saying so.
    let answer = click(&server, "99");
    assert_eq!(answer.status, 404, "{}", answer.body);
    let error = answer.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("Freshdesk ticket 99"), "{error}");
    assert!(error.contains("There is no ticket with id 99"), "{error}");
    assert_eq!(issues(&gitlab), 0);
}

#[test]
fn cors_is_for_the_allowed_origin_only() {
    let (gitlab, fd) = setup();
    let server = EscalationServer::start(&gitlab, &fd, ORIGIN, &[]);
    let url = format!("{}/api/v1/escalations/20", server.url());
    let preflight = |origin: &str| {
        request(
            "OPTIONS",
            &url,
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "authorization"),
            ],
        )
    };
    let ok = preflight(ORIGIN);
    assert_eq!(ok.status, 204);
    assert_eq!(ok.header("access-control-allow-origin"), Some(ORIGIN));
    let methods = ok
        .header("access-control-allow-methods")
        .unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");
    let allowed = ok
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");

    let other = preflight("https://evil.example.com");
    assert_eq!(other.status, 403);
    assert_eq!(other.header("access-control-allow-origin"), None);

    // Answers (errors included) carry the header for the allowed origin only.
    let auth = format!("Bearer {TOKEN}");
    let from_freshdesk = request(
        "POST",
        &url,
        &[("Origin", ORIGIN), ("Authorization", &auth)],
    );
    assert_eq!(from_freshdesk.status, 201, "{}", from_freshdesk.body);
    assert_eq!(
        from_freshdesk.header("access-control-allow-origin"),
        Some(ORIGIN)
    );
    let denied = request(
        "POST",
        &url,
        &[("Origin", ORIGIN), ("Authorization", "Bearer no")],
    );
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("access-control-allow-origin"), Some(ORIGIN));
    let elsewhere = request(
        "POST",
        &url,
        &[
            ("Origin", "https://evil.example.com"),
            ("Authorization", &auth),
        ],
    );
    assert_eq!(elsewhere.header("access-control-allow-origin"), None);
    assert_eq!(issues(&gitlab), 1);
}

#[test]
fn a_double_click_makes_one_issue() {
    let (gitlab, fd) = setup();
    let server = EscalationServer::start(&gitlab, &fd, ORIGIN, &[]);
    // Both lookups of existing issues answer late (each answer computed on
    // arrival), so without the per-ticket lock both clicks would find no
    // issue and both would create one.
    for _ in 0..2 {
        gitlab.push_route_fault(
            "GET",
            "/issues",
            Fault::Slow(std::time::Duration::from_millis(400)),
        );
    }
    let answers: Vec<_> = std::thread::scope(|scope| {
        let clicks: Vec<_> = (0..2)
            .map(|n| {
                let server = &server;
                scope.spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(n * 100));
                    click(server, "20")
                })
            })
            .collect();
        clicks
            .into_iter()
            .map(|c| c.join().expect("click"))
            .collect()
    });
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [200, 201],
        "{:?}",
        answers.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
    assert_eq!(answers[0].json()["issue"], answers[1].json()["issue"]);
    assert_eq!(issues(&gitlab), 1);
    assert_eq!(gitlab.count("POST", "/issues"), 1);
}

#[test]
fn upstream_failures_are_502_with_a_readable_error() {
    let (gitlab, fd) = setup();
    let server = EscalationServer::start(&gitlab, &fd, ORIGIN, &[("FD_KEY", "wrong-fd-key")]);
    let answer = click(&server, "20");
    assert_eq!(answer.status, 502, "{}", answer.body);
    let json = answer.json();
    let error = json["error"].as_str().unwrap_or_default();
    assert!(error.contains("Freshdesk ticket 20"), "{error}");
    assert!(error.contains("401"), "{error}");
    assert!(
        json["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("API key"),
        "{json}"
    );
    assert!(!answer.body.contains("wrong-fd-key"));
    assert!(gitlab.requests().is_empty());

    // GitLab down behind a working Freshdesk: 502 as well, within the
    // retry budget, never a hang.
    let (gitlab, fd) = setup();
    let server = EscalationServer::start(&gitlab, &fd, ORIGIN, &[]);
    gitlab.push_faults(std::iter::repeat_n(Fault::Status(503, None), 200));
    let started = std::time::Instant::now();
    let answer = click(&server, "20");
    assert_eq!(answer.status, 502, "{}", answer.body);
    assert!(
        answer.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("503")
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn serve_refuses_to_start_without_the_token() {
    let gitlab = FakeGitLab::start();
    let fd = FakeFreshdesk::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("rp-devops.yml"),
        format!(
            "freshdesk:\n  url: {}\n  api_key_env: FD_KEY\n  project: p/q\nescalation_endpoint:\n  token_env: ESC_TOKEN\n",
            fd.url
        ),
    )
    .expect("config");
    let out = support::rp_devops(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RP_GITLAB_URL", &gitlab.url)
        .env("FD_KEY", "k")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ESC_TOKEN is not set"), "{stderr}");
}
