//! The CI templates proven by running them: each hidden job of
//! `ci-templates/` is extended by a small example project's `.gitlab-ci.yml`
//! (which includes the template by `include: local`) and run by
//! gitlab-emulator in shell mode, with the variables GitLab would set,
//! against local services: a git daemon, the fake GitLab, a real
//! `rp-devops serve`. Each test checks the job's effect where a user would
//! look for it (the tag on the server, the release in GitLab, the thread on
//! the MR, the issue's labels, the published artifact, the race issue), and
//! that running the job again changes nothing.

mod support;

#[path = "support/git.rs"]
mod git_support;

use std::path::Path;

use git_support::{Fixture, GitDaemon};
use serde_json::Value;
use support::fake_gitlab::merge_requests::{BOT_USERNAME, NewMr, sha_of};
use support::fake_gitlab::{JOB_TOKEN, PROJECT_ID, PROJECT_PATH, TOKEN};
use support::gle::{self, Project};
use support::release::{Receiver, SECRET, md5_hex};
use support::{FakeGitLab, fixture};

/// The variables every GitLab job has, for the fake GitLab's project 855.
fn ci_vars(gitlab: &FakeGitLab) -> Vec<(&'static str, String)> {
    vec![
        ("CI", "true".into()),
        ("GITLAB_CI", "true".into()),
        ("CI_SERVER_URL", gitlab.url.clone()),
        ("CI_API_V4_URL", format!("{}/api/v4", gitlab.url)),
        ("CI_PROJECT_ID", PROJECT_ID.to_string()),
        ("CI_PROJECT_PATH", PROJECT_PATH.into()),
        ("CI_PROJECT_URL", format!("{}/{PROJECT_PATH}", gitlab.url)),
        ("CI_DEFAULT_BRANCH", "main".into()),
        ("CI_REGISTRY", "registry.example.com".into()),
        ("CI_JOB_TOKEN", JOB_TOKEN.into()),
        ("CI_PIPELINE_ID", "4242".into()),
        (
            "CI_PIPELINE_URL",
            format!("{}/{PROJECT_PATH}/-/pipelines/4242", gitlab.url),
        ),
        (
            "CI_JOB_URL",
            format!("{}/{PROJECT_PATH}/-/jobs/777", gitlab.url),
        ),
        ("GITLAB_USER_NAME", "Pipeline User".into()),
        ("GITLAB_USER_EMAIL", "pipeline.user@example.com".into()),
    ]
}

/// `base` with `more` added or replacing variables of the same name.
fn with(base: &[(&'static str, String)], more: &[(&'static str, &str)]) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = base
        .iter()
        .filter(|(k, _)| more.iter().all(|(m, _)| m != k))
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    vars.extend(more.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    vars
}

