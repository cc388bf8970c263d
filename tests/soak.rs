//! `serve` under load and abuse: a soak, not part of `cargo test` (this
//! target has `test = false`); `scripts/soak-serve.sh` runs it.
//!
//! One real `rp-devops serve` (release receiver and webhook, in front of the
//! in-process fake GitLab), on loopback only, started with the file
//! descriptor limit a systemd service gets by default (soft 1024;
//! `SOAK_SERVE_NOFILE` changes it). While a monitor asks `/healthz` every
//! 100 ms (each on a new connection, 2 s allowed) and samples serve's RSS
//! from `/proc`, it goes through:
//! 1. 200 concurrent small uploads (every one must land, with its MD5);
//! 2. 2,000 half-open connections held for 10 s (a request head cut
//!    short, or nothing at all);
//! 3. garbage requests (random bytes, broken HTTP, huge headers, bad
//!    multipart);
//! 4. oversize bodies (declared and undeclared, 2 × `release.max_size`);
//! 5. a burst of 1,000 webhook deliveries for 50 merge requests (with
//!    redeliveries): each event's work done once, none lost, checked in the
//!    fake GitLab's end state.
//!
//! The five run in rounds (`SOAK_ROUNDS`, default 2): memory is flat when a
//! later round does not grow what the first one left. Then: serve is still up, no temporary file is left in the release
//! directory, and SIGTERM stops it cleanly. Every check is reported as PASS
//! or FAIL with what was seen; the test fails if any check failed. It stops
//! by itself (each phase has a time limit).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fake_gitlab::PROJECT_ID;
use support::fake_gitlab::merge_requests::{BOT_USERNAME, NewMr};
use support::release::{Form, md5_of};
use support::{FakeGitLab, Fault, fixture};

const SECRET: &str = "soak-release-secret";
const HOOK_SECRET: &str = "soak-hook-secret";
const MAX_SIZE: usize = 4 * 1024 * 1024;
const UPLOADS: usize = 200;
const HALF_OPEN: usize = 2_000;
const DELIVERIES: usize = 1_000;
const MRS: u64 = 50;
const HEALTH_LIMIT: Duration = Duration::from_secs(2);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Raise this process's own descriptor limit (it holds the half-open
/// connections); serve gets its own below.
fn raise_own_nofile() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a stack value.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

struct Serve {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Serve {
    fn start(gitlab: &FakeGitLab, nofile: u64) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("rp-devops.yml"),
            format!(
                "workflow:\n  labels: [\"to do\", \"in review\", \"test\"]\n  on_open: in review\n  on_merge: test\n\
                 webhook:\n  secret_env: HOOK_SECRET\n\
                 release:\n  dir: {}\n  secret_env: REL_SECRET\n  max_size: {MAX_SIZE}\n  \
                 products:\n    app: {{}}\n",
                dir.path().join("rel").display()
            ),
        )
        .expect("config");
        let log = std::fs::File::create(dir.path().join("serve.log")).expect("log");
        let mut cmd = support::rp_devops_std_with(gitlab, dir.path());
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env("REL_SECRET", SECRET)
            .env("HOOK_SECRET", HOOK_SECRET)
            .env("RP_HTTP_RETRY_BUDGET", "10s")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Never outlive the load generator, however it ends.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                let mut limit = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
                limit.rlim_cur = nofile.min(limit.rlim_max);
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start serve");
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

    fn rel(&self) -> PathBuf {
        self.dir.path().join("rel")
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET /healthz on a new connection: the time it took, or why it failed.
fn healthz(port: u16) -> Result<Duration, String> {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        HEALTH_LIMIT,
    )
    .map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(HEALTH_LIMIT)).ok();
    stream.set_write_timeout(Some(HEALTH_LIMIT)).ok();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let took = started.elapsed();
    if answer.starts_with(b"HTTP/1.1 200") && took <= HEALTH_LIMIT {
        Ok(took)
    } else {
        Err(format!(
            "after {took:?}: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(80)])
        ))
    }
}

