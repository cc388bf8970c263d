//! Chaos: every way rp-devops writes to GitLab or Freshdesk, run against
//! fakes that answer a random share of requests with 429, 5xx, a reset
//! connection, a slow answer (some slower than the client's time limit), or
//! apply a write and lose its answer.
//!
//! Each scenario is played once without faults (the reference), then once
//! per seed with faults, re-running each step until it succeeds (the
//! contract: re-running is always safe). Once the faults stop, the end state
//! (issues, notes, discussions, labels, releases, ticket notes, tags and
//! fields) must equal the reference's: nothing duplicated, nothing missing.
//! One known difference is counted apart instead of compared: the
//! "Last changed" section of a new race issue (best effort by design).
//!
//! `RP_CHAOS_RUNS` (default 3) seeds per scenario, starting at
//! `RP_CHAOS_SEED` (default 1); `scripts/chaos-nightly.sh` runs 50. Each
//! scenario prints one line of figures (`chaos NAME: …`, seen with
//! `--nocapture`) and appends it as JSON to the file named by
//! `RP_CHAOS_REPORT`, if set. A failing seed is reported with its number:
//! `RP_CHAOS_SEED=N RP_CHAOS_RUNS=1 cargo test --test chaos NAME` replays it.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::{Value, json};
use support::escalation::EscalationServer;
use support::fake_freshdesk::{self, FakeFreshdesk, NewConversation};
use support::fake_gitlab::merge_requests::{BOT_USERNAME, NewMr, sha_of};
use support::fake_gitlab::{self, PROJECT_ID};
use support::{FakeGitLab, Fault, fixture};

/// One request's time limit in chaos runs; [`TIMED_OUT`] answers come later.
const TIMEOUT: &str = "300ms";
const TIMED_OUT: Duration = Duration::from_millis(450);
/// A failing step is re-run this often with the faults still on; then the
/// faults stop and it must succeed within a few more runs.
const FAULTY_TRIES: usize = 30;
/// The project escalations go to.
const ESCALATIONS: u64 = 900;
const RACE_LABEL: &str = "race condition";
const BOARD: &[&str] = &["to do", "in development", "in review", "test", "testing"];
const WORKFLOW: &str = "workflow:\n  labels: [\"to do\", \"in development\", \"in review\", \"test\", \"testing\"]\n  on_open: in review\n  on_merge: test\n";
const WEBHOOK_SECRET: &str = "chaos-hook-secret";

/// What the fakes inject, picked at random for a share of the requests.
fn faults() -> Vec<Fault> {
    vec![
        Fault::Status(429, Some(0)),
        Fault::Status(429, None),
        Fault::Status(500, None),
        Fault::Status(502, None),
        Fault::Status(503, None),
        Fault::Status(504, None),
        Fault::Drop,
        Fault::LostAnswer,
        Fault::LostAnswer,
        Fault::Slow(Duration::from_millis(25)),
        Fault::Slow(TIMED_OUT),
    ]
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn seeds() -> Vec<u64> {
    let first = env_number("RP_CHAOS_SEED", 1);
    let runs = env_number("RP_CHAOS_RUNS", 3);
    (first..first + runs).collect()
}

/// From 10 % to 60 % of the requests, depending on the seed.
fn fault_rate(seed: u64) -> f64 {
    0.1 + 0.1 * (seed % 6) as f64
}

/// How long the clients keep retrying one request, depending on the seed:
/// a short budget makes runs fail halfway, so that re-runs finish their work.
fn retry_budget(seed: u64) -> &'static str {
    ["5s", "500ms", "150ms"][(seed % 3) as usize]
}

