//! `scan-races` end to end: the real binary, real log samples, and the
//! stateful fake GitLab with fault injection.

mod support;

use std::io::Write;
use std::path::Path;

use predicates::prelude::*;
use serde_json::Value;
use support::fake_gitlab::blame::{FakeBlameRange, blame_requests};
use support::{FakeGitLab, Fault, fake_gitlab, fixture, rp_devops, rp_devops_with};

const LABEL: &str = "race condition";

/// One test's world: a fake GitLab, and a temporary directory that is the
/// binary's HOME and working directory and holds the test's logs.
struct World {
    gitlab: FakeGitLab,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        Self {
            gitlab: FakeGitLab::start(),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A copy of `tests/fixtures/races/NAME` in the directory, as an argument.
    fn log(&self, name: &str) -> String {
        copy_fixture(self.path(), name)
    }

    /// A copy of `tests/fixtures/races/NAME` under another file name: the
    /// same races in a new log (new sightings).
    fn log_as(&self, name: &str, copy: &str) -> String {
        let target = self.path().join(copy);
        std::fs::copy(fixture(&format!("races/{name}")), &target).expect("copy fixture");
        arg(&target)
    }

    /// A `logs/` directory holding copies of these fixture logs, as an argument.
    fn logs(&self, names: &[&str]) -> String {
        let logs = self.path().join("logs");
        std::fs::create_dir(&logs).expect("create logs dir");
        for name in names {
            copy_fixture(&logs, name);
        }
        arg(&logs)
    }

    /// `rp-devops --json scan-races --host testbox-07 ARGS…` against the
    /// fake GitLab.
    fn scan(&self, args: &[&str]) -> Run {
        self.scan_on(&self.gitlab, args)
    }

    /// The same against another fake GitLab.
    fn scan_on(&self, gitlab: &FakeGitLab, args: &[&str]) -> Run {
        run(rp_devops_with(gitlab, self.path())
            .args(["--json", "scan-races", "--host", "testbox-07"])
            .args(args))
    }

    /// A scan that must succeed: its JSON result.
    fn scan_ok(&self, args: &[&str]) -> Value {
        self.scan(args).ok().json()
    }

    /// The binary set up for the fake GitLab, for other flags or variables.
    fn rp_devops(&self) -> assert_cmd::Command {
        rp_devops_with(&self.gitlab, self.path())
    }

    /// The binary with no GitLab configured at all.
    fn rp_devops_offline(&self) -> assert_cmd::Command {
        rp_devops(self.path())
    }

    /// The binary pointed at `url` with some token and project.
    fn rp_devops_against(&self, url: &str) -> assert_cmd::Command {
        let mut cmd = rp_devops(self.path());
        cmd.env("RP_GITLAB_URL", url)
            .env("RP_GITLAB_TOKEN", "glpat-x")
            .env("RP_PROJECT", "g/p");
        cmd
    }
}

/// What a finished run of the binary left behind.
struct Run(std::process::Output);

fn run(cmd: &mut assert_cmd::Command) -> Run {
    Run(cmd.output().expect("run rp-devops"))
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.0.status.code()
    }

    fn success(&self) -> bool {
        self.0.status.success()
    }

    /// Assert the run succeeded, showing its stderr when it did not.
    fn ok(self) -> Self {
        assert!(self.success(), "{}", self.stderr());
        self
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.0.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document: {e}\nstdout: {}\nstderr: {}",
                self.stdout(),
                self.stderr()
            )
        })
    }
}

fn arg(path: &Path) -> String {
    path.to_str().expect("UTF-8 temp path").to_owned()
}

fn copy_fixture(dir: &Path, name: &str) -> String {
    let target = dir.join(name);
    std::fs::copy(fixture(&format!("races/{name}")), &target).expect("copy fixture");
    arg(&target)
}

fn races(result: &Value) -> &Vec<Value> {
    result["races"].as_array().expect("races is a list")
}

fn actions(result: &Value) -> Vec<&str> {
    races(result)
        .iter()
        .map(|r| r["action"].as_str().expect("action is a string"))
        .collect()
}

/// The race whose title contains `part`.
fn race_titled<'a>(result: &'a Value, part: &str) -> &'a Value {
    races(result)
        .iter()
        .find(|r| r["title"].as_str().is_some_and(|t| t.contains(part)))
        .unwrap_or_else(|| panic!("no race titled …{part}… in {result:#}"))
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
    let world = World::new();
    // The same two races from a plain run, a journald-prefixed run on another
    // host, and a GORACE log_path file; counter.log's race twice, once swapped.
    let logs = world.logs(&[
        "server-run1.log",
        "journald-prefixed.log",
        "gorace-logpath.race.log",
        "counter.log",
    ]);
    std::fs::write(
        Path::new(&logs).join("counter.log.1"),
        counter_swapped_other_build(),
    )
    .unwrap();

    let result = world.scan_ok(&[&logs]);
    assert_eq!(result["files"], 5);
    assert_eq!(result["reports"], 8);
    assert_eq!(races(&result).len(), 3, "{result:#}");
    assert!(actions(&result).iter().all(|a| *a == "created"));

    let issues = world.gitlab.issues();
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
    let touch = race_titled(&result, "Touch");
    assert_eq!(touch["count"], 3);
    assert_eq!(touch["sources"].as_array().unwrap().len(), 3);
    assert_eq!(race_titled(&result, "Add")["count"], 2);
    // Existing issues are found by one label listing, not one search per race,
    // plus one listing at the end because this run created issues.
    assert_eq!(listings_before_first_write(&world.gitlab), 1);
    assert_eq!(world.gitlab.count("GET", "/issues"), 2);
}

#[test]
fn a_new_log_adds_exactly_one_note_per_race_and_no_issue() {
    let world = World::new();
    let log = world.log("cache.log");
    world.scan(&[&log]).ok();
    assert_eq!(world.gitlab.issues().len(), 2);
    assert!(world.gitlab.issues().iter().all(|i| i.notes.is_empty()));

    let next = world.log_as("cache.log", "cache.log.1");
    let result = world.scan_ok(&[&next]);
    assert!(actions(&result).iter().all(|a| *a == "commented"));
    let issues = world.gitlab.issues();
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
    let world = World::new();
    let log = world.log("counter.log");
    assert!(world.scan(&[&log]).success());
    world.gitlab.set_issue_state(1, "closed");

    let day2 = world.log_as("counter.log", "counter.log.2");
    let result = world.scan_ok(&["--no-reopen", &day2]);
    assert_eq!(actions(&result), ["commented"]);
    assert_eq!(world.gitlab.issues()[0].state, "closed");
    assert_eq!(world.gitlab.issues()[0].notes.len(), 1);

    let day3 = world.log_as("counter.log", "counter.log.3");
    let result = world.scan_ok(&[&day3]);
    assert_eq!(actions(&result), ["reopened"]);
    let issue = &world.gitlab.issues()[0];
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
    let world = World::new();
    std::fs::write(
        world.path().join("rp-devops.yml"),
        "races:\n  reopen_closed: false\n",
    )
    .unwrap();
    let log = world.log("counter.log");
    assert!(world.scan(&[&log]).success());
    world.gitlab.set_issue_state(1, "closed");
    let next = world.log_as("counter.log", "counter.log.1");
    assert_eq!(actions(&world.scan(&[&next]).json()), ["commented"]);
    assert_eq!(world.gitlab.issues()[0].state, "closed");
}

