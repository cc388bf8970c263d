//! `transition-issues` end to end: the real binary against the fake GitLab.

mod support;

use serde_json::Value;
use support::fake_gitlab::merge_requests::{NewMr, sha_of};
use support::fake_gitlab::{JOB_TOKEN, PROJECT_ID};
use support::{FakeGitLab, rp_devops_with};

const BOARD: &[&str] = &["to do", "in development", "in review", "test", "testing"];
const CONFIG: &str = "workflow:\n  labels: [\"to do\", \"in development\", \"in review\", \"test\", \"testing\"]\n  on_open: in review\n  on_merge: test\n";

struct Setup {
    gitlab: FakeGitLab,
    home: tempfile::TempDir,
}

impl Setup {
    fn new(config: &str) -> Self {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("rp-devops.yml"), config).unwrap();
        let gitlab = FakeGitLab::start();
        gitlab.add_labels(PROJECT_ID, BOARD);
        Self { gitlab, home }
    }

    fn issue(&self, labels: &[&str]) -> u64 {
        self.gitlab.add_issue("an issue", "", labels, "opened")
    }

    fn labels(&self, iid: u64) -> Vec<String> {
        self.labels_in(PROJECT_ID, iid)
    }

    fn labels_in(&self, project: u64, iid: u64) -> Vec<String> {
        self.gitlab
            .issues()
            .into_iter()
            .find(|i| i.project_id == project && i.iid == iid)
            .map(|i| i.labels)
            .unwrap_or_default()
    }

    fn run(&self, args: &[&str]) -> (i32, Value, String) {
        let out = rp_devops_with(&self.gitlab, self.home.path())
            .args(["--json", "transition-issues"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), json, stderr)
    }

    fn puts(&self) -> usize {
        self.gitlab.count("PUT", "")
    }
}

/// `reference → action` of the JSON result.
fn actions(json: &Value) -> Vec<(String, String)> {
    json["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["reference"].as_str().unwrap().to_owned(),
                i["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn every_reference_form_moves_its_issue_in_one_edit() {
    let t = Setup::new(CONFIG);
    let one = t.issue(&["bug", "to do"]);
    let two = t.issue(&["in development"]);
    let three = t.issue(&[]);
    let four = t.issue(&["to do", "in development", "customer"]);
    let iid = t.gitlab.add_mr(NewMr {
        title: format!("Fix the crash (#{one})"),
        description: format!(
            "Closes restorepoint/product#{two}.\nSee {}/restorepoint/product/-/issues/{three}#note_1\nNot !7.",
            t.gitlab.url
        ),
        commits: vec![format!("Handle empty input\n\nFixes #{four}")],
        ..NewMr::default()
    });
    let (code, json, stderr) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["mr"], iid);
    assert_eq!(json["state"], "opened");
    assert_eq!(json["label"], "in review");
    assert_eq!(
        actions(&json),
        pairs(&[
            ("restorepoint/product#1", "moved"),
            ("restorepoint/product#2", "moved"),
            ("restorepoint/product#3", "moved"),
            ("restorepoint/product#4", "moved"),
        ])
    );
    assert_eq!(json["issues"][0]["from"], "to do");
    assert_eq!(json["issues"][2]["from"], Value::Null);
    assert_eq!(json["issues"][3]["from"], "in development");
    assert_eq!(t.labels(one), ["bug", "in review"]);
    assert_eq!(t.labels(two), ["in review"]);
    assert_eq!(t.labels(three), ["in review"]);
    assert_eq!(t.labels(four), ["customer", "in review"]);
    assert_eq!(t.puts(), 4, "one edit per issue");
    let put = t
        .gitlab
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    let body: Value = serde_json::from_str(&put.body).unwrap();
    assert_eq!(body["add_labels"], "in review");
    assert_eq!(body["remove_labels"], "to do");

    // Again: everything is where it belongs, no edit at all.
    t.gitlab.reset_requests();
    let (_, json, _) = t.run(&["--mr", &iid.to_string()]);
    assert!(
        actions(&json).iter().all(|(_, a)| a == "unchanged"),
        "{json}"
    );
    assert_eq!(t.puts(), 0);
}

#[test]
fn references_in_code_are_ignored() {
    let t = Setup::new(CONFIG);
    for _ in 0..3 {
        t.issue(&["to do"]);
    }
    let iid = t.gitlab.add_mr(NewMr {
        title: "Refactor `#1` handling".into(),
        description: "Fixes #3\n\n```\nlog: error in #2\n```\n".into(),
        commits: vec!["wip `#2`".into()],
        ..NewMr::default()
    });
    let (code, json, stderr) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        actions(&json),
        pairs(&[("restorepoint/product#3", "moved")])
    );
    assert_eq!(t.gitlab.count("GET", "/issues/1"), 0);
    assert_eq!(t.gitlab.count("GET", "/issues/2"), 0);
    assert_eq!(t.labels(1), ["to do"]);
}

