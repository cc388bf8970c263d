//! Running a product's release script (SPEC §9): the artifact and `.env`
//! paths as arguments, the metadata in its environment, a timeout that kills
//! the whole process group, and the tail of its output for the answer.
//!
//! The script inherits the server's environment minus every secret the
//! server knows about (and any variable whose value contains one), minus
//! proxy and dynamic-loader variables ([`super::is_denied_script_variable`]),
//! whoever set them. Its output tail, which goes back to the uploader and
//! into the `.status` file, has every known secret value replaced: an
//! uploader must not be able to read a secret back, even from a script that
//! prints a file holding one.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::is_denied_script_variable;
use crate::redact::Redactor;

/// How much of the script's combined stdout/stderr is kept for the answer.
pub const OUTPUT_TAIL_BYTES: usize = 4096;
/// How long a script gets after SIGTERM before SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);
/// How long to keep reading output after the script exited: a daemon it left
/// behind may hold the pipe open forever.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// What a script run ended with: the `script` object of the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptOutcome {
    /// `null` when the script was killed (timeout or signal) or did not start.
    pub exit_code: Option<i32>,
    pub output_tail: String,
    #[serde(default)]
    pub timed_out: bool,
    /// Why the script could not be started, for the server's log only (it
    /// names paths and OS errors, which are not the uploader's business).
    #[serde(skip)]
    pub start_error: Option<String>,
}

impl ScriptOutcome {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    fn not_started(detail: String) -> Self {
        Self {
            exit_code: None,
            output_tail:
                "[rp-devops: the release script could not be started; the server log says why]"
                    .to_owned(),
            timed_out: false,
            start_error: Some(detail),
        }
    }
}

/// What every release script gets from the server: the environment it
/// inherits and the secrets kept out of its answer. Decided once, when the
/// receiver starts.
#[derive(Debug, Clone, Default)]
pub struct ScriptEnvironment {
    inherited: Vec<(String, String)>,
    redactor: Redactor,
}

impl ScriptEnvironment {
    /// From the server's environment, drop the variables named in `secrets`,
    /// every variable whose value contains a secret (in any spelling:
    /// `CI_REPOSITORY_URL` carries the job token in its userinfo), and the
    /// denied proxy and loader variables.
    pub fn new<'a>(
        server_env: impl IntoIterator<Item = (&'a str, &'a str)>,
        secrets: &[String],
        redactor: Redactor,
    ) -> Self {
        let inherited = server_env
            .into_iter()
            .filter(|(name, value)| {
                !is_denied_script_variable(name)
                    && !secrets.iter().any(|s| s == name)
                    && redactor.redact(value) == *value
            })
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Self {
            inherited,
            redactor,
        }
    }

    /// The variables a script inherits, sorted by name.
    pub fn inherited(&self) -> &[(String, String)] {
        &self.inherited
    }
}

/// Everything a script run needs.
pub struct ScriptRun<'a> {
    pub script: &'a Path,
    pub artifact: &'a Path,
    pub env_file: &'a Path,
    /// The release's variables (metadata and `RELEASE_*`), added to the
    /// inherited environment; denied names are dropped here too.
    pub vars: &'a [(String, String)],
    pub timeout: Duration,
    pub environment: &'a ScriptEnvironment,
}

/// Run the script to completion or timeout. Never fails: a script that cannot
/// start is an outcome with no exit code and the reason as its output.
pub async fn run(job: ScriptRun<'_>) -> ScriptOutcome {
    let mut command = Command::new(job.script);
    command
        .arg(job.artifact)
        .arg(job.env_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills what it started too.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = job.artifact.parent() {
        command.current_dir(dir);
    }
    command
        .env_clear()
        .envs(job.environment.inherited.iter().cloned());
    for (key, value) in job.vars {
        if !is_denied_script_variable(key) {
            command.env(key, value);
        }
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return ScriptOutcome::not_started(format!(
                "could not start {}: {e}",
                job.script.display()
            ));
        }
    };
    // A secret cut at the start of the tail would survive redaction: keep
    // enough more to see whole secrets, redact, then cut.
    let tail = Arc::new(Mutex::new(Tail::new(
        OUTPUT_TAIL_BYTES + job.environment.redactor.longest(),
    )));
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (out_tail, err_tail) = (tail.clone(), tail.clone());
    let readers = async move {
        tokio::join!(
            async {
                if let Some(s) = stdout {
                    collect(s, out_tail).await;
                }
            },
            async {
                if let Some(s) = stderr {
                    collect(s, err_tail).await;
                }
            }
        )
    };
    tokio::pin!(readers);

    let pid = child.id();
    let (status, timed_out) = match tokio::time::timeout(job.timeout, child.wait()).await {
        Ok(status) => (status.ok(), false),
        Err(_) => {
            signal_group(pid, libc::SIGTERM);
            let status = match tokio::time::timeout(KILL_GRACE, child.wait()).await {
                Ok(status) => status.ok(),
                Err(_) => {
                    signal_group(pid, libc::SIGKILL);
                    child.wait().await.ok()
                }
            };
            // Whatever else is still in the group goes too.
            signal_group(pid, libc::SIGKILL);
            (status, true)
        }
    };
    let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, &mut readers).await;

    let bytes = tail
        .lock()
        .map(|t| t.redacted(&job.environment.redactor))
        .unwrap_or_default();
    let mut output_tail = String::from_utf8_lossy(&bytes).into_owned();
    if timed_out {
        output_tail.push_str(&format!(
            "\n[rp-devops: script killed after {}]\n",
            humantime::format_duration(job.timeout)
        ));
    }
    ScriptOutcome {
        exit_code: status.and_then(|s| s.code()),
        output_tail,
        timed_out,
        start_error: None,
    }
}

