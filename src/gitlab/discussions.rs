//! Merge-request discussions (threads): list, create, add a note, resolve.

use anyhow::Result;

use super::{Discussion, GitLab};

impl GitLab {
    /// Every discussion on a merge request, oldest first (paginated).
    pub fn merge_request_discussions(&self, project: &str, iid: u64) -> Result<Vec<Discussion>> {
        self.get_all(&format!(
            "{}/merge_requests/{iid}/discussions",
            Self::project_path(project)
        ))
    }
}
