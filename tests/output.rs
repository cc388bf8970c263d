//! Output that fits a terminal and a CI log: colour only on a terminal (a
//! real pseudo-terminal from util-linux's `script`) and never with
//! `NO_COLOR`; GitLab's collapsible sections around long phases when `CI`
//! is set; the one-line summary on stderr when stdout holds JSON.

mod support;

use std::process::Command;

use support::{fixture, rp_devops};

const RED_ERROR: &str = "\x1b[31merror:";

/// `rp-devops ARGS` inside a pseudo-terminal, with `env` added to a clean
/// environment; what the terminal showed.
fn on_terminal(home: &std::path::Path, env: &[(&str, &str)], args: &str) -> String {
    let mut cmd = Command::new("script");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TERM", "xterm")
        .current_dir(home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let command = format!("{} {args}", env!("CARGO_BIN_EXE_rp-devops"));
    let out = cmd
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("util-linux script");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let home = tempfile::tempdir().unwrap();
    // A usage error: no GitLab URL for a command that needs one.
    let args = "check-versions --mr 1";
    let shown = on_terminal(home.path(), &[], args);
    assert!(shown.contains(RED_ERROR), "{shown:?}");

    let shown = on_terminal(home.path(), &[("NO_COLOR", "1")], args);
    assert!(shown.contains("error:"), "{shown:?}");
    assert!(
        !shown.contains('\x1b'),
        "colour despite NO_COLOR: {shown:?}"
    );

    // Not a terminal: plain text.
    let out = rp_devops(home.path())
        .args(["check-versions", "--mr", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error:"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
}

fn scan(home: &std::path::Path, ci: bool, json: bool) -> (String, String) {
    let mut cmd = rp_devops(home);
    if ci {
        cmd.env("CI", "true");
    }
    if json {
        cmd.arg("--json");
    }
    let out = cmd
        .args(["scan-races", "--dry-run", "--host", "ci-runner"])
        .arg(fixture("races/cache.log"))
        .output()
        .unwrap();
    assert!(out.status.success());
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ci_logs_get_collapsible_sections_around_long_phases() {
    let home = tempfile::tempdir().unwrap();
    let (_, stderr) = scan(home.path(), true, false);
    let start = stderr
        .find("\x1b[0Ksection_start:")
        .unwrap_or_else(|| panic!("no section in {stderr:?}"));
    let end = stderr
        .find("\x1b[0Ksection_end:")
        .unwrap_or_else(|| panic!("no section end in {stderr:?}"));
    assert!(start < end);
    let opening = stderr[start..].lines().next().unwrap_or_default();
    let marker = regex::Regex::new(
        r"^\x1b\[0Ksection_start:\d+:scan_races\[collapsed=true\]\r\x1b\[0Kscan-races: ",
    )
    .unwrap();
    assert!(marker.is_match(opening), "{opening:?}");
    let closing = stderr[end..].lines().next().unwrap_or_default();
    assert!(
        regex::Regex::new(r"^\x1b\[0Ksection_end:\d+:scan_races\r\x1b\[0K$")
            .unwrap()
            .is_match(closing),
        "{closing:?}"
    );

    // Outside CI: no markers at all.
    let (_, stderr) = scan(home.path(), false, false);
    assert!(!stderr.contains("section_"), "{stderr:?}");
}

#[test]
fn json_output_keeps_a_one_line_summary_on_stderr() {
    let home = tempfile::tempdir().unwrap();
    let (stdout, stderr) = scan(home.path(), true, true);
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    let races = json["races"].as_array().unwrap().len();
    let summary = stderr
        .lines()
        .last()
        .unwrap_or_default()
        .trim_end_matches('\r');
    assert!(
        summary.ends_with(&format!(
            ": {races} distinct race{}",
            if races == 1 { "" } else { "s" }
        )),
        "the last stderr line is the summary: {stderr}"
    );
    assert!(
        !stderr.lines().last().unwrap_or_default().contains('\x1b'),
        "the summary is outside the section: {stderr:?}"
    );
    // Human output: the summary is the result's last line, not repeated.
    let (stdout, stderr) = scan(home.path(), false, false);
    assert!(stdout.trim_end().ends_with("distinct races"), "{stdout}");
    assert!(!stderr.contains("distinct race"), "{stderr}");
}
