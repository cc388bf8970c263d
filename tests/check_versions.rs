//! `check-versions` end to end: the real binary against the fake GitLab,
//! with merge requests, version files per project and branch, and threads.

mod support;

use serde_json::Value;
use support::fake_gitlab::merge_requests::{BOT_USERNAME, NewMr};
use support::fake_gitlab::{JOB_TOKEN, PROJECT_ID};
use support::{FakeGitLab, Fault, rp_devops_with};

const MARKER: &str = "<!-- rp-devops:version-check";

struct Setup {
    gitlab: FakeGitLab,
    home: tempfile::TempDir,
}

impl Setup {
    fn new(config: &str) -> Self {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("rp-devops.yml"), config).unwrap();
        Self {
            gitlab: FakeGitLab::start(),
            home,
        }
    }

    /// An MR from `source` (VERSION `sv`) into `target` (VERSION `tv`).
    fn mr(&self, source: &str, sv: &str, target: &str, tv: &str) -> u64 {
        self.gitlab.put_file(PROJECT_ID, source, "VERSION", sv);
        self.gitlab.put_file(PROJECT_ID, target, "VERSION", tv);
        self.gitlab.add_mr(NewMr {
            source_branch: source.into(),
            target_branch: target.into(),
            ..NewMr::default()
        })
    }

    fn run(&self, args: &[&str]) -> (i32, Value, String) {
        let out = rp_devops_with(&self.gitlab, self.home.path())
            .args(["--json", "check-versions"])
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), json, stderr)
    }

    /// (id, resolved, note bodies) of every thread rp-devops opened.
    fn threads(&self, iid: u64) -> Vec<(String, bool, Vec<String>)> {
        self.gitlab
            .mr(iid)
            .discussions
            .iter()
            .filter(|d| d.notes[0].author == BOT_USERNAME)
            .map(|d| {
                (
                    d.id.clone(),
                    d.resolved(),
                    d.notes.iter().map(|n| n.body.clone()).collect(),
                )
            })
            .collect()
    }

    fn writes(&self) -> usize {
        self.gitlab
            .requests()
            .iter()
            .filter(|r| r.method != "GET")
            .count()
    }
}

#[test]
fn mismatch_opens_one_thread_and_reruns_add_nothing() {
    let t = Setup::new("");
    let iid = t.mr("fix/crash", "5.3.1\n", "release/5.4", "5.4.0\n");
    let (code, json, stderr) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["mr"], iid);
    assert_eq!(json["source"]["branch"], "fix/crash");
    assert_eq!(json["source"]["version"], "5.3.1");
    assert_eq!(json["target"]["branch"], "release/5.4");
    assert_eq!(json["target"]["version"], "5.4.0");
    assert_eq!(json["match"], false);
    assert_eq!(json["action"], "created");
    let threads = t.threads(iid);
    assert_eq!(threads.len(), 1);
    let (_, resolved, notes) = &threads[0];
    assert!(!resolved);
    assert!(
        notes[0].starts_with("<!-- rp-devops:version-check source=5.3.1 target=5.4.0 -->"),
        "{}",
        notes[0]
    );
    assert!(notes[0].contains("`fix/crash`") && notes[0].contains("`release/5.4`"));
    let discussion_writes = t.gitlab.count("POST", "/discussions");
    assert_eq!(discussion_writes, 1);

    // Re-runs: still one thread, no write, at most 5 requests each.
    for _ in 0..2 {
        t.gitlab.reset_requests();
        let (code, json, stderr) = t.run(&["--mr", &iid.to_string()]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(json["action"], "exists");
        assert_eq!(t.writes(), 0);
        assert!(t.gitlab.requests().len() <= 5, "{:?}", t.gitlab.requests());
    }
    assert_eq!(t.threads(iid).len(), 1);
}

#[test]
fn a_thread_a_person_resolved_stays_resolved_until_the_versions_change() {
    let t = Setup::new("");
    let iid = t.mr("fix/crash", "5.3.1", "release/5.4", "5.4.0");
    t.run(&["--mr", &iid.to_string()]);
    let (id, _, _) = t.threads(iid).remove(0);
    t.gitlab.person_resolves(iid, &id, true);

    t.gitlab.reset_requests();
    let (code, json, _) = t.run(&["--mr", &iid.to_string(), "--fail-on-mismatch"]);
    // Acknowledged by a person: no new thread, no red pipeline.
    assert_eq!(code, 0);
    assert_eq!(json["action"], "exists");
    assert_eq!(t.writes(), 0);
    let threads = t.threads(iid);
    assert_eq!(threads.len(), 1);
    assert!(threads[0].1, "still resolved");

    // The source version changes and still differs: a new thread.
    t.gitlab
        .put_file(PROJECT_ID, "fix/crash", "VERSION", "5.3.2");
    let (code, json, _) = t.run(&["--mr", &iid.to_string(), "--fail-on-mismatch"]);
    assert_eq!(code, 3);
    assert_eq!(json["action"], "created");
    let threads = t.threads(iid);
    assert_eq!(threads.len(), 2);
    assert!(threads[0].1 && !threads[1].1);
    assert!(threads[1].2[0].contains("source=5.3.2 target=5.4.0"));
}

