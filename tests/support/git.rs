//! Real git remotes for tests: bare repositories served by `git daemon`
//! (with receive-pack, so server-side hooks run) and by `git http-backend`
//! behind lighttpd with basic auth, plus shallow tag-less clones like CI's.
//!
//! Every server is started on a free loopback port (127.0.0.1, or another
//! loopback address to play another host) and killed on drop. A missing
//! tool (git, lighttpd) fails the test: CI installs them from
//! `.ci/apt-packages.d/tag-library.txt`.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Where a test's repositories live; removed with the test.
pub struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An empty HOME for every process: no user git config leaks in.
    pub fn home(&self) -> PathBuf {
        let home = self.path("home");
        std::fs::create_dir_all(&home).expect("create HOME");
        home
    }

    /// A bare repository `srv/NAME.git` with a seed working copy `seed-NAME`
    /// whose `origin` is the bare repository (by path).
    pub fn library(&self, name: &str) -> Library {
        let srv = self.path("srv");
        std::fs::create_dir_all(&srv).expect("create srv dir");
        let bare = srv.join(format!("{name}.git"));
        self.git(
            &srv,
            &["init", "-q", "--bare", "-b", "main", &format!("{name}.git")],
        );
        let seed = self.path(&format!("seed-{name}"));
        self.git(
            self.dir.path(),
            &["init", "-q", "-b", "main", path_str(&seed)],
        );
        self.git(&seed, &["remote", "add", "origin", path_str(&bare)]);
        Library {
            name: name.to_owned(),
            bare,
            seed,
            home: self.home(),
        }
    }

    /// `git ARGS` in `dir` with a hermetic environment; panics on failure.
    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        run_git(&self.home(), dir, args)
    }

    /// A CI-like working copy: `git clone --depth 1 --no-tags URL`.
    pub fn shallow_clone(&self, url: &str, name: &str) -> PathBuf {
        self.clone_with(url, name, &["--depth", "1", "--no-tags"])
    }

    pub fn clone_with(&self, url: &str, name: &str, flags: &[&str]) -> PathBuf {
        let dest = self.path(name);
        let mut args = vec!["clone", "-q"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[url, path_str(&dest)]);
        self.git(self.dir.path(), &args);
        dest
    }
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// The git program, or a failed test saying what to install.
pub fn git_program() -> &'static str {
    require_tool("git", &["--version"]);
    "git"
}

pub fn require_tool(program: &str, version_args: &[&str]) {
    let found = Command::new(program)
        .args(version_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "{program} is required by the tag-library tests: install the packages in \
         .ci/apt-packages.d/tag-library.txt (apt-get install -y {program})"
    );
}

fn hermetic(cmd: &mut Command, home: &Path) {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.com")
        .env("GIT_TERMINAL_PROMPT", "0");
}

