//! `rp-devops tag-library` against real git remotes: `git daemon` with
//! receive-pack (server-side hooks run) and `git http-backend` behind
//! lighttpd with basic auth. Working copies are depth-1 clones without tags,
//! like CI's. What is checked is what a user would check: the tags on the
//! server (`git tag`, `git cat-file -p`), exit codes, stdout and stderr.

#[path = "support/git.rs"]
mod git_support;
#[path = "support/tls.rs"]
#[allow(dead_code)]
mod tls_support;

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::Command;
use git_support::{Fixture, GitDaemon, HttpGit, HttpRedirect, Library};
use serde_json::Value;
use tls_support::{HttpsFront, TestCa};

/// The real binary with a cleared environment: PATH, an empty HOME, and the
/// variables a test adds.
fn rp(fixture: &Fixture, dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::cargo_bin("rp-devops").expect("rp-devops binary");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", fixture.home())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
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
}

fn run(fixture: &Fixture, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = rp(fixture, dir, env)
        .arg("tag-library")
        .args(args)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("run rp-devops");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Run and expect success with a JSON result.
fn tag_json(fixture: &Fixture, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let r = run(fixture, dir, &full, env);
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    r.json()
}

fn local_tags(fixture: &Fixture, dir: &Path) -> String {
    fixture.git(dir, &["tag", "-l"])
}

/// A library served by git daemon, plus a fresh shallow clone of it.
fn served(fixture: &Fixture, name: &str) -> (Library, GitDaemon) {
    let lib = fixture.library(name);
    let daemon = GitDaemon::start(&fixture.path("srv"), &fixture.home());
    (lib, daemon)
}

#[test]
fn v1_10_0_ranks_above_v1_9_9() {
    let fx = Fixture::new();
    let (lib, daemon) = served(&fx, "order");
    lib.commit("first");
    lib.tag_head(&["v1.2.0", "v1.9.9"], true);
    let tagged = lib.commit("second");
    lib.tag_head(&["v1.10.0"], false);
    let head = lib.commit("third");

    let wc = fx.shallow_clone(&daemon.url(&lib), "wc");
    assert_eq!(
        local_tags(&fx, &wc),
        "",
        "the clone must have no tags, like CI's"
    );
    let out = tag_json(&fx, &wc, &[], &[]);

    assert_eq!(out["tag"], "v1.10.1");
    assert_eq!(out["previous"], "v1.10.0");
    assert_eq!(out["commit"], head.as_str());
    assert_eq!(out["action"], "created");
    assert_eq!(out["pushed"], true);
    assert_eq!(lib.server_tag_commit("v1.10.1"), head);
    assert_eq!(lib.server_tag_commit("v1.10.0"), tagged, "no tag moved");
}

#[test]
fn prereleases_build_metadata_and_non_semver_tags_are_ignored() {
    let fx = Fixture::new();
    let (lib, daemon) = served(&fx, "junk");
    lib.commit("base");
    lib.tag_head(&["v1.2.3"], true);
    lib.commit("more");
    lib.tag_head(
        &["v1.3.0-rc.1", "v1.4.0+build.5", "v2", "latest", "v9.x"],
        false,
    );
    lib.commit("head");

    let wc = fx.shallow_clone(&daemon.url(&lib), "wc");
    let out = tag_json(&fx, &wc, &[], &[]);
    assert_eq!(out["tag"], "v1.2.4");
    assert_eq!(out["previous"], "v1.2.3");
}

#[test]
fn prefixed_modules_in_one_repo_are_kept_apart() {
    let fx = Fixture::new();
    let (lib, daemon) = served(&fx, "mono");
    lib.commit_file("go.mod", "module example.com/mono\n", "root module");
    lib.commit_file(
        "tools/go.mod",
        "module example.com/mono/tools\n",
        "tools module",
    );
    lib.tag_head(&["v1.4.0", "tools/v0.2.0", "tools/v0.10.0"], true);
    lib.commit("change both");

    let wc = fx.shallow_clone(&daemon.url(&lib), "wc");
    let tools = tag_json(&fx, &wc, &["--prefix", "tools/v"], &[]);
    assert_eq!(tools["tag"], "tools/v0.10.1");
    assert_eq!(tools["previous"], "tools/v0.10.0");

    // Same HEAD, other module: its own sequence, not "exists".
    let root = tag_json(&fx, &wc, &[], &[]);
    assert_eq!(root["tag"], "v1.4.1");
    assert_eq!(root["previous"], "v1.4.0");
    assert_eq!(root["action"], "created");
}

#[test]
fn no_tags_yet_gives_the_initial_version_and_a_stable_json_shape() {
    let fx = Fixture::new();
    let (lib, daemon) = served(&fx, "fresh");
    let head = lib.commit("initial import");

    let wc = fx.shallow_clone(&daemon.url(&lib), "wc");
    let out = tag_json(&fx, &wc, &[], &[]);
    let keys: Vec<&str> = out
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 5, "{out}");
    for key in ["tag", "previous", "commit", "action", "pushed"] {
        assert!(keys.contains(&key), "missing {key} in {out}");
    }
    assert_eq!(out["tag"], "v0.1.0");
    assert_eq!(out["previous"], Value::Null);
    assert_eq!(lib.server_tags(), ["v0.1.0"]);

    // --initial for another module, human output.
    let r = run(&fx, &wc, &["--prefix", "api/v", "--initial", "1.0.0"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!(
            "created api/v1.0.0 (first release) at {}, pushed to origin\n",
            &head[..7]
        )
    );
}

#[test]
fn head_already_tagged_on_the_remote_only_is_left_alone() {
    let fx = Fixture::new();
    let (lib, daemon) = served(&fx, "rerun");
    lib.commit("one");
    lib.tag_head(&["v0.9.0"], true);
    let head = lib.commit("two");
    // Annotated: the remote lists the tag object; only its ^{} entry names
    // the commit.
    lib.tag_head(&["v1.0.0"], true);
    let before = lib.server_git(&["show-ref", "--tags"]);

    let wc = fx.shallow_clone(&daemon.url(&lib), "wc");
    let out = tag_json(&fx, &wc, &[], &[]);
    assert_eq!(out["action"], "exists");
    assert_eq!(out["tag"], "v1.0.0");
    assert_eq!(out["previous"], "v0.9.0");
    assert_eq!(out["commit"], head.as_str());
    assert_eq!(out["pushed"], false);
    assert_eq!(lib.server_git(&["show-ref", "--tags"]), before);
    assert_eq!(local_tags(&fx, &wc), "", "nothing created locally");

    let r = run(&fx, &wc, &[], &[]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("v1.0.0 already tags"), "{}", r.stdout);
}

#[test]
fn a_file_remote_is_read_with_packed_and_loose_tags() {
    let fx = Fixture::new();
    let lib = fx.library("local");
    lib.commit("one");
    lib.tag_head(&["v1.0.0"], true);
    lib.server_git(&["pack-refs", "--all"]);
    lib.commit("two");
    lib.tag_head(&["v1.1.0"], false);
    let head = lib.commit("three");
    lib.tag_head(&["v1.2.0"], true);
    let url = format!("file://{}", git_support::path_str(&lib.bare));

    // Annotated and loose: its commit comes from peeling the tag object.
    let wc = fx.shallow_clone(&url, "wc");
    let out = tag_json(&fx, &wc, &[], &[]);
    assert_eq!(out["action"], "exists");
    assert_eq!(out["tag"], "v1.2.0");
    assert_eq!(out["previous"], "v1.1.0");
    assert_eq!(out["commit"], head.as_str());

    // Packed: from packed-refs' peeled lines.
    lib.server_git(&["pack-refs", "--all"]);
    let out = tag_json(&fx, &wc, &[], &[]);
    assert_eq!(out["action"], "exists");

    let next = lib.commit("four");
    let wc = fx.shallow_clone(&url, "wc2");
    let out = tag_json(&fx, &wc, &[], &[]);
    assert_eq!(out["tag"], "v1.2.1");
    assert_eq!(out["pushed"], true);
    assert_eq!(lib.server_tag_commit("v1.2.1"), next);
}

#[test]
fn an_existing_remote_tag_is_never_moved() {
    let fx = Fixture::new();
    let (lib, daemon) = served(&fx, "nomove");
    let old = lib.commit("one");
    lib.tag_head(&["v0.2.0"], true);
    let before = lib.server_git(&["show-ref", "--tags"]);
    lib.commit("two");

    // A stray local v0.2.0 on HEAD (made by hand): pushing it would move the
    // remote's v0.2.0. The push is cancelled in negotiation instead.
    let wc = fx.shallow_clone(&daemon.url(&lib), "wc");
    fx.git(&wc, &["tag", "-a", "v0.2.0", "-m", "stray"]);
    let r = run(&fx, &wc, &[], &[]);
    assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("git tag -d v0.2.0"), "{}", r.stderr);
    assert_eq!(lib.server_git(&["show-ref", "--tags"]), before);
    assert_eq!(lib.server_tag_commit("v0.2.0"), old);
}