/// What the monitor saw: health answers and RSS samples, per phase.
#[derive(Default)]
struct Watch {
    phase: String,
    /// (phase, answers, failures, slowest, first failure)
    health: Vec<(String, usize, usize, Duration, Option<String>)>,
    /// (phase, RSS KiB)
    rss: Vec<(String, u64)>,
}

impl Watch {
    fn enter(&mut self, phase: &str) {
        self.phase = phase.to_owned();
        self.health
            .push((phase.to_owned(), 0, 0, Duration::ZERO, None));
    }

    fn record(&mut self, result: Result<Duration, String>, rss: Option<u64>) {
        let phase = self.phase.clone();
        if let Some(entry) = self.health.last_mut() {
            entry.1 += 1;
            match result {
                Ok(took) => entry.3 = entry.3.max(took),
                Err(e) => {
                    entry.2 += 1;
                    entry.4.get_or_insert(e);
                }
            }
        }
        if let Some(rss) = rss {
            self.rss.push((phase, rss));
        }
    }

    fn peak_rss(&self, phase: &str) -> u64 {
        self.rss
            .iter()
            .filter(|(p, _)| p == phase)
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(0)
    }
}

struct Report {
    checks: Vec<(bool, String, String)>,
}

impl Report {
    fn check(&mut self, ok: bool, what: &str, detail: impl Into<String>) {
        let detail = detail.into();
        println!("{} {what}: {detail}", if ok { "PASS" } else { "FAIL" });
        self.checks.push((ok, what.to_owned(), detail));
    }
}

fn upload(port: u16, version: &str, data: &[u8]) -> (u16, String) {
    let form = Form::new()
        .field("product", "app")
        .field("version", version)
        .field("md5", &md5_of(data))
        .file("app.tgz", data);
    let body = form.clone_body();
    let head = form.head(SECRET, body.len());
    raw(port, head.as_bytes(), &body, Duration::from_secs(120))
}

trait CloneBody {
    fn clone_body(&self) -> Vec<u8>;
}

impl CloneBody for Form {
    fn clone_body(&self) -> Vec<u8> {
        let mut body = self.parts.clone();
        body.extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        body
    }
}

/// Send bytes, read the answer until the server closes (or the limit).
fn raw(port: u16, head: &[u8], body: &[u8], limit: Duration) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, "connect failed".into());
    };
    stream.set_read_timeout(Some(limit)).ok();
    stream.set_write_timeout(Some(limit)).ok();
    if stream.write_all(head).is_err() {
        return (0, "send failed".into());
    }
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    support::release::parse_answer(&answer)
}

/// Send bytes and shut the sending side; the status of the answer, 0 when
/// the server closed without one.
fn abuse(port: u16, head: &[u8], body: &[u8]) -> u16 {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    stream.set_write_timeout(Some(Duration::from_secs(5))).ok();
    let _ = stream.write_all(head);
    let _ = stream.write_all(body);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    support::release::parse_answer(&answer).0
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if entry.file_name().to_string_lossy().starts_with(".rp-tmp") {
                found.push(path);
            }
        }
    }
    found
}

fn hook_payload(iid: u64, action: &str) -> Vec<u8> {
    let path = fixture("gitlab/webhook-merge-request.json");
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("payload")).expect("JSON");
    v["project"]["id"] = json!(PROJECT_ID);
    v["object_attributes"]["iid"] = json!(iid);
    v["object_attributes"]["target_project_id"] = json!(PROJECT_ID);
    v["object_attributes"]["action"] = json!(action);
    v["changes"] = json!({});
    serde_json::to_vec(&v).expect("payload")
}

