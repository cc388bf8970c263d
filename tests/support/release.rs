//! Test support for the release pipeline: a real `rp-devops serve` process on
//! a free port with its own config, release dir and scripts; helpers to run
//! our `release upload` (through the hermetic launcher of `support`), plain
//! `curl -F`, raw HTTP over a TcpStream, and a bare socket posing as a server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SECRET: &str = "s3cr3t-must-never-leak-9f2c";

/// A release receiver: `rp-devops serve` with a `release:` section.
pub struct Receiver {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// `http` or `https` (from the start-up line).
    pub scheme: String,
    child: Option<Child>,
}

/// The scripts every receiver gets. `app` counts its runs, sources the .env
/// and writes what it got; `flaky` fails while `fail-flag` exists; `slow`
/// outlives its timeout; `sleepy` takes `nap` seconds (a metadata field,
/// default 3) and counts its runs.
const APP_SCRIPT: &str = r#"#!/bin/sh
dir=$(dirname "$0")
echo "$RELEASE_VERSION" >> "$dir/app-runs.log"
. "$2"
printf '%s\n' "$note" > "$dir/got-note.txt"
printf 'args=%s %s\n' "$(basename "$1")" "$(basename "$2")"
printf 'env channel=%s secret=%s\n' "$channel" "${RP_RELEASE_SECRET:-unset}"
"#;
const FLAKY_SCRIPT: &str = r#"#!/bin/sh
dir=$(dirname "$0")
echo run >> "$dir/flaky-runs.log"
if [ -e "$dir/fail-flag" ]; then echo "deploy failed: disk on fire" >&2; exit 7; fi
echo deployed
"#;
const SLEEPY_SCRIPT: &str = r#"#!/bin/sh
dir=$(dirname "$0")
echo "$RELEASE_VERSION" >> "$dir/sleepy-runs.log"
sleep "${nap:-3}"
echo "slept ${nap:-3}s"
"#;
const SLOW_SCRIPT: &str = r#"#!/bin/sh
dir=$(dirname "$0")
echo $$ > "$dir/slow.pid"
sleep 30 &
echo $! > "$dir/slow-child.pid"
sleep 30
echo never
"#;

impl Receiver {
    pub fn start() -> Self {
        Self::start_with_max("4MiB")
    }

    pub fn start_with_max(max_size: &str) -> Self {
        let mut receiver = Self::unstarted(max_size);
        receiver.spawn();
        receiver
    }

    /// Everything but the process, to prepare the release dir first; then
    /// call `spawn`.
    pub fn unstarted(max_size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for (name, body) in [
            ("app.sh", APP_SCRIPT),
            ("flaky.sh", FLAKY_SCRIPT),
            ("slow.sh", SLOW_SCRIPT),
            ("sleepy.sh", SLEEPY_SCRIPT),
        ] {
            write_executable(&root.join(name), body);
        }
        let config = format!(
            "release:\n  dir: {rel}\n  max_size: {max_size}\n  products:\n    \
             app:\n      required: [version, channel]\n      script: {root}/app.sh\n      timeout: 20s\n    \
             flaky:\n      script: {root}/flaky.sh\n      timeout: 20s\n    \
             slow:\n      script: {root}/slow.sh\n      timeout: 1s\n    \
             sleepy:\n      script: {root}/sleepy.sh\n      timeout: 20s\n    \
             plain: {{}}\n    \
             example:\n      required: [version, channel]\n      script: {example}\n      timeout: 20s\n",
            example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/release.sh"),
            rel = root.join("rel").display(),
            root = root.display(),
        );
        std::fs::write(root.join("rp-devops.yml"), config).expect("config");
        Self {
            dir,
            port: 0,
            scheme: "http".to_owned(),
            child: None,
        }
    }

    /// Add YAML to the config file (before `spawn`), e.g. a `serve:` section.
    pub fn add_config(&self, yaml: &str) {
        let path = self.root().join("rp-devops.yml");
        let mut config = std::fs::read_to_string(&path).expect("config");
        config.push_str(yaml);
        std::fs::write(path, config).expect("config");
    }

    pub fn spawn(&mut self) {
        self.spawn_full(&[], &[], &[]);
    }

    /// Start `serve` with these variables added to its environment.
    pub fn spawn_with(&mut self, env: &[(&str, &str)]) {
        self.spawn_full(&[], &[], env);
    }

    /// Start serve with extra arguments, under `launcher` (a command that
    /// runs the rest, like `prlimit --nofile=64:64`) when not empty.
    pub fn spawn_under(&mut self, launcher: &[&str], args: &[&str]) {
        self.spawn_full(launcher, args, &[]);
    }

