//! The command line as a user meets it: help, version, usage errors.

mod support;

use support::rp_devops;

#[test]
fn top_level_help_lists_only_working_commands() {
    let home = tempfile::tempdir().unwrap();
    let output = rp_devops(home.path()).arg("--help").output().unwrap();
    assert!(output.status.success());
    insta::assert_snapshot!(String::from_utf8_lossy(&output.stdout));
}

#[test]
fn version_is_the_crate_version() {
    let home = tempfile::tempdir().unwrap();
    let output = rp_devops(home.path()).arg("--version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("rp-devops {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        vec!["no-such-command"],
        vec!["scan-races"],
        vec!["--output", "yaml", "scan-races", "-"],
        // Secrets are never flags: there is no --gitlab-token.
        vec!["--gitlab-token", "glpat-x", "scan-races", "-"],
    ] {
        let output = rp_devops(home.path()).args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!output.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn bad_environment_values_are_usage_errors() {
    let home = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("RP_OUTPUT", "yaml"),
        ("RP_HTTP_RETRY_BUDGET", "soon"),
        ("RP_GITLAB_URL", "gitlab.example.com"),
    ] {
        let output = rp_devops(home.path())
            .env(name, value)
            .args(["scan-races", "-"])
            .write_stdin("")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}={value}");
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(err.contains(name) || err.contains(value), "{name}: {err}");
    }
}

#[test]
fn missing_config_file_named_by_flag_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    let output = rp_devops(home.path())
        .args(["--config", "nowhere.yml", "scan-races", "-"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nowhere.yml"));
}