/// The fakes' random generator: the seed, made different per scenario.
fn fault_seed(scenario: &str, seed: u64) -> u64 {
    scenario
        .bytes()
        .fold(seed, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

// ---------------------------------------------------------------------------
// The world of one play: fakes, a home directory, maybe a server.

struct World {
    gitlab: FakeGitLab,
    fd: Option<FakeFreshdesk>,
    home: tempfile::TempDir,
    server: Option<Serve>,
    escalation: Option<EscalationServer>,
    /// `RP_HTTP_RETRY_BUDGET` of the commands and servers.
    budget: &'static str,
    /// Command runs (or deliveries, clicks) made.
    invocations: usize,
    reruns: usize,
    /// Steps that only succeeded once the faults stopped.
    needed_calm: usize,
    last_errors: Vec<String>,
}

impl World {
    fn new(with_freshdesk: bool) -> Self {
        let gitlab = FakeGitLab::start();
        gitlab.add_labels(PROJECT_ID, BOARD);
        Self {
            gitlab,
            fd: with_freshdesk.then(FakeFreshdesk::start),
            home: tempfile::tempdir().expect("tempdir"),
            server: None,
            escalation: None,
            budget: "5s",
            invocations: 0,
            reruns: 0,
            needed_calm: 0,
            last_errors: Vec::new(),
        }
    }

    fn fd(&self) -> &FakeFreshdesk {
        self.fd.as_ref().expect("a scenario with Freshdesk")
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    fn write_config(&self, text: &str) {
        std::fs::write(self.home().join("rp-devops.yml"), text).expect("config");
    }

    fn start_faults(&self, scenario: &str, seed: u64) {
        let rate = fault_rate(seed);
        let seed = fault_seed(scenario, seed);
        self.gitlab.random_faults(rate, seed, faults());
        if let Some(fd) = &self.fd {
            fd.random_faults(rate, seed.wrapping_mul(7919).wrapping_add(13), faults());
        }
    }

    fn stop_faults(&self) {
        self.gitlab.clear_faults();
        if let Some(fd) = &self.fd {
            fd.clear_faults();
        }
    }

    /// The real binary, set up for the fakes, with chaos-sized time limits.
    fn rp_devops(&self) -> Command {
        let mut cmd = support::rp_devops_std_with(&self.gitlab, self.home());
        cmd.env("RP_HTTP_TIMEOUT", TIMEOUT)
            .env("RP_HTTP_RETRY_BUDGET", self.budget)
            .stdin(Stdio::null());
        if self.fd.is_some() {
            cmd.env("FD_KEY", fake_freshdesk::API_KEY);
        }
        cmd
    }

    /// Run `rp-devops ARGS`; `Err` with the end of its stderr if it failed.
    fn run(&mut self, args: &[&str]) -> Result<(), String> {
        self.invocations += 1;
        let out = self.rp_devops().args(args).output().expect("run rp-devops");
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "rp-devops {} exited with {:?}: {}",
                args.join(" "),
                out.status.code(),
                tail(&String::from_utf8_lossy(&out.stderr))
            ))
        }
    }

    /// Every request the fakes received.
    fn requests(&self) -> usize {
        self.gitlab.requests().len() + self.fd.as_ref().map_or(0, |fd| fd.requests().len())
    }

    fn faults_injected(&self) -> BTreeMap<&'static str, usize> {
        let mut all = self.gitlab.faults_injected();
        if let Some(fd) = &self.fd {
            for (kind, n) in fd.faults_injected() {
                *all.entry(kind).or_default() += n;
            }
        }
        all
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(6)..].join(" | ")
}

// ---------------------------------------------------------------------------
// End states.

/// scan-races's "Last changed" section: best effort by design (README: a
/// failed blame read is a warning and the issue is filed without it).
static LAST_CHANGED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"#### Last changed\n\n(?:- [^\n]*\n)+\n").expect("regex"));

/// Differences that are not lost or duplicated work, counted apart:
/// (what, how many in this end state).
fn known_deviations(items: &[String]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    counts.insert(
        "blame sections",
        items.iter().filter(|i| LAST_CHANGED.is_match(i)).count(),
    );
    counts
}

/// The "Last changed" sections of an end state: a run may lack some of the
/// reference's, never have one the reference does not.
fn blame_sections(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = items
        .iter()
        .flat_map(|i| LAST_CHANGED.find_iter(i).map(|m| m.as_str().to_owned()))
        .collect();
    out.sort();
    out
}

/// The end state with the known deviations taken out.
fn comparable(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = items
        .iter()
        .map(|i| LAST_CHANGED.replace_all(i, "").into_owned())
        .collect();
    out.sort();
    out
}

static UPLOAD_SECRET: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"/uploads/[0-9a-f]{32}/").expect("regex"));
static RUN_ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"run=[^ ]+").expect("regex"));

