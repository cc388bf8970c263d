//! Issues and their notes.
//!
//! Creating an issue or a note is not idempotent in GitLab, so each takes the
//! marker its body carries: after an attempt whose answer was lost, the issue
//! list (or the note list) is searched for that marker before sending again.

use anyhow::Result;
use serde_json::json;

use super::{GitLab, Issue, Method, Note, Written, encode};

/// An issue to create.
#[derive(Debug, Clone)]
pub struct NewIssue {
    pub title: String,
    pub description: String,
    pub labels: Vec<String>,
}

impl GitLab {
    /// Every issue (open and closed) carrying all of `labels`, paginated.
    pub fn issues_with_labels(&self, project: &str, labels: &[String]) -> Result<Vec<Issue>> {
        let path = format!(
            "{}/issues?labels={}&state=all&scope=all&order_by=created_at&sort=asc",
            Self::project_path(project),
            encode(&labels.join(","))
        );
        self.get_all(&path)
    }

    /// Create an issue whose description contains `marker`.
    pub fn create_issue(
        &self,
        project: &str,
        issue: &NewIssue,
        marker: &str,
    ) -> Result<Written<Issue>> {
        self.create_issue_recognised(project, issue, |existing| {
            existing.description().contains(marker)
        })
    }

    /// Create an issue; after an attempt whose answer was lost, an issue
    /// carrying the same labels for which `is_ours` holds is taken as the
    /// one created (for a marker that must be found only at its own place).
    pub fn create_issue_recognised(
        &self,
        project: &str,
        issue: &NewIssue,
        is_ours: impl Fn(&Issue) -> bool,
    ) -> Result<Written<Issue>> {
        let path = format!("{}/issues", Self::project_path(project));
        let body = json!({
            "title": issue.title,
            "description": issue.description,
            "labels": issue.labels.join(","),
        });
        let summary = format!(
            "new issue {:?} labelled {:?}",
            issue.title,
            issue.labels.join(",")
        );
        self.write(Method::Post, &path, &body, &summary, || {
            Ok(self
                .issues_with_labels(project, &issue.labels)?
                .into_iter()
                .find(|existing| is_ours(existing)))
        })
    }

    /// Reopen a closed issue (idempotent: reopening an open issue changes nothing).
    pub fn reopen_issue(&self, project: &str, iid: u64) -> Result<Written<Issue>> {
        let path = format!("{}/issues/{iid}", Self::project_path(project));
        let body = json!({ "state_event": "reopen" });
        self.write(Method::Put, &path, &body, "state_event=reopen", || Ok(None))
    }

    /// Close an issue (idempotent).
    pub fn close_issue(&self, project: &str, iid: u64) -> Result<Written<Issue>> {
        let path = format!("{}/issues/{iid}", Self::project_path(project));
        let body = json!({ "state_event": "close" });
        self.write(Method::Put, &path, &body, "state_event=close", || Ok(None))
    }

    /// Every note on an issue, oldest first.
    pub fn issue_notes(&self, project: &str, iid: u64) -> Result<Vec<Note>> {
        let path = format!(
            "{}/issues/{iid}/notes?sort=asc&order_by=created_at",
            Self::project_path(project)
        );
        self.get_all(&path)
    }

    /// Add a note whose body contains `marker`.
    pub fn create_issue_note(
        &self,
        project: &str,
        iid: u64,
        body: &str,
        marker: &str,
    ) -> Result<Written<Note>> {
        let path = format!("{}/issues/{iid}/notes", Self::project_path(project));
        let summary = format!("note of {} characters", body.chars().count());
        self.write(
            Method::Post,
            &path,
            &json!({ "body": body }),
            &summary,
            || {
                Ok(self
                    .issue_notes(project, iid)?
                    .into_iter()
                    .find(|note| note.body.contains(marker)))
            },
        )
    }
}

impl GitLab {
    /// Replace an issue's description (idempotent).
    pub fn update_issue_description(
        &self,
        project: &str,
        iid: u64,
        description: &str,
    ) -> Result<Written<Issue>> {
        let path = format!("{}/issues/{iid}", Self::project_path(project));
        self.write(
            Method::Put,
            &path,
            &json!({ "description": description }),
            "new description with the rp-devops marker",
            || Ok(None),
        )
    }
}

impl GitLab {
    /// Add a note whose body contains `marker`; an `internal` note is seen
    /// only by project members (GitLab 15.6+; older versions ignore it).
    pub fn create_issue_note_visible(
        &self,
        project: &str,
        iid: u64,
        body: &str,
        marker: &str,
        internal: bool,
    ) -> Result<Written<Note>> {
        if !internal {
            return self.create_issue_note(project, iid, body, marker);
        }
        let path = format!("{}/issues/{iid}/notes", Self::project_path(project));
        let summary = format!("internal note of {} characters", body.chars().count());
        self.write(
            Method::Post,
            &path,
            &json!({ "body": body, "internal": true }),
            &summary,
            || {
                Ok(self
                    .issue_notes(project, iid)?
                    .into_iter()
                    .find(|note| note.body.contains(marker)))
            },
        )
    }
}
