//! `scan-races` end to end: the real binary, real log samples, and the
//! stateful fake GitLab with fault injection.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};

use predicates::prelude::*;
use serde_json::Value;
use support::{FakeGitLab, Fault, fake_gitlab, fixture, rp_devops, rp_devops_with};

const LABEL: &str = "race condition";

fn home() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn json_of(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document: {e}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn scan(gitlab: &FakeGitLab, dir: &Path, args: &[&str]) -> std::process::Output {
    rp_devops_with(gitlab, dir)
        .args(["--json", "scan-races", "--host", "testbox-07"])
        .args(args)
        .output()
        .expect("run rp-devops")
}

fn copy_fixture(dir: &Path, name: &str) -> PathBuf {
    let target = dir.join(name);
    std::fs::copy(fixture(&format!("races/{name}")), &target).expect("copy fixture");
    target
}

/// GET requests for the issue listing before the run's first write: the
/// lookup of existing race issues. (A run that created issues lists once more
/// at the end, to catch another run filing the same race at the same time.)
fn listings_before_first_write(gitlab: &FakeGitLab) -> usize {
    gitlab
        .requests()
        .iter()
        .take_while(|r| r.method == "GET")
        .filter(|r| r.path.ends_with("/issues"))
        .count()
}

/// A `logs/` directory holding copies of these fixture logs.
fn logs_dir(dir: &Path, names: &[&str]) -> PathBuf {
    let logs = dir.join("logs");
    std::fs::create_dir(&logs).expect("create logs dir");
    for name in names {
        copy_fixture(&logs, name);
    }
    logs
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The counter.log race as a second build would print it: other addresses,
/// goroutine ids, line offsets, and the two accesses in the other order.
fn counter_swapped_other_build() -> String {
    [
        "==================",
        "WARNING: DATA RACE",
        "Read at 0x00c000112048 by goroutine 23:",
        "  example.com/racegen/internal/store.(*Inventory).Snapshot()",
        "      /home/ci/racegen/internal/store/store.go:37 +0x5c",
        "  main.main.func2()",
        "      /home/ci/racegen/cmd/counter/main.go:24 +0x3b",
        "",
        "Previous write at 0x00c000112048 by goroutine 22:",
        "  example.com/racegen/internal/store.(*Inventory).Add()",
        "      /home/ci/racegen/internal/store/store.go:24 +0x10a",
        "  main.main.func1()",
        "      /home/ci/racegen/cmd/counter/main.go:18 +0x1a2",
        "",
        "Goroutine 23 (running) created at:",
        "  main.main()",
        "      /home/ci/racegen/cmd/counter/main.go:21 +0x2d1",
        "==================",
        "",
    ]
    .join("\n")
}

#[test]
fn creates_one_issue_per_distinct_race_across_hosts_builds_and_order() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    // The same two races from a plain run, a journald-prefixed run on another
    // host, and a GORACE log_path file; counter.log's race twice, once swapped.
    let logs = logs_dir(
        dir.path(),
        &[
            "server-run1.log",
            "journald-prefixed.log",
            "gorace-logpath.race.log",
            "counter.log",
        ],
    );
    std::fs::write(logs.join("counter.log.1"), counter_swapped_other_build()).unwrap();

    let output = scan(&gitlab, dir.path(), &[logs.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let result = json_of(&output);
    assert_eq!(result["files"], 5);
    assert_eq!(result["reports"], 8);
    let races = result["races"].as_array().unwrap();
    assert_eq!(races.len(), 3, "{result:#}");
    assert!(races.iter().all(|r| r["action"] == "created"));

    let issues = gitlab.issues();
    assert_eq!(issues.len(), 3);
    let mut titles: Vec<&str> = issues.iter().map(|i| i.title.as_str()).collect();
    titles.sort();
    assert_eq!(
        titles,
        [
            "Data race in example.com/racegen/internal/store.(*Inventory).Add() vs example.com/racegen/internal/store.(*Inventory).Snapshot()",
            "Data race in example.com/racegen/internal/store.(*Inventory).Touch()",
            "Data race in main.(*scheduler).tick()",
        ]
    );
    for issue in &issues {
        assert_eq!(issue.labels, [LABEL]);
        assert!(
            issue
                .description
                .contains("<!-- rp-devops:race fingerprint="),
            "{}",
            issue.description
        );
        assert!(issue.description.contains("WARNING: DATA RACE"));
        // The journald prefix never reaches the issue.
        assert!(
            !issue.description.contains("restorepoint[31337]"),
            "{}",
            issue.description
        );
    }
    let touch = races
        .iter()
        .find(|r| r["title"].as_str().unwrap().contains("Touch"))
        .unwrap();
    assert_eq!(touch["count"], 3);
    assert_eq!(touch["sources"].as_array().unwrap().len(), 3);
    let counter = races
        .iter()
        .find(|r| r["title"].as_str().unwrap().contains("Add"))
        .unwrap();
    assert_eq!(counter["count"], 2);
    // Existing issues are found by one label listing, not one search per race,
    // plus one listing at the end because this run created issues.
    assert_eq!(listings_before_first_write(&gitlab), 1);
    assert_eq!(gitlab.count("GET", "/issues"), 2);
}

#[test]
fn second_run_adds_exactly_one_note_per_race_and_no_issue() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    let log = copy_fixture(dir.path(), "cache.log");
    let first = scan(&gitlab, dir.path(), &[log.to_str().unwrap()]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(gitlab.issues().len(), 2);
    assert!(gitlab.issues().iter().all(|i| i.notes.is_empty()));

    let second = scan(&gitlab, dir.path(), &[log.to_str().unwrap()]);
    assert!(second.status.success(), "{}", stderr(&second));
    let result = json_of(&second);
    assert!(
        result["races"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["action"] == "commented")
    );
    let issues = gitlab.issues();
    assert_eq!(issues.len(), 2);
    for issue in &issues {
        assert_eq!(issue.notes.len(), 1, "{issue:?}");
        let note = &issue.notes[0].body;
        assert!(note.contains("<details>"), "{note}");
        assert!(note.contains("testbox-07"), "{note}");
        assert!(note.contains("WARNING: DATA RACE"), "{note}");
    }
}

#[test]
fn closed_issue_is_reopened_unless_no_reopen() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    let log = copy_fixture(dir.path(), "counter.log");
    assert!(
        scan(&gitlab, dir.path(), &[log.to_str().unwrap()])
            .status
            .success()
    );
    gitlab.set_issue_state(1, "closed");

    let output = scan(&gitlab, dir.path(), &["--no-reopen", log.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(json_of(&output)["races"][0]["action"], "commented");
    assert_eq!(gitlab.issues()[0].state, "closed");
    assert_eq!(gitlab.issues()[0].notes.len(), 1);

    let output = scan(&gitlab, dir.path(), &[log.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(json_of(&output)["races"][0]["action"], "reopened");
    let issue = &gitlab.issues()[0];
    assert_eq!(issue.state, "opened");
    assert_eq!(issue.notes.len(), 2);
    assert!(
        issue.notes[1].body.contains("Regression"),
        "{}",
        issue.notes[1].body
    );
}

#[test]
fn config_can_switch_reopening_off() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    std::fs::write(
        dir.path().join("rp-devops.yml"),
        "races:\n  reopen_closed: false\n",
    )
    .unwrap();
    let log = copy_fixture(dir.path(), "counter.log");
    assert!(
        scan(&gitlab, dir.path(), &[log.to_str().unwrap()])
            .status
            .success()
    );
    gitlab.set_issue_state(1, "closed");
    let output = scan(&gitlab, dir.path(), &[log.to_str().unwrap()]);
    assert_eq!(json_of(&output)["races"][0]["action"], "commented");
    assert_eq!(gitlab.issues()[0].state, "closed");
}

#[test]
fn hand_made_issue_with_same_title_is_adopted() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    let title = "Data race in main.(*scheduler).tick()";
    gitlab.add_issue(
        title,
        "Found by the old script on testbox-03.",
        &[LABEL],
        "opened",
    );
    // Same title but another label: not ours to adopt.
    gitlab.add_issue(title, "unrelated", &["bug"], "opened");
    let log = copy_fixture(dir.path(), "server-run1.log");
    let output = scan(&gitlab, dir.path(), &[log.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let result = json_of(&output);
    let tick = result["races"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["title"] == title)
        .unwrap()
        .clone();
    assert_eq!(tick["action"], "commented");
    assert_eq!(tick["issue"]["iid"], 1);
    let issues = gitlab.issues();
    assert_eq!(issues.len(), 3, "one new issue for the Touch race only");
    assert!(issues[0].description.starts_with("Found by the old script"));
    assert!(
        issues[0]
            .description
            .contains("<!-- rp-devops:race fingerprint=")
    );
    assert_eq!(issues[0].notes.len(), 1);
    assert!(issues[1].notes.is_empty());

    // Adopted: the next run finds it by marker and still makes no new issue.
    let again = scan(&gitlab, dir.path(), &[log.to_str().unwrap()]);
    assert!(again.status.success());
    assert_eq!(gitlab.issues().len(), 3);
}

#[test]
fn existing_issues_are_listed_with_pagination_once() {
    let gitlab = FakeGitLab::start();
    gitlab.set_page_size(2);
    for n in 0..5 {
        gitlab.add_issue(
            &format!("Data race in other.F{n}()"),
            "old",
            &[LABEL],
            "opened",
        );
    }
    let dir = home();
    let log = copy_fixture(dir.path(), "server-run1.log");
    let output = scan(&gitlab, dir.path(), &[log.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    // 5 issues at 2 a page: 3 pages, one listing.
    assert_eq!(listings_before_first_write(&gitlab), 3);
    let listing = gitlab
        .requests()
        .into_iter()
        .find(|r| r.method == "GET")
        .unwrap();
    assert!(
        listing.query.contains("labels=race%20condition"),
        "{}",
        listing.query
    );
    assert!(listing.query.contains("state=all"), "{}", listing.query);
    assert!(listing.query.contains("per_page=100"), "{}", listing.query);

    // The last race issue sits on page 3: a second run must see it.
    let again = scan(&gitlab, dir.path(), &[log.to_str().unwrap()]);
    assert!(again.status.success());
    assert_eq!(gitlab.issues().len(), 7);
}

#[test]
fn link_pagination_never_leaves_the_configured_host() {
    let gitlab = FakeGitLab::start();
    gitlab.set_page_size(1);
    gitlab.link_only_pagination("http://evil.invalid:9");
    let title = "Data race in main.(*scheduler).tick()";
    gitlab.add_issue("Data race in other.F()", "old", &[LABEL], "opened");
    gitlab.add_issue(title, "on page 2", &[LABEL], "opened");
    let dir = home();
    let log = copy_fixture(dir.path(), "server-run1.log");
    let output = scan(&gitlab, dir.path(), &[log.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(listings_before_first_write(&gitlab), 2);
    let tick = &gitlab.issues()[1];
    assert_eq!(
        tick.notes.len(),
        1,
        "found on page 2 through the Link header"
    );
}

fn end_state(gitlab: &FakeGitLab) -> Vec<(String, String, usize)> {
    let mut state: Vec<_> = gitlab
        .issues()
        .iter()
        .map(|i| (i.title.clone(), i.state.clone(), i.notes.len()))
        .collect();
    state.sort();
    state
}

#[test]
fn thirty_percent_faults_give_the_same_end_state() {
    let dir = home();
    let logs = logs_dir(
        dir.path(),
        &[
            "server-run1.log",
            "cache.log",
            "counter.log",
            "generic.log",
            "tsan-cpp.log",
        ],
    );
    let logs = logs.to_str().unwrap();

    let clean = FakeGitLab::start();
    clean.add_issue(
        "Data race in main.(*cache).put() vs main.(*cache).get()",
        "",
        &[LABEL],
        "closed",
    );
    for _ in 0..2 {
        assert!(scan(&clean, dir.path(), &[logs]).status.success());
    }

    for seed in [1, 2, 3] {
        let faulty = FakeGitLab::start();
        faulty.add_issue(
            "Data race in main.(*cache).put() vs main.(*cache).get()",
            "",
            &[LABEL],
            "closed",
        );
        faulty.random_faults(
            0.3,
            seed,
            vec![
                Fault::Status(429, Some(0)),
                Fault::Status(500, None),
                Fault::Status(502, None),
                Fault::Status(503, None),
                Fault::Status(504, None),
                Fault::Drop,
                Fault::LostAnswer,
            ],
        );
        for _ in 0..2 {
            let output = scan(&faulty, dir.path(), &[logs]);
            assert!(output.status.success(), "seed {seed}: {}", stderr(&output));
        }
        faulty.clear_faults();
        assert_eq!(end_state(&faulty), end_state(&clean), "seed {seed}");
        let lost = faulty.requests().len();
        assert!(lost > 20, "the faulty run made {lost} requests");
    }
}

#[test]
fn lost_answer_on_create_is_recovered_by_marker_not_repeated() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    let log = copy_fixture(dir.path(), "counter.log");
    // The listing goes through, then the create is applied but its answer lost.
    gitlab.push_faults([
        Fault::Slow(std::time::Duration::from_millis(1)),
        Fault::LostAnswer,
    ]);
    let output = scan(&gitlab, dir.path(), &[log.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(gitlab.issues().len(), 1);
    assert_eq!(
        gitlab.count("POST", "/issues"),
        1,
        "checked by marker, not re-sent"
    );
    assert_eq!(json_of(&output)["races"][0]["issue"]["iid"], 1);
}

#[test]
fn a_slow_answer_times_out_and_is_retried() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    let log = copy_fixture(dir.path(), "counter.log");
    gitlab.push_faults([Fault::Slow(std::time::Duration::from_secs(3))]);
    let output = rp_devops_with(&gitlab, dir.path())
        .env("RP_HTTP_TIMEOUT", "1s")
        .args(["--json", "scan-races", "--host", "testbox-07"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("timed out"), "{}", stderr(&output));
    assert_eq!(
        listings_before_first_write(&gitlab),
        2,
        "the listing was asked again"
    );
    assert_eq!(gitlab.issues().len(), 1);
}

#[test]
fn retry_after_is_honoured_on_429() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    let log = copy_fixture(dir.path(), "counter.log");
    gitlab.push_faults([Fault::Status(429, Some(1))]);
    let started = std::time::Instant::now();
    let output = scan(&gitlab, dir.path(), &[log.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("429"), "{}", stderr(&output));
    // Waited as told (a lower bound, not a timing assertion on speed).
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(gitlab.issues().len(), 1);
}

#[test]
fn dry_run_reads_but_never_writes() {
    let gitlab = FakeGitLab::start();
    let title = "Data race in main.(*scheduler).tick()";
    let iid = gitlab.add_issue(title, "<!-- nothing -->", &[LABEL], "closed");
    let dir = home();
    let log = copy_fixture(dir.path(), "server-run1.log");
    let output = scan(&gitlab, dir.path(), &["--dry-run", log.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let result = json_of(&output);
    let actions: Vec<&str> = result["races"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["would-create", "would-reopen"]);
    assert!(
        stderr(&output).contains("dry-run: would POST"),
        "{}",
        stderr(&output)
    );
    assert!(gitlab.requests().iter().all(|r| r.method == "GET"));
    assert_eq!(gitlab.issues().len(), 1);
    assert_eq!(gitlab.issues()[0].state, "closed");
    assert_eq!(iid, 1);
}

#[test]
fn dry_run_without_gitlab_reads_nothing_remote() {
    let dir = home();
    let output = rp_devops(dir.path())
        .args([
            "scan-races",
            "--dry-run",
            fixture("races").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("would-create"), "{stdout}");
    assert!(stdout.contains("Data race in worker()"), "{stdout}");
}

#[test]
fn reads_stdin_gzip_and_directories() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    let nested = dir.path().join("a/b");
    std::fs::create_dir_all(&nested).unwrap();
    let gz = nested.join("cache.log.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(&std::fs::read(fixture("races/cache.log")).unwrap())
        .unwrap();
    encoder.finish().unwrap();

    let output = rp_devops_with(&gitlab, dir.path())
        .args([
            "--json",
            "scan-races",
            "--host",
            "testbox-07",
            "--dry-run",
            "-",
        ])
        .arg(dir.path().join("a"))
        .write_stdin(std::fs::read(fixture("races/counter.log")).unwrap())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let result = json_of(&output);
    assert_eq!(result["files"], 2);
    assert_eq!(result["reports"], 3);
    let sources: Vec<String> = result["races"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["sources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
        })
        .collect();
    assert!(
        sources.iter().any(|s| s == "testbox-07:stdin"),
        "{sources:?}"
    );
    assert!(
        sources.iter().any(|s| s.ends_with("cache.log.gz")),
        "{sources:?}"
    );
}

#[test]
fn unreadable_file_is_named_and_the_others_still_processed() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    let log = copy_fixture(dir.path(), "counter.log");
    let missing = dir.path().join("no-such.log");
    let output = scan(
        &gitlab,
        dir.path(),
        &[missing.to_str().unwrap(), log.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no-such.log"),
        "{}",
        stderr(&output)
    );
    // The readable file was still filed, and the result still printed.
    assert_eq!(json_of(&output)["reports"], 1);
    assert_eq!(gitlab.issues().len(), 1);
}

#[test]
fn empty_input_and_binary_garbage_are_not_errors() {
    let dir = home();
    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, "").unwrap();
    let garbage = dir.path().join("garbage.bin");
    let mut rng = fastrand::Rng::with_seed(42);
    let bytes: Vec<u8> = (0..2_000_000).map(|_| rng.u8(..)).collect();
    std::fs::write(&garbage, bytes).unwrap();
    rp_devops(dir.path())
        .args(["scan-races", "--dry-run"])
        .arg(&empty)
        .arg(&garbage)
        .assert()
        .success()
        .stdout(predicate::str::contains("no race reports in 2 files"));
}

#[test]
fn a_100_mb_line_stays_in_bounded_memory() {
    let dir = home();
    let path = dir.path().join("huge-line.log");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..100 {
            file.write_all(&chunk).unwrap();
        }
        file.write_all(b"\n").unwrap();
        file.write_all(&std::fs::read(fixture("races/counter.log")).unwrap())
            .unwrap();
    }
    let time = Path::new("/usr/bin/time");
    assert!(
        time.exists(),
        "GNU time is needed to measure peak memory (Debian package `time`)"
    );
    let output = std::process::Command::new(time)
        .args(["-f", "peak-rss-kib=%M"])
        .arg(env!("CARGO_BIN_EXE_rp-devops"))
        .args(["--json", "scan-races", "--dry-run"])
        .arg(&path)
        .env_clear()
        .env("HOME", dir.path())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        json_of(&output)["reports"],
        1,
        "the report after the long line is still found"
    );
    let err = stderr(&output);
    let rss: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS in {err}"));
    assert!(rss < 64 * 1024, "peak RSS {rss} KiB for a 100 MB line");
}

#[test]
fn wrong_token_fails_with_a_hint_and_never_shows_the_token() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    let log = copy_fixture(dir.path(), "counter.log");
    let output = rp_devops_with(&gitlab, dir.path())
        .env("RP_GITLAB_TOKEN", "glpat-wrong-secret-value")
        .args(["-v", "scan-races", log.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("401"), "{err}");
    assert!(
        err.contains("GET projects/restorepoint%2Fproduct/issues"),
        "{err}"
    );
    assert!(
        err.contains("hint:") && err.contains("RP_GITLAB_TOKEN"),
        "{err}"
    );
    assert!(!err.contains("glpat-wrong-secret-value"));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("glpat-wrong-secret-value"));
}

#[test]
fn job_token_cannot_create_issues_and_says_so() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    let log = copy_fixture(dir.path(), "counter.log");
    let output = support::rp_devops(dir.path())
        .env("CI_SERVER_URL", &gitlab.url)
        .env("CI_PROJECT_ID", fake_gitlab::PROJECT_ID.to_string())
        .env("CI_JOB_TOKEN", fake_gitlab::JOB_TOKEN)
        .args(["scan-races", log.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("403"), "{err}");
    assert!(
        err.contains("CI_JOB_TOKEN can read") && err.contains("cannot create issues"),
        "{err}"
    );
    assert!(!err.contains(fake_gitlab::JOB_TOKEN));
    // It could read (the listing used JOB-TOKEN), but wrote nothing.
    let listing = gitlab.requests().into_iter().next().unwrap();
    assert!(listing.headers.iter().any(|(k, _)| k == "job-token"));
    assert!(gitlab.issues().is_empty());
}

#[test]
fn unreachable_gitlab_gives_up_after_bounded_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = home();
    let log = copy_fixture(dir.path(), "counter.log");
    let output = rp_devops(dir.path())
        .env("RP_GITLAB_URL", format!("http://127.0.0.1:{port}"))
        .env("RP_GITLAB_TOKEN", "glpat-x")
        .env("RP_PROJECT", "g/p")
        .env("RP_HTTP_RETRY_BUDGET", "2s")
        .args(["scan-races", log.to_str().unwrap()])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("gave up after"), "{err}");
    assert!(err.contains("retrying"), "{err}");
    assert!(err.contains("hint: is GitLab reachable"), "{err}");
}

#[test]
fn malformed_json_from_gitlab_is_a_clear_error() {
    // A proxy answering HTML with 200: the client says what it got.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1) {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let body = "<html>login</html>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let dir = home();
    let log = copy_fixture(dir.path(), "counter.log");
    let output = rp_devops(dir.path())
        .env("RP_GITLAB_URL", url)
        .env("RP_GITLAB_TOKEN", "glpat-x")
        .env("RP_PROJECT", "g/p")
        .args(["scan-races", log.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("not the JSON expected"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn fail_on_race_exits_3_after_filing() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    let log = copy_fixture(dir.path(), "counter.log");
    let output = scan(
        &gitlab,
        dir.path(),
        &["--fail-on-race", log.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(gitlab.issues().len(), 1);
    let empty = dir.path().join("clean.log");
    std::fs::write(&empty, "all good\n").unwrap();
    let output = scan(
        &gitlab,
        dir.path(),
        &["--fail-on-race", empty.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn bad_config_is_exit_2_naming_file_line_and_key() {
    let dir = home();
    std::fs::write(
        dir.path().join("rp-devops.yml"),
        "gitlab:\n  url: https://g.example.com\nraces:\n  label: [x]\n",
    )
    .unwrap();
    let output = rp_devops(dir.path())
        .args(["scan-races", "--dry-run", "-"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("rp-devops.yml:4"), "{err}");
    assert!(err.contains("unknown field `label`"), "{err}");
}

#[test]
fn missing_project_is_a_usage_error() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    let log = copy_fixture(dir.path(), "counter.log");
    let output = rp_devops(dir.path())
        .env("RP_GITLAB_URL", &gitlab.url)
        .env("RP_GITLAB_TOKEN", fake_gitlab::TOKEN)
        .args(["scan-races", log.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("no GitLab project"));
}

#[test]
fn json_result_shape() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    let log = copy_fixture(dir.path(), "truncated.log");
    let output = scan(&gitlab, dir.path(), &[log.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let mut result = json_of(&output);
    result["races"][0]["sources"] = serde_json::json!(["[source]"]);
    result["races"][0]["issue"]["web_url"] = serde_json::json!("[url]");
    insta::assert_json_snapshot!(result);
}

#[test]
fn help_text() {
    let dir = home();
    let output = rp_devops(dir.path())
        .args(["scan-races", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    insta::assert_snapshot!(String::from_utf8_lossy(&output.stdout));
}

#[test]
fn a_cut_off_report_counts_towards_its_full_race_in_the_same_run() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    // truncated.log is cache.log's first race cut off after `put`'s side.
    let logs = logs_dir(dir.path(), &["cache.log", "truncated.log"]);
    let output = scan(&gitlab, dir.path(), &[logs.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let result = json_of(&output);
    assert_eq!(result["reports"], 3);
    assert_eq!(result["truncated"], 1);
    let races = result["races"].as_array().unwrap();
    assert_eq!(races.len(), 2, "{result:#}");
    assert_eq!(
        races[0]["title"],
        "Data race in main.(*cache).put() vs main.(*cache).get()"
    );
    assert_eq!(races[0]["count"], 2);
    assert_eq!(gitlab.issues().len(), 2);
}

#[test]
fn a_cut_off_report_and_its_full_race_share_one_issue_across_runs() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    let truncated = copy_fixture(dir.path(), "truncated.log");
    let full = copy_fixture(dir.path(), "cache.log");

    // Day 1: only the cut-off report; it gets an issue on its one side.
    assert!(
        scan(&gitlab, dir.path(), &[truncated.to_str().unwrap()])
            .status
            .success()
    );
    assert_eq!(gitlab.issues()[0].title, "Data race in main.(*cache).put()");

    // Day 2: the full race joins that issue (and upgrades its marker); the
    // other race of cache.log is new.
    let output = scan(&gitlab, dir.path(), &[full.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let result = json_of(&output);
    assert_eq!(result["races"][0]["action"], "commented");
    assert_eq!(result["races"][0]["issue"]["iid"], 1);
    assert_eq!(result["races"][1]["action"], "created");
    let issues = gitlab.issues();
    assert_eq!(issues.len(), 2);
    assert!(
        issues[0]
            .description
            .contains(result["races"][0]["fingerprint"].as_str().unwrap())
    );

    // Day 3: cut off again: still that issue, found through the full marker.
    let output = scan(&gitlab, dir.path(), &[truncated.to_str().unwrap()]);
    assert_eq!(json_of(&output)["races"][0]["issue"]["iid"], 1);
    assert_eq!(gitlab.issues().len(), 2);
    assert_eq!(gitlab.issues()[0].notes.len(), 2);
}

#[test]
fn two_runs_at_once_leave_one_open_issue_per_race() {
    let gitlab = FakeGitLab::start();
    let dir = home();
    let log = copy_fixture(dir.path(), "cache.log");
    // Both listings are slowed so each run finds no issue and creates one.
    let slow = Fault::Slow(std::time::Duration::from_millis(1500));
    gitlab.push_faults([slow.clone(), slow]);
    let spawn = |host: &str| {
        support::rp_devops_std_with(&gitlab, dir.path())
            .args(["--json", "scan-races", "--host", host])
            .arg(&log)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn rp-devops")
    };
    let (a, b) = (spawn("testbox-01"), spawn("testbox-02"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));

    let issues = gitlab.issues();
    let trace: Vec<String> = gitlab
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        issues.len(),
        4,
        "both runs created both races' issues: {trace:#?}\n{}\n{}",
        stderr(&a),
        stderr(&b)
    );
    let open: Vec<_> = issues.iter().filter(|i| i.state == "opened").collect();
    assert_eq!(open.len(), 2, "one open issue per race: {issues:#?}");
    for closed in issues.iter().filter(|i| i.state == "closed") {
        let original = open
            .iter()
            .find(|o| o.title == closed.title)
            .expect("its original");
        assert!(original.iid < closed.iid);
        assert!(
            closed.notes[0]
                .body
                .contains(&format!("Duplicate of #{}", original.iid))
        );
        assert_eq!(
            original.notes.len(),
            1,
            "the losing run's sighting is noted on the original"
        );
    }
    let mut actions: Vec<String> = [json_of(&a), json_of(&b)]
        .iter()
        .flat_map(|r| r["races"].as_array().unwrap().clone())
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect();
    actions.sort();
    assert_eq!(actions, ["commented", "commented", "created", "created"]);

    // The next run finds the originals, not the closed duplicates.
    let again = scan(&gitlab, dir.path(), &[log.to_str().unwrap()]);
    let result = json_of(&again);
    for race in result["races"].as_array().unwrap() {
        assert_eq!(race["action"], "commented");
        let iid = race["issue"]["iid"].as_u64().unwrap();
        assert!(open.iter().any(|o| o.iid == iid));
    }
    assert_eq!(gitlab.issues().len(), 4);
}

#[test]
fn large_inputs_show_a_few_plain_progress_lines_in_ci_logs() {
    let dir = home();
    let path = dir.path().join("big.log");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let line = b"2026/11/28 12:52:21 backup finished for core-sw1 in 1.2s, 4096 configs\n";
        for _ in 0..(80 * 1024 * 1024 / line.len()) {
            file.write_all(line).unwrap();
        }
        file.write_all(&std::fs::read(fixture("races/counter.log")).unwrap())
            .unwrap();
    }
    let output = rp_devops(dir.path())
        .args(["--json", "scan-races", "--dry-run"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let err = stderr(&output);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("scanning logs: "))
        .collect();
    assert!(
        (2..=5).contains(&lines.len()),
        "a line per quarter, not a flood: {err}"
    );
    assert!(lines[0].contains("(25%)"), "{err}");
    assert_eq!(json_of(&output)["reports"], 1);

    let quiet = rp_devops(dir.path())
        .args(["-q", "--json", "scan-races", "--dry-run"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!stderr(&quiet).contains("scanning logs"));
}
