//! Merge-request discussions (threads): list, create, add a note, resolve.
//!
//! Creating a thread or a note is not idempotent, so each takes a `marker`
//! that its body starts with: after an attempt whose answer was lost, the
//! discussions are read again and a note starting with the marker, written
//! by the token's own user (anyone can type a marker), counts as the write
//! having happened.

use anyhow::Result;
use serde_json::json;

use super::{Discussion, DiscussionNote, GitLab, Method, Written, encode};

impl GitLab {
    /// Every discussion on a merge request, oldest first (paginated).
    pub fn merge_request_discussions(&self, project: &str, iid: u64) -> Result<Vec<Discussion>> {
        self.get_all(&format!(
            "{}/merge_requests/{iid}/discussions",
            Self::project_path(project)
        ))
    }

    /// Start a resolvable thread on a merge request; `body` starts with `marker`.
    pub fn create_merge_request_discussion(
        &self,
        project: &str,
        iid: u64,
        body: &str,
        marker: &str,
    ) -> Result<Written<Discussion>> {
        let path = format!(
            "{}/merge_requests/{iid}/discussions",
            Self::project_path(project)
        );
        let summary = format!("resolvable thread on !{iid}: {}", summary_of(body));
        self.write(
            Method::Post,
            &path,
            &json!({ "body": body }),
            &summary,
            || {
                for d in self.merge_request_discussions(project, iid)? {
                    if let Some(first) = d.first_note() {
                        if first.body.starts_with(marker) && self.is_own(first.author.as_ref())? {
                            return Ok(Some(d));
                        }
                    }
                }
                Ok(None)
            },
        )
    }

    /// Reply in a thread; `body` starts with `marker`.
    pub fn add_discussion_note(
        &self,
        project: &str,
        iid: u64,
        discussion: &str,
        body: &str,
        marker: &str,
    ) -> Result<Written<DiscussionNote>> {
        let path = format!(
            "{}/merge_requests/{iid}/discussions/{}/notes",
            Self::project_path(project),
            encode(discussion)
        );
        let summary = format!("reply in thread {discussion}: {}", summary_of(body));
        self.write(
            Method::Post,
            &path,
            &json!({ "body": body }),
            &summary,
            || {
                let notes = self
                    .merge_request_discussions(project, iid)?
                    .into_iter()
                    .filter(|d| d.id == discussion)
                    .flat_map(|d| d.notes);
                for note in notes {
                    if note.body.starts_with(marker) && self.is_own(note.author.as_ref())? {
                        return Ok(Some(note));
                    }
                }
                Ok(None)
            },
        )
    }

    /// Resolve (or unresolve) a thread; idempotent.
    pub fn resolve_discussion(
        &self,
        project: &str,
        iid: u64,
        discussion: &str,
        resolved: bool,
    ) -> Result<Written<Discussion>> {
        let path = format!(
            "{}/merge_requests/{iid}/discussions/{}?resolved={resolved}",
            Self::project_path(project),
            encode(discussion)
        );
        let summary = format!("resolved={resolved} for thread {discussion}");
        self.write(
            Method::Put,
            &path,
            &json!({ "resolved": resolved }),
            &summary,
            || Ok(None),
        )
    }
}

/// The first line of a body, without the leading HTML comment, cut short:
/// enough for a dry-run plan line.
fn summary_of(body: &str) -> String {
    let text = match body.split_once("-->") {
        Some((head, rest)) if head.trim_start().starts_with("<!--") => rest,
        _ => body,
    };
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut out: String = line.chars().take(100).collect();
    if line.chars().count() > 100 {
        out.push('…');
    }
    format!("{out:?}")
}
