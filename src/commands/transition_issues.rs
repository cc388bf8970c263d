//! `rp-devops transition-issues`: move the issues a merge request mentions
//! along the board (SPEC §7). Glue: arguments → request → operation →
//! printed outcome; the work is [`crate::ops::transition_issues`].

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::check_versions::required_project;
use crate::error::{ExitStatus, UsageError};
use crate::ops::transition_issues::{
    IssueAction, MrSelector, Notice, TransitionOutcome, TransitionRequest, WorkflowPolicy,
    transition_issues,
};
use crate::output::{Printer, SummaryLine, summary_of};
use crate::settings::Settings;

/// Move the issues a merge request mentions to the next board column: to
/// workflow.on_open while the MR is open, to workflow.on_merge once merged.
///
/// Issues are the ones referenced in the MR's title, description and commit
/// messages (#12, group/project#12, or an issue URL on the same GitLab; not
/// !12, not inside code). Each open issue gets one edit that removes its
/// other workflow.labels and adds the target; an issue already there gets
/// no request; closed issues are left alone; with workflow.forward_only
/// (default) an issue further along the board stays. A draft MR moves its
/// issues when it is marked ready (workflow.drafts_wait, default true).
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rp-devops transition-issues                  # MR pipeline: CI_MERGE_REQUEST_IID\n  \
    rp-devops transition-issues --commit \"$CI_COMMIT_SHA\"   # default branch, after the merge\n  \
    rp-devops transition-issues --mr 42 --to testing --dry-run")]
pub struct TransitionIssuesArgs {
    /// Merge request IID [default: CI_MERGE_REQUEST_IID]
    #[arg(long, value_name = "IID", conflicts_with = "commit")]
    pub mr: Option<u64>,

    /// Use the merged MR that produced this commit [default: CI_COMMIT_SHA
    /// when CI_MERGE_REQUEST_IID is not set]
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,

    /// Target label [default: workflow.on_open for an open MR,
    /// workflow.on_merge for a merged one]
    #[arg(long, value_name = "LABEL")]
    pub to: Option<String>,
}

#[derive(Debug, Serialize)]
struct TransitionResult {
    mr: Option<u64>,
    state: Option<&'static str>,
    label: Option<String>,
    issues: Vec<IssueResult>,
}

#[derive(Debug, Serialize)]
struct IssueResult {
    reference: String,
    from: Option<String>,
    to: String,
    action: &'static str,
}

pub fn run(args: &TransitionIssuesArgs, settings: &Settings) -> Result<ExitStatus> {
    let printer = Printer::new(settings);
    let selector = selector(args, settings)?;
    let project = required_project(settings)?;
    if let Some(to) = &args.to {
        if to.trim().is_empty() || to.contains(',') {
            return Err(UsageError::new(format!(
                "--to {to:?} is not a label name (empty, or holds a comma)"
            ))
            .into());
        }
    }
    let request = TransitionRequest {
        project,
        mr: selector,
        to: args.to.clone(),
        policy: WorkflowPolicy::from(&settings.config.workflow),
    };
    let gitlab = settings.gitlab_client(&printer)?;
    let outcome = transition_issues(&gitlab, &request)?;
    printer.planned(&gitlab.planned());
    for notice in &outcome.notices {
        printer.warn(notice_text(notice));
    }
    let result = TransitionResult {
        mr: outcome.mr,
        state: outcome.state.map(|s| s.as_str()),
        label: outcome.label.clone(),
        issues: outcome
            .issues
            .iter()
            .map(|t| IssueResult {
                reference: t.reference.clone(),
                from: t.from.clone(),
                to: t.to.clone(),
                action: action_name(t.action, t.planned),
            })
            .collect(),
    };
    printer.result(&result, |out| render_human(out, &outcome))?;
    printer.summary(summary_of(SummaryLine::First, |out| {
        render_human(out, &outcome)
    }));
    Ok(ExitStatus::Success)
}

fn selector(args: &TransitionIssuesArgs, settings: &Settings) -> Result<MrSelector> {
    if let Some(iid) = args.mr {
        return Ok(MrSelector::Iid(iid));
    }
    let commit = |sha: &str, origin: &str| -> Result<MrSelector> {
        let sha = sha.trim();
        if (7..=64).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(MrSelector::Commit(sha.to_ascii_lowercase()))
        } else {
            Err(UsageError::new(format!("{origin} {sha:?} is not a commit SHA")).into())
        }
    };
    if let Some(sha) = &args.commit {
        return commit(sha, "--commit");
    }
    if let Some(value) = settings.env.get("CI_MERGE_REQUEST_IID") {
        return value.trim().parse().map(MrSelector::Iid).map_err(|_| {
            UsageError::new(format!(
                "CI_MERGE_REQUEST_IID={value:?} is not a merge request IID"
            ))
            .into()
        });
    }
    if let Some(sha) = settings.env.get("CI_COMMIT_SHA") {
        return commit(sha, "CI_COMMIT_SHA");
    }
    Err(
        UsageError::new("no merge request: pass --mr IID or --commit SHA")
            .with_hint("in GitLab CI, CI_MERGE_REQUEST_IID (MR pipelines) or CI_COMMIT_SHA is used")
            .into(),
    )
}

fn action_name(action: IssueAction, planned: bool) -> &'static str {
    match (action, planned) {
        (IssueAction::Moved, false) => "moved",
        (IssueAction::Moved, true) => "would-move",
        (IssueAction::Unchanged, _) => "unchanged",
        (IssueAction::SkippedClosed, _) => "skipped-closed",
        (IssueAction::SkippedBackwards, _) => "skipped-backwards",
        (IssueAction::SkippedDraft, _) => "skipped-draft",
    }
}

fn notice_text(notice: &Notice) -> String {
    match notice {
        Notice::NoMergedMr { commit } => format!(
            "commit {commit} was merged by no merge request (a direct push?): no issue to move"
        ),
        Notice::MrClosed => {
            "the merge request is closed without being merged: no issue to move (--to moves anyway)"
                .to_owned()
        }
        Notice::IssueNotFound { reference } => {
            format!("issue {reference} not found (or not visible to the token): skipped")
        }
    }
}

fn render_human(out: &mut dyn std::io::Write, outcome: &TransitionOutcome) -> std::io::Result<()> {
    let Some(mr) = outcome.mr else {
        return writeln!(out, "no merge request: nothing to move");
    };
    let state = outcome.state.map_or("", |s| s.as_str());
    let draft = if outcome.draft { ", draft" } else { "" };
    match &outcome.label {
        Some(label) => writeln!(out, "!{mr} ({state}{draft}): issues go to {label:?}")?,
        None => writeln!(out, "!{mr} ({state}{draft}): nothing to move")?,
    }
    if outcome.issues.is_empty() && outcome.label.is_some() {
        writeln!(out, "  no issue referenced")?;
    }
    for t in &outcome.issues {
        let from = t
            .from
            .as_deref()
            .map_or("-".to_owned(), |f| format!("{f:?}"));
        writeln!(
            out,
            "  {:<12} {} (was {from})",
            action_name(t.action, t.planned),
            t.reference
        )?;
    }
    Ok(())
}
