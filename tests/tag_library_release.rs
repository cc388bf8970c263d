//! `rp-devops tag-library` and the GitLab release of each tag it pushes:
//! real git remotes (`git daemon`, depth-1 clones without tags, like CI's)
//! plus the fake GitLab, whose releases, compare and commits routes answer
//! from the same bare repository the tags are pushed to. What is checked is
//! what a user would check: the releases GitLab holds and their notes, the
//! tags on the server, the requests GitLab received, exit codes and output.

mod support;

#[path = "support/git.rs"]
mod git_support;

use std::path::{Path, PathBuf};

use git_support::{Fixture, GitDaemon, Library};
use serde_json::Value;
use support::fake_gitlab::{JOB_TOKEN, PROJECT_ID};
use support::{FakeGitLab, Fault};

/// A library served by git daemon, and a fake GitLab whose project 855
/// (`restorepoint/product`) is that library.
struct Setup {
    fx: Fixture,
    lib: Library,
    daemon: GitDaemon,
    gitlab: FakeGitLab,
}

fn setup(name: &str) -> Setup {
    let fx = Fixture::new();
    let lib = fx.library(name);
    let daemon = GitDaemon::start(&fx.path("srv"), &fx.home());
    let gitlab = FakeGitLab::start();
    gitlab.serve_repository(PROJECT_ID, &lib.bare);
    Setup {
        fx,
        lib,
        daemon,
        gitlab,
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    fn ok_json(&self) -> Value {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self.json()
    }
}

impl Setup {
    /// A CI-like clone of the library as it is on the server now.
    fn clone(&self, name: &str) -> PathBuf {
        self.fx.shallow_clone(&self.daemon.url(&self.lib), name)
    }

    /// `rp-devops tag-library ARGS` in `dir`, with the fake GitLab's URL,
    /// project and a valid token (`env` may add or override variables; a
    /// value of "" removes one).
    fn run(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = support::rp_devops_std_with(&self.gitlab, &self.fx.home());
        cmd.env("GIT_CONFIG_NOSYSTEM", "1").current_dir(dir);
        for (key, value) in env {
            if value.is_empty() {
                cmd.env_remove(key);
            } else {
                cmd.env(key, value);
            }
        }
        let output = cmd
            .arg("tag-library")
            .args(args)
            .output()
            .expect("run rp-devops");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn releases(&self) -> Vec<Value> {
        self.gitlab.releases(PROJECT_ID)
    }

    /// The only release's notes.
    fn notes(&self) -> String {
        let releases = self.releases();
        assert_eq!(releases.len(), 1, "{releases:#?}");
        releases[0]["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `- [short](URL) TITLE` for a server commit, as the notes list it.
    fn line_for(&self, commit: &str, title: &str) -> String {
        format!(
            "- [{}]({}/{}/-/commit/{commit}) {title}",
            &commit[..8],
            self.gitlab.url,
            support::fake_gitlab::PROJECT_PATH
        )
    }
}

/// The notes' list lines.
fn list(notes: &str) -> Vec<&str> {
    notes.lines().filter(|l| l.starts_with("- ")).collect()
}

fn headings(notes: &str) -> Vec<&str> {
    notes.lines().filter(|l| l.starts_with("### ")).collect()
}

#[test]
fn the_first_tag_gets_a_release_listing_the_whole_history() {
    let t = setup("first");
    let one = t.lib.commit("Initial import");
    let two = t.lib.commit("Add the parser");
    let three = t.lib.commit("Handle empty input\n\nIt used to panic.");

    let out = t.run(&t.clone("wc"), &["--json"], &[]).ok_json();
    assert_eq!(out["tag"], "v0.1.0");
    assert_eq!(out["action"], "created");
    assert_eq!(out["release"], "created");
    let url = format!(
        "{}/{}/-/releases/v0%2E1%2E0",
        t.gitlab.url,
        support::fake_gitlab::PROJECT_PATH
    );
    assert_eq!(out["release_url"], url.as_str());

    let release = &t.releases()[0];
    assert_eq!(release["tag_name"], "v0.1.0");
    assert_eq!(release["name"], "v0.1.0");
    assert_eq!(
        t.notes(),
        format!(
            "Changes in this first release:\n\n{}\n{}\n{}\n",
            t.line_for(&three, "Handle empty input"),
            t.line_for(&two, "Add the parser"),
            t.line_for(&one, "Initial import"),
        )
    );
    assert_eq!(t.lib.server_tags(), ["v0.1.0"]);
}

#[test]
fn a_patch_after_three_commits_lists_those_three_and_keeps_the_tag_message() {
    let t = setup("patch");
    t.lib.commit("Start");
    t.lib.tag_head(&["v1.4.2"], true);
    let a = t.lib.commit("Speed up the lexer");
    let b = t.lib.commit("Document the options");
    let message = "Fix the frobnicator\n\nSigned-off-by: Dev <dev@example.com>\n";
    let c = t.lib.commit(message);

    let r = t.run(&t.clone("wc"), &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("created v1.4.3 (previous v1.4.2)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("created GitLab release v1.4.3: http"),
        "{}",
        r.stdout
    );

    let notes = t.notes();
    assert!(notes.starts_with("Changes since v1.4.2:\n\n"), "{notes}");
    assert_eq!(
        list(&notes),
        [
            t.line_for(&c, "Fix the frobnicator"),
            t.line_for(&b, "Document the options"),
            t.line_for(&a, "Speed up the lexer"),
        ]
    );
    // The tag's own message is still HEAD's commit message.
    let tag = t.lib.server_cat_tag("v1.4.3");
    assert_eq!(tag.split_once("\n\n").map(|(_, body)| body), Some(message));
}

#[test]
fn conventional_commits_are_grouped_features_then_fixes_then_the_rest() {
    let t = setup("conventional");
    t.lib.commit("chore: init");
    t.lib.tag_head(&["v0.3.0"], true);
    t.lib.commit("fix(lexer): off by one at EOF");
    t.lib.commit("feat: a --strict mode");
    t.lib.commit("docs: README for --strict");
    t.lib.commit("feat(api): Parse returns positions");

    let out = t
        .run(&t.clone("wc"), &["--json", "--bump", "auto"], &[])
        .ok_json();
    assert_eq!(out["tag"], "v0.4.0");
    let notes = t.notes();
    assert_eq!(
        headings(&notes),
        ["### Features", "### Fixes", "### Other changes"],
        "{notes}"
    );
    let titles: Vec<&str> = list(&notes)
        .iter()
        .map(|l| l.split_once(") ").map_or("", |(_, title)| title))
        .collect();
    assert_eq!(
        titles,
        [
            "feat(api): Parse returns positions",
            "feat: a --strict mode",
            "fix(lexer): off by one at EOF",
            "docs: README for --strict",
        ]
    );
}

#[test]
fn a_breaking_change_comes_first_and_makes_the_major_version() {
    let t = setup("breaking");
    t.lib.commit_file(
        "go.mod",
        "module example.com/breaking/v2\n",
        "chore: v2 path",
    );
    t.lib.tag_head(&["v1.9.0"], true);
    t.lib.commit("fix: nil map on reload");
    let breaking = t
        .lib
        .commit("refactor(config): one loader\n\nBREAKING CHANGE: Load takes a context.\n");
    t.lib.commit("feat: YAML anchors");

    // --bump auto reads the local history: a full clone (no tags) here.
    let wc = t.fx.clone_with(&t.daemon.url(&t.lib), "wc", &["--no-tags"]);
    let out = t.run(&wc, &["--json", "--bump", "auto"], &[]).ok_json();
    assert_eq!(out["tag"], "v2.0.0");
    let notes = t.notes();
    assert_eq!(
        headings(&notes),
        ["### Breaking changes", "### Features", "### Fixes"],
        "{notes}"
    );
    let breaking_section = notes
        .split("### Features")
        .next()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        list(&breaking_section),
        [t.line_for(&breaking, "refactor(config): one loader")]
    );
}

#[test]
fn a_merge_request_is_one_line_with_its_title_and_number() {
    let t = setup("merged");
    t.lib.commit("Initial import");
    t.lib.tag_head(&["v0.5.0"], true);
    t.lib.git(&["checkout", "-q", "-b", "cache"]);
    t.lib.commit_in(&t.lib.seed, "wip: start a cache");
    t.lib.commit_in(&t.lib.seed, "finish the cache");
    t.lib.git(&["checkout", "-q", "main"]);
    let meanwhile = t.lib.commit("Tidy the Makefile");
    t.lib.git(&[
        "merge",
        "-q",
        "--no-ff",
        "cache",
        "-m",
        "Merge branch 'cache' into 'main'",
        "-m",
        "Cache parsed modules",
        "-m",
        "Closes #31",
        "-m",
        "See merge request restorepoint/product!42",
    ]);
    t.lib.git(&["push", "-q", "origin", "HEAD:main"]);
    let merge = t.lib.git(&["rev-parse", "HEAD"]).trim().to_owned();

    t.run(&t.clone("wc"), &["--json"], &[]).ok_json();
    let notes = t.notes();
    assert_eq!(
        list(&notes),
        [
            t.line_for(&merge, "Cache parsed modules (!42)"),
            t.line_for(&meanwhile, "Tidy the Makefile"),
        ],
        "{notes}"
    );
    assert!(!notes.contains("the cache"), "{notes}");
}

#[test]
fn a_depth_1_clone_still_gets_the_complete_notes() {
    let t = setup("shallow");
    t.lib.commit("one");
    t.lib.tag_head(&["v3.0.0"], true);
    let titles = ["two", "three", "four", "five", "six"];
    for title in titles {
        t.lib.commit(title);
    }
    let wc = t.clone("wc");
    assert_eq!(
        t.fx.git(&wc, &["rev-list", "--count", "HEAD"]).trim(),
        "1",
        "the clone must see only HEAD, like CI's"
    );

    t.run(&wc, &["--json"], &[]).ok_json();
    let notes = t.notes();
    let listed: Vec<&str> = list(&notes)
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(listed, ["six", "five", "four", "three", "two"], "{notes}");
    assert_eq!(
        t.fx.git(&wc, &["rev-list", "--count", "HEAD"]).trim(),
        "1",
        "no history was fetched"
    );
}

#[test]
fn a_rerun_after_the_release_exists_makes_no_write() {
    let t = setup("rerun");
    t.lib.commit("one");
    let first = t.run(&t.clone("wc"), &["--json"], &[]).ok_json();
    assert_eq!(first["release"], "created");

    t.gitlab.reset_requests();
    let again = t.run(&t.clone("wc2"), &["--json"], &[]).ok_json();
    assert_eq!(again["action"], "exists");
    assert_eq!(again["release"], "exists");
    assert_eq!(again["release_url"], first["release_url"]);
    let requests = t.gitlab.requests();
    assert!(
        requests.iter().all(|r| r.method == "GET"),
        "{:?}",
        requests
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    );
    assert_eq!(requests.len(), 1, "one read: the release by its tag");
    assert_eq!(t.releases().len(), 1);
}

#[test]
fn a_release_that_failed_after_the_push_is_created_by_the_next_run() {
    let t = setup("outage");
    t.lib.commit("one");
    t.lib.tag_head(&["v0.9.0"], true);
    let two = t.lib.commit("two");
    // GitLab is down for releases for longer than the client retries.
    for _ in 0..10 {
        t.gitlab
            .push_route_fault("POST", "/releases", Fault::Status(502, None));
    }
    let r = t.run(&t.clone("wc"), &["--json"], &[]);
    assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "v0.9.1 is on origin and stays there, but its GitLab release was not created"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("502"), "{}", r.stderr);
    assert_eq!(t.lib.server_tags(), ["v0.9.0", "v0.9.1"], "the tag is kept");
    assert!(t.releases().is_empty());

    t.gitlab.clear_faults();
    let out = t.run(&t.clone("wc2"), &["--json"], &[]).ok_json();
    assert_eq!(out["action"], "exists");
    assert_eq!(out["tag"], "v0.9.1");
    assert_eq!(out["release"], "created");
    let notes = t.notes();
    assert_eq!(list(&notes), [t.line_for(&two, "two")]);
    assert!(notes.starts_with("Changes since v0.9.0:"), "{notes}");
}

#[test]
fn a_lost_answer_still_makes_exactly_one_release() {
    let t = setup("lost");
    t.lib.commit("one");
    t.gitlab
        .push_route_fault("POST", "/releases", Fault::LostAnswer);
    let out = t.run(&t.clone("wc"), &["--json"], &[]).ok_json();
    assert_eq!(out["release"], "created");
    assert_eq!(t.releases().len(), 1);
    assert_eq!(t.gitlab.count("POST", "/releases"), 1, "not sent twice");
}

#[test]
fn the_job_token_creates_the_release() {
    let t = setup("job");
    t.lib.commit("one");
    t.lib.tag_head(&["v1.0.0"], true);
    let two = t.lib.commit("two");
    let job = [("RP_GITLAB_TOKEN", ""), ("CI_JOB_TOKEN", JOB_TOKEN)];

    let out = t.run(&t.clone("wc"), &["--json"], &job).ok_json();
    assert_eq!(out["release"], "created");
    let posts: Vec<_> = t
        .gitlab
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1);
    let header = |name: &str| support::fake_gitlab::header(&posts[0], name).map(str::to_owned);
    assert_eq!(header("job-token").as_deref(), Some(JOB_TOKEN));
    assert_eq!(header("private-token"), None);
    assert_eq!(list(&t.notes()), [t.line_for(&two, "two")]);

    // Where GitLab does not let the job token read commits, the release is
    // still made; its notes name the range, which GitLab links.
    t.gitlab.refuse_job_token_on_commits(PROJECT_ID);
    let three = t.lib.commit("three");
    let r = t.run(&t.clone("wc2"), &["--json"], &job);
    assert_eq!(r.ok_json()["release"], "created");
    assert!(r.stderr.contains("CI_JOB_TOKEN"), "{}", r.stderr);
    let releases = t.releases();
    assert_eq!(releases.len(), 2);
    assert_eq!(
        releases[1]["description"],
        format!("Changes since v1.0.1: {two}...{three}\n").as_str()
    );
}

#[test]
fn a_refused_release_keeps_the_tag_names_the_role_and_exits_1() {
    let t = setup("refused");
    t.lib.commit("one");
    t.lib.tag_head(&["v2.1.0"], true);
    t.lib.commit("two");
    t.gitlab
        .push_route_fault("POST", "/releases", Fault::Status(403, None));

    let r = t.run(&t.clone("wc"), &[], &[]);
    assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "", "no result on failure");
    for needle in [
        "v2.1.1 is on origin and stays there",
        "GitLab refused to create the release of v2.1.1",
        "403",
        "hint: creating a release needs at least the Developer role",
        "`api` scope",
    ] {
        assert!(
            r.stderr.contains(needle),
            "{needle:?} missing:\n{}",
            r.stderr
        );
    }
    assert!(!r.stderr.contains(support::fake_gitlab::TOKEN));
    assert_eq!(t.lib.server_tags(), ["v2.1.0", "v2.1.1"], "the tag is kept");
    assert!(t.releases().is_empty());

    // The token was fixed: the next run completes the release.
    let out = t.run(&t.clone("wc2"), &["--json"], &[]).ok_json();
    assert_eq!(
        (&out["action"], &out["release"]),
        (&"exists".into(), &"created".into())
    );
}

#[test]
fn dry_run_shows_the_notes_and_writes_nothing() {
    let t = setup("dry");
    t.lib.commit("one");
    t.lib.tag_head(&["v0.3.0"], true);
    let two = t.lib.commit("Add two");
    let wc = t.clone("wc");

    let r = t.run(&wc, &["--dry-run"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "would create GitLab release v0.3.1 with these notes:\n\nChanges since v0.3.0:\n\n{}\n",
            t.line_for(&two, "Add two")
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains(
            "dry-run: would POST projects/restorepoint%2Fproduct/releases: release v0.3.1"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("would push refs/tags/v0.3.1"),
        "{}",
        r.stderr
    );

    let out = t.run(&wc, &["--dry-run", "--json"], &[]).ok_json();
    assert_eq!(out["action"], "would-create");
    assert_eq!(out["release"], "would-create");
    assert_eq!(out["release_url"], Value::Null);

    assert!(t.gitlab.requests().iter().all(|r| r.method == "GET"));
    assert!(t.releases().is_empty());
    assert_eq!(t.lib.server_tags(), ["v0.3.0"]);
}

#[test]
fn no_release_flag_config_and_a_missing_token() {
    let t = setup("off");
    t.lib.commit("one");

    let out = t
        .run(&t.clone("wc"), &["--json", "--no-release"], &[])
        .ok_json();
    assert_eq!(out["tag"], "v0.1.0");
    assert_eq!(out["release"], "skipped");
    assert_eq!(out["release_url"], Value::Null);

    t.lib.commit("two");
    let wc = t.clone("wc2");
    std::fs::write(
        t.fx.path("off.yml"),
        "tag_library:\n  gitlab_release: false\n",
    )
    .expect("write config");
    let config = t.fx.path("off.yml");
    let config = git_support::path_str(&config);
    let out = t.run(&wc, &["--json", "--config", config], &[]).ok_json();
    assert_eq!(out["tag"], "v0.1.1");
    assert_eq!(out["release"], "skipped");
    assert!(
        t.gitlab.requests().is_empty(),
        "GitLab was not asked anything"
    );

    // Releases on, but no token at all: refused before any tag is made.
    t.lib.commit("three");
    let r = t.run(&t.clone("wc3"), &[], &[("RP_GITLAB_TOKEN", "")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--no-release"), "{}", r.stderr);
    assert_eq!(t.lib.server_tags(), ["v0.1.0", "v0.1.1"]);
}