#[test]
fn hand_made_issue_with_same_title_is_adopted() {
    let world = World::new();
    let title = "Data race in main.(*scheduler).tick()";
    world.gitlab.add_issue(
        title,
        "Found by the old script on testbox-03.",
        &[LABEL],
        "opened",
    );
    // Same title but another label: not ours to adopt.
    world
        .gitlab
        .add_issue(title, "unrelated", &["bug"], "opened");
    let log = world.log("server-run1.log");
    let result = world.scan_ok(&[&log]);
    let tick = race_titled(&result, title);
    assert_eq!(tick["title"], title);
    assert_eq!(tick["action"], "commented");
    assert_eq!(tick["issue"]["iid"], 1);
    let issues = world.gitlab.issues();
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
    assert!(world.scan(&[&log]).success());
    assert_eq!(world.gitlab.issues().len(), 3);
}

#[test]
fn existing_issues_are_listed_with_pagination_once() {
    let world = World::new();
    world.gitlab.set_page_size(2);
    for n in 0..5 {
        world.gitlab.add_issue(
            &format!("Data race in other.F{n}()"),
            "old",
            &[LABEL],
            "opened",
        );
    }
    let log = world.log("server-run1.log");
    world.scan(&[&log]).ok();
    // 5 issues at 2 a page: 3 pages, one listing.
    assert_eq!(listings_before_first_write(&world.gitlab), 3);
    let listing = world
        .gitlab
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
    assert!(world.scan(&[&log]).success());
    assert_eq!(world.gitlab.issues().len(), 7);
}

#[test]
fn link_pagination_never_leaves_the_configured_host() {
    let world = World::new();
    world.gitlab.set_page_size(1);
    world.gitlab.link_only_pagination("http://evil.invalid:9");
    let title = "Data race in main.(*scheduler).tick()";
    world
        .gitlab
        .add_issue("Data race in other.F()", "old", &[LABEL], "opened");
    world
        .gitlab
        .add_issue(title, "on page 2", &[LABEL], "opened");
    let log = world.log("server-run1.log");
    world.scan(&[&log]).ok();
    assert_eq!(listings_before_first_write(&world.gitlab), 2);
    let tick = &world.gitlab.issues()[1];
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
    let world = World::new();
    let logs = world.logs(&[
        "server-run1.log",
        "cache.log",
        "counter.log",
        "generic.log",
        "tsan-cpp.log",
    ]);
    let closed_race = "Data race in main.(*cache).put() vs main.(*cache).get()";

    let clean = &world.gitlab;
    clean.add_issue(closed_race, "", &[LABEL], "closed");
    for _ in 0..2 {
        assert!(world.scan(&[&logs]).success());
    }

    for seed in [1, 2, 3] {
        let faulty = FakeGitLab::start();
        faulty.add_issue(closed_race, "", &[LABEL], "closed");
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
            let output = world.scan_on(&faulty, &[&logs]);
            assert!(output.success(), "seed {seed}: {}", output.stderr());
        }
        faulty.clear_faults();
        assert_eq!(end_state(&faulty), end_state(clean), "seed {seed}");
        let lost = faulty.requests().len();
        assert!(lost > 20, "the faulty run made {lost} requests");
    }
}

#[test]
fn lost_answer_on_create_is_recovered_by_marker_not_repeated() {
    let world = World::new();
    let log = world.log("counter.log");
    // The listing goes through, then the create is applied but its answer lost.
    world.gitlab.push_faults([
        Fault::Slow(std::time::Duration::from_millis(1)),
        Fault::LostAnswer,
    ]);
    let result = world.scan_ok(&[&log]);
    assert_eq!(world.gitlab.issues().len(), 1);
    assert_eq!(
        world.gitlab.count("POST", "/issues"),
        1,
        "checked by marker, not re-sent"
    );
    assert_eq!(result["races"][0]["issue"]["iid"], 1);
}

#[test]
fn a_slow_answer_times_out_and_is_retried() {
    let world = World::new();
    let log = world.log("counter.log");
    world
        .gitlab
        .push_faults([Fault::Slow(std::time::Duration::from_secs(3))]);
    let output = run(world.rp_devops().env("RP_HTTP_TIMEOUT", "1s").args([
        "--json",
        "scan-races",
        "--host",
        "testbox-07",
        &log,
    ]))
    .ok();
    assert!(output.stderr().contains("timed out"), "{}", output.stderr());
    assert_eq!(
        listings_before_first_write(&world.gitlab),
        2,
        "the listing was asked again"
    );
    assert_eq!(world.gitlab.issues().len(), 1);
}

#[test]
fn retry_after_is_honoured_on_429() {
    let world = World::new();
    let log = world.log("counter.log");
    world.gitlab.push_faults([Fault::Status(429, Some(1))]);
    let started = std::time::Instant::now();
    let output = world.scan(&[&log]).ok();
    assert!(output.stderr().contains("429"), "{}", output.stderr());
    // Waited as told (a lower bound, not a timing assertion on speed).
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(world.gitlab.issues().len(), 1);
}

#[test]
fn dry_run_reads_but_never_writes() {
    let world = World::new();
    let title = "Data race in main.(*scheduler).tick()";
    let iid = world
        .gitlab
        .add_issue(title, "<!-- nothing -->", &[LABEL], "closed");
    let log = world.log("server-run1.log");
    let output = world.scan(&["--dry-run", &log]).ok();
    assert_eq!(actions(&output.json()), ["would-create", "would-reopen"]);
    assert!(
        output.stderr().contains("dry-run: would POST"),
        "{}",
        output.stderr()
    );
    assert!(world.gitlab.requests().iter().all(|r| r.method == "GET"));
    assert_eq!(world.gitlab.issues().len(), 1);
    assert_eq!(world.gitlab.issues()[0].state, "closed");
    assert_eq!(iid, 1);
}