/// What differs between two plays by construction: the fakes' URLs, the
/// secret path GitLab gives each upload, scan-races's run id.
fn normalize(w: &World, text: &str) -> String {
    let mut text = text.replace(&w.gitlab.url, "<gitlab>");
    if let Some(fd) = &w.fd {
        text = text
            .replace(&fd.url, "<freshdesk>")
            .replace(&fd.cdn_url, "<cdn>");
    }
    let text = UPLOAD_SECRET.replace_all(&text, "/uploads/<secret>/");
    RUN_ID.replace_all(&text, "run=<run>").into_owned()
}

/// Everything a person could see in GitLab and Freshdesk, one line per
/// item, sorted: a duplicate shows as an extra line, a loss as a missing one.
fn end_state(w: &World) -> Vec<String> {
    let n = |text: &str| normalize(w, text);
    let mut items = Vec::new();
    for issue in w.gitlab.issues() {
        let mut labels = issue.labels.clone();
        labels.sort();
        items.push(format!(
            "issue {}#{} [{}] {:?} labels={labels:?}\n{}",
            issue.project_id,
            issue.iid,
            issue.state,
            issue.title,
            n(&issue.description)
        ));
        for note in &issue.notes {
            items.push(format!(
                "note on {}#{}: {}",
                issue.project_id,
                issue.iid,
                n(&note.body)
            ));
        }
    }
    let (mrs, labels, projects) = {
        let s = w.gitlab.lock();
        (
            s.mr.mrs.clone(),
            s.mr.labels.clone(),
            s.projects.iter().map(|p| p.id).collect::<Vec<_>>(),
        )
    };
    for mr in mrs {
        for d in &mr.discussions {
            items.push(format!(
                "discussion on !{} resolvable={} resolved={} of {} notes",
                mr.iid,
                d.resolvable(),
                d.resolved(),
                d.notes.len()
            ));
            for note in &d.notes {
                items.push(format!(
                    "discussion note on !{} by {} resolved={}: {}",
                    mr.iid,
                    note.author,
                    note.resolved,
                    n(&note.body)
                ));
            }
        }
    }
    for (project, mut list) in labels {
        list.sort();
        items.push(format!("labels of {project}: {list:?}"));
    }
    for project in projects {
        for release in w.gitlab.releases(project) {
            items.push(format!(
                "release in {project}: {} {}",
                release["tag_name"],
                n(release["description"].as_str().unwrap_or_default())
            ));
        }
    }
    if let Some(fd) = &w.fd {
        let tickets: Vec<_> = fd.lock().tickets.values().cloned().collect();
        for t in tickets {
            items.push(format!(
                "ticket {} tags={:?} fields={}",
                t.id,
                t.tags,
                n(&Value::Object(t.custom_fields.clone()).to_string())
            ));
            for c in &t.conversations {
                items.push(format!(
                    "conversation on {} private={}: {}",
                    t.id,
                    c.private,
                    n(&c.body)
                ));
            }
        }
    }
    items.sort();
    items
}

/// (lines only in `got`, lines only in `reference`), counting repeats.
fn difference(reference: &[String], got: &[String]) -> (Vec<String>, Vec<String>) {
    let mut counts: BTreeMap<&String, i64> = BTreeMap::new();
    for item in got {
        *counts.entry(item).or_default() += 1;
    }
    for item in reference {
        *counts.entry(item).or_default() -= 1;
    }
    let mut extra = Vec::new();
    let mut missing = Vec::new();
    for (item, count) in counts {
        for _ in 0..count.max(0) {
            extra.push(item.clone());
        }
        for _ in 0..(-count).max(0) {
            missing.push(item.clone());
        }
    }
    (extra, missing)
}

// ---------------------------------------------------------------------------
// Scenarios and the driver.

type Step = fn(&mut World) -> Result<(), String>;

struct Scenario {
    name: &'static str,
    freshdesk: bool,
    setup: fn(&mut World),
    /// Run in order; each is re-run until it succeeds.
    steps: &'static [Step],
}

struct Play {
    state: Vec<String>,
    invocations: usize,
    requests: usize,
    faults: BTreeMap<&'static str, usize>,
    reruns: usize,
    needed_calm: usize,
}