#[test]
fn versions_fixed_or_retargeted_resolves_our_own_thread() {
    let t = Setup::new("");
    let iid = t.mr("fix/crash", "5.3.1", "release/5.4", "5.4.0");
    t.run(&["--mr", &iid.to_string()]);

    // Retargeted onto the 5.3 line.
    t.gitlab
        .put_file(PROJECT_ID, "release/5.3", "VERSION", "5.3.0");
    t.gitlab
        .edit_mr(iid, |mr| mr.target_branch = "release/5.3".into());
    let (code, json, stderr) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["match"], true);
    assert_eq!(json["action"], "resolved");
    let threads = t.threads(iid);
    assert_eq!(threads.len(), 1);
    assert!(threads[0].1, "resolved by rp-devops");
    assert_eq!(threads[0].2.len(), 2, "a short note before resolving");
    assert!(threads[0].2[1].contains("match now"), "{:?}", threads[0].2);

    // Nothing more to do on a re-run.
    t.gitlab.reset_requests();
    let (_, json, _) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(json["action"], "none");
    assert_eq!(t.writes(), 0);

    // Retargeted back: rp-devops resolved that thread itself, so the
    // mismatch is not acknowledged: a new thread.
    t.gitlab
        .edit_mr(iid, |mr| mr.target_branch = "release/5.4".into());
    let (_, json, _) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(json["action"], "created");
    assert_eq!(t.threads(iid).iter().filter(|t| !t.1).count(), 1);
}

#[test]
fn an_open_thread_gets_a_note_when_the_versions_change_but_still_differ() {
    let t = Setup::new("");
    let iid = t.mr("fix/crash", "5.3.1", "release/5.4", "5.4.0");
    t.run(&["--mr", &iid.to_string()]);
    t.gitlab
        .put_file(PROJECT_ID, "fix/crash", "VERSION", "5.3.2");
    let (_, json, _) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(json["action"], "exists");
    let threads = t.threads(iid);
    assert_eq!(threads.len(), 1);
    assert_eq!(threads[0].2.len(), 2);
    assert!(
        threads[0].2[1].starts_with("<!-- rp-devops:version-check source=5.3.2 target=5.4.0 -->")
    );
    // A person resolves it now, for 5.3.2: it stays resolved.
    t.gitlab.person_resolves(iid, &threads[0].0, true);
    let (_, json, _) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(json["action"], "exists");
    assert_eq!(t.threads(iid).len(), 1);
}

#[test]
fn fork_mr_reads_the_source_from_the_fork() {
    let t = Setup::new("");
    t.gitlab.add_project(900, "someone/product");
    t.gitlab.put_file(900, "main", "VERSION", "5.3.1");
    // The same branch name in the target project holds something else.
    t.gitlab.put_file(PROJECT_ID, "main", "VERSION", "5.4.0");
    let iid = t.gitlab.add_mr(NewMr {
        source_project_id: 900,
        source_branch: "main".into(),
        target_branch: "main".into(),
        ..NewMr::default()
    });
    let (code, json, stderr) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["source"]["version"], "5.3.1");
    assert_eq!(json["target"]["version"], "5.4.0");
    assert_eq!(json["action"], "created");
    assert_eq!(
        t.gitlab
            .count("GET", "/projects/900/repository/files/VERSION/raw"),
        1
    );
}

#[test]
fn file_in_a_subdirectory_branch_with_slashes_and_a_pattern() {
    let t = Setup::new(
        "versions:\n  file: internal/version/version.go\n  pattern: '^const Version = \"(?P<version>[^\"]+)\"'\n",
    );
    let go = |v: &str| {
        format!("package version\n\n// Version is the product version.\nconst Version = \"{v}\"\n")
    };
    t.gitlab.put_file(
        PROJECT_ID,
        "feature/team-a/x",
        "internal/version/version.go",
        &go("5.4.2"),
    );
    t.gitlab.put_file(
        PROJECT_ID,
        "release/5.4",
        "internal/version/version.go",
        &go("5.4.0"),
    );
    let iid = t.gitlab.add_mr(NewMr {
        source_branch: "feature/team-a/x".into(),
        target_branch: "release/5.4".into(),
        ..NewMr::default()
    });
    let (code, json, stderr) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["source"]["version"], "5.4.2");
    assert_eq!(json["match"], true);
    assert_eq!(json["action"], "none");
    // Path and ref each arrived as one encoded segment/value.
    let reads: Vec<_> = t
        .gitlab
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/repository/files/"))
        .collect();
    assert_eq!(reads.len(), 2);
    assert!(
        reads[0]
            .path
            .ends_with("/repository/files/internal%2Fversion%2Fversion.go/raw")
    );
    assert!(
        reads[0].query.contains("ref=feature%2Fteam-a%2Fx"),
        "{}",
        reads[0].query
    );
}