    fn spawn_full(&mut self, launcher: &[&str], args: &[&str], env: &[(&str, &str)]) {
        let root = self.dir.path();
        let log = std::fs::File::create(root.join("serve.log")).expect("log");
        let mut command = super::rp_devops_std(root);
        if let Some((program, rest)) = launcher.split_first() {
            let binary = command.get_program().to_owned();
            // The same clean environment, the program run by the launcher.
            let mut wrapped = Command::new(program);
            wrapped.args(rest).arg(binary).env_clear().current_dir(root);
            for (key, value) in command.get_envs() {
                if let Some(value) = value {
                    wrapped.env(key, value);
                }
            }
            command = wrapped;
        }
        let child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(root.join("rp-devops.yml"))
            .args(args)
            .env("RP_RELEASE_SECRET", SECRET)
            .env("RELEASE_PUBLISH_DIR", root.join("published"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rp-devops serve");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            let log = self.log();
            let listening = log.lines().find_map(|l| {
                let rest = l.strip_prefix("listening on ")?;
                let (scheme, address) = rest.split_once("://127.0.0.1:")?;
                Some((scheme.to_owned(), address.trim().parse().ok()?))
            });
            if let Some((scheme, port)) = listening {
                self.scheme = scheme;
                self.port = port;
                break;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("serve exited with {status}: {log}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "serve did not start: {log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.scheme == "http" {
            let (status, _) = http(
                self.port,
                "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                b"",
            );
            assert_eq!(status, 200, "healthz");
        }
    }

    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    /// `GET /api/v1/releases/PRODUCT/VERSION[?QUERY]` with `secret`, over a
    /// raw socket: (status, body).
    pub fn status_of(&self, secret: &str, product: &str, version: &str) -> (u16, String) {
        http(
            self.port,
            &format!(
                "GET /api/v1/releases/{product}/{version} HTTP/1.1\r\nHost: x\r\n\
                 Authorization: Bearer {secret}\r\nConnection: close\r\n\r\n"
            ),
            b"",
        )
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn rel(&self) -> PathBuf {
        self.dir.path().join("rel")
    }

    /// The server's stderr so far (start-up lines, access log, release log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Send a signal with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Wait for the server to exit; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            assert!(
                started.elapsed() < limit,
                "serve did not exit: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every file under the release dir, as sorted relative paths.
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.rel(), &self.rel(), &mut out);
        out.sort();
        out
    }

    /// The release dir holds finished releases only: for each artifact its
    /// .env and .status, nothing temporary, nothing else.
    pub fn assert_only_releases(&self, releases: &[&str]) {
        let mut expected = Vec::new();
        for r in releases {
            expected.push((*r).to_owned());
            expected.push(format!("{r}.env"));
            expected.push(format!("{r}.status"));
        }
        expected.sort();
        assert_eq!(self.files(), expected, "release dir content");
    }

    /// Poll until the release dir has no temporary file (an aborted upload's
    /// clean-up runs when the server notices the hang-up).
    pub fn wait_no_temp_files(&self) {
        wait_until("temp files to go", || {
            !self.files().iter().any(|f| is_temp(f))
        });
    }

    /// Poll until an upload is streaming into a temporary file.
    pub fn wait_for_temp_file(&self) {
        wait_until("an upload to start", || {
            self.files().iter().any(|f| f.starts_with(".rp-upload-"))
        });
    }

    /// How many times `SCRIPT.sh` (app or flaky) has run.
    pub fn runs(&self, script: &str) -> usize {
        std::fs::read_to_string(self.root().join(format!("{script}-runs.log")))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// Start a raw upload of a multipart `body` built with [`Form`], send
    /// half of it and stop there, once the server streams it to disk.
    pub fn send_half(&self, body: Vec<u8>) -> HalfSent {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        stream
            .write_all(Form::new().head(SECRET, body.len()).as_bytes())
            .expect("send head");
        let half = body.len() / 2;
        stream.write_all(&body[..half]).expect("send half");
        self.wait_for_temp_file();
        HalfSent {
            stream,
            rest: body[half..].to_vec(),
        }
    }

    /// Run `rp-devops` with a hermetic environment plus `env`.
    pub fn rp(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        rp(self.root(), args, env)
    }

    /// `rp-devops release upload FILE --url URL --product P --meta ... --json`.
    pub fn upload(&self, file: &Path, product: &str, meta: &[&str]) -> Output {
        upload_to(
            self.root(),
            &self.url(),
            file,
            product,
            meta,
            SECRET,
            &["--json"],
        )
    }

    /// `curl -F` with the given form arguments; returns (status, body).
    pub fn curl(&self, secret: Option<&str>, form: &[String]) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-o", "-", "-w", "\n%{http_code}"]);
        if let Some(secret) = secret {
            cmd.arg("-H").arg(format!("Authorization: Bearer {secret}"));
        }
        for f in form {
            cmd.arg("-F").arg(f);
        }
        cmd.arg(format!("{}/api/v1/releases", self.url()));
        let out = cmd.current_dir(self.root()).output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `rp-devops ARGS` from `cwd` through the hermetic launcher, plus `env`.
pub fn rp(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = super::rp_devops_std(cwd);
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run rp-devops")
}

/// `rp-devops release upload FILE --url URL --product P --meta M... EXTRA...`
/// from `cwd`, with `secret` in RP_RELEASE_SECRET.
pub fn upload_to(
    cwd: &Path,
    url: &str,
    file: &Path,
    product: &str,
    meta: &[&str],
    secret: &str,
    extra: &[&str],
) -> Output {
    let file = file.to_str().expect("utf-8 path");
    let mut args = vec![
        "release",
        "upload",
        file,
        "--url",
        url,
        "--product",
        product,
    ];
    let metas: Vec<String> = meta.iter().map(|m| format!("--meta={m}")).collect();
    args.extend(metas.iter().map(String::as_str));
    args.extend(extra);
    rp(cwd, &args, &[("RP_RELEASE_SECRET", secret)])
}

/// Poll `done` every 10 ms for up to 10 s; fail the test naming `what`.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An upload sent halfway by [`Receiver::send_half`].
pub struct HalfSent {
    pub stream: TcpStream,
    rest: Vec<u8>,
}

impl HalfSent {
    /// Send the rest and read the answer: (status, body).
    pub fn finish(mut self) -> (u16, String) {
        self.stream.write_all(&self.rest).expect("send the rest");
        read_answer(&mut self.stream)
    }
}

/// A bare socket posing as a proxy in front of a receiver: it answers each
/// request from its head alone (a client asking 100-continue then sends no
/// body) with the next of its canned replies, then stops.
pub struct FakeProxy {
    port: u16,
    thread: std::thread::JoinHandle<()>,
}

impl FakeProxy {
    pub fn answering(replies: Vec<&'static [u8]>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let thread = std::thread::spawn(move || {
            for reply in replies {
                let (mut stream, _) = listener.accept().expect("accept");
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("read timeout");
                read_request_head(&mut stream);
                stream.write_all(reply).expect("reply");
            }
        });
        Self { port, thread }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Wait until every reply was sent.
    pub fn join(self) {
        self.thread.join().expect("proxy thread");
    }

    /// Upload a small artifact through this proxy with our client (product
    /// `app`, version 1) and wait until every reply was sent.
    pub fn upload_one(self) -> Output {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = artifact(dir.path(), "p.tgz", 1000, 18);
        let out = upload_to(
            dir.path(),
            &self.url(),
            &file,
            "app",
            &["version=1"],
            SECRET,
            &[],
        );
        self.join();
        out
    }
}

/// Read a request head from a bare socket posing as a server, up to and
/// including the blank line.
pub fn read_request_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("read the request head");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn is_temp(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with('.'))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            out.push(
                path.strip_prefix(root)
                    .unwrap_or(&path)
                    .display()
                    .to_string(),
            );
        }
    }
}

pub fn write_executable(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A file of `len` pseudo-random bytes (different per `seed`).
pub fn artifact(dir: &Path, name: &str, len: usize, seed: u64) -> PathBuf {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, data).expect("write artifact");
    path
}

pub fn md5_hex(path: &Path) -> String {
    let out = Command::new("md5sum").arg(path).output().expect("md5sum");
    String::from_utf8_lossy(&out.stdout)[..32].to_owned()
}

/// The MD5 (hex) of `data`, by md5sum.
pub fn md5_of(data: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("x");
    std::fs::write(&path, data).expect("write");
    md5_hex(&path)
}

/// Send a raw request head and body, read the whole answer: (status, body).
pub fn http(port: u16, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    stream.write_all(head.as_bytes()).expect("send head");
    stream.write_all(body).expect("send body");
    read_answer(&mut stream)
}

/// Read one HTTP answer as it arrives (head, then `Content-Length` bytes),
/// without waiting for the server to close: (status, body). Interim
/// answers (100 Continue) are skipped.
pub fn read_one_answer(stream: &mut TcpStream) -> (u16, String) {
    loop {
        let head = read_response_head(stream);
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status == 100 {
            continue;
        }
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        stream
            .read_exact(&mut body)
            .expect("read the answer's body");
        return (status, String::from_utf8_lossy(&body).into_owned());
    }
}

fn read_response_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream
            .read_exact(&mut byte)
            .expect("read the answer's head");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Read an HTTP answer until the server closes: (status, body).
pub fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_answer(&raw)
}

pub fn parse_answer(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw);
    // Skip interim answers (100 Continue).
    let mut rest: &str = &text;
    while rest.starts_with("HTTP/1.1 100") {
        rest = rest.split_once("\r\n\r\n").map_or("", |(_, r)| r);
    }
    let status = rest
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = rest
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// A multipart body built by hand, for raw-socket tests.
pub struct Form {
    pub boundary: String,
    pub parts: Vec<u8>,
}

impl Form {
    pub fn new() -> Self {
        Self {
            boundary: "testboundary7d3a".into(),
            parts: Vec::new(),
        }
    }