#[test]
fn a_rerun_after_tagging_creates_nothing() {
    let fx = Fixture::new();
    let (lib, daemon) = served(&fx, "twice");
    lib.commit("one");
    let wc = fx.shallow_clone(&daemon.url(&lib), "wc");
    assert_eq!(tag_json(&fx, &wc, &[], &[])["action"], "created");
    // A re-run pipeline: a new clone of the same commit.
    let wc2 = fx.shallow_clone(&daemon.url(&lib), "wc2");
    let out = tag_json(&fx, &wc2, &[], &[]);
    assert_eq!(out["action"], "exists");
    assert_eq!(out["tag"], "v0.1.0");
    assert_eq!(lib.server_tags(), ["v0.1.0"]);
}

#[test]
fn annotated_tag_carries_the_full_message_and_the_committer_as_tagger() {
    let fx = Fixture::new();
    let (lib, daemon) = served(&fx, "message");
    lib.commit("start");
    lib.tag_head(&["v3.1.4"], true);
    let message = "Fix the frobnicator\n\n# This line starts with a hash and stays.\nSigned-off-by: Dev <dev@example.com>\n";
    let head = lib.commit(message);

    let wc = fx.shallow_clone(&daemon.url(&lib), "wc");
    let env = [
        ("GIT_COMMITTER_NAME", "Release Bot"),
        ("GIT_COMMITTER_EMAIL", "release-bot@example.com"),
        ("GITLAB_USER_NAME", "Not Me"),
        ("GITLAB_USER_EMAIL", "not-me@example.com"),
    ];
    let out = tag_json(&fx, &wc, &[], &env);
    assert_eq!(out["tag"], "v3.1.5");

    let object = lib.server_cat_tag("v3.1.5");
    let (header, body) = object.split_once("\n\n").expect("tag header and message");
    assert!(header.contains(&format!("object {head}")), "{object}");
    assert!(header.contains("type commit"), "{object}");
    assert!(header.contains("tag v3.1.5"), "{object}");
    assert!(
        header.contains("tagger Release Bot <release-bot@example.com> "),
        "{object}"
    );
    assert_eq!(body, message);
}