/// [`run`] for a caller on a plain thread (the blocking pool, a test): the
/// run gets a small runtime of its own for its timers and pipes. Must not be
/// called from async code.
pub fn run_blocking(job: ScriptRun<'_>) -> ScriptOutcome {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(job)),
        Err(e) => ScriptOutcome::not_started(format!(
            "could not start {}: no runtime for it: {e}",
            job.script.display()
        )),
    }
}

/// The last bytes of the script's output, and whether earlier ones were
/// dropped.
struct Tail {
    bytes: VecDeque<u8>,
    capacity: usize,
    cut: bool,
}

impl Tail {
    fn new(capacity: usize) -> Self {
        Self {
            bytes: VecDeque::with_capacity(capacity),
            capacity,
            cut: false,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.bytes.extend(data);
        let excess = self.bytes.len().saturating_sub(self.capacity);
        if excess > 0 {
            self.cut = true;
            self.bytes.drain(..excess);
        }
    }

    /// At most `OUTPUT_TAIL_BYTES`, with every secret replaced. When the
    /// start was cut, its first `longest` bytes may hold the end of a
    /// secret whose beginning is gone: they are never returned.
    fn redacted(&self, redactor: &Redactor) -> Vec<u8> {
        let bytes: Vec<u8> = self.bytes.iter().copied().collect();
        let clean = redactor.redact_bytes(&bytes);
        let mut start = clean.len().saturating_sub(OUTPUT_TAIL_BYTES);
        if self.cut {
            start = start.max(redactor.longest());
        }
        clean.get(start..).unwrap_or_default().to_vec()
    }
}

/// Read a pipe to its end, keeping only its tail.
async fn collect(mut pipe: impl AsyncRead + Unpin, tail: Arc<Mutex<Tail>>) {
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let Ok(mut tail) = tail.lock() else { return };
                tail.push(&buf[..n]);
            }
        }
    }
}