    pub fn field(mut self, name: &str, value: &str) -> Self {
        self.parts.extend_from_slice(
            format!(
                "--{}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n",
                self.boundary
            )
            .as_bytes(),
        );
        self
    }

    pub fn file(mut self, file_name: &str, data: &[u8]) -> Self {
        self.parts.extend_from_slice(
            format!(
                "--{}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n",
                self.boundary
            )
            .as_bytes(),
        );
        self.parts.extend_from_slice(data);
        self.parts.extend_from_slice(b"\r\n");
        self
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.parts
            .extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        self.parts
    }

    pub fn head(&self, secret: &str, len: usize) -> String {
        format!(
            "POST /api/v1/releases HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {secret}\r\n\
             Content-Type: multipart/form-data; boundary={}\r\nContent-Length: {len}\r\n\r\n",
            self.boundary
        )
    }
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What a [`Gateway`] does to the first uploads it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lose {
    /// Read the upload whole and answer 504 without forwarding it: the
    /// receiver never hears of it.
    Upload,
    /// Forward the upload, wait for the receiver's answer, and answer 504
    /// in its place (what nginx does when the script outlasts
    /// `proxy_read_timeout`).
    Answer,
}

/// A gateway on 127.0.0.1 in front of a receiver that loses the first
/// `times` uploads (`POST`s) or their answers, as a proxy timing out would,
/// with an HTML 504 page and `Server: test-gateway`; every other request is
/// forwarded and its answer relayed. Like nginx, it answers `Expect:
/// 100-continue` itself and reads the whole body before forwarding.
pub struct Gateway {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

const GATEWAY_504: &str = "HTTP/1.1 504 Gateway Time-out\r\nServer: test-gateway\r\n\
    Content-Type: text/html\r\nContent-Length: 92\r\nConnection: close\r\n\r\n\
    <html><head><title>504 Gateway Time-out</title></head><body>upstream timed out</body></html>";

impl Gateway {
    pub fn start(upstream: u16, lose: Lose, times: usize) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicUsize::new(0));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let Ok((mut client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let lost = lost.clone();
                std::thread::spawn(move || {
                    client.set_nonblocking(false).ok();
                    client.set_read_timeout(Some(Duration::from_secs(60))).ok();
                    let head = read_request_head(&mut client);
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if head.to_ascii_lowercase().contains("expect: 100-continue") {
                        let _ = client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    let mut body = vec![0u8; length];
                    if client.read_exact(&mut body).is_err() {
                        return;
                    }
                    let is_upload = head.starts_with("POST ");
                    let lose_this = is_upload && lost.fetch_add(1, Ordering::SeqCst) < times;
                    if lose_this && lose == Lose::Upload {
                        let _ = client.write_all(GATEWAY_504.as_bytes());
                        return;
                    }
                    // Forward with the head's own lines, minus Expect and
                    // Connection, and read the answer to the end.
                    let mut forwarded: String = head
                        .trim_end()
                        .lines()
                        .filter(|l| {
                            let lower = l.to_ascii_lowercase();
                            !lower.starts_with("expect:") && !lower.starts_with("connection:")
                        })
                        .map(|l| format!("{l}\r\n"))
                        .collect();
                    forwarded.push_str("Connection: close\r\n\r\n");
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        return;
                    };
                    server.set_read_timeout(Some(Duration::from_secs(60))).ok();
                    if server.write_all(forwarded.as_bytes()).is_err()
                        || server.write_all(&body).is_err()
                    {
                        return;
                    }
                    let mut answer = Vec::new();
                    let _ = server.read_to_end(&mut answer);
                    if lose_this {
                        let _ = client.write_all(GATEWAY_504.as_bytes());
                    } else {
                        let _ = client.write_all(&answer);
                    }
                });
            }
        });
        Self { port, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
