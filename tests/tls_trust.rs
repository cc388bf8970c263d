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

/// The system trust store (Debian's `ca-certificates` bundle) is honoured
/// with no variable set: an internal CA that an administrator added to it
/// (`update-ca-certificates`) is trusted. The test runs the binary in a
/// mount namespace of its own where the system bundle is the test CA, so
/// the machine's real store is never touched. Needs root (as CI runs) for
/// `unshare --mount`.
#[test]
fn the_system_trust_store_is_honoured() {
    const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
    assert!(
        std::path::Path::new(SYSTEM_BUNDLE).is_file(),
        "this test needs Debian's ca-certificates ({SYSTEM_BUNDLE})"
    );
    let dir = tempfile::tempdir().unwrap();
    let gitlab = FakeGitLab::start();
    let ca = TestCa::new(dir.path());
    let front = HttpsFront::start(&ca, &gitlab.url);

    // The same command in a namespace whose system bundle is, or is not,
    // the test CA: only the first may reach GitLab.
    let run = |bundle: &std::path::Path| {
        let plain = scan(&front.url, dir.path());
        let std_cmd = plain.get_program().to_owned();
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\"")
            .arg("sh")
            .arg(bundle)
            .arg(SYSTEM_BUNDLE)
            .arg(std_cmd)
            .args(plain.get_args())
            .env_clear()
            .current_dir(dir.path());
        for (key, value) in plain.get_envs() {
            if let Some(value) = value {
                cmd.env(key, value);
            }
        }
        cmd.output().unwrap()
    };

    let other = dir.path().join("other-bundle.crt");
    std::fs::copy(SYSTEM_BUNDLE, &other).unwrap();
    let refused = run(&other);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !stderr.contains("mount:") && !stderr.contains("unshare:"),
        "the namespace could not be set up (this test needs root): {stderr}"
    );
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(gitlab.issues().is_empty());

    let trusted = run(&ca.ca_file);
    let stderr = String::from_utf8_lossy(&trusted.stderr);
    assert_eq!(trusted.status.code(), Some(0), "{stderr}");
    assert_eq!(
        gitlab.issues().len(),
        1,
        "the race was filed over HTTPS trusted through the system store"
    );
}