#[test]
fn cross_project_references() {
    let t = Setup::new(CONFIG);
    t.gitlab.add_project(901, "restorepoint/library");
    t.gitlab.add_labels(901, BOARD);
    let lib = t
        .gitlab
        .add_issue_in(901, "lib issue", "", &["to do"], "opened");
    let own = t.issue(&["to do"]);
    let iid = t.gitlab.add_mr(NewMr {
        description: format!(
            "Needs restorepoint/library#{lib}; fixes #{own} (also RestorePoint/Product#{own})"
        ),
        ..NewMr::default()
    });
    let (code, json, stderr) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        actions(&json),
        pairs(&[
            ("restorepoint/library#1", "moved"),
            ("restorepoint/product#1", "moved"),
        ])
    );
    assert_eq!(t.labels_in(901, lib), ["in review"]);
    assert_eq!(t.labels(own), ["in review"]);
    assert_eq!(t.puts(), 2);
}

#[test]
fn a_reference_to_a_missing_issue_is_a_warning() {
    let t = Setup::new(CONFIG);
    let own = t.issue(&[]);
    let iid = t.gitlab.add_mr(NewMr {
        description: format!("#{own}, #99 and nowhere/else#3"),
        ..NewMr::default()
    });
    let (code, json, stderr) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        actions(&json),
        pairs(&[("restorepoint/product#1", "moved")])
    );
    assert!(
        stderr.contains("issue restorepoint/product#99 not found"),
        "{stderr}"
    );
    assert!(
        stderr.contains("issue nowhere/else#3 not found"),
        "{stderr}"
    );
}

#[test]
fn forward_only_closed_and_already_there() {
    let t = Setup::new(CONFIG);
    let ahead = t.issue(&["testing"]);
    let closed = t.gitlab.add_issue("done", "", &["to do"], "closed");
    let there = t.issue(&["in review"]);
    let iid = t.gitlab.add_mr(NewMr {
        description: format!("#{ahead} #{closed} #{there}"),
        ..NewMr::default()
    });
    let (code, json, stderr) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        actions(&json),
        pairs(&[
            ("restorepoint/product#1", "skipped-backwards"),
            ("restorepoint/product#2", "skipped-closed"),
            ("restorepoint/product#3", "unchanged"),
        ])
    );
    assert_eq!(t.puts(), 0);
    assert_eq!(t.labels(ahead), ["testing"]);
    assert_eq!(t.labels(closed), ["to do"]);

    // Without forward_only the issue goes back.
    let t2 = Setup::new(&format!("{CONFIG}  forward_only: false\n"));
    let ahead = t2.issue(&["testing"]);
    let iid = t2.gitlab.add_mr(NewMr {
        description: format!("#{ahead}"),
        ..NewMr::default()
    });
    let (_, json, _) = t2.run(&["--mr", &iid.to_string()]);
    assert_eq!(
        actions(&json),
        pairs(&[("restorepoint/product#1", "moved")])
    );
    assert_eq!(t2.labels(ahead), ["in review"]);
}