#[test]
fn tagger_falls_back_to_git_config_then_gitlab_user_then_the_bot() {
    let fx = Fixture::new();
    let (lib, daemon) = served(&fx, "tagger");
    lib.commit("one");
    let url = daemon.url(&lib);
    let gitlab = [
        ("GITLAB_USER_NAME", "Gitlab User"),
        ("GITLAB_USER_EMAIL", "gitlab-user@example.com"),
    ];

    // Bare container: no env identity, no git config at all.
    let wc = fx.shallow_clone(&url, "wc1");
    assert_eq!(tag_json(&fx, &wc, &[], &[])["tag"], "v0.1.0");
    assert!(
        lib.server_cat_tag("v0.1.0")
            .contains("tagger rp-devops <rp-devops@localhost> ")
    );

    lib.commit("two");
    let wc = fx.shallow_clone(&url, "wc2");
    assert_eq!(tag_json(&fx, &wc, &[], &gitlab)["tag"], "v0.1.1");
    assert!(
        lib.server_cat_tag("v0.1.1")
            .contains("tagger Gitlab User <gitlab-user@example.com> ")
    );

    lib.commit("three");
    let wc = fx.shallow_clone(&url, "wc3");
    fx.git(&wc, &["config", "user.name", "Config User"]);
    fx.git(&wc, &["config", "user.email", "config-user@example.com"]);
    assert_eq!(tag_json(&fx, &wc, &[], &gitlab)["tag"], "v0.1.2");
    assert!(
        lib.server_cat_tag("v0.1.2")
            .contains("tagger Config User <config-user@example.com> ")
    );
}