#[test]
fn dry_run_without_gitlab_reads_nothing_remote() {
    let world = World::new();
    let output =
        run(world
            .rp_devops_offline()
            .args(["scan-races", "--dry-run", &arg(&fixture("races"))]))
        .ok();
    let stdout = output.stdout();
    assert!(stdout.contains("would-create"), "{stdout}");
    assert!(stdout.contains("Data race in worker()"), "{stdout}");
}

#[test]
fn reads_stdin_gzip_and_directories() {
    let world = World::new();
    let nested = world.path().join("a/b");
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

    let output = run(world
        .rp_devops()
        .args([
            "--json",
            "scan-races",
            "--host",
            "testbox-07",
            "--dry-run",
            "-",
            &arg(&world.path().join("a")),
        ])
        .write_stdin(std::fs::read(fixture("races/counter.log")).unwrap()))
    .ok();
    let result = output.json();
    assert_eq!(result["files"], 2);
    assert_eq!(result["reports"], 3);
    let sources: Vec<&str> = races(&result)
        .iter()
        .flat_map(|r| r["sources"].as_array().unwrap())
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(sources.contains(&"testbox-07:stdin"), "{sources:?}");
    assert!(
        sources.iter().any(|s| s.ends_with("cache.log.gz")),
        "{sources:?}"
    );
}

#[test]
fn unreadable_file_is_named_and_the_others_still_processed() {
    let world = World::new();
    let log = world.log("counter.log");
    let missing = arg(&world.path().join("no-such.log"));
    let output = world.scan(&[&missing, &log]);
    assert_eq!(output.code(), Some(1), "{}", output.stderr());
    assert!(
        output.stderr().contains("no-such.log"),
        "{}",
        output.stderr()
    );
    // The readable file was still filed, and the result still printed.
    assert_eq!(output.json()["reports"], 1);
    assert_eq!(world.gitlab.issues().len(), 1);
}

#[test]
fn empty_input_and_binary_garbage_are_not_errors() {
    let world = World::new();
    let empty = world.path().join("empty.log");
    std::fs::write(&empty, "").unwrap();
    let garbage = world.path().join("garbage.bin");
    let mut rng = fastrand::Rng::with_seed(42);
    let bytes: Vec<u8> = (0..2_000_000).map(|_| rng.u8(..)).collect();
    std::fs::write(&garbage, bytes).unwrap();
    world
        .rp_devops_offline()
        .args(["scan-races", "--dry-run"])
        .arg(&empty)
        .arg(&garbage)
        .assert()
        .success()
        .stdout(predicate::str::contains("no race reports in 2 files"));
}

#[test]
fn a_100_mb_line_stays_in_bounded_memory() {
    let world = World::new();
    let path = world.path().join("huge-line.log");
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
    let output = Run(std::process::Command::new(time)
        .args(["-f", "peak-rss-kib=%M"])
        .arg(env!("CARGO_BIN_EXE_rp-devops"))
        .args(["--json", "scan-races", "--dry-run"])
        .arg(&path)
        .env_clear()
        .env("HOME", world.path())
        .current_dir(world.path())
        .output()
        .unwrap())
    .ok();
    assert_eq!(
        output.json()["reports"],
        1,
        "the report after the long line is still found"
    );
    let err = output.stderr();
    let rss: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS in {err}"));
    assert!(rss < 64 * 1024, "peak RSS {rss} KiB for a 100 MB line");
}

#[test]
fn wrong_token_fails_with_a_hint_and_never_shows_the_token() {
    let world = World::new();
    let log = world.log("counter.log");
    let output = run(world
        .rp_devops()
        .env("RP_GITLAB_TOKEN", "glpat-wrong-secret-value")
        .args(["-v", "scan-races", &log]));
    assert_eq!(output.code(), Some(1));
    let err = output.stderr();
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
    assert!(!output.stdout().contains("glpat-wrong-secret-value"));
}

#[test]
fn job_token_cannot_create_issues_and_says_so() {
    let world = World::new();
    let log = world.log("counter.log");
    let output = run(world
        .rp_devops_offline()
        .env("CI_SERVER_URL", &world.gitlab.url)
        .env("CI_PROJECT_ID", fake_gitlab::PROJECT_ID.to_string())
        .env("CI_JOB_TOKEN", fake_gitlab::JOB_TOKEN)
        .args(["scan-races", &log]));
    assert_eq!(output.code(), Some(1));
    let err = output.stderr();
    assert!(err.contains("403"), "{err}");
    assert!(
        err.contains("CI_JOB_TOKEN can read") && err.contains("cannot create issues"),
        "{err}"
    );
    assert!(!err.contains(fake_gitlab::JOB_TOKEN));
    // It could read (the listing used JOB-TOKEN), but wrote nothing.
    let listing = world.gitlab.requests().into_iter().next().unwrap();
    assert!(listing.headers.iter().any(|(k, _)| k == "job-token"));
    assert!(world.gitlab.issues().is_empty());
}

#[test]
fn unreachable_gitlab_gives_up_after_bounded_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let world = World::new();
    let log = world.log("counter.log");
    let output = run(world
        .rp_devops_against(&format!("http://127.0.0.1:{port}"))
        .env("RP_HTTP_RETRY_BUDGET", "2s")
        .args(["scan-races", &log])
        .timeout(std::time::Duration::from_secs(60)));
    assert_eq!(output.code(), Some(1));
    let err = output.stderr();
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
    let world = World::new();
    let log = world.log("counter.log");
    let output = run(world.rp_devops_against(&url).args(["scan-races", &log]));
    assert_eq!(output.code(), Some(1));
    assert!(
        output.stderr().contains("not the JSON expected"),
        "{}",
        output.stderr()
    );
}

#[test]
fn fail_on_race_exits_3_after_filing() {
    let world = World::new();
    let log = world.log("counter.log");
    assert_eq!(world.scan(&["--fail-on-race", &log]).code(), Some(3));
    assert_eq!(world.gitlab.issues().len(), 1);
    let clean = world.path().join("clean.log");
    std::fs::write(&clean, "all good\n").unwrap();
    assert_eq!(
        world.scan(&["--fail-on-race", &arg(&clean)]).code(),
        Some(0)
    );
}

