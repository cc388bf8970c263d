//! `serve` behind real reverse proxies (nginx from Debian's `nginx-light`,
//! Caddy from Debian's `caddy`), started on 127.0.0.1 with the README's own
//! configuration blocks: every refusal reaches `release upload` and `curl -F`
//! (with and without `Expect: 100-continue`) as the receiver's own status and
//! message, in one attempt, with request buffering off and on; and a
//! gateway timeout while the release script runs is settled through the
//! status route instead of a second upload.

mod support;

use std::path::Path;
use std::process::Command;

use support::proxy::{Proxy, ProxyConfig, ProxyKind};
use support::release::*;

const MB: usize = 1024 * 1024;

/// `curl -F` to `url`'s release route: (status, body). `expect` false sends
/// the body without waiting for `100 Continue` (curl waits for bodies over
/// 1 MiB by default).
fn curl_form(cwd: &Path, url: &str, secret: &str, form: &[String], expect: bool) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-o", "-", "-w", "\n%{http_code}"])
        .arg("-H")
        .arg(format!("Authorization: Bearer {secret}"));
    if expect {
        cmd.args(["-H", "Expect: 100-continue"]);
    } else {
        cmd.args(["-H", "Expect:"]);
    }
    for f in form {
        cmd.arg("-F").arg(f);
    }
    cmd.arg(format!("{url}/api/v1/releases"));
    let out = cmd.current_dir(cwd).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        format!("{body}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

/// The receiver's JSON `error`, or the whole text when it is not JSON.
fn error_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}