#[test]
fn merged_mr_found_from_the_commit() {
    let t = Setup::new(CONFIG);
    let issue = t.issue(&["in review"]);
    let merge_sha = sha_of(0xabc);
    let iid = t.gitlab.add_mr(NewMr {
        description: format!("Fixes #{issue}"),
        state: "merged".into(),
        merge_commit_sha: Some(merge_sha.clone()),
        ..NewMr::default()
    });
    // As on the default branch: CI_COMMIT_SHA, no MR IID.
    let out = rp_devops_with(&t.gitlab, t.home.path())
        .env("CI_COMMIT_SHA", &merge_sha)
        .args(["--json", "transition-issues"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["mr"], iid);
    assert_eq!(json["state"], "merged");
    assert_eq!(json["label"], "test");
    assert_eq!(
        actions(&json),
        pairs(&[("restorepoint/product#1", "moved")])
    );
    assert_eq!(t.labels(issue), ["test"]);

    // A direct push: no MR, a warning, exit 0.
    let (code, json, stderr) = t.run(&["--commit", &sha_of(0xdead)]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["mr"], Value::Null);
    assert_eq!(json["issues"], serde_json::json!([]));
    assert!(stderr.contains("merged by no merge request"), "{stderr}");
}

#[test]
fn a_draft_waits_until_it_is_ready() {
    let t = Setup::new(CONFIG);
    let issue = t.issue(&["in development"]);
    let iid = t.gitlab.add_mr(NewMr {
        title: format!("Draft: fix #{issue}"),
        draft: true,
        ..NewMr::default()
    });
    let (code, json, stderr) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        actions(&json),
        pairs(&[("restorepoint/product#1", "skipped-draft")])
    );
    assert_eq!(t.puts(), 0);
    assert_eq!(
        t.gitlab.count("GET", "/issues/1"),
        0,
        "no issue read for a draft"
    );
    assert_eq!(t.labels(issue), ["in development"]);

    t.gitlab.edit_mr(iid, |mr| {
        mr.draft = false;
        mr.title = format!("fix #{issue}");
    });
    let (_, json, _) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(
        actions(&json),
        pairs(&[("restorepoint/product#1", "moved")])
    );
    assert_eq!(t.labels(issue), ["in review"]);

    // drafts_wait: false moves at once.
    let t2 = Setup::new(&format!("{CONFIG}  drafts_wait: false\n"));
    let issue = t2.issue(&[]);
    let iid = t2.gitlab.add_mr(NewMr {
        title: format!("Draft: fix #{issue}"),
        draft: true,
        ..NewMr::default()
    });
    let (_, json, _) = t2.run(&["--mr", &iid.to_string()]);
    assert_eq!(
        actions(&json),
        pairs(&[("restorepoint/product#1", "moved")])
    );
}

#[test]
fn scoped_labels_and_an_explicit_target() {
    let config = "workflow:\n  labels: [\"workflow::to do\", \"workflow::in review\", \"workflow::test\"]\n  on_open: \"workflow::in review\"\n  on_merge: \"workflow::test\"\n";
    let t = Setup::new(config);
    t.gitlab.add_labels(
        PROJECT_ID,
        &[
            "workflow::to do",
            "workflow::in review",
            "workflow::test",
            "blocked",
        ],
    );
    let issue = t.issue(&["team::db", "workflow::to do"]);
    let iid = t.gitlab.add_mr(NewMr {
        description: format!("#{issue}"),
        ..NewMr::default()
    });
    let (code, json, stderr) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["issues"][0]["from"], "workflow::to do");
    assert_eq!(json["issues"][0]["to"], "workflow::in review");
    assert_eq!(t.labels(issue), ["team::db", "workflow::in review"]);

    let (code, json, _) = t.run(&["--mr", &iid.to_string(), "--to", "workflow::test"]);
    assert_eq!(code, 0);
    assert_eq!(json["label"], "workflow::test");
    assert_eq!(t.labels(issue), ["team::db", "workflow::test"]);
}