/// Send `signal` to the process group led by `pid`.
fn signal_group(pid: Option<u32>, signal: libc::c_int) {
    let Some(pid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()) else {
        return;
    };
    if pid <= 1 {
        return;
    }
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid
    // addresses the process group the script leads (process_group(0) above),
    // and pid > 1 rules out "every process" (-1) and our own group (0).
    unsafe {
        libc::kill(-pid, signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_script(dir: &Path, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("s.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn run_script(body: &str, timeout: Duration) -> ScriptOutcome {
        let path = std::env::var("PATH").unwrap_or_default();
        let server_env = [("PATH", path.as_str()), ("HOME", "/home/x")];
        let environment =
            ScriptEnvironment::new(server_env, &["HOME".to_owned()], Redactor::default());
        run_script_in(body, timeout, &environment, &[])
    }

    fn run_script_in(
        body: &str,
        timeout: Duration,
        environment: &ScriptEnvironment,
        extra_vars: &[(&str, &str)],
    ) -> ScriptOutcome {
        let dir = tempfile::tempdir().unwrap();
        let script = write_script(dir.path(), body);
        let artifact = dir.path().join("a.tgz");
        let env_file = dir.path().join("a.tgz.env");
        let mut vars = vec![("channel".to_owned(), "stable".to_owned())];
        vars.extend(
            extra_vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(ScriptRun {
            script: &script,
            artifact: &artifact,
            env_file: &env_file,
            vars: &vars,
            timeout,
            environment,
        }))
    }

    #[test]
    fn secrets_proxies_and_loader_variables_never_reach_the_script() {
        let path = std::env::var("PATH").unwrap_or_default();
        let server_env = [
            ("PATH", path.as_str()),
            ("KEEP", "kept"),
            ("RP_RELEASE_SECRET", "release-secret-1"),
            (
                "CI_REPOSITORY_URL",
                "https://gitlab-ci-token:job%2Ftoken@h/x.git",
            ),
            ("OTHER_NAME", "gitlab-token-2"),
            ("http_proxy", "http://evil:3128"),
            ("HTTPS_PROXY", "http://evil:3128"),
            ("LD_PRELOAD", "/tmp/evil.so"),
            ("DYLD_INSERT_LIBRARIES", "/tmp/evil.dylib"),
        ];
        let redactor = Redactor::new(["release-secret-1", "job/token", "gitlab-token-2"]);
        let environment =
            ScriptEnvironment::new(server_env, &["RP_RELEASE_SECRET".to_owned()], redactor);
        let names: Vec<&str> = environment
            .inherited()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(names, ["PATH", "KEEP"]);
        let out = run_script_in(
            "env | sort",
            Duration::from_secs(10),
            &environment,
            &[("all_proxy", "socks5://evil"), ("LD_LIBRARY_PATH", "/tmp")],
        );
        assert!(out.succeeded(), "{out:?}");
        assert!(out.output_tail.contains("KEEP=kept"), "{out:?}");
        assert!(out.output_tail.contains("channel=stable"), "{out:?}");
        for gone in [
            "RP_RELEASE_SECRET",
            "CI_REPOSITORY_URL",
            "OTHER_NAME",
            "proxy",
            "PROXY",
            "LD_",
            "DYLD_",
            "evil",
        ] {
            assert!(!out.output_tail.contains(gone), "{gone}: {out:?}");
        }
    }

    #[test]
    fn secrets_in_the_output_are_redacted_even_across_the_cut() {
        let secret = "s3cr3t-value-0123456789";
        let environment =
            ScriptEnvironment::new([("PATH", "/usr/bin:/bin")], &[], Redactor::new([secret]));
        // Printed whole, percent-encoded, and so that the 4 KiB cut falls
        // inside it.
        let body = format!(
            "printf '%s\\n' '{secret}' 'ab s3cr3t-value-0123456789%2F' ; \
             printf '{secret}'; head -c {} /dev/zero | tr '\\0' x",
            OUTPUT_TAIL_BYTES - 6
        );
        let out = run_script_in(&body, Duration::from_secs(10), &environment, &[]);
        assert!(out.succeeded(), "{out:?}");
        assert!(out.output_tail.len() <= OUTPUT_TAIL_BYTES);
        for part in ["s3cr3t", "0123456789", "456789"] {
            assert!(!out.output_tail.contains(part), "{part}: {out:?}");
        }
        let out = run_script_in(
            &format!("echo 'x {secret} y'"),
            Duration::from_secs(10),
            &environment,
            &[],
        );
        assert_eq!(out.output_tail, "x [redacted] y\n");
    }

    #[test]
    fn arguments_environment_and_tail() {
        let out = run_script(
            "echo \"args=$(basename $1) $(basename $2) ch=$channel home=${HOME:-unset}\"; echo err >&2; exit 3",
            Duration::from_secs(10),
        );
        assert_eq!(out.exit_code, Some(3));
        assert!(!out.succeeded());
        assert!(
            out.output_tail
                .contains("args=a.tgz a.tgz.env ch=stable home=unset"),
            "{out:?}"
        );
        assert!(out.output_tail.contains("err"), "{out:?}");
    }

    #[test]
    fn tail_keeps_the_end() {
        let out = run_script(
            "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done",
            Duration::from_secs(20),
        );
        assert!(out.succeeded());
        assert!(out.output_tail.len() <= OUTPUT_TAIL_BYTES);
        assert!(out.output_tail.ends_with("line1999\n"), "{out:?}");
    }

    #[test]
    fn timeout_kills_the_group() {
        let started = std::time::Instant::now();
        let out = run_script(
            "sleep 30 & sleep 30; echo never",
            Duration::from_millis(300),
        );
        assert!(out.timed_out);
        assert_eq!(out.exit_code, None);
        assert!(!out.output_tail.contains("never"));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn missing_script_is_an_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let out = rt.block_on(run(ScriptRun {
            script: &dir.path().join("nope.sh"),
            artifact: &dir.path().join("a"),
            env_file: &dir.path().join("a.env"),
            vars: &[],
            timeout: Duration::from_secs(1),
            environment: &ScriptEnvironment::default(),
        }));
        assert_eq!(out.exit_code, None);
        // The reason (a path, an OS error) is for the log, not the answer.
        assert!(out.output_tail.contains("could not be started"), "{out:?}");
        assert!(!out.output_tail.contains("nope.sh"), "{out:?}");
        let detail = out.start_error.unwrap();
        assert!(detail.contains("nope.sh"), "{detail}");
    }
}