/// Every refusal through `kind` is the receiver's own, for both clients;
/// good uploads land; the receiver sees each upload exactly once.
fn every_answer_is_the_receivers_own(kind: ProxyKind, buffering: bool) {
    let rx = Receiver::start_with_max("8MiB");
    let proxy = Proxy::start(
        kind,
        rx.port,
        &ProxyConfig {
            buffering,
            ..ProxyConfig::default()
        },
    );
    let url = proxy.url();
    let context = |what: &str, out: &str| {
        format!(
            "{} (buffering {buffering}) {what}:\n{out}\n--- serve:\n{}\n--- proxy:\n{}",
            kind.name(),
            rx.log(),
            proxy.log()
        )
    };
    // Larger than the socket buffers on both sides, so that a connection
    // closed with body bytes still arriving would be reset.
    let big = artifact(rx.root(), "big.tgz", 24 * MB, 41);
    let small = artifact(rx.root(), "small.tgz", MB, 42);
    let small_md5 = md5_hex(&small);

    // `release upload`.
    let out = upload_to(
        rx.root(),
        &url,
        &small,
        "app",
        &["version=1.0", "channel=stable"],
        SECRET,
        &["--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        context("good upload", &stderr(&out))
    );
    assert_eq!(json(&stdout(&out))["md5"], small_md5);

    let refusals: [(&str, &std::path::Path, &str, &str, &str); 3] = [
        (
            "not-the-secret",
            &big,
            "app",
            "HTTP 401: wrong release secret",
            "hint: RP_RELEASE_SECRET",
        ),
        (
            SECRET,
            &small,
            "nope",
            "HTTP 404: unknown product \"nope\"",
            "hint: add \"nope\"",
        ),
        (
            SECRET,
            &big,
            "app",
            "HTTP 413: the artifact is larger than this server's release.max_size (8.0 MiB)",
            "hint: the receiver's release.max_size",
        ),
    ];
    for (secret, file, product, message, hint) in refusals {
        let out = upload_to(
            rx.root(),
            &url,
            file,
            product,
            &["version=2", "channel=x"],
            secret,
            &[],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{}", context(message, &err));
        assert!(
            err.contains(&format!("error: the receiver answered {message}")),
            "{}",
            context(message, &err)
        );
        assert!(err.contains(hint), "{}", context(message, &err));
        assert!(
            !err.contains("retrying"),
            "one attempt: {}",
            context(message, &err)
        );
    }

    // `curl -F`, waiting for 100 Continue and not.
    let file_arg = |file: &str| format!("file=@{file}");
    for expect in [true, false] {
        let version = if expect { "4" } else { "5" };
        let cases: [(&str, Vec<String>, u16, &str); 4] = [
            (
                "not-the-secret",
                vec!["product=app".into(), file_arg("big.tgz")],
                401,
                "wrong release secret",
            ),
            (
                SECRET,
                vec![
                    "product=nope".into(),
                    "version=1".into(),
                    file_arg("small.tgz"),
                ],
                404,
                "unknown product \"nope\": it has no release.products entry on this server",
            ),
            (
                SECRET,
                vec![
                    "product=app".into(),
                    "version=3".into(),
                    file_arg("big.tgz"),
                ],
                413,
                "the artifact is larger than this server's release.max_size (8.0 MiB)",
            ),
            (
                SECRET,
                vec![
                    "product=app".into(),
                    format!("version={version}"),
                    "channel=beta".into(),
                    format!("md5={small_md5}"),
                    file_arg("small.tgz"),
                ],
                201,
                "",
            ),
        ];
        let mut refusals_checked = 0;
        for (secret, form, status, message) in cases {
            let (got, body) = curl_form(rx.root(), &url, secret, &form, expect);
            let what = format!("curl (expect {expect}) {form:?}");
            // Caddy streaming a body the receiver refused from its head:
            // Caddy (Go's HTTP server) forwards the answer, then closes a
            // client connection whose body it did not read to its end, and
            // curl, still sending, may be reset before it reads the answer
            // (or after its status line, before its body).
            // Caddy's doing, not the receiver's (which reads on, see
            // serve.linger); never a proxy's own answer in place of ours.
            if kind == ProxyKind::Caddy
                && !buffering
                && status != 201
                && (got == 0 || got == status)
                && body.contains("Connection reset by peer")
            {
                eprintln!("{}", context(&format!("{what}: reset by Caddy"), &body));
                continue;
            }
            assert_eq!(got, status, "{}", context(&what, &body));
            if status == 201 {
                assert_eq!(json(&body)["md5"], small_md5, "{}", context(&what, &body));
            } else {
                assert_eq!(error_of(&body), message, "{}", context(&what, &body));
                refusals_checked += 1;
            }
        }
        // Caddy's resets excuse a case now and then, never all three.
        assert!(
            refusals_checked > 0,
            "{}",
            context("every refusal was reset", "")
        );
    }

    // Each upload reached the receiver once: 4 of ours, 8 by curl.
    let posts = rx.log().matches("\"POST /api/v1/releases\"").count();
    assert_eq!(posts, 12, "{}", context("POST count", ""));
    rx.assert_only_releases(&["app/1.0/small.tgz", "app/4/small.tgz", "app/5/small.tgz"]);
    assert!(!rx.log().contains(SECRET) && !proxy.log().contains(SECRET));
}

#[test]
fn behind_nginx_streaming_every_answer_is_the_receivers_own() {
    every_answer_is_the_receivers_own(ProxyKind::Nginx, false);
}

#[test]
fn behind_nginx_buffering_every_answer_is_the_receivers_own() {
    every_answer_is_the_receivers_own(ProxyKind::Nginx, true);
}

#[test]
fn behind_caddy_streaming_every_answer_is_the_receivers_own() {
    every_answer_is_the_receivers_own(ProxyKind::Caddy, false);
}

#[test]
fn behind_caddy_buffering_every_answer_is_the_receivers_own() {
    every_answer_is_the_receivers_own(ProxyKind::Caddy, true);
}

/// The proxy gives up on the answer while the release script runs: the
/// client asks the status route, waits for the publication, and exits 0;
/// the artifact went over the wire once and the script ran once.
fn a_timeout_while_the_script_runs_is_settled_by_the_status_route(kind: ProxyKind) {
    let rx = Receiver::start();
    let proxy = Proxy::start(
        kind,
        rx.port,
        &ProxyConfig {
            answer_timeout: Some("1s"),
            ..ProxyConfig::default()
        },
    );
    let file = artifact(rx.root(), "s.tgz", 2 * MB, 43);
    let out = upload_to(
        rx.root(),
        &proxy.url(),
        &file,
        "sleepy",
        &["version=1", "nap=4"],
        SECRET,
        &[],
    );
    let err = stderr(&out);
    let context = format!(
        "{err}\n--- serve:\n{}\n--- proxy:\n{}",
        rx.log(),
        proxy.log()
    );
    assert!(out.status.success(), "{context}");
    assert!(
        err.contains("the artifact was sent, but its answer was lost (HTTP 50"),
        "{context}"
    );
    assert!(
        err.contains("asking the receiver what became of it"),
        "{context}"
    );
    if kind == ProxyKind::Nginx {
        assert!(err.contains("HTTP 504 from nginx/"), "{context}");
    }
    assert!(
        stdout(&out).contains("released (confirmed by the receiver's status) sleepy 1: s.tgz"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        rx.log().matches("\"POST /api/v1/releases\"").count(),
        1,
        "{context}"
    );
    assert!(
        rx.log().contains("\"GET /api/v1/releases/sleepy/1\" 200"),
        "{context}"
    );
    assert_eq!(rx.runs("sleepy"), 1);
    rx.assert_only_releases(&["sleepy/1/s.tgz"]);
}

#[test]
fn a_504_from_nginx_while_the_script_runs_is_settled_by_the_status_route() {
    a_timeout_while_the_script_runs_is_settled_by_the_status_route(ProxyKind::Nginx);
}

#[test]
fn a_timeout_in_caddy_while_the_script_runs_is_settled_by_the_status_route() {
    a_timeout_while_the_script_runs_is_settled_by_the_status_route(ProxyKind::Caddy);
}

/// What the client says when the proxy, not the receiver, answers: nginx
/// with the receiver down gives an HTML 502 page.
#[test]
fn a_proxy_error_page_is_named_and_summarised_in_one_line() {
    let mut rx = Receiver::start();
    let port = rx.port;
    let proxy = Proxy::start(ProxyKind::Nginx, port, &ProxyConfig::default());
    rx.signal("KILL");
    rx.wait_exit(std::time::Duration::from_secs(10));
    let file = artifact(rx.root(), "d.tgz", 1000, 44);
    let out = upload_to(
        rx.root(),
        &proxy.url(),
        &file,
        "app",
        &["version=1", "channel=x"],
        SECRET,
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // Before the body was sent (nginx answers 100 Continue and then reads
    // it, so it was sent): the answer is settled through the status route,
    // which the proxy cannot reach either; the error says all that in
    // lines, never the page itself.
    assert!(err.contains("HTTP 502 from nginx/"), "{err}");
    assert!(err.contains(": 502 Bad Gateway"), "{err}");
    assert!(
        !err.contains("<html>") && !err.contains("<center>"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}
