//! Running the CI templates the way a GitLab runner would: `gitlab-emulator`
//! (`gle`, from PyPI) runs one job of a small example project's
//! `.gitlab-ci.yml` in shell mode, following `include: local`, `extends:`
//! and `variables:`, with the variables GitLab would set passed as `--var`.
//! The job finds the `rp-devops` under test first on its PATH.
//!
//! `gle` is installed by `scripts/install-gitlab-emulator.sh` (called from
//! `.ci/run` through `scripts/install-test-deps.sh`) into a virtual
//! environment at [`DEFAULT_GLE`]; `RP_GLE` names another one. In CI (`CI`
//! set) a missing `gle` fails the test; elsewhere the test is skipped with a
//! message saying how to install it.
//!
//! What gle does not do, so the tests do not rely on it: it evaluates no
//! `rules:` when running one job, honours no `allow_failure: exit_codes`
//! (a failed job is exit 1, whatever the script's code), expands a job's
//! `variables:` before it knows the `--var` ones (`dist/$CI_COMMIT_TAG.tgz`
//! loses the tag), and merges an
//! included file's top-level keys over the including file's (GitLab does the
//! opposite) — which is one reason the templates keep their defaults in the
//! hidden jobs' own `variables:`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where `scripts/install-gitlab-emulator.sh` puts `gle` by default.
pub const DEFAULT_GLE: &str = "/tmp/rp-devops-gle/bin/gle";

/// The `gle` program, or `None` (with a message) when the test should be
/// skipped. Panics in CI, where `.ci/run` must have installed it.
pub fn find() -> Option<PathBuf> {
    let program = std::env::var_os("RP_GLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_GLE));
    let works = Command::new(&program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Some(program);
    }
    let how = "scripts/install-gitlab-emulator.sh installs it (python3 -m venv + pip install \
               gitlab-emulator); RP_GLE=PATH names another gle";
    if std::env::var_os("CI").is_some() {
        panic!("gitlab-emulator is missing at {}: {how}", program.display());
    }
    eprintln!(
        "SKIPPED: gitlab-emulator (gle) not found at {}: {how}",
        program.display()
    );
    None
}

/// A small project that includes the repository's CI templates by
/// `include: local`, as a team's project includes them by `include: project`.
pub struct Project {
    pub dir: PathBuf,
}

impl Project {
    /// `dir/.gitlab-ci.yml` = `ci_yaml`, with every file of `ci-templates/`
    /// copied to `dir/ci-templates/` so that `include: local` finds it.
    pub fn new(dir: &Path, ci_yaml: &str) -> Self {
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("ci-templates");
        let copy = dir.join("ci-templates");
        std::fs::create_dir_all(&copy).expect("create ci-templates");
        for entry in std::fs::read_dir(&templates).expect("read ci-templates") {
            let path = entry.expect("template entry").path();
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, copy.join(name)).expect("copy template");
            }
        }
        std::fs::write(dir.join(".gitlab-ci.yml"), ci_yaml).expect("write .gitlab-ci.yml");
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// Run `job` with gle in shell mode: a clean environment (PATH with the
    /// rp-devops under test first, a temporary HOME) plus `vars` as CI/CD
    /// variables.
    pub fn run(&self, gle: &Path, home: &Path, job: &str, vars: &[(String, String)]) -> JobRun {
        self.run_with(gle, home, job, vars, true)
    }

    /// Like [`Project::run`], with `rp-devops` on the job's PATH only when
    /// `with_binary`: without it, no directory of PATH holds an
    /// `rp-devops`, so the job must install its own.
    pub fn run_with(
        &self,
        gle: &Path,
        home: &Path,
        job: &str,
        vars: &[(String, String)],
        with_binary: bool,
    ) -> JobRun {
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_rp-devops"))
            .parent()
            .expect("binary directory")
            .to_path_buf();
        let system = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .filter(|dir| !dir.join("rp-devops").exists())
            .collect::<Vec<_>>();
        let path = std::env::join_paths(with_binary.then_some(bin_dir).into_iter().chain(system))
            .expect("PATH");
        let mut cmd = Command::new(gle);
        cmd.env_clear()
            .env("PATH", path)
            .env("HOME", home)
            .env("LANG", "C.UTF-8")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("RP_HTTP_RETRY_BASE", "20ms")
            .env("RP_HTTP_RETRY_BUDGET", "20s")
            .current_dir(&self.dir)
            .arg("--ignore-docker");
        for (name, value) in vars {
            cmd.arg("--var").arg(format!("{name}={value}"));
        }
        let output = cmd.arg(job).output().expect("run gle");
        JobRun::from(output)
    }
}

/// A job's outcome: gle prints the job's log on stdout and its own lines
/// on stderr.
pub struct JobRun {
    pub success: bool,
    pub log: String,
}

impl From<Output> for JobRun {
    fn from(output: Output) -> Self {
        Self {
            success: output.status.success(),
            log: format!(
                "{}\n--- gle:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }
}

impl JobRun {
    /// Panics with the job log unless the job succeeded.
    pub fn assert_success(&self) -> &Self {
        assert!(self.success, "the job failed:\n{}", self.log);
        self
    }
}