fn play(scenario: &Scenario, seed: Option<u64>) -> Play {
    let mut w = World::new(scenario.freshdesk);
    if let Some(seed) = seed {
        w.budget = retry_budget(seed);
    }
    (scenario.setup)(&mut w);
    if let Some(seed) = seed {
        w.start_faults(scenario.name, seed);
    }
    for (i, step) in scenario.steps.iter().enumerate() {
        let mut tries = 0;
        loop {
            tries += 1;
            match step(&mut w) {
                Ok(()) => break,
                Err(e) => {
                    assert!(
                        seed.is_some(),
                        "{}: step {i} failed without faults: {e}",
                        scenario.name
                    );
                    w.last_errors.push(e);
                    w.reruns += 1;
                    if tries == FAULTY_TRIES {
                        w.stop_faults();
                        w.needed_calm += 1;
                    }
                    assert!(
                        tries < FAULTY_TRIES + 3,
                        "{} seed {seed:?}: step {i} keeps failing once the faults stopped: {:?}",
                        scenario.name,
                        w.last_errors
                    );
                }
            }
        }
    }
    w.stop_faults();
    if let Some(server) = &w.server {
        // The webhook's own re-runs of an event whose GitLab calls failed.
        w.reruns += server
            .log()
            .lines()
            .filter(|l| RETRYING.is_match(l))
            .count();
    }
    Play {
        state: end_state(&w),
        invocations: w.invocations,
        requests: w.requests(),
        faults: w.faults_injected(),
        reruns: w.reruns,
        needed_calm: w.needed_calm,
    }
}