#[test]
fn bad_config_is_exit_2_naming_file_line_and_key() {
    let world = World::new();
    std::fs::write(
        world.path().join("rp-devops.yml"),
        "gitlab:\n  url: https://g.example.com\nraces:\n  label: [x]\n",
    )
    .unwrap();
    let output = run(world
        .rp_devops_offline()
        .args(["scan-races", "--dry-run", "-"]));
    assert_eq!(output.code(), Some(2));
    let err = output.stderr();
    assert!(err.contains("rp-devops.yml:4"), "{err}");
    assert!(err.contains("unknown field `label`"), "{err}");
}

#[test]
fn missing_project_is_a_usage_error() {
    let world = World::new();
    let log = world.log("counter.log");
    let output = run(world
        .rp_devops_offline()
        .env("RP_GITLAB_URL", &world.gitlab.url)
        .env("RP_GITLAB_TOKEN", fake_gitlab::TOKEN)
        .args(["scan-races", &log]));
    assert_eq!(output.code(), Some(2), "{}", output.stderr());
    assert!(output.stderr().contains("no GitLab project"));
}

#[test]
fn json_result_shape() {
    let world = World::new();
    let log = world.log("truncated.log");
    let mut result = world.scan_ok(&[&log]);
    result["races"][0]["sources"] = serde_json::json!(["[source]"]);
    result["races"][0]["issue"]["web_url"] = serde_json::json!("[url]");
    insta::assert_json_snapshot!(result);
}

#[test]
fn help_text() {
    let world = World::new();
    let output = run(world.rp_devops_offline().args(["scan-races", "--help"])).ok();
    insta::assert_snapshot!(output.stdout());
}

#[test]
fn a_cut_off_report_counts_towards_its_full_race_in_the_same_run() {
    let world = World::new();
    // truncated.log is cache.log's first race cut off after `put`'s side.
    let logs = world.logs(&["cache.log", "truncated.log"]);
    let result = world.scan_ok(&[&logs]);
    assert_eq!(result["reports"], 3);
    assert_eq!(result["truncated"], 1);
    assert_eq!(races(&result).len(), 2, "{result:#}");
    assert_eq!(
        result["races"][0]["title"],
        "Data race in main.(*cache).put() vs main.(*cache).get()"
    );
    assert_eq!(result["races"][0]["count"], 2);
    assert_eq!(world.gitlab.issues().len(), 2);
}

#[test]
fn a_cut_off_report_and_its_full_race_share_one_issue_across_runs() {
    let world = World::new();
    let truncated = world.log("truncated.log");
    let full = world.log("cache.log");

    // Day 1: only the cut-off report; it gets an issue on its one side.
    assert!(world.scan(&[&truncated]).success());
    assert_eq!(
        world.gitlab.issues()[0].title,
        "Data race in main.(*cache).put()"
    );

    // Day 2: the full race joins that issue (and upgrades its marker); the
    // other race of cache.log is new.
    let result = world.scan_ok(&[&full]);
    assert_eq!(actions(&result), ["commented", "created"]);
    assert_eq!(result["races"][0]["issue"]["iid"], 1);
    let issues = world.gitlab.issues();
    assert_eq!(issues.len(), 2);
    assert!(
        issues[0]
            .description
            .contains(result["races"][0]["fingerprint"].as_str().unwrap())
    );

    // Day 3: the first cut-off report again: noted already (its sighting
    // stayed in the upgraded marker).
    let result = world.scan(&[&truncated]).json();
    assert_eq!(actions(&result), ["already-noted"]);
    assert_eq!(world.gitlab.issues()[0].notes.len(), 1);

    // Day 4: cut off again in a new log: still that issue, found through
    // the full marker.
    let again = world.log_as("truncated.log", "truncated.log.4");
    let result = world.scan(&[&again]).json();
    assert_eq!(result["races"][0]["issue"]["iid"], 1);
    assert_eq!(actions(&result), ["commented"]);
    assert_eq!(world.gitlab.issues().len(), 2);
    assert_eq!(world.gitlab.issues()[0].notes.len(), 2);
}

#[test]
fn two_runs_at_once_leave_one_open_issue_per_race() {
    let world = World::new();
    let gitlab = &world.gitlab;
    let log = world.log("cache.log");
    // Both listings are slowed so each run finds no issue and creates one.
    let slow = Fault::Slow(std::time::Duration::from_millis(1500));
    gitlab.push_faults([slow.clone(), slow]);
    let spawn = |host: &str| {
        support::rp_devops_std_with(gitlab, world.path())
            .args(["--json", "scan-races", "--host", host, &log])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn rp-devops")
    };
    let (a, b) = (spawn("testbox-01"), spawn("testbox-02"));
    let a = Run(a.wait_with_output().unwrap()).ok();
    let b = Run(b.wait_with_output().unwrap()).ok();

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
        a.stderr(),
        b.stderr()
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
    let (a, b) = (a.json(), b.json());
    let mut all_actions = [actions(&a), actions(&b)].concat();
    all_actions.sort();
    assert_eq!(
        all_actions,
        ["commented", "commented", "created", "created"]
    );

    // The next run finds the originals, not the closed duplicates.
    let result = world.scan(&[&log]).json();
    for race in races(&result) {
        assert_eq!(race["action"], "commented");
        let iid = race["issue"]["iid"].as_u64().unwrap();
        assert!(open.iter().any(|o| o.iid == iid));
    }
    assert_eq!(gitlab.issues().len(), 4);
}

#[test]
fn large_inputs_show_a_few_plain_progress_lines_in_ci_logs() {
    let world = World::new();
    let path = world.path().join("big.log");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let line = b"2026/11/28 12:52:21 backup finished for core-sw1 in 1.2s, 4096 configs\n";
        for _ in 0..(80 * 1024 * 1024 / line.len()) {
            file.write_all(line).unwrap();
        }
        file.write_all(&std::fs::read(fixture("races/counter.log")).unwrap())
            .unwrap();
    }
    let big = arg(&path);
    let output = run(world
        .rp_devops_offline()
        .args(["--json", "scan-races", "--dry-run", &big]))
    .ok();
    let err = output.stderr();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("scanning logs: "))
        .collect();
    assert!(
        (2..=5).contains(&lines.len()),
        "a line per quarter, not a flood: {err}"
    );
    assert!(lines[0].contains("(25%)"), "{err}");
    assert_eq!(output.json()["reports"], 1);

    let quiet =
        run(world
            .rp_devops_offline()
            .args(["-q", "--json", "scan-races", "--dry-run", &big]));
    assert!(!quiet.stderr().contains("scanning logs"));
}

