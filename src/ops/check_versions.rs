//! `check-versions` (SPEC §6): the version file on both sides of a merge
//! request, compared at a granularity, and exactly one open rp-devops thread
//! on the MR while they differ.
//!
//! Reads: the MR, the file at the source branch (in the source project, a
//! fork's for fork MRs), the file at the target branch, the MR's
//! discussions — four requests when there is nothing to write, five when a
//! thread carries our marker and the token's own user must be read to know
//! whether we wrote it (`GET /user`, once per client). A thread is ours when
//! its first note starts with the marker (see [`crate::versions::thread`])
//! *and* was written by the token's user: anyone can type a marker, so a
//! person's comment that starts with one is never taken for ours (it would
//! otherwise stand in for the warning, or acknowledge it). Only our own
//! notes count inside a thread too; the versions recorded in our latest
//! marker say what it was written for, so a thread a person resolved stays
//! resolved until the versions change.

use anyhow::{Context, Result};

use crate::config::VersionsConfig;
use crate::error::{HintedError, UsageError};
use crate::gitlab::{Discussion, FileContent, GitLab, is_status};
use crate::versions::thread::{self, Facts, RESOLVED_MARKER};
use crate::versions::{Granularity, Version, VersionSource};

/// What to check.
#[derive(Debug, Clone)]
pub struct CheckVersionsRequest {
    /// The MR's (target) project, ID or path.
    pub project: String,
    pub mr: u64,
    /// Path of the version file in the repository.
    pub file: String,
    pub source: VersionSource,
    pub granularity: Granularity,
}

/// The version file when `versions.file` is not set.
pub const DEFAULT_FILE: &str = "VERSION";

impl CheckVersionsRequest {
    /// The request for MR `mr` of `project` under the `versions:` section.
    pub fn new(project: &str, mr: u64, config: &VersionsConfig) -> Result<Self> {
        let source = match &config.pattern {
            Some(pattern) => VersionSource::pattern(pattern).map_err(UsageError::new)?,
            None => VersionSource::first_line(),
        };
        Ok(Self {
            project: project.to_owned(),
            mr,
            file: config
                .file
                .clone()
                .filter(|f| !f.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_FILE.to_owned()),
            source,
            granularity: config.compare.unwrap_or_default(),
        })
    }
}

/// One side of the merge request.
#[derive(Debug, Clone)]
pub struct Side {
    pub branch: String,
    pub project_id: u64,
    pub version: SideVersion,
}

#[derive(Debug, Clone)]
pub enum SideVersion {
    Read(Version),
    /// Why there is no version (for the warning).
    Unreadable(String),
}