fn chaos(scenario: &Scenario) {
    let reference = play(scenario, None);
    assert!(!reference.state.is_empty());
    let seeds = seeds();
    let mut failures = Vec::new();
    let (mut invocations, mut requests, mut reruns, mut calm) = (0, 0, 0, 0);
    let (mut duplicates, mut missing) = (0, 0);
    let mut faults: BTreeMap<&'static str, usize> = BTreeMap::new();
    let reference_known = known_deviations(&reference.state);
    let mut known: BTreeMap<&'static str, usize> = BTreeMap::new();
    for &seed in &seeds {
        let run = play(scenario, Some(seed));
        invocations += run.invocations;
        requests += run.requests;
        reruns += run.reruns;
        calm += run.needed_calm;
        for (kind, n) in run.faults {
            *faults.entry(kind).or_default() += n;
        }
        for (what, n) in known_deviations(&run.state) {
            *known.entry(what).or_default() += reference_known[what].saturating_sub(n);
        }
        let (mut extra, lost) = difference(&comparable(&reference.state), &comparable(&run.state));
        // Blame sections may be missing (counted above), never extra or wrong.
        let (wrong_blame, _) = difference(
            &blame_sections(&reference.state),
            &blame_sections(&run.state),
        );
        extra.extend(wrong_blame);
        duplicates += extra.len();
        missing += lost.len();
        if !extra.is_empty() || !lost.is_empty() {
            failures.push(format!(
                "seed {seed} (fault rate {:.0} %, retry budget {}):\n  extra: {extra:#?}\n  missing: {lost:#?}",
                fault_rate(seed) * 100.0,
                retry_budget(seed)
            ));
        }
    }
    let injected: usize = faults.values().sum();
    let kinds: Vec<String> = faults.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let deviations: Vec<String> = known
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(what, n)| format!("{n} {what} left out"))
        .collect();
    let line = format!(
        "chaos {}: {} seeded runs, {invocations} invocations, {requests} requests, \
         {injected} faults injected ({}), {reruns} re-runs ({calm} after the faults stopped), \
         {duplicates} duplicates, {missing} missing{}",
        scenario.name,
        seeds.len(),
        kinds.join(", "),
        if deviations.is_empty() {
            String::new()
        } else {
            format!(" (known, not compared: {})", deviations.join(", "))
        }
    );
    eprintln!("{line}");
    if let Ok(path) = std::env::var("RP_CHAOS_REPORT") {
        let record = json!({
            "scenario": scenario.name, "seeds": seeds.len(), "first_seed": seeds.first(),
            "invocations": invocations, "requests": requests, "faults": faults,
            "faults_injected": injected, "reruns": reruns, "reruns_after_faults": calm,
            "duplicates": duplicates, "missing": missing, "known_deviations": known,
        });
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{record}");
        }
    }
    assert!(
        injected > 0,
        "{}: no fault was injected; the suite proves nothing",
        scenario.name
    );
    assert!(
        failures.is_empty(),
        "{}: end states differ from the fault-free run's:\n{}",
        scenario.name,
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// scan-races

fn copy_logs(w: &World, dir: &str, names: &[&str]) {
    let target = w.home().join(dir);
    std::fs::create_dir_all(&target).expect("logs dir");
    for name in names {
        std::fs::copy(fixture(&format!("races/{name}")), target.join(name)).expect("copy log");
    }
}

fn scan(w: &mut World, dir: &str) -> Result<(), String> {
    w.run(&["--json", "scan-races", "--host", "testbox-07", dir])
}

#[test]
fn scan_races() {
    chaos(&Scenario {
        name: "scan-races",
        freshdesk: false,
        setup: |w| {
            copy_logs(
                w,
                "day1",
                &[
                    "server-run1.log",
                    "cache.log",
                    "counter.log",
                    "generic.log",
                    "tsan-cpp.log",
                    "truncated.log",
                ],
            );
            copy_logs(
                w,
                "day2",
                &[
                    "cache.log",
                    "journald-prefixed.log",
                    "gotest.log",
                    "counter.log",
                ],
            );
            // A fixed race that comes back (reopened), and one filed by hand
            // without a marker (adopted).
            w.gitlab.add_issue(
                "Data race in main.(*cache).put() vs main.(*cache).get()",
                "fixed in 5.2",
                &[RACE_LABEL],
                "closed",
            );
            w.gitlab.add_issue(
                "Data race in main.(*scheduler).tick()",
                "seen by hand",
                &[RACE_LABEL],
                "opened",
            );
        },
        steps: &[|w| scan(w, "day1"), |w| scan(w, "day2")],
    });
}

// ---------------------------------------------------------------------------
// check-versions

fn versions_mr(w: &World, source: &str, sv: &str, target: &str, tv: &str) {
    w.gitlab.put_file(PROJECT_ID, source, "VERSION", sv);
    w.gitlab.put_file(PROJECT_ID, target, "VERSION", tv);
    w.gitlab.add_mr(NewMr {
        source_branch: source.into(),
        target_branch: target.into(),
        ..NewMr::default()
    });
}

fn check_versions(w: &mut World, iid: u64) -> Result<(), String> {
    w.run(&["--json", "check-versions", "--mr", &iid.to_string()])
}

fn bot_thread(w: &World, iid: u64) -> String {
    w.gitlab
        .mr(iid)
        .discussions
        .iter()
        .find(|d| d.notes[0].author == BOT_USERNAME)
        .map(|d| d.id.clone())
        .expect("rp-devops's thread")
}

#[test]
fn check_versions_threads() {
    chaos(&Scenario {
        name: "check-versions",
        freshdesk: false,
        setup: |w| {
            w.write_config("");
            versions_mr(w, "fix/a", "5.3.1\n", "release/5.4", "5.4.0\n");
            versions_mr(w, "fix/b", "5.4.1\n", "release/5.4", "5.4.0\n");
            versions_mr(w, "fix/c", "5.3.9\n", "release/5.4", "5.4.0\n");
            versions_mr(w, "fix/d", "5.3.2\n", "release/5.4", "5.4.0\n");
        },
        steps: &[
            |w| check_versions(w, 1),
            |w| check_versions(w, 2),
            |w| check_versions(w, 3),
            // The version of !3 is fixed: its thread gets resolved.
            |w| {
                w.gitlab.put_file(PROJECT_ID, "fix/c", "VERSION", "5.4.2\n");
                Ok(())
            },
            |w| check_versions(w, 3),
            |w| check_versions(w, 4),
            // A person resolves !4's thread; then its versions change.
            |w| {
                let id = bot_thread(w, 4);
                w.gitlab.person_resolves(4, &id, true);
                w.gitlab.put_file(PROJECT_ID, "fix/d", "VERSION", "5.2.0\n");
                Ok(())
            },
            |w| check_versions(w, 4),
        ],
    });
}

// ---------------------------------------------------------------------------
// transition-issues

fn board_issues(w: &World) {
    w.gitlab.add_issue("one", "", &["to do"], "opened");
    w.gitlab
        .add_issue("two", "", &["in development", "bug"], "opened");
    w.gitlab.add_issue("three", "", &["testing"], "opened");
    w.gitlab.add_issue("four", "", &["to do"], "closed");
    w.gitlab.add_issue("five", "", &[], "opened");
    w.gitlab
        .add_issue("six", "", &["in review", "customer"], "opened");
}

#[test]
fn transition_issues_labels() {
    chaos(&Scenario {
        name: "transition-issues",
        freshdesk: false,
        setup: |w| {
            w.write_config(WORKFLOW);
            board_issues(w);
            w.gitlab.add_mr(NewMr {
                title: "Fix the crash (#1)".into(),
                description: "Closes #2, #3 and #4.".into(),
                commits: vec!["Handle empty input\n\nFixes #5".into()],
                ..NewMr::default()
            });
            w.gitlab.add_mr(NewMr {
                title: "Faster backups".into(),
                description: "restorepoint/product#6 and #1".into(),
                state: "merged".into(),
                merge_commit_sha: Some(sha_of(0xfeed)),
                ..NewMr::default()
            });
        },
        steps: &[
            |w| w.run(&["--json", "transition-issues", "--mr", "1"]),
            |w| w.run(&["--json", "transition-issues", "--commit", &sha_of(0xfeed)]),
        ],
    });
}

// ---------------------------------------------------------------------------
// escalate

fn escalate_config(w: &World) {
    w.write_config(&format!(
        "gitlab:\n  project: restorepoint/product\nfreshdesk:\n  url: {}\n  \
         api_key_env: FD_KEY\n  project: support/escalations\n  labels: [freshdesk, support]\n  \
         tag: escalated\n  link_field: cf_gitlab_issue\n",
        w.fd().url
    ));
}

fn reply(body: &str, at: &str) -> NewConversation {
    NewConversation {
        body: body.to_owned(),
        incoming: true,
        from_email: Some("ada@customer.example".to_owned()),
        created_at: Some(at.to_owned()),
        ..Default::default()
    }
}

/// Ticket 20 with attachments on the ticket and on a reply, a private
/// note; ticket 21 with 30 replies.
fn tickets(w: &World) {
    w.gitlab.add_project(ESCALATIONS, "support/escalations");
    let fd = w.fd();
    fd.add_ticket(
        20,
        "Backups fail at night",
        "<div>Backups stop at night since <b>5.2</b>.</div><ul><li>server: <code>backup-01</code></li></ul>",
    );
    fd.edit_ticket(20, |t| t.tags = vec!["vip".into()]);
    fd.add_ticket_attachment(20, "backup.log", "text/plain", b"02:05 ERROR disk full\n");
    fd.add_ticket_attachment(20, "dialog.png", "image/png", b"PNG-ish bytes");
    let mut with_file = reply("<p>Here are the logs.</p>", "2015-08-25T09:00:00Z");
    with_file.attachments = vec![("agent.log".into(), "text/plain".into(), b"crash".to_vec())];
    fd.add_conversation(20, with_file);
    fd.add_conversation(
        20,
        NewConversation {
            body: "<p>Same customer as ticket 17.</p>".into(),
            private: true,
            created_at: Some("2015-08-25T10:00:00Z".into()),
            ..Default::default()
        },
    );
    fd.add_ticket(21, "Chatty", "<p>start</p>");
    for k in 0..30 {
        fd.add_conversation(
            21,
            reply(&format!("<p>message {k}</p>"), "2015-08-26T09:00:00Z"),
        );
    }
}

/// The same later conversation in every play.
fn later_reply(w: &mut World) -> Result<(), String> {
    w.fd().add_conversation(
        20,
        reply("<p>Still failing on Tuesday.</p>", "2015-09-01T09:00:00Z"),
    );
    Ok(())
}

#[test]
fn escalate_tickets() {
    chaos(&Scenario {
        name: "escalate",
        freshdesk: true,
        setup: |w| {
            escalate_config(w);
            tickets(w);
        },
        steps: &[
            |w| w.run(&["--json", "escalate", "20"]),
            |w| w.run(&["--json", "escalate", "21"]),
            later_reply,
            |w| w.run(&["--json", "escalate", "20", "--sync"]),
        ],
    });
}

// ---------------------------------------------------------------------------
// serve: the webhook

/// A real `rp-devops serve` with a config; stops when dropped.
struct Serve {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Serve {
    fn start(w: &World, config: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("rp-devops.yml"), config).expect("config");
        let log = std::fs::File::create(dir.path().join("serve.log")).expect("log");
        let child = support::rp_devops_std_with(&w.gitlab, dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("RP_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("RP_HTTP_TIMEOUT", TIMEOUT)
            .env("RP_HTTP_RETRY_BUDGET", w.budget)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start serve");
        let mut child = child;
        let port = support::serve_port(
            &mut child,
            &dir.path().join("serve.log"),
            Duration::from_secs(30),
        );
        Self { dir, port, child }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hook_payload(iid: u64, action: &str) -> Vec<u8> {
    let path = fixture("gitlab/webhook-merge-request.json");
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("payload")).expect("JSON");
    v["project"]["id"] = json!(PROJECT_ID);
    v["object_attributes"]["iid"] = json!(iid);
    v["object_attributes"]["target_project_id"] = json!(PROJECT_ID);
    v["object_attributes"]["source_project_id"] = json!(PROJECT_ID);
    v["object_attributes"]["action"] = json!(action);
    v["changes"] = json!({});
    serde_json::to_vec(&v).expect("payload")
}

fn deliver(port: u16, body: &[u8], uuid: &str) -> Result<(u16, String), String> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(15)))
        .build()
        .new_agent();
    let mut response = agent
        .post(&format!("http://127.0.0.1:{port}/hooks/gitlab"))
        .header("content-type", "application/json")
        .header("x-gitlab-event", "Merge Request Hook")
        .header("x-gitlab-token", WEBHOOK_SECRET)
        .header("x-gitlab-event-uuid", uuid)
        .header("idempotency-key", uuid)
        .send(body)
        .map_err(|e| format!("delivery {uuid}: {e}"))?;
    let status = response.status().as_u16();
    Ok((
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    ))
}

static RETRYING: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"; retrying in [0-9.]+s$").expect("regex"));
static HANDLED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^webhook: !(\d+) in project \d+ \((\w+)\)(:| not handled:)").expect("regex")
});

