//! Projects and labels, looked up by path or name, and one issue by IID.

use anyhow::Result;

use super::{ApiError, GitLab, Issue, Label, Project, encode};

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
}

/// Whether `err` is GitLab answering `status`.
pub fn is_status(err: &anyhow::Error, status: u16) -> bool {
    err.chain()
        .filter_map(|c| c.downcast_ref::<ApiError>())
        .any(|api| api.status == Some(status))
}