impl SideVersion {
    pub fn version(&self) -> Option<&Version> {
        match self {
            SideVersion::Read(v) => Some(v),
            SideVersion::Unreadable(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Match,
    Mismatch,
    /// A side's version could not be read: nothing is decided.
    Unknown,
}

/// What happened to rp-devops's thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAction {
    /// A new thread was opened.
    Created,
    /// Our thread was open; a note says the versions changed (still differ).
    Updated,
    /// Our thread is open for these versions.
    Exists,
    /// A person resolved our thread for these versions: left alone.
    Acknowledged,
    /// The versions match again: our open thread got a note and was resolved.
    Resolved,
    Nothing,
}

#[derive(Debug, Clone)]
pub struct CheckVersionsOutcome {
    pub mr: u64,
    pub source: Side,
    pub target: Side,
    pub verdict: Verdict,
    pub action: ThreadAction,
    /// The action's writes were planned (dry run), not sent.
    pub planned: bool,
    /// Our thread's id, when there is one.
    pub thread: Option<String>,
    pub web_url: String,
}

impl CheckVersionsOutcome {
    /// A mismatch nobody has acknowledged (what `--fail-on-mismatch` fails on).
    pub fn unacknowledged_mismatch(&self) -> bool {
        self.verdict == Verdict::Mismatch && self.action != ThreadAction::Acknowledged
    }
}

/// One of our threads, and the versions its latest marker records.
struct OurThread<'a> {
    discussion: &'a Discussion,
    recorded: Option<(Version, Version)>,
    /// rp-devops resolved it itself (versions matched at the time).
    resolved_by_us: bool,
}

pub fn check_versions(
    gitlab: &GitLab,
    request: &CheckVersionsRequest,
) -> Result<CheckVersionsOutcome> {
    let project = request.project.as_str();
    let iid = request.mr;
    let mr = match gitlab.merge_request(project, iid) {
        Ok(mr) => mr,
        Err(err) if is_status(&err, 404) => {
            return Err(err.context(HintedError::new(
                format!("merge request !{iid} not found in project {project}"),
                "check --mr (or CI_MERGE_REQUEST_IID) and --project (or CI_PROJECT_ID, \
                 gitlab.project), and that the token's user can see the merge request",
            )));
        }
        Err(err) => {
            return Err(err.context(format!("reading merge request !{iid} of project {project}")));
        }
    };
    let read_side = |project_id: u64, branch: &str| -> Result<Side> {
        let content = gitlab
            .raw_file(&project_id.to_string(), &request.file, branch)
            .with_context(|| {
                format!(
                    "reading {} at {branch} in project {project_id}",
                    request.file
                )
            })?;
        let version = match content {
            FileContent::Found(text) => match request.source.extract(&text) {
                Ok(version) => SideVersion::Read(version),
                Err(why) => {
                    SideVersion::Unreadable(format!("{} at {branch:?}: {why}", request.file))
                }
            },
            FileContent::Missing(message) => SideVersion::Unreadable(format!(
                "{} at {branch:?} (project {project_id}): GitLab answered {message}",
                request.file
            )),
        };
        Ok(Side {
            branch: branch.to_owned(),
            project_id,
            version,
        })
    };
    let source = read_side(mr.source_project_id, &mr.source_branch)?;
    let target = read_side(mr.target_project_id, &mr.target_branch)?;
    let mut outcome = CheckVersionsOutcome {
        mr: iid,
        source,
        target,
        verdict: Verdict::Unknown,
        action: ThreadAction::Nothing,
        planned: false,
        thread: None,
        web_url: mr.web_url.clone(),
    };
    let (Some(s), Some(t)) = (
        outcome.source.version.version().cloned(),
        outcome.target.version.version().cloned(),
    ) else {
        return Ok(outcome);
    };
    outcome.verdict = if s.same_line(&t, request.granularity) {
        Verdict::Match
    } else {
        Verdict::Mismatch
    };

    let discussions = gitlab
        .merge_request_discussions(project, iid)
        .with_context(|| format!("reading the threads of !{iid} in project {project}"))?;
    let ours = our_threads(gitlab, &discussions)?;
    let (open, closed): (Vec<&OurThread>, Vec<&OurThread>) =
        ours.iter().partition(|t| !t.discussion.is_resolved());
    let facts = Facts {
        file: &request.file,
        source_branch: &outcome.source.branch,
        target_branch: &outcome.target.branch,
        source: &s,
        target: &t,
        granularity: request.granularity,
    };
    let current = Some((s.clone(), t.clone()));
    let writing = |what: &str| format!("{what} on !{iid} of project {project}");

    match outcome.verdict {
        Verdict::Match => {
            for ours in &open {
                let id = &ours.discussion.id;
                let noted = ours.resolved_by_us;
                let mut planned = false;
                if !noted {
                    planned |= gitlab
                        .add_discussion_note(
                            project,
                            iid,
                            id,
                            &thread::resolved_body(&facts),
                            RESOLVED_MARKER,
                        )
                        .with_context(|| {
                            writing("noting the versions match in the version-check thread")
                        })?
                        .is_planned();
                }
                planned |= gitlab
                    .resolve_discussion(project, iid, id, true)
                    .with_context(|| writing("resolving the version-check thread"))?
                    .is_planned();
                outcome.action = ThreadAction::Resolved;
                outcome.planned = planned;
                outcome.thread = Some(id.clone());
            }
        }
        Verdict::Mismatch => {
            if let Some((first, extra)) = open.split_first() {
                outcome.thread = Some(first.discussion.id.clone());
                outcome.action = ThreadAction::Exists;
                if first.recorded.is_some() && first.recorded != current {
                    let marker = thread::marker(&s, &t);
                    outcome.planned = gitlab
                        .add_discussion_note(
                            project,
                            iid,
                            &first.discussion.id,
                            &thread::changed_body(&facts),
                            &marker,
                        )
                        .with_context(|| writing("updating the version-check thread"))?
                        .is_planned();
                    outcome.action = ThreadAction::Updated;
                }
                // Two CI jobs racing may each have opened one: keep the oldest.
                for duplicate in extra {
                    gitlab
                        .resolve_discussion(project, iid, &duplicate.discussion.id, true)
                        .with_context(|| writing("resolving a duplicate version-check thread"))?;
                }
            } else if let Some(last) = closed
                .last()
                .filter(|c| !c.resolved_by_us && (c.recorded.is_none() || c.recorded == current))
            {
                outcome.thread = Some(last.discussion.id.clone());
                outcome.action = ThreadAction::Acknowledged;
            } else {
                let marker = thread::marker(&s, &t);
                let written = gitlab
                    .create_merge_request_discussion(
                        project,
                        iid,
                        &thread::mismatch_body(&facts),
                        &marker,
                    )
                    .with_context(|| writing("opening the version-check thread"))?;
                outcome.planned = written.is_planned();
                outcome.thread = written.sent().map(|d| d.id);
                outcome.action = ThreadAction::Created;
            }
        }
        Verdict::Unknown => {}
    }
    Ok(outcome)
}

/// Our threads, oldest first: resolvable discussions whose first note
/// starts with our marker and was written by the token's own user. The
/// user is read only when some thread carries the marker.
fn our_threads<'a>(gitlab: &GitLab, discussions: &'a [Discussion]) -> Result<Vec<OurThread<'a>>> {
    let mut ours = Vec::new();
    for d in discussions.iter().filter(|d| d.is_resolvable()) {
        let Some(first) = d.first_note() else {
            continue;
        };
        let Some(opening) = thread::read_marker(&first.body) else {
            continue;
        };
        if !gitlab.is_own(first.author.as_ref())? {
            continue;
        }
        let mut own_notes = Vec::new();
        for note in &d.notes {
            if gitlab.is_own(note.author.as_ref())? {
                own_notes.push(note);
            }
        }
        let latest = own_notes
            .iter()
            .filter_map(|n| thread::read_marker(&n.body))
            .filter_map(|r| r.versions)
            .next_back();
        ours.push(OurThread {
            discussion: d,
            recorded: latest.or(opening.versions),
            resolved_by_us: own_notes
                .iter()
                .any(|n| n.body.starts_with(RESOLVED_MARKER)),
        });
    }
    Ok(ours)
}
