//! HTTPS clients and an on-premise GitLab signed by an internal CA: the
//! system store alone does not trust it; `CI_SERVER_TLS_CA_FILE` (added to
//! the store) or `SSL_CERT_FILE` (replacing it) makes it work.

mod support;

use support::tls::{HttpsFront, TestCa};
use support::{FakeGitLab, fake_gitlab, fixture, rp_devops};

fn scan(gitlab_url: &str, home: &std::path::Path) -> assert_cmd::Command {
    let mut cmd = rp_devops(home);
    cmd.env("RP_GITLAB_URL", gitlab_url)
        .env("RP_GITLAB_TOKEN", fake_gitlab::TOKEN)
        .env("RP_PROJECT", fake_gitlab::PROJECT_PATH)
        .args(["scan-races", "--json"])
        .arg(fixture("races/counter.log"));
    cmd
}

#[test]
fn a_gitlab_signed_by_an_unknown_ca_is_refused_with_a_hint_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let gitlab = FakeGitLab::start();
    let ca = TestCa::new(dir.path());
    let front = HttpsFront::start(&ca, &gitlab.url);

    let output = scan(&front.url, dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(stderr.contains("CI_SERVER_TLS_CA_FILE"), "{stderr}");
    assert!(
        !stderr.contains("retrying"),
        "a certificate error is final: {stderr}"
    );
    assert!(gitlab.requests().is_empty(), "nothing reached GitLab");
    assert!(!stderr.contains(fake_gitlab::TOKEN), "{stderr}");
}

#[test]
fn ci_server_tls_ca_file_adds_the_internal_ca() {
    let dir = tempfile::tempdir().unwrap();
    let gitlab = FakeGitLab::start();
    let ca = TestCa::new(dir.path());
    let front = HttpsFront::start(&ca, &gitlab.url);

    scan(&front.url, dir.path())
        .env("CI_SERVER_TLS_CA_FILE", &ca.ca_file)
        .assert()
        .success();
    assert_eq!(gitlab.issues().len(), 1, "the race was filed over HTTPS");
}

#[test]
fn ssl_cert_file_replaces_the_system_store() {
    let dir = tempfile::tempdir().unwrap();
    let gitlab = FakeGitLab::start();
    let ca = TestCa::new(dir.path());
    let front = HttpsFront::start(&ca, &gitlab.url);

    scan(&front.url, dir.path())
        .env("SSL_CERT_FILE", &ca.ca_file)
        .assert()
        .success();
    assert_eq!(gitlab.issues().len(), 1);
}

#[test]
fn a_ca_file_that_is_not_pem_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let gitlab = FakeGitLab::start();
    let bogus = dir.path().join("ca.pem");
    std::fs::write(&bogus, "hello\n").unwrap();
    let output = scan(&gitlab.url.replace("http://", "https://"), dir.path())
        .env("CI_SERVER_TLS_CA_FILE", &bogus)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("CI_SERVER_TLS_CA_FILE"), "{stderr}");
}