#[test]
fn a_symlink_loop_in_a_log_directory_is_read_once() {
    use std::os::unix::fs::symlink;
    let world = World::new();
    let logs = world.logs(&["counter.log", "cache.log"]);
    let logs_dir = Path::new(&logs);
    std::fs::create_dir(logs_dir.join("sub")).unwrap();
    symlink(logs_dir, logs_dir.join("sub/loop")).unwrap();
    symlink("..", logs_dir.join("sub/up")).unwrap();
    symlink("counter.log", logs_dir.join("current.log")).unwrap();
    let result = world.scan_ok(&["--dry-run", &logs]);
    assert_eq!(result["files"], 2, "{result:#}");
    assert_eq!(result["reports"], 3);
    assert!(races(&result).iter().all(|r| r["count"] == 1), "{result:#}");
}

// Issue 10, item 1: memory stays bounded and new issues are capped.

/// A Go race report with stacks `depth` frames deep whose top frames are
/// `main.writer{n}()` and `main.reader{n}()`: each `n` is a distinct race.
fn deep_race(n: usize, depth: usize) -> String {
    let mut out = format!(
        "==================\nWARNING: DATA RACE\nWrite at 0x00c000{n:06x} by goroutine 7:\n  main.writer{n}()\n      /builds/restorepoint/product/cmd/app/race{n}.go:10 +0x1f\n"
    );
    for k in 0..depth {
        out.push_str(&format!(
            "  main.deep{k}()\n      /builds/restorepoint/product/cmd/app/deep.go:{k} +0x2a\n"
        ));
    }
    out.push_str(&format!(
        "\nPrevious read at 0x00c000{n:06x} by goroutine 8:\n  main.reader{n}()\n      /builds/restorepoint/product/cmd/app/race{n}.go:20 +0x1f\n"
    ));
    for k in 0..depth {
        out.push_str(&format!(
            "  main.deep{k}()\n      /builds/restorepoint/product/cmd/app/deep.go:{k} +0x2a\n"
        ));
    }
    out.push_str("\nGoroutine 7 (running) created at:\n  main.main()\n      /builds/restorepoint/product/cmd/app/main.go:5 +0x10\n==================\n");
    out
}

/// `cmd` run under GNU time, which reports its peak RSS on stderr.
fn under_time(cmd: &std::process::Command) -> std::process::Command {
    let time = Path::new("/usr/bin/time");
    assert!(
        time.exists(),
        "GNU time is needed to measure peak memory (Debian package `time`)"
    );
    let mut timed = std::process::Command::new(time);
    timed
        .args(["-f", "peak-rss-kib=%M"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            timed.env(key, value);
        }
    }
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    timed
}

fn peak_rss_kib(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS in {stderr}"))
}

#[test]
fn thousands_of_distinct_races_stay_in_bounded_memory_and_file_only_the_cap() {
    const RACES: usize = 3000;
    const RSS_BOUND_KIB: u64 = 64 * 1024;
    let world = World::new();
    let mut cmd = support::rp_devops_std_with(&world.gitlab, world.path());
    cmd.args(["--json", "scan-races", "--host", "testbox-07", "-"]);
    let mut child = under_time(&cmd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn rp-devops under time");
    // Made as it is written: the test never holds the whole log either.
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let mut written = 0;
        for n in 0..RACES {
            let report = deep_race(n, 200);
            written += report.len();
            stdin.write_all(report.as_bytes()).expect("write a report");
        }
        written
    });
    let output = Run(child.wait_with_output().expect("wait for rp-devops"));
    let written = writer.join().expect("writer thread");
    let err = output.stderr();
    assert_eq!(output.code(), Some(0), "{err}");
    let result = output.json();
    assert_eq!(result["reports"], RACES);
    assert_eq!(races(&result).len(), RACES);

    // Only the cap's worth of issues; the rest reported, and said so.
    assert_eq!(world.gitlab.issues().len(), 20);
    let acts = actions(&result);
    assert_eq!(acts.iter().filter(|a| **a == "created").count(), 20);
    assert!(acts[..20].iter().all(|a| *a == "created"), "in log order");
    let not_filed: Vec<&Value> = races(&result)
        .iter()
        .filter(|r| r["action"] == "not-filed")
        .collect();
    assert_eq!(not_filed.len(), RACES - 20);
    assert!(
        not_filed
            .iter()
            .all(|r| r["reason"] == "races.max_new_issues=20 reached" && r["issue"].is_null()),
        "{:#}",
        not_filed[0]
    );
    assert!(
        err.contains(&format!(
            "warning: {} new races were not filed: races.max_new_issues=20; the next run that sees them files them",
            RACES - 20
        )),
        "{err}"
    );

    // Memory: far below what the log holds (each race's report is ~28 KiB).
    let rss = peak_rss_kib(&err);
    assert!(
        written as u64 > RSS_BOUND_KIB * 1024,
        "the log ({written} bytes) must outgrow the bound"
    );
    eprintln!("peak RSS {rss} KiB for {RACES} races in {written} bytes of log");
    assert!(
        rss < RSS_BOUND_KIB,
        "peak RSS {rss} KiB for {RACES} races in {written} bytes of log"
    );
    // The run kept report texts up to its budget only, and says so.
    assert!(err.contains("race reports were not kept in full"), "{err}");
    let filed = &world.gitlab.issues()[0];
    assert!(filed.description.contains("main.writer0()"));
}

#[test]
fn known_races_are_noted_whatever_the_cap() {
    let world = World::new();
    std::fs::write(
        world.path().join("rp-devops.yml"),
        "races:\n  max_new_issues: 2\n",
    )
    .unwrap();
    let first = world.log("counter.log");
    assert_eq!(actions(&world.scan_ok(&[&first])), ["created"]);

    // Four new races first, then the known one in a new log.
    let logs = world.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let four: String = (0..4).map(|n| deep_race(n, 2)).collect();
    std::fs::write(logs.join("a-new.log"), four).unwrap();
    copy_fixture(&logs, "counter.log");
    let output = world.scan(&[&arg(&logs)]).ok();
    let result = output.json();
    assert_eq!(
        actions(&result),
        ["created", "created", "not-filed", "not-filed", "commented"]
    );
    assert_eq!(world.gitlab.issues().len(), 3);
    assert_eq!(world.gitlab.issues()[0].notes.len(), 1);
    assert!(
        output
            .stderr()
            .contains("2 new races were not filed: races.max_new_issues=2"),
        "{}",
        output.stderr()
    );
    // The next run files them (and --fail-on-race still fails on races).
    let result = world.scan(&["--fail-on-race", &arg(&logs)]);
    assert_eq!(result.code(), Some(3));
    assert_eq!(
        actions(&result.json()),
        [
            "already-noted",
            "already-noted",
            "created",
            "created",
            "already-noted"
        ]
    );
    assert_eq!(world.gitlab.issues().len(), 5);
}

