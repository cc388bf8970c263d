//! Real reverse proxies in front of a receiver, started by the test on
//! 127.0.0.1 with a configuration written at test time: nginx (Debian's
//! `nginx-light`) and Caddy (Debian's `caddy`). Both are installed by
//! `.ci/run` (`.ci/apt-packages.d/proxy.txt`).
//!
//! The proxy configuration is the README's own block (found after its
//! `<!-- tested by tests/proxy.rs: NAME -->` marker), with the receiver's
//! address and the site address swapped for the test's, so the README's
//! advice stays true. A test varies one setting at a time with
//! [`ProxyConfig`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The address the README's blocks forward to.
const README_UPSTREAM: &str = "127.0.0.1:8080";

/// How the README's block is varied for one test.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    /// Buffer the whole request body before forwarding it (nginx's default,
    /// `proxy_request_buffering on`; Caddy's `buffer_requests`).
    pub buffering: bool,
    /// Give up waiting for the receiver's answer after this (nginx's
    /// `proxy_read_timeout`, Caddy's `response_header_timeout`).
    pub answer_timeout: Option<&'static str>,
}

/// Which proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    Nginx,
    Caddy,
}

impl ProxyKind {
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::Nginx => "nginx",
            ProxyKind::Caddy => "caddy",
        }
    }
}

/// A running proxy; stopped when dropped.
pub struct Proxy {
    pub kind: ProxyKind,
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Proxy {
    pub fn start(kind: ProxyKind, upstream_port: u16, config: &ProxyConfig) -> Self {
        let mut last_error = String::new();
        // A port found free may be taken before the proxy binds it: retry.
        for _ in 0..3 {
            match Self::try_start(kind, upstream_port, config) {
                Ok(proxy) => return proxy,
                Err(e) => last_error = e,
            }
        }
        panic!("{} did not start: {last_error}", kind.name());
    }

    fn try_start(
        kind: ProxyKind,
        upstream_port: u16,
        config: &ProxyConfig,
    ) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let upstream = format!("127.0.0.1:{upstream_port}");
        let mut command = match kind {
            ProxyKind::Nginx => {
                let conf = dir.path().join("nginx.conf");
                std::fs::write(&conf, nginx_config(dir.path(), port, &upstream, config))
                    .expect("write nginx.conf");
                let mut command = Command::new(program("nginx"));
                command
                    .arg("-p")
                    .arg(dir.path())
                    .arg("-e")
                    .arg(dir.path().join("startup.log"))
                    .arg("-c")
                    .arg(&conf);
                command
            }
            ProxyKind::Caddy => {
                let conf = dir.path().join("Caddyfile");
                std::fs::write(&conf, caddy_config(dir.path(), port, &upstream, config))
                    .expect("write Caddyfile");
                let mut command = Command::new(program("caddy"));
                command
                    .args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(&conf)
                    .env("HOME", dir.path())
                    .env("XDG_DATA_HOME", dir.path().join("data"))
                    .env("XDG_CONFIG_HOME", dir.path().join("config"));
                command
            }
        };
        let out = std::fs::File::create(dir.path().join("output.log")).expect("log");
        let err = out.try_clone().expect("log");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", kind.name()))?;
        let mut proxy = Self {
            kind,
            port,
            dir,
            child,
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                return Err(format!("exited with {status}: {}", proxy.log()));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(proxy);
            }
            if started.elapsed() > Duration::from_secs(20) {
                return Err(format!("not listening after 20 s: {}", proxy.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the proxy logged (its output and error logs).
    pub fn log(&self) -> String {
        ["output.log", "startup.log", "error.log"]
            .iter()
            .filter_map(|name| std::fs::read_to_string(self.dir.path().join(name)).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM lets nginx's master take its workers down with it.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The proxy's binary, or a clear failure saying how to install it.
fn program(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "{name} is not installed: run scripts/install-test-deps.sh (it installs .ci/apt-packages.d/proxy.txt)"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The fenced block of kind `fence` after the README's marker for `name`.
fn readme_block(name: &str, fence: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let marker = format!("<!-- tested by tests/proxy.rs: {name} -->");
    let after = readme
        .split_once(&marker)
        .unwrap_or_else(|| panic!("README.md has no {marker:?}"))
        .1;
    let open = format!("```{fence}\n");
    let start = after.find(&open).expect("the block after the marker") + open.len();
    let end = start + after[start..].find("\n```").expect("the block's end");
    after[start..end].to_owned()
}

/// `text` with `from` replaced, which must be there.
fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the README block has no {from:?}:\n{text}"
    );
    text.replace(from, to)
}

fn nginx_config(dir: &Path, port: u16, upstream: &str, config: &ProxyConfig) -> String {
    let block = readme_block("nginx", "nginx");
    let start = block
        .find("location /api/v1/releases")
        .expect("the README's nginx block has `location /api/v1/releases`");
    let end = start + block[start..].find("\n    }").expect("its end") + "\n    }".len();
    let mut location = swap(&block[start..end], README_UPSTREAM, upstream);
    if config.buffering {
        location = swap(
            &location,
            "proxy_request_buffering off;",
            "proxy_request_buffering on;",
        );
    }
    if let Some(timeout) = config.answer_timeout {
        location = swap(
            &location,
            "proxy_read_timeout 20m;",
            &format!("proxy_read_timeout {timeout};"),
        );
    }
    let d = dir.display();
    // Workers write the spooled bodies; as root they would run as nobody.
    let user = if is_root() { "user root;" } else { "" };
    format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\n{user}\npid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\nevents {{ worker_connections 256; }}\nhttp {{\n\
         access_log {d}/access.log;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
         server {{\n    listen 127.0.0.1:{port};\n    {location}\n}}\n}}\n"
    )
}

fn caddy_config(dir: &Path, port: u16, upstream: &str, config: &ProxyConfig) -> String {
    let block = readme_block("caddy", "caddyfile");
    let mut site = swap(
        &block,
        "updates.example.com {",
        &format!("http://127.0.0.1:{port} {{"),
    );
    site = swap(&site, README_UPSTREAM, upstream);
    let mut extra = String::new();
    if config.buffering {
        extra.push_str("\t\tbuffer_requests\n");
    }
    if let Some(timeout) = config.answer_timeout {
        extra.push_str(&format!(
            "\t\ttransport http {{\n\t\t\tresponse_header_timeout {timeout}\n\t\t}}\n"
        ));
    }
    site = swap(
        &site,
        "\t\tflush_interval -1\n",
        &format!("\t\tflush_interval -1\n{extra}"),
    );
    let d = dir.display();
    format!(
        "{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {d}/data\n\
         \tlog {{\n\t\toutput file {d}/error.log\n\t}}\n}}\n{site}\n"
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