/// One round of every kind of load and abuse.
fn load_round(
    round: usize,
    serve: &Serve,
    gitlab: &FakeGitLab,
    report: &mut Report,
    enter: &dyn Fn(&str),
) {
    let port = serve.port;
    // 1. 200 concurrent small uploads.
    enter(&format!("200 concurrent uploads (round {round})"));
    let uploads: Vec<(String, Vec<u8>)> = (0..UPLOADS)
        .map(|k| {
            let data: Vec<u8> = (0..20_000 + k * 97).map(|i| (i * 31 + k) as u8).collect();
            (format!("{round}.{k}"), data)
        })
        .collect();
    let results: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = uploads
            .iter()
            .map(|(version, data)| scope.spawn(move || upload(port, version, data)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((0, "panicked".into())))
            .collect()
    });
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let mut landed = 0;
    for (version, data) in &uploads {
        let path = serve.rel().join("app").join(version).join("app.tgz");
        if std::fs::read(&path).is_ok_and(|d| d == *data) {
            landed += 1;
        }
    }
    let failures: Vec<&(u16, String)> = results.iter().filter(|(s, _)| *s != 201).take(3).collect();
    report.check(
        created == UPLOADS && landed == UPLOADS,
        &format!("every good upload lands (round {round})"),
        format!("{created} of {UPLOADS} answered 201, {landed} stored intact; first failures: {failures:?}"),
    );

    // 2. 2,000 half-open connections, held 10 s.
    enter(&format!("2,000 half-open connections (round {round})"));
    let mut held = Vec::new();
    let mut refused = 0;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for k in 0..HALF_OPEN {
        // A full accept queue makes connect wait for SYN retries: bounded.
        match TcpStream::connect_timeout(&address, Duration::from_millis(500)) {
            Ok(mut stream) => {
                if k % 2 == 0 {
                    let _ = stream.write_all(
                        b"POST /api/v1/releases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\n",
                    );
                }
                held.push(stream);
            }
            Err(_) => refused += 1,
        }
    }
    let fds_while_held = serve.open_fds();
    std::thread::sleep(Duration::from_secs(10));
    let still_open = held
        .iter_mut()
        .filter(|s| {
            s.set_nonblocking(true).ok();
            let mut byte = [0u8; 1];
            matches!(s.peek(&mut byte), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count();
    drop(held);
    println!(
        "soak: {} connections opened ({refused} refused), serve had {fds_while_held} files open, {still_open} still open after 10 s",
        HALF_OPEN - refused
    );

    // 3. Garbage.
    enter(&format!("garbage requests (round {round})"));
    let mut rng = fastrand::Rng::with_seed(10 + round as u64);
    let mut garbage_answers = std::collections::BTreeMap::<u16, usize>::new();
    let mut garbage: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for k in 0..400 {
        let (head, body): (Vec<u8>, Vec<u8>) = match k % 8 {
            0 => ((0..rng.usize(1..4000)).map(|_| rng.u8(..)).collect(), Vec::new()),
            1 => (b"GARBAGE / HTTP/9.9\r\n\r\n".to_vec(), Vec::new()),
            2 => (
                format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000)).into_bytes(),
                Vec::new(),
            ),
            3 => (
                format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(200_000))
                    .into_bytes(),
                Vec::new(),
            ),
            4 => {
                let body = b"--zz\r\nContent-Disposition: form-data; name=\"product\"\r\n\r\napp\r\n--zz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nno filename, no end".to_vec();
                (
                    format!("POST /api/v1/releases HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {SECRET}\r\nContent-Type: multipart/form-data; boundary=zz\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes(),
                    body,
                )
            }
            5 => (
                format!("POST /hooks/gitlab HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Gitlab-Token: {HOOK_SECRET}\r\nContent-Length: 9\r\n\r\n").into_bytes(),
                b"{not json".to_vec(),
            ),
            6 => {
                let headers: String = (0..2000).map(|i| format!("X-H{i}: v\r\n")).collect();
                (format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n").into_bytes(), Vec::new())
            }
            _ => (
                format!("POST /api/v1/releases HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {SECRET}\r\nTransfer-Encoding: chunked\r\nContent-Type: multipart/form-data; boundary=q\r\n\r\nZZZ\r\nnot chunked\r\n").into_bytes(),
                Vec::new(),
            ),
        };
        garbage.push((head, body));
    }
    // Sent 16 at a time; each client then shuts its side, as a scanner does.
    let answers: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = garbage
            .chunks(garbage.len().div_ceil(16))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(head, body)| abuse(port, head, body))
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    for status in answers {
        *garbage_answers.entry(status).or_default() += 1;
    }
    println!("soak: answers to garbage (0 = closed without one): {garbage_answers:?}");
    let server_errors: usize = garbage_answers
        .iter()
        .filter(|(s, _)| **s >= 500)
        .map(|(_, n)| n)
        .sum();
    report.check(
        server_errors == 0,
        &format!("garbage gets no 5xx (round {round})"),
        format!("answers by status: {garbage_answers:?}"),
    );

    // 4. Oversize bodies.
    enter(&format!("oversize bodies (round {round})"));
    let big = vec![b'x'; 2 * MAX_SIZE];
    let oversize: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|k| {
                let big = &big;
                scope.spawn(move || {
                    let form = Form::new()
                        .field("product", "app")
                        .field("version", &format!("big.{round}.{k}"))
                        .field("md5", "0123456789abcdef0123456789abcdef")
                        .file("big.tgz", big);
                    let body = form.clone_body();
                    if k % 2 == 0 {
                        // Declared: refused from the head.
                        let head = form.head(SECRET, body.len());
                        raw(port, head.as_bytes(), &body, Duration::from_secs(60))
                    } else {
                        // Chunked, undeclared: refused once past the limit.
                        let head = format!(
                            "POST /api/v1/releases HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {SECRET}\r\nContent-Type: multipart/form-data; boundary={}\r\nTransfer-Encoding: chunked\r\n\r\n",
                            form.boundary
                        );
                        let mut chunked = Vec::new();
                        for chunk in body.chunks(64 * 1024) {
                            chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                            chunked.extend_from_slice(chunk);
                            chunked.extend_from_slice(b"\r\n");
                        }
                        chunked.extend_from_slice(b"0\r\n\r\n");
                        raw(port, head.as_bytes(), &chunked, Duration::from_secs(60))
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((0, "panicked".into())))
            .collect()
    });
    let refused_413 = oversize.iter().filter(|(s, _)| *s == 413).count();
    report.check(
        refused_413 == oversize.len(),
        &format!("oversize bodies are refused with 413 (round {round})"),
        format!(
            "{refused_413} of {} answered 413; others: {:?}",
            oversize.len(),
            oversize
                .iter()
                .filter(|(s, _)| *s != 413)
                .map(|(s, _)| s)
                .collect::<Vec<_>>()
        ),
    );

    // 5. 1,000 webhook deliveries for 50 MRs, a tenth of them redeliveries.
    enter(&format!("1,000 webhook deliveries (round {round})"));
    gitlab.reset_requests();
    // 900 distinct events (an open per MR, then updates), each ninth
    // followed by a redelivery of an event sent a little earlier.
    let mut events: Vec<(Vec<u8>, String)> = Vec::new();
    let mut distinct = 0;
    for k in 0..DELIVERIES * 9 / 10 {
        let iid = (k as u64 % MRS) + 1;
        let action = if k < MRS as usize { "open" } else { "update" };
        events.push((hook_payload(iid, action), format!("soak-{round}-{k}")));
        distinct += 1;
        if k % 9 == 8 {
            let again = events[events.len() - 4].clone();
            events.push(again);
        }
    }
    let handled = |log: &str| {
        log.lines()
            .filter(|l| {
                l.starts_with("webhook: !")
                    && !l.contains("; retrying in")
                    && !l.contains(") not handled")
            })
            .count()
    };
    let handled_before = handled(&serve.log());
    let accepted = std::sync::atomic::AtomicUsize::new(0);
    let duplicates = std::sync::atomic::AtomicUsize::new(0);
    let chunks: Vec<&[(Vec<u8>, String)]> = events.chunks(DELIVERIES / 20).collect();
    std::thread::scope(|scope| {
        for chunk in &chunks {
            let (accepted, duplicates) = (&accepted, &duplicates);
            scope.spawn(move || {
                for (body, uuid) in *chunk {
                    let head = format!(
                        "POST /hooks/gitlab HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nX-Gitlab-Event: Merge Request Hook\r\nX-Gitlab-Token: {HOOK_SECRET}\r\nX-Gitlab-Event-UUID: {uuid}\r\nIdempotency-Key: {uuid}\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    let (status, answer) = raw(port, head.as_bytes(), body, Duration::from_secs(10));
                    if status == 200 && answer.contains("accepted") {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    } else if status == 200 && answer.contains("duplicate") {
                        duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let accepted = accepted.into_inner();
    let redelivered = duplicates.into_inner();
    let wait_started = Instant::now();
    while handled(&serve.log()) < handled_before + accepted
        && wait_started.elapsed() < Duration::from_secs(300)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = serve.log();
    let done = handled(&log) - handled_before;
    let given_up = log.lines().filter(|l| l.contains(") not handled")).count();
    let threads_ok = (1..=MRS).all(|iid| {
        let open = gitlab
            .mr(iid)
            .discussions
            .iter()
            .filter(|d| d.notes[0].author == BOT_USERNAME)
            .count();
        open == usize::from(iid % 2 == 1)
    });
    let labels_ok = gitlab.issues().iter().all(|i| i.labels == ["in review"]);
    let discussions = gitlab.count("POST", "/discussions");
    let edits = gitlab.count("PUT", "");
    report.check(
        accepted == distinct && accepted + redelivered == DELIVERIES,
        &format!("every delivery is answered, redeliveries as duplicates (round {round})"),
        format!(
            "{accepted} accepted, {redelivered} duplicates of {DELIVERIES} ({distinct} distinct)"
        ),
    );
    report.check(
        done == accepted && given_up == 0,
        &format!("webhook work is not lost (round {round})"),
        format!(
            "{done} of {accepted} events handled, {given_up} given up, in {:.0?}",
            wait_started.elapsed()
        ),
    );
    // The first round opens the threads and moves the issues; later
    // rounds find everything done.
    let (want_threads, want_edits) = if round == 1 {
        ((MRS as usize).div_ceil(2), MRS as usize)
    } else {
        (0, 0)
    };
    report.check(
        threads_ok && labels_ok && discussions == want_threads && edits == want_edits,
        &format!("webhook work is not doubled (round {round})"),
        format!(
            "one thread per mismatched MR: {threads_ok}; issues in \"in review\": {labels_ok}; \
             {discussions} threads opened (expected {want_threads}), {edits} label edits \
             (expected {want_edits})"
        ),
    );
}

#[test]
fn serve_under_load_and_abuse() {
    let own_nofile = raise_own_nofile();
    let serve_nofile = env_number("SOAK_SERVE_NOFILE", 1024);
    println!(
        "soak: load generator may open {own_nofile} files; serve starts with a soft limit of {serve_nofile}"
    );
    assert!(
        own_nofile as usize > HALF_OPEN + 200,
        "raise `ulimit -Hn` above {} for the load generator",
        HALF_OPEN + 200
    );
    let gitlab = FakeGitLab::start();
    gitlab.add_labels(PROJECT_ID, &["to do", "in review", "test"]);
    for n in 1..=MRS {
        let issue = gitlab.add_issue("issue", "", &["to do"], "opened");
        let (source, target) = (format!("feature/{n}"), format!("release/{n}"));
        let sv = if n % 2 == 1 { "5.3.1" } else { "5.4.1" };
        gitlab.put_file(PROJECT_ID, &source, "VERSION", sv);
        gitlab.put_file(PROJECT_ID, &target, "VERSION", "5.4.0");
        gitlab.add_mr(NewMr {
            description: format!("Fixes #{issue}"),
            source_branch: source,
            target_branch: target,
            ..NewMr::default()
        });
    }
    // GitLab answers take a little while, as a real one's do.
    gitlab.random_faults(1.0, 1, vec![Fault::Slow(Duration::from_millis(3))]);
    let mut serve = Serve::start(&gitlab, serve_nofile);
    let port = serve.port;
    let pid = serve.child.id();
    let mut report = Report { checks: Vec::new() };
    let started = Instant::now();

    // The monitor.
    let watch = Arc::new(Mutex::new(Watch::default()));
    let stop = Arc::new(AtomicBool::new(false));
    watch.lock().expect("watch").enter("warm-up");
    let monitor = {
        let (watch, stop) = (watch.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let result = healthz(port);
                let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("VmRSS:"))
                            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                    });
                watch.lock().expect("watch").record(result, rss);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let enter = |phase: &str| {
        println!("soak: {phase} ({:.0?} in)", started.elapsed());
        watch.lock().expect("watch").enter(phase);
    };

    // Warm-up: a few uploads and deliveries, then the baseline.
    for k in 0..5 {
        let data = vec![b'w'; 10_000 + k];
        upload(port, &format!("warm.{k}"), &data);
    }
    std::thread::sleep(Duration::from_secs(2));
    let baseline = serve.rss_kib().unwrap_or(0);
    println!(
        "soak: baseline RSS {baseline} KiB, {} open files",
        serve.open_fds()
    );

    let rounds = env_number("SOAK_ROUNDS", 2) as usize;
    let mut rss_after = Vec::new();
    for round in 1..=rounds {
        load_round(round, &serve, &gitlab, &mut report, &enter);
        std::thread::sleep(Duration::from_secs(2));
        let rss = serve.rss_kib().unwrap_or(0);
        println!("soak: RSS after round {round}: {rss} KiB");
        rss_after.push(rss);
    }

    // Settle, then the end checks.
    enter("settled");
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let _ = monitor.join();
    let watch = watch.lock().expect("watch");
    for (phase, answers, failed, slowest, first) in &watch.health {
        report.check(
            *failed == 0 && *answers > 0,
            &format!("/healthz within 2 s during {phase}"),
            format!(
                "{answers} asked, {failed} failed or slow, slowest {slowest:.0?}{}; peak RSS {} KiB",
                first.as_ref().map(|f| format!(", first failure: {f}")).unwrap_or_default(),
                watch.peak_rss(phase)
            ),
        );
    }
    let after = serve.rss_kib().unwrap_or(u64::MAX);
    let peak = watch.rss.iter().map(|(_, r)| *r).max().unwrap_or(0);
    // Flat: once the first round has sized the pools and caches, further
    // rounds of the same load do not grow it.
    let first = rss_after.first().copied().unwrap_or(after);
    report.check(
        after <= first + 16 * 1024 && after <= baseline + 128 * 1024,
        "memory stays flat",
        format!(
            "RSS {baseline} KiB after warm-up, {} KiB after each round, peak {peak} KiB, \
             {after} KiB at the end",
            rss_after
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" / ")
        ),
    );
    drop(watch);
    let alive = serve.alive();
    report.check(
        alive,
        "serve stays up",
        format!("running after {:.0?}", started.elapsed()),
    );
    let leftovers = temp_files(&serve.rel());
    report.check(
        leftovers.is_empty(),
        "no temporary file is left",
        format!(
            "{} left: {:?}",
            leftovers.len(),
            leftovers.iter().take(5).collect::<Vec<_>>()
        ),
    );
    if alive {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let stopping = Instant::now();
        let mut code = None;
        while stopping.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = serve.child.try_wait() {
                code = status.code();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        report.check(
            code == Some(0),
            "SIGTERM stops it cleanly",
            format!("exit code {code:?}"),
        );
    }
    let log = serve.log();
    let accept_failures = log.lines().filter(|l| l.contains("accept failed")).count();
    println!(
        "soak: {} log lines, {accept_failures} \"accept failed\"; took {:.0?}",
        log.lines().count(),
        started.elapsed()
    );
    let failed: Vec<&String> = report
        .checks
        .iter()
        .filter(|(ok, _, _)| !ok)
        .map(|(_, what, _)| what)
        .collect();
    println!(
        "soak: {} checks, {} failed{}",
        report.checks.len(),
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(": {failed:?}")
        }
    );
    assert!(failed.is_empty(), "failed checks: {failed:?}");
}
