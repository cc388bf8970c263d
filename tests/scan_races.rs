//! `scan-races` end to end: the real binary, real log samples, and the
//! stateful fake GitLab with fault injection.

mod support;

use std::io::Write;
use std::path::Path;

use predicates::prelude::*;
use serde_json::Value;
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
fn second_run_adds_exactly_one_note_per_race_and_no_issue() {
    let world = World::new();
    let log = world.log("cache.log");
    world.scan(&[&log]).ok();
    assert_eq!(world.gitlab.issues().len(), 2);
    assert!(world.gitlab.issues().iter().all(|i| i.notes.is_empty()));

    let result = world.scan_ok(&[&log]);
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

    let result = world.scan_ok(&["--no-reopen", &log]);
    assert_eq!(actions(&result), ["commented"]);
    assert_eq!(world.gitlab.issues()[0].state, "closed");
    assert_eq!(world.gitlab.issues()[0].notes.len(), 1);

    let result = world.scan_ok(&[&log]);
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
    assert_eq!(actions(&world.scan(&[&log]).json()), ["commented"]);
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

    // Day 3: cut off again: still that issue, found through the full marker.
    let result = world.scan(&[&truncated]).json();
    assert_eq!(result["races"][0]["issue"]["iid"], 1);
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
