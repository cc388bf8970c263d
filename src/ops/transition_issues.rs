//! `transition-issues` (SPEC §7): move the issues a merge request mentions
//! along the board — to `on_open` while it is open (and ready), to
//! `on_merge` once merged.
//!
//! All reads come first (the MR, its commits, each issue, the target label
//! in each project that gets a move), then one label edit per issue that
//! moves. So a configuration mistake (a label missing in a project) stops
//! the run before anything was written, and an issue already where it
//! belongs costs no write at all.

use std::collections::HashMap;

use anyhow::{Context, Result};

use crate::config::WorkflowConfig;
use crate::error::{HintedError, UsageError};
use crate::gitlab::{GitLab, MergeRequest, is_status};
use crate::references::{IssueReference, ReferenceFinder};
use crate::workflow::{Board, Decision};

/// Which merge request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MrSelector {
    Iid(u64),
    /// The merged MR that produced this commit (a default-branch pipeline).
    Commit(String),
}

/// The board and where issues go.
#[derive(Debug, Clone, Default)]
pub struct WorkflowPolicy {
    pub board: Board,
    pub on_open: Option<String>,
    pub on_merge: Option<String>,
    pub forward_only: bool,
    pub drafts_wait: bool,
}

impl From<&WorkflowConfig> for WorkflowPolicy {
    /// The `workflow:` section, with its defaults (forward only, drafts wait).
    fn from(config: &WorkflowConfig) -> Self {
        Self {
            board: Board::new(config.labels.clone()),
            on_open: config.on_open.clone(),
            on_merge: config.on_merge.clone(),
            forward_only: config.forward_only.unwrap_or(true),
            drafts_wait: config.drafts_wait.unwrap_or(true),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TransitionRequest {
    /// The MR's (target) project, ID or path.
    pub project: String,
    pub mr: MrSelector,
    /// An explicit target label (`--to`), else from the MR's state.
    pub to: Option<String>,
    pub policy: WorkflowPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MrState {
    Opened,
    Merged,
    Closed,
    Locked,
}

impl MrState {
    fn of(mr: &MergeRequest) -> Self {
        match mr.state.as_str() {
            "merged" => MrState::Merged,
            "closed" => MrState::Closed,
            "locked" => MrState::Locked,
            _ => MrState::Opened,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MrState::Opened => "opened",
            MrState::Merged => "merged",
            MrState::Closed => "closed",
            MrState::Locked => "locked",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueAction {
    Moved,
    Unchanged,
    SkippedClosed,
    SkippedBackwards,
    SkippedDraft,
}

#[derive(Debug, Clone)]
pub struct IssueTransition {
    /// `group/project#12`.
    pub reference: String,
    /// The issue's column before (its furthest workflow label).
    pub from: Option<String>,
    pub to: String,
    pub action: IssueAction,
    /// The move was planned (dry run), not sent.
    pub planned: bool,
}

/// Something worth a warning that did not stop the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The commit belongs to no merged merge request (a direct push).
    NoMergedMr { commit: String },
    /// The MR is closed (not merged) and no `--to` was given.
    MrClosed,
    /// A referenced issue (or its project) is not visible.
    IssueNotFound { reference: String },
}

#[derive(Debug, Clone, Default)]
pub struct TransitionOutcome {
    pub mr: Option<u64>,
    pub state: Option<MrState>,
    pub draft: bool,
    pub label: Option<String>,
    pub issues: Vec<IssueTransition>,
    pub notices: Vec<Notice>,
}

pub fn transition_issues(
    gitlab: &GitLab,
    request: &TransitionRequest,
) -> Result<TransitionOutcome> {
    let project = request.project.as_str();
    let mut outcome = TransitionOutcome::default();
    let Some(mr) = find_mr(gitlab, project, &request.mr)? else {
        if let MrSelector::Commit(commit) = &request.mr {
            outcome.notices.push(Notice::NoMergedMr {
                commit: commit.clone(),
            });
        }
        return Ok(outcome);
    };
    let state = MrState::of(&mr);
    outcome.mr = Some(mr.iid);
    outcome.state = Some(state);
    outcome.draft = mr.is_draft();
    let policy = &request.policy;
    let label = match (&request.to, state) {
        (Some(to), _) => to.clone(),
        (None, MrState::Opened) => policy.on_open.clone().ok_or_else(|| {
            UsageError::new("no target label for an open merge request: set workflow.on_open in rp-devops.yml or pass --to")
        })?,
        (None, MrState::Merged) => policy.on_merge.clone().ok_or_else(|| {
            UsageError::new("no target label for a merged merge request: set workflow.on_merge in rp-devops.yml or pass --to")
        })?,
        (None, MrState::Closed | MrState::Locked) => {
            outcome.notices.push(Notice::MrClosed);
            return Ok(outcome);
        }
    };
    outcome.label = Some(label.clone());
    let waiting =
        state == MrState::Opened && mr.is_draft() && policy.drafts_wait && request.to.is_none();

    let commits = gitlab
        .merge_request_commits(&mr.project_id.to_string(), mr.iid)
        .with_context(|| format!("reading the commits of !{} in project {project}", mr.iid))?;
    let finder = ReferenceFinder::new(gitlab.base_url());
    let references = finder.find_all(
        [mr.title.as_str(), mr.description()]
            .into_iter()
            .chain(commits.iter().map(|c| c.message.as_str())),
    );

    if waiting {
        let own = mr.project_path().map(str::to_owned);
        outcome.issues = references
            .iter()
            .map(|r| IssueTransition {
                reference: full_reference(r, own.as_deref()),
                from: None,
                to: label.clone(),
                action: IssueAction::SkippedDraft,
                planned: false,
            })
            .collect();
        return Ok(outcome);
    }

    // Reads: each distinct issue once, cross-project references resolved to
    // their project's ID (so `#12` and `group/project#12` are one issue).
    let mut project_ids: HashMap<String, Option<u64>> = HashMap::new();
    if let Some(path) = mr.project_path() {
        project_ids.insert(path.to_ascii_lowercase(), Some(mr.project_id));
    }
    let mut seen = std::collections::HashSet::new();
    let mut moves: Vec<(u64, u64, Vec<String>)> = Vec::new();
    for reference in &references {
        let shown = full_reference(reference, mr.project_path());
        let project_id = match &reference.project {
            None => Some(mr.project_id),
            Some(path) => match project_ids.get(&path.to_ascii_lowercase()) {
                Some(id) => *id,
                None => {
                    let id = match gitlab.project(path) {
                        Ok(found) => Some(found.id),
                        Err(err) if is_status(&err, 404) => None,
                        Err(err) => {
                            return Err(err.context(format!(
                                "looking up project {path} (referenced as {shown})"
                            )));
                        }
                    };
                    project_ids.insert(path.to_ascii_lowercase(), id);
                    id
                }
            },
        };
        let Some(project_id) = project_id else {
            outcome
                .notices
                .push(Notice::IssueNotFound { reference: shown });
            continue;
        };
        if !seen.insert((project_id, reference.iid)) {
            continue;
        }
        let issue = match gitlab.issue(&project_id.to_string(), reference.iid) {
            Ok(issue) => issue,
            Err(err) if is_status(&err, 404) => {
                outcome
                    .notices
                    .push(Notice::IssueNotFound { reference: shown });
                continue;
            }
            Err(err) => return Err(err.context(format!("reading issue {shown}"))),
        };
        let shown = issue
            .references
            .as_ref()
            .map(|r| r.full.clone())
            .filter(|f| !f.is_empty())
            .unwrap_or(shown);
        let from = policy.board.column(&issue.labels).map(str::to_owned);
        let decision = policy.board.decide(
            &issue.labels,
            issue.is_closed(),
            &label,
            policy.forward_only,
        );
        let action = match decision {
            Decision::Move { remove, .. } => {
                moves.push((project_id, issue.iid, remove));
                IssueAction::Moved
            }
            Decision::Unchanged => IssueAction::Unchanged,
            Decision::Backwards => IssueAction::SkippedBackwards,
            Decision::Closed => IssueAction::SkippedClosed,
        };
        outcome.issues.push(IssueTransition {
            reference: shown,
            from,
            to: label.clone(),
            action,
            planned: false,
        });
    }

    // The target label must exist where it is added: GitLab would otherwise
    // create it silently, off the board.
    let mut checked = std::collections::HashSet::new();
    for (project_id, _, _) in &moves {
        if !checked.insert(*project_id) {
            continue;
        }
        let exists = gitlab
            .label(&project_id.to_string(), &label)
            .with_context(|| format!("looking up label {label:?} in project {project_id}"))?
            .is_some();
        if !exists {
            let name = if *project_id == mr.project_id {
                project.to_owned()
            } else {
                project_ids
                    .iter()
                    .find(|(_, id)| **id == Some(*project_id))
                    .map_or_else(|| project_id.to_string(), |(path, _)| path.clone())
            };
            return Err(HintedError::new(
                format!("label {label:?} does not exist in project {name} (nor in its groups)"),
                "create it (Manage > Labels) or correct workflow.labels / on_open / on_merge \
                 in rp-devops.yml (or --to)",
            )
            .into());
        }
    }

    // Writes: one edit per issue that moves.
    let mut move_results = moves.into_iter();
    for transition in outcome
        .issues
        .iter_mut()
        .filter(|t| t.action == IssueAction::Moved)
    {
        let Some((project_id, iid, remove)) = move_results.next() else {
            break;
        };
        let written = gitlab
            .edit_issue_labels(
                &project_id.to_string(),
                iid,
                std::slice::from_ref(&label),
                &remove,
            )
            .with_context(|| format!("moving issue {} to {label:?}", transition.reference))?;
        transition.planned = written.is_planned();
    }
    Ok(outcome)
}

/// The MR asked for: by IID, or the merged MR behind a commit.
fn find_mr(gitlab: &GitLab, project: &str, selector: &MrSelector) -> Result<Option<MergeRequest>> {
    match selector {
        MrSelector::Iid(iid) => match gitlab.merge_request(project, *iid) {
            Ok(mr) => Ok(Some(mr)),
            Err(err) if is_status(&err, 404) => Err(err.context(HintedError::new(
                format!("merge request !{iid} not found in project {project}"),
                "check --mr (or CI_MERGE_REQUEST_IID) and --project (or CI_PROJECT_ID, \
                 gitlab.project), and that the token's user can see the merge request",
            ))),
            Err(err) => {
                Err(err.context(format!("reading merge request !{iid} of project {project}")))
            }
        },
        MrSelector::Commit(sha) => {
            let candidates = match gitlab.commit_merge_requests(project, sha) {
                Ok(list) => list,
                Err(err) if is_status(&err, 404) => Vec::new(),
                Err(err) => {
                    return Err(err.context(format!(
                        "finding the merge request of commit {sha} in project {project}"
                    )));
                }
            };
            let merged: Vec<MergeRequest> = candidates
                .into_iter()
                .filter(|m| m.state == "merged")
                .collect();
            let by_sha = |m: &&MergeRequest| {
                [&m.merge_commit_sha, &m.squash_commit_sha, &m.sha]
                    .into_iter()
                    .any(|s| s.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(sha)))
            };
            let chosen = merged.iter().find(by_sha).or(merged.first()).cloned();
            Ok(chosen)
        }
    }
}

fn full_reference(reference: &IssueReference, own: Option<&str>) -> String {
    match (&reference.project, own) {
        (Some(_), _) => reference.to_string(),
        (None, Some(own)) => format!("{own}#{}", reference.iid),
        (None, None) => reference.to_string(),
    }
}
