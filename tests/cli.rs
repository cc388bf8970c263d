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

/// Every command's `--help`, as a user reads it: a change to any flag or
/// text shows up in review.
#[test]
fn every_command_help_is_snapshotted() {
    use clap::CommandFactory;
    let home = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    fn walk(command: &clap::Command, prefix: &[String], paths: &mut Vec<Vec<String>>) {
        for sub in command.get_subcommands().filter(|c| c.get_name() != "help") {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_owned());
            paths.push(path.clone());
            walk(sub, &path, paths);
        }
    }
    walk(&rp_devops::cli::Cli::command(), &[], &mut paths);
    assert!(paths.len() >= 6, "{paths:?}");
    for path in paths {
        let output = rp_devops(home.path())
            .args(&path)
            .arg("--help")
            .output()
            .unwrap();
        assert!(output.status.success(), "{path:?}");
        insta::assert_snapshot!(
            format!("help_{}", path.join("_").replace('-', "_")),
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

/// docs/cli-reference.md is generated from the command definitions and must
/// match them; `RP_UPDATE_DOCS=1 cargo test --test cli` rewrites it.
#[test]
fn cli_reference_is_in_step_with_the_binary() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli-reference.md");
    let expected = rp_devops::cli::reference_markdown();
    if std::env::var_os("RP_UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/cli-reference.md is out of date: run `RP_UPDATE_DOCS=1 cargo test --test cli`"
    );
}

#[test]
fn completions_name_every_command_and_man_renders_roff() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let output = rp_devops(home.path())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        for command in ["scan-races", "tag-library", "serve", "release"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let bash = home.path().join("rp-devops.bash");
    let output = rp_devops(home.path())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    std::fs::write(&bash, &output.stdout).unwrap();
    // The script is valid bash: sourcing it defines the completion.
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p rp-devops",
            bash.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());

    let output = rp_devops(home.path()).arg("man").output().unwrap();
    assert!(output.status.success());
    let page = String::from_utf8_lossy(&output.stdout);
    assert!(page.contains(".TH rp-devops 1"), "{page}");
    let dir = home.path().join("man1");
    rp_devops(home.path())
        .args(["man", "--dir"])
        .arg(&dir)
        .assert()
        .success();
    for page in [
        "rp-devops.1",
        "rp-devops-scan-races.1",
        "rp-devops-release-upload.1",
    ] {
        assert!(dir.join(page).is_file(), "{page}");
    }
}

#[test]
fn a_token_file_others_can_read_gets_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let token = home.path().join("token");
    std::fs::write(&token, "glpat-file-token-0000\n").unwrap();
    let run = |mode: u32| {
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
        let output = rp_devops(home.path())
            .args(["--gitlab-token-file", "token", "--dry-run", "scan-races"])
            .arg(support::fixture("races/counter.log"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = run(0o644);
    assert!(
        stderr.contains("warning: GitLab token file")
            && stderr.contains("can be read by other users (mode 0644)"),
        "{stderr}"
    );
    assert!(!stderr.contains("glpat-file-token"), "{stderr}");
    assert!(!run(0o600).contains("can be read by other users"));
}

#[test]
fn a_gitlab_url_named_only_by_a_config_found_in_the_working_directory_is_warned_about() {
    let gitlab = support::FakeGitLab::start();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("rp-devops.yml"),
        format!("gitlab:\n  url: {}\n", gitlab.url),
    )
    .unwrap();
    let run = |env: &[(&str, &str)]| {
        let output = rp_devops(home.path())
            .env("RP_GITLAB_TOKEN", support::fake_gitlab::TOKEN)
            .env("RP_PROJECT", support::fake_gitlab::PROJECT_PATH)
            .envs(env.iter().copied())
            .args(["scan-races"])
            .arg(support::fixture("races/counter.log"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    // A cron job in a directory someone else can write: warned, once.
    let stderr = run(&[]);
    let warning = format!(
        "warning: the token from RP_GITLAB_TOKEN goes to {}",
        gitlab.url
    );
    assert_eq!(stderr.matches(&warning).count(), 1, "{stderr}");
    assert!(
        stderr.contains("rp-devops.yml (found in the working directory)"),
        "{stderr}"
    );
    assert!(!stderr.contains(support::fake_gitlab::TOKEN));
    // In CI, or with the config or the URL named on purpose: no warning.
    for env in [
        &[("CI", "true")][..],
        &[("RP_DEVOPS_CONFIG", "rp-devops.yml")],
        &[("RP_GITLAB_URL", gitlab.url.as_str())],
    ] {
        let stderr = run(env);
        assert!(!stderr.contains("goes to"), "{env:?}: {stderr}");
    }
}
