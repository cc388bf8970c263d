//! `rp-devops check-versions`: catch a merge request that brings one release
//! line into another (SPEC §6). Glue: arguments → request → operation →
//! printed outcome; the work is [`crate::ops::check_versions`].

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::error::{ExitStatus, UsageError};
use crate::ops::check_versions::{
    CheckVersionsOutcome, CheckVersionsRequest, Side, SideVersion, ThreadAction, Verdict,
    check_versions,
};
use crate::output::Printer;
use crate::settings::Settings;

/// Compare the version file on a merge request's source and target branches;
/// on a mismatch, keep exactly one resolvable rp-devops thread open on the MR.
///
/// The version is read from versions.file (default VERSION; the first line,
/// or the `version` group of versions.pattern) at the source branch, in the
/// source project for fork MRs, and at the target branch, and compared at
/// versions.compare (major, minor or patch; default minor). A project with
/// "All threads must be resolved" cannot merge until someone looks. Re-runs
/// add nothing; a thread a person resolved stays resolved until the versions
/// change; when they match again, rp-devops resolves its own thread. A
/// version that cannot be read gives a warning and exit 0.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rp-devops check-versions                      # in an MR pipeline\n  \
    rp-devops check-versions --mr 42 --dry-run\n  \
    rp-devops check-versions --fail-on-mismatch --json")]
pub struct CheckVersionsArgs {
    /// Merge request IID [default: CI_MERGE_REQUEST_IID]
    #[arg(long, value_name = "IID")]
    pub mr: Option<u64>,

    /// Exit with code 3 on a mismatch nobody has acknowledged by resolving
    /// the thread [config: versions.fail_on_mismatch]
    #[arg(long)]
    pub fail_on_mismatch: bool,
}

#[derive(Debug, Serialize)]
struct CheckResult {
    mr: u64,
    source: SideResult,
    target: SideResult,
    /// `null` when a version could not be read.
    #[serde(rename = "match")]
    matches: Option<bool>,
    action: &'static str,
}

#[derive(Debug, Serialize)]
struct SideResult {
    branch: String,
    version: Option<String>,
}

impl From<&Side> for SideResult {
    fn from(side: &Side) -> Self {
        Self {
            branch: side.branch.clone(),
            version: side.version.version().map(ToString::to_string),
        }
    }
}

pub fn run(args: &CheckVersionsArgs, settings: &Settings) -> Result<ExitStatus> {
    let printer = Printer::new(settings);
    let mr = merge_request_iid(args.mr, settings)?;
    let project = required_project(settings)?;
    let request = CheckVersionsRequest::new(&project, mr, &settings.config.versions)?;
    let gitlab = settings.gitlab_client(&printer)?;
    let outcome = check_versions(&gitlab, &request)?;
    printer.planned(&gitlab.planned());
    for side in [&outcome.source, &outcome.target] {
        if let SideVersion::Unreadable(why) = &side.version {
            printer.warn(format!(
                "cannot read the version of {why}; not comparing (exit 0)"
            ));
        }
    }
    let result = CheckResult {
        mr: outcome.mr,
        source: (&outcome.source).into(),
        target: (&outcome.target).into(),
        matches: match outcome.verdict {
            Verdict::Match => Some(true),
            Verdict::Mismatch => Some(false),
            Verdict::Unknown => None,
        },
        action: action_name(&outcome),
    };
    printer.summary(human_line(&outcome, request.granularity));
    printer.result(&result, |out| {
        writeln!(out, "{}", human_line(&outcome, request.granularity))
    })?;
    let fail = args.fail_on_mismatch || settings.config.versions.fail_on_mismatch.unwrap_or(false);
    if fail && outcome.unacknowledged_mismatch() {
        return Ok(ExitStatus::Found);
    }
    Ok(ExitStatus::Success)
}

fn action_name(outcome: &CheckVersionsOutcome) -> &'static str {
    match (outcome.action, outcome.planned) {
        (ThreadAction::Created, false) => "created",
        (ThreadAction::Created, true) => "would-create",
        (ThreadAction::Resolved, false) => "resolved",
        (ThreadAction::Resolved, true) => "would-resolve",
        (ThreadAction::Exists | ThreadAction::Updated | ThreadAction::Acknowledged, _) => "exists",
        (ThreadAction::Nothing, _) => "none",
    }
}

fn human_line(outcome: &CheckVersionsOutcome, granularity: crate::versions::Granularity) -> String {
    let side = |s: &Side| match s.version.version() {
        Some(v) => format!("{} ({v})", s.branch),
        None => format!("{} (no version)", s.branch),
    };
    let verdict = match outcome.verdict {
        Verdict::Match => format!("same {granularity} version"),
        Verdict::Mismatch => format!("{granularity} versions differ"),
        Verdict::Unknown => "not compared".to_owned(),
    };
    let would = if outcome.planned { "would be " } else { "" };
    let thread = match outcome.action {
        ThreadAction::Created => format!("version-check thread {would}opened"),
        ThreadAction::Updated => {
            format!("version-check thread open, {would}updated with the new versions")
        }
        ThreadAction::Exists => "version-check thread already open".to_owned(),
        ThreadAction::Acknowledged => {
            "version-check thread resolved by a person for these versions: left alone".to_owned()
        }
        ThreadAction::Resolved => format!("version-check thread {would}resolved"),
        ThreadAction::Nothing => "nothing to do".to_owned(),
    };
    format!(
        "!{}: {} into {}: {verdict}; {thread}",
        outcome.mr,
        side(&outcome.source),
        side(&outcome.target)
    )
}

/// `--mr`, else `CI_MERGE_REQUEST_IID`.
pub(crate) fn merge_request_iid(flag: Option<u64>, settings: &Settings) -> Result<u64> {
    if let Some(iid) = flag {
        return Ok(iid);
    }
    match settings.env.get("CI_MERGE_REQUEST_IID") {
        Some(value) => value.trim().parse().map_err(|_| {
            UsageError::new(format!(
                "CI_MERGE_REQUEST_IID={value:?} is not a merge request IID"
            ))
            .into()
        }),
        None => Err(UsageError::new("no merge request: pass --mr IID")
            .with_hint(
                "in GitLab CI, run the job in a merge request pipeline \
                 (rules: - if: $CI_PIPELINE_SOURCE == \"merge_request_event\") \
                 so CI_MERGE_REQUEST_IID is set",
            )
            .into()),
    }
}

/// The GitLab project, which these commands cannot do without.
pub(crate) fn required_project(settings: &Settings) -> Result<String> {
    settings.gitlab.project.clone().ok_or_else(|| {
        UsageError::new("no GitLab project: set --project, RP_PROJECT or gitlab.project")
            .with_hint("in GitLab CI, CI_PROJECT_ID is used automatically")
            .into()
    })
}
