//! Running a product's release script (SPEC §9): the artifact and `.env`
//! paths as arguments, the metadata in its environment, a timeout that kills
//! the whole process group, and the tail of its output for the answer.
//!
//! The script inherits the server's environment minus the secrets the server
//! holds: an uploader must not be able to read the release secret back.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

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
}

impl ScriptOutcome {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    fn not_started(message: String) -> Self {
        Self {
            exit_code: None,
            output_tail: message,
            timed_out: false,
        }
    }
}

/// Everything a script run needs.
pub struct ScriptRun<'a> {
    pub script: &'a Path,
    pub artifact: &'a Path,
    pub env_file: &'a Path,
    pub vars: &'a [(String, String)],
    pub timeout: Duration,
    /// Environment variables removed from the script's environment.
    pub scrub: &'a [String],
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
    for name in job.scrub {
        command.env_remove(name);
    }
    for (key, value) in job.vars {
        command.env(key, value);
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
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(OUTPUT_TAIL_BYTES)));
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

    let bytes: Vec<u8> = tail
        .lock()
        .map(|t| t.iter().copied().collect())
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

/// Read a pipe to its end, keeping only the last `OUTPUT_TAIL_BYTES`.
async fn collect(mut pipe: impl AsyncRead + Unpin, tail: Arc<Mutex<VecDeque<u8>>>) {
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let Ok(mut tail) = tail.lock() else { return };
                tail.extend(&buf[..n]);
                let excess = tail.len().saturating_sub(OUTPUT_TAIL_BYTES);
                tail.drain(..excess);
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
        let dir = tempfile::tempdir().unwrap();
        let script = write_script(dir.path(), body);
        let artifact = dir.path().join("a.tgz");
        let env_file = dir.path().join("a.tgz.env");
        let vars = vec![("channel".to_owned(), "stable".to_owned())];
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
            scrub: &["HOME".to_owned()],
        }))
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
            scrub: &[],
        }));
        assert_eq!(out.exit_code, None);
        assert!(out.output_tail.contains("could not start"), "{out:?}");
    }
}