#[test]
fn tag_library_job_pushes_the_next_tag_and_creates_its_release() {
    let Some(gle) = gle::find() else { return };
    let fx = Fixture::new();
    let lib = fx.library("lib");
    lib.commit("feat: first cut");
    lib.tag_head(&["v1.4.2"], true);
    lib.commit("feat: parse the new header");
    let head = lib.commit("fix: off by one at EOF");
    let daemon = GitDaemon::start(&fx.path("srv"), &fx.home());
    let gitlab = FakeGitLab::start();
    gitlab.serve_repository(PROJECT_ID, &lib.bare);

    // The runner's checkout: depth 1, no tags, origin is the server.
    let checkout = fx.shallow_clone(&daemon.url(&lib), "checkout");
    let project = Project::new(
        &checkout,
        "include:\n  - local: ci-templates/tag-library.yml\n\n\
         tag-library:\n  extends: .rp-devops:tag-library\n  variables:\n    RP_TAG_BUMP: minor\n",
    );
    let base = ci_vars(&gitlab);
    let vars = with(
        &base,
        &[
            ("CI_PIPELINE_SOURCE", "push"),
            ("CI_COMMIT_BRANCH", "main"),
            ("CI_COMMIT_REF_NAME", "main"),
            ("CI_COMMIT_SHA", &head),
        ],
    );
    let run = project.run(&gle, &fx.home(), "tag-library", &vars);
    run.assert_success();
    assert!(
        run.log
            .contains(&format!("rp-devops {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        run.log
    );
    // RP_TAG_BUMP from the job's variables beat the template's default.
    assert_eq!(lib.server_tags(), ["v1.4.2", "v1.5.0"], "{}", run.log);
    assert_eq!(lib.server_tag_commit("v1.5.0"), head);
    let releases = gitlab.releases(PROJECT_ID);
    assert_eq!(releases.len(), 1, "{}", run.log);
    assert_eq!(releases[0]["tag_name"], "v1.5.0");
    let notes = releases[0]["description"].as_str().unwrap_or_default();
    assert!(notes.contains("off by one at EOF"), "{notes}");
    assert!(notes.contains("parse the new header"), "{notes}");

    // A re-run of the pipeline: nothing new anywhere.
    project
        .run(&gle, &fx.home(), "tag-library", &vars)
        .assert_success();
    assert_eq!(lib.server_tags(), ["v1.4.2", "v1.5.0"]);
    assert_eq!(gitlab.releases(PROJECT_ID).len(), 1);
}

const WORKFLOW: &str = "workflow:\n  labels: [\"to do\", \"in development\", \"in review\", \"test\"]\n  on_open: in review\n  on_merge: test\n";

const MR_PIPELINE: &str = "include:\n  - local: ci-templates/merge-requests.yml\n\n\
    check-versions:\n  extends: .rp-devops:check-versions\n\
    issues-in-review:\n  extends: .rp-devops:issues-in-review\n\
    issues-merged:\n  extends: .rp-devops:issues-merged\n";

fn labels(gitlab: &FakeGitLab, iid: u64) -> Vec<String> {
    gitlab
        .issues()
        .into_iter()
        .find(|i| i.project_id == PROJECT_ID && i.iid == iid)
        .map(|i| i.labels)
        .unwrap_or_default()
}

#[test]
fn merge_request_jobs_open_the_version_thread_and_move_the_issues() {
    let Some(gle) = gle::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (home, checkout) = (dir.path().join("home"), dir.path().join("checkout"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&checkout).unwrap();
    std::fs::write(checkout.join("rp-devops.yml"), WORKFLOW).unwrap();
    let project = Project::new(&checkout, MR_PIPELINE);

    let gitlab = FakeGitLab::start();
    gitlab.add_labels(
        PROJECT_ID,
        &["to do", "in development", "in review", "test"],
    );
    let issue = gitlab.add_issue("Crash on empty input", "", &["bug", "to do"], "opened");
    gitlab.put_file(PROJECT_ID, "fix/crash", "VERSION", "5.3.1\n");
    gitlab.put_file(PROJECT_ID, "release/5.4", "VERSION", "5.4.0\n");
    let iid = gitlab.add_mr(NewMr {
        title: format!("Fix the crash (#{issue})"),
        source_branch: "fix/crash".into(),
        target_branch: "release/5.4".into(),
        ..NewMr::default()
    });
    let mr_iid = iid.to_string();
    let base = ci_vars(&gitlab);
    let mr_vars = with(
        &base,
        &[
            ("CI_PIPELINE_SOURCE", "merge_request_event"),
            ("CI_MERGE_REQUEST_IID", &mr_iid),
            ("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "fix/crash"),
            ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "release/5.4"),
            ("CI_COMMIT_SHA", "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"),
            ("RP_GITLAB_TOKEN", TOKEN),
        ],
    );

    for _ in 0..2 {
        let run = project.run(&gle, &home, "check-versions", &mr_vars);
        run.assert_success();
        let threads: Vec<_> = gitlab
            .mr(iid)
            .discussions
            .into_iter()
            .filter(|d| d.notes[0].author == BOT_USERNAME)
            .collect();
        assert_eq!(threads.len(), 1, "one thread, also after a re-run");
        assert!(!threads[0].resolved());
        let body = &threads[0].notes[0].body;
        assert!(body.contains("<!-- rp-devops:version-check"), "{body}");
        assert!(body.contains("5.3.1") && body.contains("5.4.0"), "{body}");
    }

    let run = project.run(&gle, &home, "issues-in-review", &mr_vars);
    run.assert_success();
    assert_eq!(labels(&gitlab, issue), ["bug", "in review"], "{}", run.log);

    // Merged: the default-branch pipeline of the merge commit.
    let merge_commit = sha_of(0xfeed);
    gitlab.edit_mr(iid, |mr| {
        mr.state = "merged".into();
        mr.merge_commit_sha = Some(merge_commit.clone());
    });
    let push_vars = with(
        &base,
        &[
            ("CI_PIPELINE_SOURCE", "push"),
            ("CI_COMMIT_BRANCH", "main"),
            ("CI_COMMIT_SHA", &merge_commit),
            ("RP_GITLAB_TOKEN", TOKEN),
        ],
    );
    let run = project.run(&gle, &home, "issues-merged", &push_vars);
    run.assert_success();
    assert_eq!(labels(&gitlab, issue), ["bug", "test"], "{}", run.log);
}

#[test]
fn release_job_publishes_the_artifact_on_the_receiver() {
    let Some(gle) = gle::find() else { return };
    let receiver = Receiver::start();
    let gitlab = FakeGitLab::start();
    let dir = tempfile::tempdir().unwrap();
    let (home, checkout) = (dir.path().join("home"), dir.path().join("checkout"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(checkout.join("dist")).unwrap();
    let artifact = checkout.join("dist/app-v5.2.0.tgz");
    std::fs::write(&artifact, b"the weekly build\n".repeat(4096)).unwrap();
    // (GitLab would expand `dist/app-$CI_COMMIT_TAG.tgz` here; gle expands
    // job variables before it knows the pipeline's, so the test spells it.)
    let project = Project::new(
        &checkout,
        "include:\n  - local: ci-templates/release.yml\n\n\
         release:\n  extends: .rp-devops:release\n  variables:\n    \
         RELEASE_PRODUCT: app\n    RELEASE_ARTIFACT: dist/app-v5.2.0.tgz\n",
    );
    let url = receiver.url();
    let base = ci_vars(&gitlab);
    let vars = with(
        &base,
        &[
            ("CI_PIPELINE_SOURCE", "push"),
            ("CI_COMMIT_TAG", "v5.2.0"),
            ("CI_COMMIT_REF_NAME", "v5.2.0"),
            ("CI_COMMIT_SHA", "4f2c9e1d4f2c9e1d4f2c9e1d4f2c9e1d4f2c9e1d"),
            ("RP_RELEASE_URL", &url),
            ("RP_RELEASE_SECRET", SECRET),
        ],
    );
    let run = project.run(&gle, &home, "release", &vars);
    run.assert_success();

    let published = receiver.rel().join("app/5.2.0/app-v5.2.0.tgz");
    assert_eq!(
        std::fs::read(&published).ok(),
        std::fs::read(&artifact).ok(),
        "{}",
        run.log
    );
    let env = std::fs::read_to_string(receiver.rel().join("app/5.2.0/app-v5.2.0.tgz.env"))
        .expect("the .env next to the artifact");
    assert!(env.contains("channel='stable'"), "{env}");
    assert!(
        env.contains("commit='4f2c9e1d4f2c9e1d4f2c9e1d4f2c9e1d4f2c9e1d'"),
        "{env}"
    );
    let answer: Value = serde_json::from_str(
        &std::fs::read_to_string(checkout.join("release-answer.json")).expect("the job artifact"),
    )
    .expect("the answer is JSON");
    assert_eq!(answer["md5"], md5_hex(&artifact));
    assert_eq!(receiver.runs("app"), 1);
    assert!(
        !run.log.contains(SECRET),
        "the secret leaked into the job log"
    );

    // Re-running the job: the receiver already has it, the script is not run again.
    project.run(&gle, &home, "release", &vars).assert_success();
    assert_eq!(receiver.runs("app"), 1);
}

#[test]
fn scan_races_job_files_one_issue_per_race_and_notes_new_sightings_only() {
    let Some(gle) = gle::find() else { return };
    let gitlab = FakeGitLab::start();
    let dir = tempfile::tempdir().unwrap();
    let (home, checkout) = (dir.path().join("home"), dir.path().join("checkout"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(checkout.join("logs")).unwrap();
    for log in ["cache.log", "counter.log"] {
        std::fs::copy(
            fixture(&format!("races/{log}")),
            checkout.join("logs").join(log),
        )
        .unwrap();
    }
    let project = Project::new(
        &checkout,
        "include:\n  - local: ci-templates/scan-races.yml\n\n\
         scan-races:\n  extends: .rp-devops:scan-races\n",
    );
    let base = ci_vars(&gitlab);
    let vars = with(
        &base,
        &[
            ("CI_PIPELINE_SOURCE", "schedule"),
            ("CI_COMMIT_BRANCH", "main"),
            ("RP_GITLAB_TOKEN", TOKEN),
        ],
    );
    let run = project.run(&gle, &home, "scan-races", &vars);
    run.assert_success();
    let result = read_json(&checkout.join("scan-races.json"));
    let races = result["races"].as_array().expect("races");
    assert!(!races.is_empty(), "{result}");
    assert!(races.iter().all(|r| r["action"] == "created"), "{result}");
    let issues = gitlab.issues();
    assert_eq!(issues.len(), races.len());
    for issue in &issues {
        assert_eq!(issue.labels, ["race condition"], "{}", issue.title);
        assert!(
            issue
                .description
                .contains("<!-- rp-devops:race fingerprint=")
        );
    }

    let notes =
        |gitlab: &FakeGitLab| -> usize { gitlab.issues().iter().map(|i| i.notes.len()).sum() };

    // The next scheduled run on the same logs: nothing new anywhere.
    project
        .run(&gle, &home, "scan-races", &vars)
        .assert_success();
    let again = read_json(&checkout.join("scan-races.json"));
    assert!(
        again["races"]
            .as_array()
            .expect("races")
            .iter()
            .all(|r| r["action"] == "already-noted"),
        "{again}"
    );
    assert_eq!(gitlab.issues().len(), issues.len());
    assert_eq!(notes(&gitlab), 0);

    // A new day's log with a known race: a note on its issue, no new issue.
    std::fs::copy(
        fixture("races/cache.log"),
        checkout.join("logs/cache-day-2.log"),
    )
    .unwrap();
    project
        .run(&gle, &home, "scan-races", &vars)
        .assert_success();
    let third = read_json(&checkout.join("scan-races.json"));
    let commented = third["races"]
        .as_array()
        .expect("races")
        .iter()
        .filter(|r| r["action"] == "commented")
        .count();
    assert!(commented >= 1, "{third}");
    assert_eq!(gitlab.issues().len(), issues.len());
    assert_eq!(notes(&gitlab), commented);
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

/// Every template job is hidden (a team extends it) and pins the rp-devops
/// version this repository builds, in the job's own variables.
#[test]
fn templates_are_hidden_jobs_pinned_to_this_version() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ci-templates");
    let mut jobs = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let yaml: serde_norway::Value =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let map = yaml.as_mapping().expect("a mapping");
        for (key, job) in map {
            let name = key.as_str().unwrap_or_default();
            assert!(
                name.starts_with(".rp-devops:"),
                "{}: `{name}` is not a hidden .rp-devops: job",
                path.display()
            );
            let vars = job.get("variables");
            let pinned = vars
                .and_then(|v| v.get("RP_DEVOPS_VERSION"))
                .and_then(|v| v.as_str());
            if let Some(pinned) = pinned {
                jobs += 1;
                assert_eq!(
                    pinned,
                    env!("CARGO_PKG_VERSION"),
                    "{}: {name}",
                    path.display()
                );
            }
            // A job that runs rp-devops on its own (not through a base job)
            // names its version and image.
            if job.get("script").is_some() && job.get("extends").is_none() {
                assert!(
                    pinned.is_some(),
                    "{}: {name} pins no version",
                    path.display()
                );
                assert_eq!(
                    vars.and_then(|v| v.get("RP_DEVOPS_IMAGE"))
                        .and_then(|v| v.as_str()),
                    Some("$CI_REGISTRY/restorepoint/rp-devops:$RP_DEVOPS_VERSION"),
                    "{}: {name}",
                    path.display()
                );
            }
        }
        assert!(
            text.contains(&format!("ref: v{}", env!("CARGO_PKG_VERSION"))),
            "{}: the include example pins another version",
            path.display()
        );
    }
    assert!(jobs >= 5, "{jobs}");
}

fn sha256_hex(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_owned()
}

const BINARY_FILE: &str = "rp-devops-x86_64-linux-gnu";

/// The binary's way into a job on a team's own image, end to end: the
/// repository's own pipeline publishes it (its publish-binary job, run from
/// a copy of `.gitlab-ci.yml`) to the generic package registry and links it
/// from the tag's release; a team's job extending `.rp-devops:install`
/// downloads it, checks its SHA-256, and runs scan-races with it, with no
/// other rp-devops on PATH. A tampered download against a pinned digest
/// stops the job before anything runs.
#[test]
fn the_published_binary_is_installed_with_its_checksum_checked() {
    let Some(gle) = gle::find() else { return };
    let gitlab = FakeGitLab::start();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    gitlab.serve_repository(PROJECT_ID, dir.path());
    gitlab.add_release(PROJECT_ID, "v0.1.0");
    let version = env!("CARGO_PKG_VERSION");
    let tag = format!("v{version}");
    if tag != "v0.1.0" {
        gitlab.add_release(PROJECT_ID, &tag);
    }

    // rp-devops's own pipeline, on its release tag.
    let own = dir.path().join("rp-devops");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let project = Project::new(
        &own,
        &std::fs::read_to_string(repo.join(".gitlab-ci.yml")).unwrap(),
    );
    std::fs::create_dir_all(own.join("scripts")).unwrap();
    std::fs::copy(
        repo.join("scripts/publish-binary.sh"),
        own.join("scripts/publish-binary.sh"),
    )
    .unwrap();
    std::fs::create_dir_all(own.join("dist")).unwrap();
    let binary = own.join("dist").join(BINARY_FILE);
    std::fs::copy(env!("CARGO_BIN_EXE_rp-devops"), &binary).unwrap();
    let digest = sha256_hex(&binary);
    let base = ci_vars(&gitlab);
    let publish = with(
        &base,
        &[
            ("CI_PIPELINE_SOURCE", "push"),
            ("CI_COMMIT_TAG", &tag),
            ("CI_COMMIT_REF_NAME", &tag),
            ("RP_PUBLISH_RELEASE_WAIT", "0"),
        ],
    );
    for _ in 0..2 {
        project
            .run(&gle, &home, "publish-binary", &publish)
            .assert_success();
    }
    let published = gitlab
        .package_file(PROJECT_ID, "rp-devops", version, BINARY_FILE)
        .expect("the binary is in the package registry");
    assert!(published.as_ref() == std::fs::read(&binary).unwrap().as_slice());
    let checksum = gitlab
        .package_file(
            PROJECT_ID,
            "rp-devops",
            version,
            &format!("{BINARY_FILE}.sha256"),
        )
        .expect("the checksum is published");
    assert_eq!(
        String::from_utf8_lossy(&checksum),
        format!("{digest}  {BINARY_FILE}\n")
    );
    let release = gitlab
        .releases(PROJECT_ID)
        .into_iter()
        .find(|r| r["tag_name"] == tag.as_str())
        .expect("the release");
    let links: Vec<String> = release["assets"]["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|l| l["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        links,
        [BINARY_FILE.to_owned(), format!("{BINARY_FILE}.sha256")],
        "linked once, also after a re-run"
    );
    assert_eq!(
        gitlab.releases(PROJECT_ID).len(),
        1 + usize::from(tag != "v0.1.0")
    );

    // A team's scheduled race scan on its own image.
    let team_yaml = "include:\n  - local: ci-templates/install.yml\n  - local: ci-templates/scan-races.yml\n\n\
                     scan-races:\n  extends: [.rp-devops:scan-races, .rp-devops:install]\n  image: debian:bookworm-slim\n";
    let packages = format!(
        "{}/api/v4/projects/{PROJECT_ID}/packages/generic/rp-devops",
        gitlab.url
    );
    let team_vars = |checkout: &Path, pin: &str| {
        let mut vars = with(
            &base,
            &[
                ("CI_PIPELINE_SOURCE", "schedule"),
                ("RP_GITLAB_TOKEN", TOKEN),
                ("RP_DEVOPS_PACKAGES", &packages),
                ("RP_DEVOPS_SHA256", pin),
            ],
        );
        vars.push((
            "RP_DEVOPS_BIN_DIR".into(),
            checkout.join(".rp-devops/bin").display().to_string(),
        ));
        vars
    };
    let team_checkout = |name: &str| {
        let checkout = dir.path().join(name);
        std::fs::create_dir_all(checkout.join("logs")).unwrap();
        std::fs::copy(fixture("races/cache.log"), checkout.join("logs/cache.log")).unwrap();
        checkout
    };

    let checkout = team_checkout("team");
    let team = Project::new(&checkout, team_yaml);
    let run = team.run_with(&gle, &home, "scan-races", &team_vars(&checkout, ""), false);
    run.assert_success();
    assert!(
        run.log.contains(&format!("rp-devops {version}")),
        "{}",
        run.log
    );
    assert!(
        run.log.contains(&format!(
            "checking against the published digest {digest}; pin it"
        )),
        "{}",
        run.log
    );
    assert!(checkout.join(".rp-devops/bin/rp-devops").is_file());
    let filed = gitlab.issues().len();
    assert!(filed > 0, "scan-races ran with the installed binary");

    // The registry's file replaced: the pinned digest stops the job.
    let mut tampered = std::fs::read(&binary).unwrap();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    gitlab.tamper_package_file(PROJECT_ID, "rp-devops", version, BINARY_FILE, &tampered);
    let checkout = team_checkout("team-pinned");
    let team = Project::new(&checkout, team_yaml);
    let run = team.run_with(
        &gle,
        &home,
        "scan-races",
        &team_vars(&checkout, &digest),
        false,
    );
    assert!(!run.success, "{}", run.log);
    assert!(
        run.log
            .contains(&format!("checksum mismatch: expected {digest}")),
        "{}",
        run.log
    );
    assert!(!checkout.join(".rp-devops/bin/rp-devops").exists());
    assert!(!checkout.join(".rp-devops/bin/rp-devops.download").exists());
    assert_eq!(gitlab.issues().len(), filed, "nothing ran");
}

/// rp-devops tags rp-devops: the repository's own `tag-rp-devops` job (its
/// `.gitlab-ci.yml`, through `ci-templates/tag-library.yml`) pushes the tag
/// of the version Cargo.toml was raised to, with its GitLab release; a later
/// commit that does not raise the version tags nothing.
#[test]
fn the_own_tag_job_tags_the_version_cargo_toml_names() {
    let Some(gle) = gle::find() else { return };
    let fx = Fixture::new();
    let lib = fx.library("rp-devops");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = lib.seed.join("scripts/release-bump.sh");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::copy(repo.join("scripts/release-bump.sh"), &script).unwrap();
    lib.git(&["add", "scripts/release-bump.sh"]);
    lib.commit_file(
        "Cargo.toml",
        "[package]\nname = \"rp-devops\"\nversion = \"0.1.0\"\n",
        "feat: first release",
    );
    lib.tag_head(&["v0.1.0"], true);
    let head = lib.commit_file(
        "Cargo.toml",
        "[package]\nname = \"rp-devops\"\nversion = \"0.2.0\"\n",
        "release 0.2.0",
    );
    let daemon = GitDaemon::start(&fx.path("srv"), &fx.home());
    let gitlab = FakeGitLab::start();
    gitlab.serve_repository(PROJECT_ID, &lib.bare);

    let own_yaml = std::fs::read_to_string(repo.join(".gitlab-ci.yml")).unwrap();
    let run_at = |name: &str, sha: &str| {
        let checkout = fx.shallow_clone(&daemon.url(&lib), name);
        let project = Project::new(&checkout, &own_yaml);
        let base = ci_vars(&gitlab);
        let vars = with(
            &base,
            &[
                ("CI_PIPELINE_SOURCE", "push"),
                ("CI_COMMIT_BRANCH", "main"),
                ("CI_COMMIT_SHA", sha),
                ("CI_COMMIT_SHORT_SHA", &sha[..8]),
                (
                    "CI_REGISTRY_IMAGE",
                    "registry.example.com/restorepoint/rp-devops",
                ),
            ],
        );
        project.run(&gle, &fx.home(), "tag-rp-devops", &vars)
    };

    let run = run_at("checkout-1", &head);
    run.assert_success();
    assert_eq!(lib.server_tags(), ["v0.1.0", "v0.2.0"], "{}", run.log);
    assert_eq!(lib.server_tag_commit("v0.2.0"), head);
    let releases = gitlab.releases(PROJECT_ID);
    assert_eq!(releases.len(), 1, "{}", run.log);
    assert_eq!(releases[0]["tag_name"], "v0.2.0");

    // A commit that does not raise the version: no tag, no release.
    let later = lib.commit("docs: typo");
    let run = run_at("checkout-2", &later);
    run.assert_success();
    assert!(run.log.contains("v0.2.0 is tagged already"), "{}", run.log);
    assert_eq!(lib.server_tags(), ["v0.1.0", "v0.2.0"], "{}", run.log);
    assert_eq!(gitlab.releases(PROJECT_ID).len(), 1);
}

/// A project that forgot RP_GITLAB_TOKEN: the MR job has only the job
/// token, fails, and its log says which token to set; nothing is written.
#[test]
fn merge_request_job_with_only_the_job_token_fails_saying_what_to_set() {
    let Some(gle) = gle::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (home, checkout) = (dir.path().join("home"), dir.path().join("checkout"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&checkout).unwrap();
    std::fs::write(checkout.join("rp-devops.yml"), WORKFLOW).unwrap();
    let project = Project::new(&checkout, MR_PIPELINE);
    let gitlab = FakeGitLab::start();
    gitlab.put_file(PROJECT_ID, "fix/crash", "VERSION", "5.3.1\n");
    gitlab.put_file(PROJECT_ID, "release/5.4", "VERSION", "5.4.0\n");
    let iid = gitlab.add_mr(NewMr {
        source_branch: "fix/crash".into(),
        target_branch: "release/5.4".into(),
        ..NewMr::default()
    });
    let mr_iid = iid.to_string();
    let base = ci_vars(&gitlab);
    let vars = with(
        &base,
        &[
            ("CI_PIPELINE_SOURCE", "merge_request_event"),
            ("CI_MERGE_REQUEST_IID", &mr_iid),
        ],
    );
    let run = project.run(&gle, &home, "check-versions", &vars);
    assert!(!run.success, "{}", run.log);
    assert!(run.log.contains("CI_JOB_TOKEN"), "{}", run.log);
    assert!(run.log.contains("`api` scope"), "{}", run.log);
    assert!(
        !run.log.contains(JOB_TOKEN),
        "the token leaked: {}",
        run.log
    );
    assert!(gitlab.mr(iid).discussions.is_empty());
}