// Issue 10, item 3: text from logs never becomes a marker or a quick action.

#[test]
fn a_marker_quoted_in_a_report_never_identifies_an_issue() {
    let world = World::new();
    let counter = world.log("counter.log");
    let dry = run(world
        .rp_devops_offline()
        .args(["--json", "scan-races", "--dry-run", &counter]))
    .ok()
    .json();
    let fingerprint = dry["races"][0]["fingerprint"].as_str().unwrap().to_owned();

    // cache.log's first race, with a frame below its top one quoting
    // counter.log's marker: the report is quoted verbatim in its issue.
    let forged = format!("<!-- rp-devops:race fingerprint={fingerprint} sides={fingerprint} -->");
    let cache = std::fs::read_to_string(fixture("races/cache.log")).unwrap();
    let hostile = cache.replacen(
        "  main.main.func1()",
        &format!("  main.helper{forged}()"),
        1,
    );
    assert_ne!(hostile, cache);
    let hostile_log = world.path().join("hostile.log");
    std::fs::write(&hostile_log, hostile).unwrap();
    assert_eq!(
        actions(&world.scan_ok(&[&arg(&hostile_log)])),
        ["created", "created"]
    );
    assert!(world.gitlab.issues()[0].description.contains(&forged));

    // counter.log's race is not the hostile issue's: it gets its own.
    let result = world.scan_ok(&[&counter]);
    assert_eq!(actions(&result), ["created"], "{result:#}");
    assert_eq!(result["races"][0]["issue"]["iid"], 3);
    assert!(world.gitlab.issues()[0].notes.is_empty());
}

#[test]
fn file_names_never_become_quick_actions() {
    let world = World::new();
    // Directories named `race\n` and `close\n`: the log's path holds a
    // line that is exactly `/close`.
    let dir = world.path().join("race\n").join("close\n");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.log");
    std::fs::copy(fixture("races/counter.log"), &path).unwrap();
    assert!(arg(&path).lines().any(|l| l == "/close"));
    world.scan(&[&arg(&path)]).ok();
    let issue = &world.gitlab.issues()[0];
    assert!(
        issue.description.lines().all(|l| !l.starts_with('/')),
        "{}",
        issue.description
    );
    assert!(
        issue.description.contains("race\\n/close\\n/x.log"),
        "{}",
        issue.description
    );

    // A note names its sources too.
    let again = world.path().join("again\n").join("close\n");
    std::fs::create_dir_all(&again).unwrap();
    let again = again.join("y.log");
    std::fs::copy(fixture("races/counter.log"), &again).unwrap();
    assert_eq!(actions(&world.scan_ok(&[&arg(&again)])), ["commented"]);
    let note = &world.gitlab.issues()[0].notes[0].body;
    assert!(note.lines().all(|l| !l.starts_with('/')), "{note}");
    assert!(note.contains("again\\n/close\\n/y.log"), "{note}");
    // The fake runs a note's `/close` as GitLab does: the issue is still open.
    assert_eq!(world.gitlab.issues()[0].state, "opened");
}

// Issue 13, part 1: each sighting is noted once.

#[test]
fn rereading_the_same_log_adds_nothing() {
    let world = World::new();
    let log = world.log("cache.log");
    assert_eq!(actions(&world.scan_ok(&[&log])), ["created", "created"]);
    world.gitlab.reset_requests();

    let result = world.scan_ok(&[&log]);
    assert_eq!(actions(&result), ["already-noted", "already-noted"]);
    assert!(races(&result).iter().all(|r| r["issue"]["iid"].is_u64()));
    assert!(world.gitlab.issues().iter().all(|i| i.notes.is_empty()));
    assert!(
        world.gitlab.requests().iter().all(|r| r.method == "GET"),
        "no write at all"
    );
    assert_eq!(world.gitlab.count("GET", "/notes"), 2, "one per known race");
}

#[test]
fn a_sighting_is_noted_once_and_a_new_one_once_more() {
    let world = World::new();
    world.scan(&[&world.log("counter.log")]).ok();

    // The same log twice: one note.
    let day1 = world.log_as("counter.log", "day1.log");
    assert_eq!(actions(&world.scan_ok(&[&day1])), ["commented"]);
    assert_eq!(actions(&world.scan_ok(&[&day1])), ["already-noted"]);
    assert_eq!(world.gitlab.issues()[0].notes.len(), 1);

    // The log grows: the new occurrence further down is one more note.
    let mut grown = std::fs::OpenOptions::new()
        .append(true)
        .open(&day1)
        .unwrap();
    grown
        .write_all(&std::fs::read(fixture("races/counter.log")).unwrap())
        .unwrap();
    drop(grown);
    let result = world.scan_ok(&[&day1]);
    assert_eq!(actions(&result), ["commented"]);
    assert_eq!(result["races"][0]["count"], 2, "both occurrences were read");
    let notes = world.gitlab.issues()[0].notes.clone();
    assert_eq!(notes.len(), 2);
    assert!(
        notes[1]
            .body
            .starts_with("Seen again: **1** time in this run"),
        "only the new occurrence counts: {}",
        notes[1].body
    );

    // A third, new log: one more note; then nothing.
    let day3 = world.log_as("counter.log", "day3.log");
    assert_eq!(actions(&world.scan_ok(&[&day3])), ["commented"]);
    assert_eq!(actions(&world.scan_ok(&[&day1, &day3])), ["already-noted"]);
    assert_eq!(world.gitlab.issues()[0].notes.len(), 3);
    assert_eq!(world.gitlab.issues().len(), 1);
}

#[test]
fn two_hosts_with_copies_of_one_log_get_a_note_each() {
    let world = World::new();
    world.scan(&[&world.log("counter.log")]).ok();
    let copy = world.log_as("counter.log", "shared.log");
    let on = |host: &str| {
        run(world
            .rp_devops()
            .args(["--json", "scan-races", "--host", host, &copy]))
        .ok()
        .json()
    };
    for _ in 0..2 {
        on("testbox-01");
        on("testbox-02");
    }
    let notes = &world.gitlab.issues()[0].notes;
    assert_eq!(notes.len(), 2, "one per host, once");
    assert!(notes[0].body.contains("testbox-01:"));
    assert!(notes[1].body.contains("testbox-02:"));
}