#[test]
fn each_granularity() {
    for (compare, source, target, matches) in [
        ("major", "5.3.1", "5.4.0", true),
        ("major", "4.9.0", "5.0.0", false),
        ("minor", "5.4.1", "5.4.0", true),
        ("minor", "5.3.1", "5.4.0", false),
        ("patch", "5.4.1", "5.4.0", false),
        ("patch", "5.4", "5.4.0-rc1", true),
    ] {
        let t = Setup::new(&format!("versions:\n  compare: {compare}\n"));
        let iid = t.mr("a", source, "b", target);
        let (code, json, stderr) = t.run(&["--mr", &iid.to_string()]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(json["match"], matches, "{compare} {source} {target}");
        assert_eq!(t.threads(iid).len(), usize::from(!matches));
    }
}

#[test]
fn unreadable_version_warns_and_does_nothing() {
    let t = Setup::new("");
    t.gitlab
        .put_file(PROJECT_ID, "release/5.4", "VERSION", "5.4.0");
    let iid = t.gitlab.add_mr(NewMr {
        source_branch: "no-version-file".into(),
        target_branch: "release/5.4".into(),
        ..NewMr::default()
    });
    let (code, json, stderr) = t.run(&["--mr", &iid.to_string(), "--fail-on-mismatch"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warning: cannot read the version of VERSION at \"no-version-file\""),
        "{stderr}"
    );
    assert!(stderr.contains("404 File Not Found"), "{stderr}");
    assert_eq!(json["source"]["version"], Value::Null);
    assert_eq!(json["match"], Value::Null);
    assert_eq!(json["action"], "none");
    assert_eq!(t.writes(), 0);
    // Not a version at all: the same.
    t.gitlab
        .put_file(PROJECT_ID, "no-version-file", "VERSION", "banana\n");
    let (code, _, stderr) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(code, 0);
    assert!(stderr.contains("holds no version"), "{stderr}");
    assert_eq!(t.writes(), 0);
}

#[test]
fn fail_on_mismatch_from_flag_or_config() {
    let t = Setup::new("versions:\n  fail_on_mismatch: true\n");
    let iid = t.mr("a", "5.3.1", "b", "5.4.0");
    let (code, json, _) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(code, 3);
    assert_eq!(json["action"], "created");
    let t = Setup::new("");
    let iid = t.mr("a", "5.3.1", "b", "5.4.0");
    assert_eq!(t.run(&["--mr", &iid.to_string()]).0, 0);
    assert_eq!(
        t.run(&["--mr", &iid.to_string(), "--fail-on-mismatch"]).0,
        3
    );
    let iid = t.mr("c", "5.4.1", "d", "5.4.0");
    assert_eq!(
        t.run(&["--mr", &iid.to_string(), "--fail-on-mismatch"]).0,
        0
    );
}

#[test]
fn job_token_gets_a_clear_error_naming_the_scope() {
    let t = Setup::new("");
    let iid = t.mr("a", "5.3.1", "b", "5.4.0");
    let out = support::rp_devops(t.home.path())
        .env("CI_SERVER_URL", &t.gitlab.url)
        .env("CI_JOB_TOKEN", JOB_TOKEN)
        .env("CI_PROJECT_ID", PROJECT_ID.to_string())
        .env("CI_MERGE_REQUEST_IID", iid.to_string())
        .arg("check-versions")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("opening the version-check thread on !1"),
        "{stderr}"
    );
    assert!(stderr.contains("403"), "{stderr}");
    assert!(
        stderr.contains("hint: CI_JOB_TOKEN") && stderr.contains("`api` scope"),
        "{stderr}"
    );
    assert!(!stderr.contains(JOB_TOKEN));
    assert_eq!(t.threads(iid).len(), 0);
}

