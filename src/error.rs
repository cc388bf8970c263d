//! Errors that carry an exit code or a hint, and the one place that turns any
//! error into what the user reads on stderr and the process's exit code.
//!
//! Commands return `anyhow::Result`; they attach context at every I/O, git and
//! HTTP boundary. Only this module decides exit codes (SPEC §2): `0` success,
//! `1` the job failed, `2` bad usage or configuration, `3` the command found
//! what a `--fail-on-…` flag asked it to fail on.

use std::fmt;
use std::io::Write;

/// How a run ended, as the process sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success = 0,
    Failure = 1,
    Usage = 2,
    /// The command ran and found what `--fail-on-…` asked it to fail on.
    Found = 3,
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status as u8)
    }
}

/// A setting that a service needed and did not get, named without saying
/// how it is set: the command line adds its flag, variable and config key to
/// the hint (`commands::hints`), `serve` logs only the service's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    GitLabUrl,
}

/// Bad usage or bad configuration: exit code 2.
#[derive(Debug)]
pub struct UsageError {
    message: String,
    hint: Option<String>,
    setting: Option<Setting>,
}

impl UsageError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            setting: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Mark the error as the lack of `setting`.
    pub fn for_setting(mut self, setting: Setting) -> Self {
        self.setting = Some(setting);
        self
    }

    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    pub fn setting(&self) -> Option<Setting> {
        self.setting
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UsageError {}

/// A failure with a likely fix to suggest: exit code 1, plus a `hint:` line.
#[derive(Debug)]
pub struct HintedError {
    message: String,
    hint: String,
}

impl HintedError {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for HintedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HintedError {}

/// The exit code an error maps to.
pub fn exit_status(err: &anyhow::Error) -> ExitStatus {
    // `downcast_ref` also finds a `UsageError` attached as context.
    if err.downcast_ref::<UsageError>().is_some()
        || err.chain().any(|cause| cause.is::<UsageError>())
    {
        ExitStatus::Usage
    } else {
        ExitStatus::Failure
    }
}

/// The first hint anywhere in the cause chain, in the service's terms (what
/// `serve` may log).
pub fn hint(err: &anyhow::Error) -> Option<String> {
    find_hint(err, cause_hint)
}

/// The first hint of `err`, worded by `word`: a hint attached as context
/// first (`err.context(HintedError::new(…))` is not a link of `chain()` that
/// anyhow can downcast; `downcast_ref` finds it), then the cause chain in order.
pub fn find_hint(
    err: &anyhow::Error,
    word: impl Fn(&(dyn std::error::Error + 'static)) -> Option<String>,
) -> Option<String> {
    if let Some(e) = err.downcast_ref::<HintedError>() {
        return word(e);
    }
    if let Some(e) = err.downcast_ref::<UsageError>() {
        return word(e);
    }
    err.chain().find_map(word)
}

/// The hint one cause carries, in the service's terms.
pub fn cause_hint(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(e) = cause.downcast_ref::<UsageError>() {
        e.hint.clone()
    } else if let Some(e) = cause.downcast_ref::<HintedError>() {
        Some(e.hint.clone())
    } else if let Some(e) = cause.downcast_ref::<crate::gitlab::ApiError>() {
        e.hint()
    } else if let Some(e) = cause.downcast_ref::<crate::freshdesk::FreshdeskError>() {
        e.hint()
    } else {
        None
    }
}

/// Print the whole cause chain, one line per cause, and `hint` if there is
/// one (the caller chooses the words: see `commands::hints`).
/// `colour`: "error:" in red and "hint:" in green (a terminal, no `NO_COLOR`).
pub fn report(err: &anyhow::Error, hint: Option<String>, colour: bool, out: &mut dyn Write) {
    let mut causes = err.chain();
    if let Some(first) = causes.next() {
        let _ = writeln!(
            out,
            "{} {first}",
            crate::output::paint("error:", "31", colour)
        );
    }
    for cause in causes {
        let _ = writeln!(out, "  caused by: {cause}");
    }
    if let Some(hint) = hint {
        let _ = writeln!(
            out,
            "{} {hint}",
            crate::output::paint("hint:", "32", colour)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_and_usage_attached_as_context_are_found() {
        let err = anyhow::anyhow!("GitLab answered 404")
            .context(HintedError::new("merge request !3 not found", "check --mr"))
            .context("outer");
        assert_eq!(hint(&err).as_deref(), Some("check --mr"));
        assert_eq!(exit_status(&err), ExitStatus::Failure);
        let err = anyhow::anyhow!("x").context(UsageError::new("bad").with_hint("fix it"));
        assert_eq!(exit_status(&err), ExitStatus::Usage);
        assert_eq!(hint(&err).as_deref(), Some("fix it"));
    }
}
