//! Projects and labels, looked up by path or name; one issue by IID and the
//! label edit that moves it across the board.

use anyhow::Result;
use serde_json::json;

use super::{ApiError, GitLab, Issue, Label, Method, Project, Written, encode};

impl GitLab {
    /// A project by ID or full path (`group/sub/project`).
    pub fn project(&self, project: &str) -> Result<Project> {
        self.get(&Self::project_path(project))
    }

    /// One issue.
    pub fn issue(&self, project: &str, iid: u64) -> Result<Issue> {
        self.get(&format!("{}/issues/{iid}", Self::project_path(project)))
    }

    /// A label of the project (or of its groups) by name; `None` when there
    /// is no such label.
    pub fn label(&self, project: &str, name: &str) -> Result<Option<Label>> {
        if self.is_offline() {
            return Ok(None);
        }
        let path = format!(
            "{}/labels/{}?include_ancestor_groups=true",
            Self::project_path(project),
            encode(name)
        );
        match self.get(&path) {
            Ok(label) => Ok(Some(label)),
            Err(err) if is_status(&err, 404) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Add and remove labels in one edit (GitLab's `add_labels` /
    /// `remove_labels`, which leave the issue's other labels alone).
    /// Idempotent, so a lost answer is simply sent again.
    pub fn edit_issue_labels(
        &self,
        project: &str,
        iid: u64,
        add: &[String],
        remove: &[String],
    ) -> Result<Written<Issue>> {
        let path = format!("{}/issues/{iid}", Self::project_path(project));
        // Comma-separated, as documented (label names cannot hold commas).
        let body = json!({ "add_labels": add.join(","), "remove_labels": remove.join(",") });
        let summary = format!("add_labels={add:?} remove_labels={remove:?}");
        self.write(Method::Put, &path, &body, &summary, || Ok(None))
    }
}

/// Whether `err` is GitLab answering `status`.
pub fn is_status(err: &anyhow::Error, status: u16) -> bool {
    err.chain()
        .filter_map(|c| c.downcast_ref::<ApiError>())
        .any(|api| api.status == Some(status))
}