#[test]
fn a_missing_label_is_named_and_nothing_is_written() {
    let t = Setup::new(CONFIG);
    t.gitlab.add_project(901, "restorepoint/library");
    // The library project has no board labels.
    let lib = t.gitlab.add_issue_in(901, "x", "", &[], "opened");
    let own = t.issue(&[]);
    let iid = t.gitlab.add_mr(NewMr {
        description: format!("#{own} restorepoint/library#{lib}"),
        ..NewMr::default()
    });
    let (code, _, stderr) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("label \"in review\" does not exist in project restorepoint/library"),
        "{stderr}"
    );
    assert_eq!(t.puts(), 0, "checked before any edit");
}

#[test]
fn job_token_cannot_edit_issues_and_says_so() {
    let t = Setup::new(CONFIG);
    let issue = t.issue(&[]);
    let iid = t.gitlab.add_mr(NewMr {
        description: format!("#{issue}"),
        ..NewMr::default()
    });
    let out = support::rp_devops(t.home.path())
        .env("CI_SERVER_URL", &t.gitlab.url)
        .env("CI_JOB_TOKEN", JOB_TOKEN)
        .env("CI_PROJECT_ID", PROJECT_ID.to_string())
        .env("CI_MERGE_REQUEST_IID", iid.to_string())
        .arg("transition-issues")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("moving issue restorepoint/product#1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("edit issues") && stderr.contains("`api` scope"),
        "{stderr}"
    );
    assert_eq!(t.labels(issue), Vec::<String>::new());
}

#[test]
fn dry_run_plans_the_edits() {
    let t = Setup::new(CONFIG);
    let issue = t.issue(&["to do"]);
    let iid = t.gitlab.add_mr(NewMr {
        description: format!("#{issue}"),
        ..NewMr::default()
    });
    let out = rp_devops_with(&t.gitlab, t.home.path())
        .args([
            "--json",
            "--dry-run",
            "transition-issues",
            "--mr",
            &iid.to_string(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        actions(&json),
        pairs(&[("restorepoint/product#1", "would-move")])
    );
    assert!(
        stderr.contains("dry-run: would PUT projects/855/issues/1: add_labels=[\"in review\"] remove_labels=[\"to do\"]"),
        "{stderr}"
    );
    assert_eq!(t.puts(), 0);
    assert_eq!(t.labels(issue), ["to do"]);
}

#[test]
fn mr_not_found_and_missing_config() {
    let t = Setup::new(CONFIG);
    let (code, _, stderr) = t.run(&["--mr", "5"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("merge request !5 not found in project restorepoint/product"),
        "{stderr}"
    );

    let t = Setup::new("");
    let iid = t.gitlab.add_mr(NewMr::default());
    let (code, _, stderr) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("workflow.on_open"), "{stderr}");

    let (code, _, stderr) = t.run(&[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("pass --mr IID or --commit SHA"), "{stderr}");
}

#[test]
fn help_text() {
    let home = tempfile::tempdir().unwrap();
    let out = support::rp_devops(home.path())
        .args(["transition-issues", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

#[test]
fn json_result_shape() {
    let t = Setup::new(CONFIG);
    let moved = t.issue(&["to do"]);
    let closed = t.gitlab.add_issue("x", "", &["to do"], "closed");
    let iid = t.gitlab.add_mr(NewMr {
        description: format!("#{moved} #{closed}"),
        ..NewMr::default()
    });
    let (_, json, _) = t.run(&["--mr", &iid.to_string()]);
    insta::assert_json_snapshot!(json);
}