/// The events the log says were finished, done or given up: (iid, action, done).
fn finished_events(log: &str) -> Vec<(u64, String, bool)> {
    log.lines()
        .filter(|l| !RETRYING.is_match(l))
        .filter_map(|l| {
            let caps = HANDLED.captures(l)?;
            Some((caps[1].parse().ok()?, caps[2].to_owned(), &caps[3] == ":"))
        })
        .collect()
}

/// The webhook's events: (iid, action); MR 5 and 6 are merged.
const HOOK_EVENTS: &[(u64, &str)] = &[
    (1, "open"),
    (2, "open"),
    (3, "open"),
    (4, "open"),
    (1, "update"),
    (2, "update"),
    (3, "reopen"),
    (5, "merge"),
    (6, "merge"),
    (4, "update"),
];

/// Deliver every event (each also redelivered once, as GitLab does when it
/// misses an answer), wait until each is done or given up, and redeliver
/// (with a new UUID: GitLab's "Resend") those given up, until all are done.
fn webhook_deliveries(w: &mut World) -> Result<(), String> {
    let port = w.server.as_ref().expect("serve").port;
    let mut pending: Vec<(u64, &str, String)> = HOOK_EVENTS
        .iter()
        .map(|(iid, action)| (*iid, *action, format!("{action}-{iid}")))
        .collect();
    let mut expected = 0;
    for round in 0.. {
        for (iid, action, uuid) in &pending {
            let body = hook_payload(*iid, action);
            let uuid = format!("{uuid}-{round}");
            for _ in 0..2 {
                w.invocations += 1;
                let (status, answer) = deliver(port, &body, &uuid)?;
                if status != 200 {
                    return Err(format!("delivery {uuid}: {status} {answer}"));
                }
            }
            expected += 1;
        }
        let started = Instant::now();
        let finished = loop {
            let finished = finished_events(&w.server.as_ref().expect("serve").log());
            if finished.len() >= expected {
                break finished;
            }
            if started.elapsed() > Duration::from_secs(180) {
                return Err(format!(
                    "{} of {expected} events finished after 3 minutes",
                    finished.len()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            finished.len(),
            expected,
            "a redelivered event was handled twice: {finished:?}"
        );
        let given_up: Vec<(u64, String)> = finished[finished.len() - pending.len()..]
            .iter()
            .filter(|(_, _, done)| !done)
            .map(|(iid, action, _)| (*iid, action.clone()))
            .collect();
        if given_up.is_empty() {
            return Ok(());
        }
        w.reruns += given_up.len();
        pending.retain(|(iid, action, _)| given_up.iter().any(|(i, a)| i == iid && a == action));
    }
    unreachable!()
}

#[test]
fn serve_webhook() {
    chaos(&Scenario {
        name: "serve webhook",
        freshdesk: false,
        setup: |w| {
            // MRs 1-4 open (1 and 3 with mismatched versions), 5 and 6
            // merged; each mentions its own issue.
            for n in 1..=6u64 {
                let issue = w.gitlab.add_issue("issue", "", &["to do"], "opened");
                let (source, target) = (format!("feature/{n}"), format!("release/{n}"));
                let sv = if n % 2 == 1 { "5.3.1" } else { "5.4.1" };
                w.gitlab.put_file(PROJECT_ID, &source, "VERSION", sv);
                w.gitlab.put_file(PROJECT_ID, &target, "VERSION", "5.4.0");
                w.gitlab.add_mr(NewMr {
                    description: format!("Fixes #{issue}"),
                    source_branch: source,
                    target_branch: target,
                    state: if n >= 5 { "merged" } else { "opened" }.into(),
                    ..NewMr::default()
                });
            }
            let config = format!("{WORKFLOW}webhook:\n  secret_env: RP_WEBHOOK_SECRET\n");
            w.server = Some(Serve::start(w, &config));
        },
        steps: &[webhook_deliveries],
    });
}

// ---------------------------------------------------------------------------
// serve: the escalation endpoint

fn click(w: &mut World, ticket: &str) -> Result<(), String> {
    w.invocations += 1;
    let server = w.escalation.as_ref().expect("serve");
    let answer = support::escalation::click(server, ticket);
    match answer.status {
        200 | 201 => Ok(()),
        status => Err(format!("click on {ticket}: {status} {}", answer.body)),
    }
}

#[test]
fn serve_escalation_endpoint() {
    chaos(&Scenario {
        name: "serve escalation endpoint",
        freshdesk: true,
        setup: |w| {
            tickets(w);
            w.escalation = Some(EscalationServer::start(
                &w.gitlab,
                w.fd(),
                "https://acme.freshdesk.com",
                &[
                    ("RP_HTTP_TIMEOUT", TIMEOUT),
                    ("RP_HTTP_RETRY_BUDGET", w.budget),
                ],
            ));
        },
        steps: &[
            |w| click(w, "20"),
            |w| click(w, "21"),
            later_reply,
            |w| click(w, "20"),
        ],
    });
}

#[test]
fn a_duplicate_note_is_an_extra_line_and_a_lost_one_a_missing_line() {
    // The yardstick itself.
    let w = World::new(false);
    w.gitlab.add_issue("a race", "", &[RACE_LABEL], "opened");
    let note = |id| fake_gitlab::FakeNote {
        id,
        body: "seen again".into(),
    };
    w.gitlab.lock().issues[0].notes.push(note(1));
    let once = end_state(&w);
    w.gitlab.lock().issues[0].notes.push(note(2));
    let twice = end_state(&w);
    let (extra, missing) = difference(&once, &twice);
    assert_eq!(extra, ["note on 855#1: seen again"]);
    assert!(missing.is_empty());
    let (extra, missing) = difference(&twice, &once);
    assert!(extra.is_empty());
    assert_eq!(missing, ["note on 855#1: seen again"]);
}