pub fn run_git(home: &Path, dir: &Path, args: &[&str]) -> String {
    let output = git_output(home, dir, args);
    assert!(
        output.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn git_output(home: &Path, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(git_program());
    hermetic(&mut cmd, home);
    cmd.current_dir(dir).args(args).output().expect("run git")
}

/// One library: its bare "server" repository and a seed working copy.
pub struct Library {
    pub name: String,
    pub bare: PathBuf,
    pub seed: PathBuf,
    home: PathBuf,
}

impl Library {
    pub fn git(&self, args: &[&str]) -> String {
        run_git(&self.home, &self.seed, args)
    }

    /// `git ARGS` on the server's bare repository.
    pub fn server_git(&self, args: &[&str]) -> String {
        run_git(&self.home, &self.bare, args)
    }

    /// A commit with `message` kept verbatim (no comment stripping), pushed
    /// to main; returns its id.
    pub fn commit(&self, message: &str) -> String {
        self.commit_in(&self.seed, message);
        self.git(&["push", "-q", "origin", "HEAD:main"]);
        self.git(&["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// A commit in any working copy, not pushed; returns its id.
    pub fn commit_in(&self, dir: &Path, message: &str) -> String {
        let file = dir.join("message.txt");
        std::fs::write(&file, message).expect("write message");
        run_git(
            &self.home,
            dir,
            &[
                "commit",
                "-q",
                "--allow-empty",
                "--cleanup=verbatim",
                "-F",
                path_str(&file),
            ],
        );
        std::fs::remove_file(&file).expect("remove message file");
        run_git(&self.home, dir, &["rev-parse", "HEAD"])
            .trim()
            .to_owned()
    }

    /// A file committed and pushed.
    pub fn commit_file(&self, path: &str, content: &str, message: &str) -> String {
        let full = self.seed.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(&full, content).expect("write file");
        self.git(&["add", path]);
        self.commit(message)
    }

    /// Tags on the seed's HEAD, pushed: annotated when `annotated`.
    pub fn tag_head(&self, names: &[&str], annotated: bool) {
        for name in names {
            if annotated {
                self.git(&["tag", "-a", name, "-m", &format!("release {name}")]);
            } else {
                self.git(&["tag", name]);
            }
            self.git(&["push", "-q", "origin", &format!("refs/tags/{name}")]);
        }
    }

    /// The server's tags, sorted by name.
    pub fn server_tags(&self) -> Vec<String> {
        self.server_git(&["tag", "-l"])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The commit a server tag names.
    pub fn server_tag_commit(&self, tag: &str) -> String {
        self.server_git(&["rev-parse", &format!("refs/tags/{tag}^{{commit}}")])
            .trim()
            .to_owned()
    }

    /// The server's tag object, as `git cat-file -p` prints it.
    pub fn server_cat_tag(&self, tag: &str) -> String {
        self.server_git(&["cat-file", "-p", &format!("refs/tags/{tag}")])
    }

    /// Install a server-side hook (a shell script).
    pub fn hook(&self, name: &str, script: &str) {
        let path = self.bare.join("hooks").join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("write hook");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod hook");
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    wait_for_host_port("127.0.0.1", port, child, what);
}

fn wait_for_host_port(host: &str, port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect((host, port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on {host}:{port} within 10 s");
}

/// A killed-on-drop child process.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `git daemon --enable=receive-pack` serving `base` on 127.0.0.1.
pub struct GitDaemon {
    port: u16,
    _server: Server,
}

impl GitDaemon {
    pub fn start(base: &Path, home: &Path) -> Self {
        let port = free_port();
        let mut cmd = Command::new(git_program());
        hermetic(&mut cmd, home);
        let mut child = cmd
            .args([
                "daemon",
                "--enable=receive-pack",
                "--export-all",
                "--reuseaddr",
                "--informative-errors",
                &format!("--base-path={}", path_str(base)),
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                path_str(base),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start git daemon");
        wait_for_port(port, &mut child, "git daemon");
        Self {
            port,
            _server: Server(child),
        }
    }

    /// `git://127.0.0.1:PORT/NAME.git`
    pub fn url(&self, library: &Library) -> String {
        format!("git://127.0.0.1:{}/{}.git", self.port, library.name)
    }
}

/// Smart HTTP: lighttpd running `git http-backend` as CGI under `/git`,
/// behind a small CGI wrapper that checks basic auth (user `oauth2`, password
/// the token) and records every refusal, and every `Authorization` header it
/// is sent, in files as it happens (lighttpd's own access log is buffered,
/// so it cannot be counted mid-test).
pub struct HttpGit {
    host: String,
    port: u16,
    refusals: PathBuf,
    authorizations: PathBuf,
    _server: Server,
}

pub const HTTP_USER: &str = "oauth2";

impl HttpGit {
    pub fn start(fixture: &Fixture, base: &Path, token: &str) -> Self {
        Self::start_on(fixture, base, token, "127.0.0.1")
    }

    /// The same on another loopback address (`127.0.0.2`): another host
    /// as far as a client can tell.
    pub fn start_on(fixture: &Fixture, base: &Path, token: &str, host: &str) -> Self {
        require_tool("lighttpd", &["-v"]);
        require_tool("base64", &["--version"]);
        let exec_path = run_git(&fixture.home(), fixture.dir.path(), &["--exec-path"]);
        let backend = Path::new(exec_path.trim()).join("git-http-backend");
        assert!(backend.exists(), "{} is missing", backend.display());

        let root = fixture.path(&format!("lighttpd-{host}"));
        std::fs::create_dir_all(root.join("www")).expect("create lighttpd dirs");
        let refusals = root.join("refusals");
        std::fs::write(&refusals, "").expect("create refusals file");
        let authorizations = root.join("authorizations");
        std::fs::write(&authorizations, "").expect("create authorizations file");
        let wrapper = root.join("git-auth.cgi");
        std::fs::write(
            &wrapper,
            format!(
                r#"#!/bin/sh
if [ -n "$HTTP_AUTHORIZATION" ]; then
  echo "$HTTP_AUTHORIZATION" >> '{authorizations}'
fi
expected="Basic $(printf '%s:%s' '{HTTP_USER}' '{token}' | base64 -w0)"
if [ "$HTTP_AUTHORIZATION" != "$expected" ]; then
  echo "$REQUEST_METHOD $REQUEST_URI" >> '{refusals}'
  printf 'Status: 401 Unauthorized\r\nWWW-Authenticate: Basic realm="git"\r\nContent-Type: text/plain\r\n\r\nunauthorized\n'
  exit 0
fi
REMOTE_USER='{HTTP_USER}'
export REMOTE_USER
exec '{backend}'
"#,
                refusals = path_str(&refusals),
                authorizations = path_str(&authorizations),
                backend = path_str(&backend),
            ),
        )
        .expect("write CGI wrapper");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
                .expect("chmod CGI wrapper");
        }
        let port = free_port();
        let path = std::env::var("PATH").unwrap_or_default();
        let config = format!(
            r#"server.document-root = "{www}"
server.bind = "{host}"
server.port = {port}
server.errorlog = "{root}/error.log"
server.modules = ( "mod_alias", "mod_cgi", "mod_setenv" )
alias.url = ( "/git" => "{wrapper}" )
$HTTP["url"] =~ "^/git" {{
  cgi.assign = ( "" => "" )
  setenv.add-environment = (
    "GIT_PROJECT_ROOT" => "{base}",
    "GIT_HTTP_EXPORT_ALL" => "1",
    "GIT_CONFIG_NOSYSTEM" => "1",
    "HOME" => "{home}",
    "PATH" => "{path}"
  )
}}
"#,
            www = path_str(&root.join("www")),
            root = path_str(&root),
            wrapper = path_str(&wrapper),
            base = path_str(base),
            home = path_str(&fixture.home()),
        );
        let conf = root.join("lighttpd.conf");
        std::fs::write(&conf, config).expect("write lighttpd.conf");
        let mut child = Command::new("lighttpd")
            .args(["-D", "-f", path_str(&conf)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lighttpd");
        wait_for_host_port(host, port, &mut child, "lighttpd");
        Self {
            host: host.to_owned(),
            port,
            refusals,
            authorizations,
            _server: Server(child),
        }
    }

    /// `http://HOST:PORT/git/NAME.git`, optionally with `user:pass@`.
    pub fn url(&self, library: &Library, credentials: Option<&str>) -> String {
        let host = &self.host;
        match credentials {
            Some(c) => format!("http://{c}@{host}:{}/git/{}.git", self.port, library.name),
            None => format!("http://{host}:{}/git/{}.git", self.port, library.name),
        }
    }

    /// `http://HOST:PORT`, for a TLS front or a redirect.
    pub fn origin(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// Every `Authorization` header a request carried, in order.
    pub fn authorizations(&self) -> Vec<String> {
        std::fs::read_to_string(&self.authorizations)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Requests answered 401 so far.
    pub fn unauthorized_count(&self) -> usize {
        std::fs::read_to_string(&self.refusals)
            .unwrap_or_default()
            .lines()
            .count()
    }
}

/// An HTTP server on 127.0.0.1 that answers every request under `/git/`
/// with a 301 to the same path on `to` (`http://host:port`): a remote that
/// moved, or a hostile redirect.
pub struct HttpRedirect {
    port: u16,
    _server: Server,
}

impl HttpRedirect {
    pub fn start(fixture: &Fixture, to: &str) -> Self {
        require_tool("lighttpd", &["-v"]);
        let root = fixture.path("lighttpd-redirect");
        std::fs::create_dir_all(root.join("www")).expect("create lighttpd dirs");
        let port = free_port();
        let config = format!(
            r#"server.document-root = "{www}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{root}/error.log"
server.modules = ( "mod_redirect" )
url.redirect = ( "^/git/(.*)$" => "{to}/git/$1" )
"#,
            www = path_str(&root.join("www")),
            root = path_str(&root),
        );
        let conf = root.join("lighttpd.conf");
        std::fs::write(&conf, config).expect("write lighttpd.conf");
        let mut child = Command::new("lighttpd")
            .args(["-D", "-f", path_str(&conf)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lighttpd");
        wait_for_port(port, &mut child, "lighttpd (redirect)");
        Self {
            port,
            _server: Server(child),
        }
    }

    /// `http://127.0.0.1:PORT/git/NAME.git`
    pub fn url(&self, library: &Library) -> String {
        format!("http://127.0.0.1:{}/git/{}.git", self.port, library.name)
    }
}