#[test]
fn an_already_noted_sighting_never_reopens_a_closed_issue() {
    let world = World::new();
    let log = world.log("counter.log");
    world.scan(&[&log]).ok();
    world.gitlab.set_issue_state(1, "closed");
    world.gitlab.reset_requests();

    assert_eq!(actions(&world.scan_ok(&[&log])), ["already-noted"]);
    assert_eq!(world.gitlab.issues()[0].state, "closed");
    assert_eq!(world.gitlab.count("PUT", "/issues/1"), 0);

    let next = world.log_as("counter.log", "counter.log.1");
    assert_eq!(actions(&world.scan_ok(&[&next])), ["reopened"]);
    assert_eq!(world.gitlab.issues()[0].state, "opened");
}

// Issue 13, part 2: new race issues name the commits behind their lines.

/// The project the fixtures' race logs were built in.
const RACEGEN_ID: u64 = 910;
const RACEGEN: &str = "restorepoint/racegen";

fn commit(n: u64, author: &str, date: &str, message: &str, lines: usize) -> FakeBlameRange {
    FakeBlameRange {
        sha: format!("{n:x}").repeat(40)[..40].to_owned(),
        author: author.to_owned(),
        date: format!("{date}T09:30:00.000Z"),
        message: message.to_owned(),
        lines,
    }
}

impl World {
    /// A world whose fake GitLab knows restorepoint/racegen, with blame for
    /// `internal/store/store.go`: lines 1–30 by Ann, 31–50 by Bob.
    fn racegen() -> Self {
        let world = World::new();
        world.gitlab.add_project(RACEGEN_ID, RACEGEN);
        world.gitlab.put_blame(
            RACEGEN_ID,
            "master",
            "internal/store/store.go",
            vec![
                commit(0xa, "Ann Author", "2026-11-02", "store: add Add", 30),
                commit(
                    0xb,
                    "Bob Builder",
                    "2026-11-20",
                    "store: Snapshot without the lock\n\nFaster.",
                    20,
                ),
            ],
        );
        world
    }

    /// `scan-races` in restorepoint/racegen.
    fn scan_racegen(&self, args: &[&str]) -> Run {
        run(self
            .rp_devops()
            .env("RP_PROJECT", RACEGEN)
            .args(["--json", "scan-races", "--host", "testbox-07"])
            .args(args))
    }

    fn description(&self, iid: u64) -> String {
        self.gitlab
            .issues()
            .into_iter()
            .find(|i| i.iid == iid)
            .map(|i| i.description)
            .expect("the issue")
    }
}

#[test]
fn new_race_issues_name_the_commits_behind_both_accesses() {
    let world = World::racegen();
    let log = world.log("counter.log");
    let result = world.scan_racegen(&[&log]).ok().json();
    assert_eq!(actions(&result), ["created"]);
    let description = world.description(1);
    let url = format!("{}/{RACEGEN}/-/commit", world.gitlab.url);
    assert!(
        description.contains("#### Last changed\n\n"),
        "{description}"
    );
    assert!(
        description.contains(&format!(
            "- **Write** in `example.com/racegen/internal/store.(*Inventory).Add()` at `internal/store/store.go:23`: [`aaaaaaaa`]({url}/{a}) by Ann Author on 2026-11-02: store: add Add\n",
            a = "a".repeat(40)
        )),
        "{description}"
    );
    assert!(
        description.contains(&format!(
            "- **Previous read** in `example.com/racegen/internal/store.(*Inventory).Snapshot()` at `internal/store/store.go:36`: [`bbbbbbbb`]({url}/{b}) by Bob Builder on 2026-11-20: store: Snapshot without the lock\n",
            b = "b".repeat(40)
        )),
        "{description}"
    );
    // The section comes before the report, the marker stays last.
    let section = description.find("#### Last changed").unwrap();
    assert!(section < description.find("WARNING: DATA RACE").unwrap());
    assert!(description.trim_end().ends_with("-->"));
    let asked = blame_requests(&world.gitlab);
    assert_eq!(
        asked,
        [
            ("internal/store/store.go".to_owned(), "23".to_owned()),
            ("internal/store/store.go".to_owned(), "36".to_owned())
        ]
    );
    let blame = world
        .gitlab
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/blame"))
        .unwrap();
    assert!(blame.query.contains("ref=master"), "{}", blame.query);
    assert!(
        blame
            .query
            .contains("range%5Bstart%5D=23&range%5Bend%5D=23"),
        "{}",
        blame.query
    );

    // A known race is never blamed again.
    let next = world.log_as("counter.log", "counter.log.1");
    assert_eq!(
        actions(&world.scan_racegen(&[&next]).ok().json()),
        ["commented"]
    );
    assert_eq!(blame_requests(&world.gitlab).len(), 2);
}

#[test]
fn go_frames_outside_the_build_directory_are_placed_by_the_module_path() {
    let world = World::racegen();
    world.gitlab.put_file(
        RACEGEN_ID,
        "master",
        "go.mod",
        "module example.com/racegen\n\ngo 1.22\n",
    );
    // Built in /home/ci/racegen: no build directory to strip.
    let log = world.path().join("other-build.log");
    std::fs::write(&log, counter_swapped_other_build()).unwrap();
    world.scan_racegen(&[&arg(&log)]).ok();
    let description = world.description(1);
    assert!(
        description.contains("- **Read** in `example.com/racegen/internal/store.(*Inventory).Snapshot()` at `internal/store/store.go:37`: [`bbbbbbbb`]"),
        "{description}"
    );
    assert!(
        description.contains("- **Previous write** in `example.com/racegen/internal/store.(*Inventory).Add()` at `internal/store/store.go:24`: [`aaaaaaaa`]"),
        "{description}"
    );
    assert_eq!(world.gitlab.count("GET", "/go.mod/raw"), 1);
    assert_eq!(blame_requests(&world.gitlab).len(), 2);
}

#[test]
fn tsan_frames_are_placed_by_the_configured_source_prefixes() {
    let world = World::new();
    std::fs::write(
        world.path().join("rp-devops.yml"),
        "races:\n  source_prefixes: [\"/builds/restorepoint/racegen\"]\n",
    )
    .unwrap();
    world.gitlab.put_blame(
        fake_gitlab::PROJECT_ID,
        "master",
        "tsan.cpp",
        vec![commit(
            0xc,
            "Cy",
            "2026-10-01",
            "tsan: a global counter",
            12,
        )],
    );
    let log = world.log("tsan-cpp.log");
    world.scan_ok(&[&log]);
    let description = world.description(1);
    let line = "in `worker()` at `tsan.cpp:6`: [`cccccccc`]";
    assert_eq!(description.matches(line).count(), 2, "{description}");
    assert!(
        description.contains("- **Read of size 8** in"),
        "{description}"
    );
    // Both accesses are on one line: asked once.
    assert_eq!(
        blame_requests(&world.gitlab),
        [("tsan.cpp".to_owned(), "6".to_owned())]
    );
}