#[test]
fn a_pre_receive_hook_rejection_fails_with_its_message_and_leaves_nothing() {
    let fx = Fixture::new();
    let (lib, daemon) = served(&fx, "hooked");
    lib.commit("one");
    lib.tag_head(&["v1.0.0"], true);
    lib.commit("two");
    lib.hook(
        "pre-receive",
        "echo 'tag policy: releases are frozen until Monday' >&2\nexit 1",
    );

    let wc = fx.shallow_clone(&daemon.url(&lib), "wc");
    let r = run(&fx, &wc, &[], &[]);
    assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("tag policy: releases are frozen until Monday"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("v1.0.1"), "{}", r.stderr);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    assert_eq!(r.stdout, "", "no result on failure");
    assert_eq!(lib.server_tags(), ["v1.0.0"]);
    assert_eq!(local_tags(&fx, &wc), "", "no local tag left behind");
}

/// A pre-receive hook that holds every push until two have arrived, so two
/// concurrent runs have both read the remote's tags before either tag lands:
/// a race every time, not by luck.
const RENDEZVOUS_HOOK: &str = r#"touch "arrived.$$"
i=0
while [ "$(ls | grep -c '^arrived\.')" -lt 2 ] && [ $i -lt 100 ]; do
  sleep 0.05; i=$((i+1))
done
exit 0"#;