#[test]
fn mr_not_found_names_the_iid_and_the_project() {
    let t = Setup::new("");
    let (code, _, stderr) = t.run(&["--mr", "77"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("merge request !77 not found in project restorepoint/product"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: check --mr"), "{stderr}");
}

#[test]
fn dry_run_reads_and_plans_the_thread() {
    let t = Setup::new("");
    let iid = t.mr("a", "5.3.1", "b", "5.4.0");
    let out = rp_devops_with(&t.gitlab, t.home.path())
        .args([
            "--json",
            "--dry-run",
            "check-versions",
            "--mr",
            &iid.to_string(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["action"], "would-create");
    assert!(
        stderr.contains(
            "dry-run: would POST projects/restorepoint%2Fproduct/merge_requests/1/discussions"
        ),
        "{stderr}"
    );
    assert_eq!(t.writes(), 0);
    assert!(t.threads(iid).is_empty());
}

#[test]
fn a_lost_answer_never_makes_a_second_thread() {
    let t = Setup::new("");
    let iid = t.mr("a", "5.3.1", "b", "5.4.0");
    t.gitlab
        .push_route_fault("POST", "/discussions", Fault::LostAnswer);
    let (code, json, stderr) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["action"], "created");
    assert_eq!(t.threads(iid).len(), 1);
    assert_eq!(
        t.gitlab.count("POST", "/discussions"),
        1,
        "recovered, not re-sent"
    );
}

#[test]
fn markers_in_text_from_people_are_not_ours() {
    let t = Setup::new("");
    let iid = t.mr("a", "5.3.1", "b", "5.4.0");
    t.gitlab.edit_mr(iid, |mr| {
        mr.description = format!("{MARKER} source=5.3.1 target=5.4.0 -->\n/close")
    });
    // Someone quotes a marker in a reply, or writes one mid-text.
    t.gitlab.person_comments(
        iid,
        &format!("> {MARKER} source=5.3.1 target=5.4.0 -->\n> quoted"),
        true,
    );
    t.gitlab.person_comments(
        iid,
        &format!("see {MARKER} source=5.3.1 target=5.4.0 -->"),
        true,
    );
    let (_, json, _) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(json["action"], "created");
    let threads = t.threads(iid);
    assert_eq!(threads.len(), 1);
    // Our note carries no line a quick action could start.
    for line in threads[0].2[0].lines() {
        assert!(!line.starts_with('/'), "{line}");
    }
}

#[test]
fn a_person_cannot_forge_our_thread_by_starting_a_comment_with_the_marker() {
    let t = Setup::new("");
    let iid = t.mr("a", "5.3.1", "b", "5.4.0");
    // A thread that looks exactly like ours, posted by a person and
    // resolved by them: taken for ours, it would silence the warning.
    let forged = t.gitlab.person_comments(
        iid,
        &format!("{MARKER} source=5.3.1 target=5.4.0 -->\nnothing to see"),
        true,
    );
    t.gitlab.person_resolves(iid, &forged, true);
    let (code, json, stderr) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["action"], "created", "{stderr}");
    assert_eq!(t.threads(iid).len(), 1);
    assert_eq!(t.gitlab.count("GET", "/user"), 1);

    // An open forged thread is not ours either.
    let t = Setup::new("");
    let iid = t.mr("a", "5.3.1", "b", "5.4.0");
    t.gitlab.person_comments(
        iid,
        &format!("{MARKER} source=5.3.1 target=5.4.0 -->\nnothing to see"),
        true,
    );
    let (_, json, _) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(json["action"], "created");

    // Nor is a reply a person adds in our thread: a forged marker for
    // other versions must not make us write "the versions changed".
    let (_, json, _) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(json["action"], "exists");
    let ours = t.threads(iid)[0].0.clone();
    t.gitlab.person_replies(
        iid,
        &ours,
        &format!("{MARKER} source=9.9.9 target=9.9.9 -->\nmeh"),
    );
    t.gitlab.reset_requests();
    let (_, json, _) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(json["action"], "exists");
    assert_eq!(t.writes(), 0);
    assert!(t.gitlab.requests().len() <= 5, "{:?}", t.gitlab.requests());
}

#[test]
fn hostile_branch_names_stay_inside_code() {
    let t = Setup::new("");
    let branch = "x`/close`@all";
    let iid = t.mr(branch, "5.3.1", "b", "5.4.0");
    let (_, json, _) = t.run(&["--mr", &iid.to_string()]);
    assert_eq!(json["action"], "created");
    let body = &t.threads(iid)[0].2[0];
    assert!(body.contains("`` x`/close`@all ``"), "{body}");
    assert!(body.lines().all(|l| !l.trim_start().starts_with('/')));
}

#[test]
fn help_text() {
    let home = tempfile::tempdir().unwrap();
    let out = support::rp_devops(home.path())
        .args(["check-versions", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

#[test]
fn json_result_shape() {
    let t = Setup::new("");
    let iid = t.mr("fix/crash", "5.3.1", "release/5.4", "5.4.0");
    let (_, json, _) = t.run(&["--mr", &iid.to_string()]);
    insta::assert_json_snapshot!(json);
}