/// counter.log's race with its write in the standard library.
fn race_in_the_standard_library() -> String {
    [
        "WARNING: DATA RACE",
        "Write at 0x00c000112048 by goroutine 23:",
        "  net/textproto.(*Reader).ReadLine()",
        "      /usr/local/go/src/net/textproto/reader.go:40 +0x5c",
        "",
        "Previous read at 0x00c000112048 by goroutine 22:",
        "  example.com/racegen/internal/store.(*Inventory).Snapshot()",
        "      /builds/restorepoint/racegen/internal/store/store.go:36 +0x10a",
        "==================",
        "",
    ]
    .join("\n")
}

#[test]
fn a_frame_in_the_standard_library_is_outside_the_repository_and_not_asked_about() {
    let world = World::racegen();
    let log = world.path().join("std.log");
    std::fs::write(&log, race_in_the_standard_library()).unwrap();
    world.scan_racegen(&[&arg(&log)]).ok();
    let description = world.description(1);
    assert!(
        description.contains("- **Write** in `net/textproto.(*Reader).ReadLine()` at `/usr/local/go/src/net/textproto/reader.go:40 +0x5c`: outside the repository"),
        "{description}"
    );
    assert!(description.contains("[`bbbbbbbb`]"), "{description}");
    assert_eq!(
        blame_requests(&world.gitlab),
        [("internal/store/store.go".to_owned(), "36".to_owned())]
    );
}

#[test]
fn blame_failures_are_warnings_and_the_issue_is_still_filed() {
    let world = World::racegen();
    world
        .gitlab
        .fail_blame(RACEGEN_ID, "internal/store/store.go", 500);
    let log = world.log("counter.log");
    let output = run(world
        .rp_devops()
        .env("RP_PROJECT", RACEGEN)
        .env("RP_HTTP_RETRY_BUDGET", "1s")
        .args(["--json", "scan-races", &log]));
    assert_eq!(output.code(), Some(0), "{}", output.stderr());
    assert_eq!(actions(&output.json()), ["created"]);
    let err = output.stderr();
    assert!(
        err.contains(
            "warning: could not read who last changed internal/store/store.go:23 (the issue is filed without it)"
        ),
        "{err}"
    );
    let description = world.description(1);
    assert_eq!(
        description.matches(": blame could not be read").count(),
        2,
        "{description}"
    );

    // A file GitLab does not have: said in the issue, no warning.
    let world = World::racegen();
    world
        .gitlab
        .fail_blame(RACEGEN_ID, "internal/store/store.go", 404);
    let output = world.scan_racegen(&[&world.log("counter.log")]).ok();
    assert!(!output.stderr().contains("warning"), "{}", output.stderr());
    assert_eq!(
        world
            .description(1)
            .matches("not in the repository's `master` branch")
            .count(),
        2
    );
}

#[test]
fn hostile_frame_paths_never_name_another_repository_file() {
    let world = World::racegen();
    world.gitlab.put_blame(
        RACEGEN_ID,
        "master",
        "secret.go",
        vec![commit(0xd, "Eve", "2026-01-01", "secret", 50)],
    );
    let report = counter_swapped_other_build()
        .replace(
            "/home/ci/racegen/internal/store/store.go:37",
            "/builds/restorepoint/racegen/internal/../../secret.go:37",
        )
        .replace(
            "/home/ci/racegen/internal/store/store.go:24",
            "/builds/restorepoint/racegen/internal%2F..%2F..%2Fsecret.go:24",
        );
    let log = world.path().join("hostile.log");
    std::fs::write(&log, report).unwrap();
    world.scan_racegen(&[&arg(&log)]).ok();
    assert_eq!(blame_requests(&world.gitlab), []);
    let description = world.description(1);
    assert_eq!(
        description.matches(": outside the repository").count(),
        2,
        "{description}"
    );
    assert!(!description.contains("Eve"));
}

#[test]
fn blame_can_be_turned_off() {
    for (flag, config) in [("--no-blame", ""), ("--json", "races:\n  blame: false\n")] {
        let world = World::racegen();
        std::fs::write(world.path().join("rp-devops.yml"), config).unwrap();
        world.scan_racegen(&[flag, &world.log("counter.log")]).ok();
        assert!(!world.description(1).contains("Last changed"));
        assert!(
            world
                .gitlab
                .requests()
                .iter()
                .all(|r| r.path.ends_with("/issues")),
            "only the listings and the create: {:?}",
            world.gitlab.requests()
        );
    }
}

#[test]
fn request_counts_for_new_and_known_races() {
    let world = World::racegen();
    // Two known races (cache.log's), one with two new sightings.
    world.scan_racegen(&[&world.log("cache.log")]).ok();
    let logs = world.logs(&["cache.log", "counter.log", "tsan-cpp.log"]);
    std::fs::write(
        Path::new(&logs).join("cache.log.1"),
        std::fs::read(fixture("races/cache.log")).unwrap(),
    )
    .unwrap();
    world.gitlab.reset_requests();

    let result = world.scan_racegen(&[&logs]).ok().json();
    let acts = actions(&result);
    assert_eq!(acts, ["commented", "commented", "created", "created"]);
    let (known, new) = (2, 2);
    let gitlab = &world.gitlab;
    assert_eq!(listings_before_first_write(gitlab), 1, "one listing");
    assert_eq!(
        gitlab.count("GET", "/issues"),
        2,
        "and one more after creating, for concurrent runs"
    );
    assert_eq!(
        gitlab.count("GET", "/notes"),
        known,
        "one notes listing per known race"
    );
    assert!(blame_requests(gitlab).len() <= 2 * new);
    assert_eq!(
        gitlab.count("GET", &format!("/{}", RACEGEN.replace('/', "%2F"))),
        1,
        "the project, once"
    );
    assert!(gitlab.count("GET", "/go.mod/raw") <= 1);
    assert_eq!(gitlab.count("POST", "/issues"), new, "one write per change");
    assert_eq!(gitlab.count("POST", "/notes"), known);
    assert_eq!(gitlab.count("PUT", ""), 0);
    let total = gitlab.requests().len();
    assert!(
        total <= 1 + 1 + known + 2 + 2 * new + new + known,
        "{total} requests"
    );
}
