//! The userscript (`examples/freshdesk-escalate.user.js`) in a real headless
//! chromium, driven by `tests/browser/escalate.mjs` (playwright-core), on a
//! local page shaped like Freshdesk's ticket view, against a real
//! `rp-devops serve` in front of the fake Freshdesk and the fake GitLab.
//!
//! Needs Debian's `chromium` and `npm ci` in `tests/browser` (both done by
//! `.ci/run`). Outside CI, a machine without them skips with a message; in
//! CI (`CI` set) their absence fails. Screenshots go to a temporary
//! directory, or to `docs/` with `RP_UPDATE_SCREENSHOTS=1`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::escalation::{EscalationServer, PROJECT_ID, TOKEN};
use support::fake_freshdesk::FakeFreshdesk;
use support::fake_gitlab::FakeGitLab;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Whatever is missing to run the browser test, if anything.
fn missing(root: &Path) -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!(
            "{CHROMIUM} is not installed (apt-get install chromium)"
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is not installed".to_owned());
    }
    if !root
        .join("tests/browser/node_modules/playwright-core")
        .is_dir()
    {
        return Some("playwright-core is not installed (run `npm ci` in tests/browser)".to_owned());
    }
    None
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn the_button_escalates_once_per_ticket_in_a_real_browser() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if let Some(what) = missing(&root) {
        if std::env::var_os("CI").is_some() {
            panic!("the browser test cannot run in CI: {what}; .ci/run installs it");
        }
        eprintln!("SKIPPED the_button_escalates_once_per_ticket_in_a_real_browser: {what}");
        return;
    }

    let gitlab = FakeGitLab::start();
    let fd = FakeFreshdesk::start();
    fd.add_ticket(
        20,
        "Backups fail at night",
        "<p>Backups stop at night since 5.2.</p>",
    );
    fd.add_ticket(21, "License key rejected", "<p>The new key is refused.</p>");
    let page_port = free_port();
    let origin = format!("http://127.0.0.1:{page_port}");
    let server = EscalationServer::start(&gitlab, &fd, &origin, &[]);
    let down_url = format!("http://127.0.0.1:{}", free_port());

    let screenshots = if std::env::var_os("RP_UPDATE_SCREENSHOTS").is_some() {
        root.join("docs")
    } else {
        server.root().join("screenshots")
    };
    std::fs::create_dir_all(&screenshots).expect("screenshot dir");

    let started = Instant::now();
    let out = Command::new("node")
        .arg(root.join("tests/browser/escalate.mjs"))
        .current_dir(root.join("tests/browser"))
        .env("RP_SERVE_URL", server.url())
        .env("RP_TOKEN", TOKEN)
        .env("PAGE_PORT", page_port.to_string())
        .env("DOWN_URL", &down_url)
        .env("SCREENSHOT_DIR", &screenshots)
        .env(
            "USERSCRIPT",
            root.join("examples/freshdesk-escalate.user.js"),
        )
        .env("CHROMIUM", CHROMIUM)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser run failed after {:.1}s:\n{stdout}\n{stderr}\nserve log:\n{}",
        started.elapsed().as_secs_f64(),
        server.log()
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    let seen: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no result line ({e}): {stdout}"));

    // Two clicks on ticket 20, one issue; none for 21 (its click met the
    // endpoint down).
    let issues: Vec<_> = gitlab
        .issues()
        .into_iter()
        .filter(|i| i.project_id == PROJECT_ID)
        .collect();
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert_eq!(issues[0].title, "[Freshdesk #20] Backups fail at night");
    assert_eq!(gitlab.count("POST", "/issues"), 1);
    let href = seen["first"]["href"].as_str().unwrap_or_default();
    assert!(
        href.ends_with(&format!("/-/issues/{}", issues[0].iid)),
        "{seen}"
    );
    assert_eq!(seen["second"]["href"], seen["first"]["href"]);
    assert!(
        seen["down"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("Could not reach rp-devops at {down_url}")),
        "{seen}"
    );
    // The page called through CORS: the preflight came from the page's origin.
    let log = server.log();
    assert!(
        log.contains("\"OPTIONS /api/v1/escalations/20\" 204"),
        "{log}"
    );
    for name in [
        "escalate-button.png",
        "escalate-result.png",
        "escalate-error.png",
    ] {
        let size = std::fs::metadata(screenshots.join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 1000, "{name} is {size} bytes");
    }
}