fn spawn_concurrently(fx: &Fixture, dirs: &[&Path]) -> Vec<Run> {
    let bin = assert_cmd::cargo::cargo_bin("rp-devops");
    let children: Vec<_> = dirs
        .iter()
        .map(|dir| {
            StdCommand::new(&bin)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", fx.home())
                .args(["tag-library", "--json"])
                .current_dir(dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn rp-devops")
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().expect("wait for rp-devops");
            Run {
                code: output.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }
        })
        .collect()
}

#[test]
fn two_runs_at_once_on_different_commits_get_consecutive_tags() {
    let fx = Fixture::new();
    let (lib, daemon) = served(&fx, "race");
    lib.commit("zero");
    lib.tag_head(&["v0.4.0"], true);
    let v040 = lib.server_tag_commit("v0.4.0");
    let first = lib.commit("one");
    let wc1 = fx.shallow_clone(&daemon.url(&lib), "wc1");
    let second = lib.commit("two");
    let wc2 = fx.shallow_clone(&daemon.url(&lib), "wc2");
    lib.hook("pre-receive", RENDEZVOUS_HOOK);

    let runs = spawn_concurrently(&fx, &[&wc1, &wc2]);
    for r in &runs {
        assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    }
    let mut tags: Vec<String> = runs
        .iter()
        .map(|r| r.json()["tag"].as_str().unwrap_or_default().to_owned())
        .collect();
    tags.sort();
    assert_eq!(tags, ["v0.4.1", "v0.4.2"]);
    assert!(
        runs.iter()
            .any(|r| r.stderr.contains("pushed by someone else first")),
        "one run must have lost the race and retried: {:?}",
        runs.iter().map(|r| &r.stderr).collect::<Vec<_>>()
    );
    assert_eq!(lib.server_tags(), ["v0.4.0", "v0.4.1", "v0.4.2"]);
    let mut commits = vec![
        lib.server_tag_commit("v0.4.1"),
        lib.server_tag_commit("v0.4.2"),
    ];
    commits.sort();
    let mut expected = vec![first, second];
    expected.sort();
    assert_eq!(commits, expected, "each commit got its own tag");
    assert_eq!(lib.server_tag_commit("v0.4.0"), v040, "no tag moved");
}

#[test]
fn two_runs_at_once_on_the_same_commit_make_exactly_one_tag() {
    let fx = Fixture::new();
    let (lib, daemon) = served(&fx, "same");
    lib.commit("zero");
    lib.tag_head(&["v2.0.0"], true);
    let head = lib.commit("one");
    let wc1 = fx.shallow_clone(&daemon.url(&lib), "wc1");
    let wc2 = fx.shallow_clone(&daemon.url(&lib), "wc2");
    lib.hook("pre-receive", RENDEZVOUS_HOOK);

    let runs = spawn_concurrently(&fx, &[&wc1, &wc2]);
    for r in &runs {
        assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    }
    let mut actions: Vec<String> = runs
        .iter()
        .map(|r| {
            let out = r.json();
            assert_eq!(out["tag"], "v2.0.1");
            out["action"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    actions.sort();
    assert_eq!(actions, ["created", "exists"]);
    assert_eq!(lib.server_tags(), ["v2.0.0", "v2.0.1"]);
    assert_eq!(lib.server_tag_commit("v2.0.1"), head);
    for wc in [&wc1, &wc2] {
        assert!(
            !local_tags(&fx, wc).contains("v2.0.2"),
            "the loser must not tag a second version"
        );
    }
}

#[test]
fn bump_auto_follows_conventional_commits_since_the_last_tag() {
    let fx = Fixture::new();
    let (lib, daemon) = served(&fx, "auto");
    // Before the tag: must not count.
    lib.commit("feat!: an ancient breaking change");
    lib.commit("base");
    lib.tag_head(&["v1.2.3"], true);
    lib.commit("fix: a bug");
    lib.commit("feat(api): a new call");
    lib.commit("chore: tidy up");

    // Full history (no tags fetched): the walk stops at v1.2.3's commit.
    let full = fx.clone_with(&daemon.url(&lib), "full", &["--no-tags"]);
    let out = tag_json(&fx, &full, &["--bump", "auto"], &[]);
    assert_eq!(out["tag"], "v1.3.0");

    lib.commit_in(&full, "fix!: drop the deprecated call");
    let out = tag_json(&fx, &full, &["--bump", "auto"], &[]);
    assert_eq!(out["tag"], "v2.0.0");

    lib.commit_in(
        &full,
        "refactor: rework\n\nBREAKING CHANGE: config keys renamed\n",
    );
    let out = tag_json(&fx, &full, &["--bump", "auto"], &[]);
    assert_eq!(out["tag"], "v3.0.0");

    lib.commit_in(&full, "docs: typo");
    let out = tag_json(&fx, &full, &["--bump", "auto"], &[]);
    assert_eq!(out["tag"], "v3.0.1");

    // Depth-1 clone: only HEAD is visible; a feature still counts, and the
    // cut-off history is reported, not fatal.
    lib.commit("feat: shallow feature");
    let wc = fx.shallow_clone(&daemon.url(&lib), "wc");
    let r = run(&fx, &wc, &["--json", "--bump", "auto"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["tag"], "v3.1.0");
    assert!(r.stderr.contains("shallow"), "{}", r.stderr);
}

#[test]
fn go_major_2_needs_a_v2_module_path() {
    let fx = Fixture::new();
    let (lib, daemon) = served(&fx, "gomod");
    lib.commit_file("go.mod", "module example.com/gomod\n\ngo 1.22\n", "init");
    lib.tag_head(&["v1.5.0"], true);
    lib.commit("feat!: new API");

    let wc = fx.shallow_clone(&daemon.url(&lib), "wc");
    let r = run(&fx, &wc, &["--bump", "major"], &[]);
    assert_eq!(r.code, 2, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("/v2"), "{}", r.stderr);
    assert_eq!(lib.server_tags(), ["v1.5.0"]);
    assert_eq!(local_tags(&fx, &wc), "");

    lib.commit_file(
        "go.mod",
        "module example.com/gomod/v2\n\ngo 1.22\n",
        "v2 module path",
    );
    let wc = fx.shallow_clone(&daemon.url(&lib), "wc2");
    let out = tag_json(&fx, &wc, &["--bump", "major"], &[]);
    assert_eq!(out["tag"], "v2.0.0");
}

#[test]
fn dry_run_and_no_push_push_nothing() {
    let fx = Fixture::new();
    let (lib, daemon) = served(&fx, "dry");
    lib.commit("one");
    lib.tag_head(&["v0.3.0"], true);
    let head = lib.commit("two");
    let wc = fx.shallow_clone(&daemon.url(&lib), "wc");

    let r = run(&fx, &wc, &["--json", "--dry-run"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = r.json();
    assert_eq!(out["action"], "would-create");
    assert_eq!(out["tag"], "v0.3.1");
    assert_eq!(out["pushed"], false);
    assert!(
        r.stderr.contains("would push refs/tags/v0.3.1"),
        "{}",
        r.stderr
    );
    assert_eq!(local_tags(&fx, &wc), "");
    assert_eq!(lib.server_tags(), ["v0.3.0"]);

    let out = tag_json(&fx, &wc, &["--no-push"], &[]);
    assert_eq!(out["action"], "created");
    assert_eq!(out["pushed"], false);
    assert_eq!(local_tags(&fx, &wc), "v0.3.1\n");
    assert_eq!(
        fx.git(&wc, &["cat-file", "-t", "v0.3.1"]).trim(),
        "tag",
        "annotated"
    );
    assert_eq!(lib.server_tags(), ["v0.3.0"]);

    // The next run without --no-push finds the local tag on HEAD and pushes
    // it instead of making a second one.
    let out = tag_json(&fx, &wc, &[], &[]);
    assert_eq!(out["action"], "exists");
    assert_eq!(out["tag"], "v0.3.1");
    assert_eq!(out["pushed"], true);
    assert_eq!(lib.server_tag_commit("v0.3.1"), head);
}

#[test]
fn https_credentials_token_fallback_and_a_wrong_token() {
    const TOKEN: &str = "glpat-right-token-123";
    const WRONG: &str = "glpat-wrong-token-456";
    let fx = Fixture::new();
    let lib = fx.library("web");
    lib.commit("one");
    let http = HttpGit::start(&fx, &fx.path("srv"), TOKEN);
    let wc = fx.shallow_clone(&http.url(&lib, Some(&format!("oauth2:{TOKEN}"))), "wc");
    // CI-like: the remote URL carries no credentials; the token comes from
    // the environment.
    fx.git(&wc, &["remote", "set-url", "origin", &http.url(&lib, None)]);

    // No token at all: a clear error, not a prompt.
    let r = run(&fx, &wc, &[], &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("hint:") && r.stderr.contains("RP_GIT_TOKEN"),
        "{}",
        r.stderr
    );

    // A wrong token: refused once, no retry loop, and never printed.
    let before = http.unauthorized_count();
    let started = std::time::Instant::now();
    let r = run(&fx, &wc, &[], &[("RP_GIT_TOKEN", WRONG), GITLAB_HERE]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    assert!(r.stderr.contains("RP_GIT_TOKEN"), "{}", r.stderr);
    assert!(!r.stderr.contains(WRONG) && !r.stdout.contains(WRONG));
    let refused = http.unauthorized_count() - before;
    assert!(
        (1..=2).contains(&refused),
        "{refused} requests refused with 401"
    );

    // The right token in RP_GIT_TOKEN.
    let out = tag_json(&fx, &wc, &[], &[("RP_GIT_TOKEN", TOKEN), GITLAB_HERE]);
    assert_eq!(out["tag"], "v0.1.0");
    assert_eq!(out["pushed"], true);
    assert_eq!(lib.server_tags(), ["v0.1.0"]);

    // Else the GitLab token, even with stale credentials in the URL.
    lib.commit("two");
    let wc2 = fx.shallow_clone(&http.url(&lib, Some(&format!("oauth2:{TOKEN}"))), "wc2");
    fx.git(
        &wc2,
        &[
            "remote",
            "set-url",
            "origin",
            &http.url(&lib, Some("gitlab-ci-token:stale")),
        ],
    );
    let out = tag_json(&fx, &wc2, &[], &[("RP_GITLAB_TOKEN", TOKEN), GITLAB_HERE]);
    assert_eq!(out["tag"], "v0.1.1");
    assert_eq!(lib.server_tags(), ["v0.1.0", "v0.1.1"]);
}

/// A GitLab URL on the host the test's git servers run on (nothing listens
/// there: no project is set, so no GitLab release is attempted): tokens go
/// to the GitLab host only.
const GITLAB_HERE: (&str, &str) = ("RP_GITLAB_URL", "http://127.0.0.1:9");

#[test]
fn the_token_goes_to_the_gitlab_host_only_never_another_host_or_a_redirect() {
    const TOKEN: &str = "glpat-right-token-123";
    let fx = Fixture::new();
    let lib = fx.library("web");
    lib.commit("one");
    // The same repository served on "another host" (127.0.0.2) and, on
    // 127.0.0.1, a redirect to it.
    let elsewhere = HttpGit::start_on(&fx, &fx.path("srv"), TOKEN, "127.0.0.2");
    let redirect = HttpRedirect::start(&fx, &elsewhere.origin());
    let wc = fx.shallow_clone(&elsewhere.url(&lib, Some(&format!("oauth2:{TOKEN}"))), "wc");
    let before = elsewhere.authorizations().len();

    for (what, url) in [
        ("a remote on another host", elsewhere.url(&lib, None)),
        ("a redirect to another host", redirect.url(&lib)),
    ] {
        fx.git(&wc, &["remote", "set-url", "origin", &url]);
        for token in ["RP_GIT_TOKEN", "RP_GITLAB_TOKEN"] {
            let r = run(&fx, &wc, &[], &[(token, TOKEN), GITLAB_HERE]);
            assert_eq!(r.code, 1, "{what}: {}", r.stderr);
            assert!(
                r.stderr
                    .contains("127.0.0.2 asks for credentials, but the token is only sent to the GitLab host 127.0.0.1"),
                "{what}: {}",
                r.stderr
            );
            assert!(r.stderr.contains("hint:"), "{what}: {}", r.stderr);
            assert!(!r.stderr.contains(TOKEN) && !r.stdout.contains(TOKEN));
        }
    }
    // The other host never saw an Authorization header.
    assert_eq!(elsewhere.authorizations()[before..], [] as [String; 0]);
    assert!(lib.server_tags().is_empty());

    // No GitLab URL at all: no host may have the token.
    let r = run(&fx, &wc, &[], &[("RP_GIT_TOKEN", TOKEN)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("no GitLab URL is configured"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("RP_GITLAB_URL"), "{}", r.stderr);
    assert_eq!(elsewhere.authorizations()[before..], [] as [String; 0]);

    // With the GitLab URL on that host, the same remote gets the token.
    fx.git(
        &wc,
        &["remote", "set-url", "origin", &elsewhere.url(&lib, None)],
    );
    let out = tag_json(
        &fx,
        &wc,
        &[],
        &[
            ("RP_GIT_TOKEN", TOKEN),
            ("RP_GITLAB_URL", "http://127.0.0.2:9"),
        ],
    );
    assert_eq!(out["tag"], "v0.1.0");
    assert_eq!(lib.server_tags(), ["v0.1.0"]);
}

const HTTPS_TOKEN: &str = "glpat-right-token-123";

/// A library served over https by a front signed by a test CA, and a
/// working copy whose origin is that https remote.
fn https_library(fx: &Fixture, name: &str) -> (Library, HttpGit, TestCa, HttpsFront, PathBuf) {
    let lib = fx.library(name);
    lib.commit("one");
    let http = HttpGit::start(fx, &fx.path("srv"), HTTPS_TOKEN);
    let ca = TestCa::new(fx.dir.path());
    let front = HttpsFront::start(&ca, &http.origin());
    let wc = fx.shallow_clone(
        &http.url(&lib, Some(&format!("oauth2:{HTTPS_TOKEN}"))),
        "wc",
    );
    let https_remote = format!("{}/git/{}.git", front.url, lib.name);
    fx.git(&wc, &["remote", "set-url", "origin", &https_remote]);
    (lib, http, ca, front, wc)
}

#[test]
fn an_https_remote_signed_by_an_internal_ca_needs_ci_server_tls_ca_file() {
    const TOKEN: &str = HTTPS_TOKEN;
    let fx = Fixture::new();
    let (lib, _http, ca, front, wc) = https_library(&fx, "tls");
    let env = [
        ("RP_GIT_TOKEN", TOKEN),
        ("RP_GITLAB_URL", front.url.as_str()),
    ];

    // The system store does not know the test CA.
    let r = run(&fx, &wc, &[], &env);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("certificate"), "{}", r.stderr);
    assert!(lib.server_tags().is_empty());

    // GitLab Runner's CA file makes libgit2 trust it, as it does the API
    // client.
    let mut with_ca = env.to_vec();
    let ca_file = ca.ca_file.display().to_string();
    with_ca.push(("CI_SERVER_TLS_CA_FILE", &ca_file));
    let out = tag_json(&fx, &wc, &[], &with_ca);
    assert_eq!(out["tag"], "v0.1.0");
    assert_eq!(lib.server_tags(), ["v0.1.0"]);

    // A CA file that holds no certificate is a configuration error.
    let bogus = fx.path("bogus.pem");
    std::fs::write(&bogus, "not a certificate\n").unwrap();
    let mut with_bogus = env.to_vec();
    let bogus = bogus.display().to_string();
    with_bogus.push(("CI_SERVER_TLS_CA_FILE", &bogus));
    let r = run(&fx, &wc, &[], &with_bogus);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("CI_SERVER_TLS_CA_FILE"), "{}", r.stderr);
}

/// libgit2 (through OpenSSL) follows `SSL_CERT_FILE` as the API clients do:
/// naming the internal CA's bundle there is enough for an https remote.
#[test]
fn an_https_remote_is_trusted_through_ssl_cert_file() {
    const TOKEN: &str = HTTPS_TOKEN;
    let fx = Fixture::new();
    let (lib, _http, ca, front, wc) = https_library(&fx, "tls-ssl-cert-file");
    let ca_file = ca.ca_file.display().to_string();
    let env = [
        ("RP_GIT_TOKEN", TOKEN),
        ("RP_GITLAB_URL", front.url.as_str()),
        ("SSL_CERT_FILE", ca_file.as_str()),
    ];
    let out = tag_json(&fx, &wc, &[], &env);
    assert_eq!(out["tag"], "v0.1.0");
    assert_eq!(lib.server_tags(), ["v0.1.0"]);
}

#[test]
fn help_lists_every_flag_and_bad_flags_are_usage_errors() {
    let fx = Fixture::new();
    let out = rp(&fx, fx.dir.path(), &[])
        .args(["tag-library", "--help"])
        .output()
        .expect("run rp-devops");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--repo <DIR>",
        "--remote <NAME>",
        "--prefix <P>",
        "--initial <V>",
        "--bump <PART>",
        "--no-push",
        "--dry-run",
        "--json",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }

    let (lib, daemon) = served(&fx, "usage");
    lib.commit("one");
    let wc = fx.shallow_clone(&daemon.url(&lib), "wc");
    for args in [
        &["--bump", "huge"][..],
        &["--initial", "1.0"],
        &["--initial", "1.0.0-rc.1"],
        &["--remote", "upstream"],
        &["--prefix", "bad..prefix/v"],
    ] {
        let r = run(&fx, &wc, args, &[]);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
    }
    let r = run(&fx, fx.dir.path(), &[], &[]);
    assert_eq!(r.code, 2, "not a repository: {}", r.stderr);
    assert!(lib.server_tags().is_empty());
}
