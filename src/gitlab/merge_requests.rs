//! Merge requests: one by IID, the MRs a commit belongs to, an MR's commits.

use anyhow::Result;

use super::{Commit, GitLab, MergeRequest, encode};

impl GitLab {
    /// One merge request of `project` (the target project).
    pub fn merge_request(&self, project: &str, iid: u64) -> Result<MergeRequest> {
        self.get(&format!(
            "{}/merge_requests/{iid}",
            Self::project_path(project)
        ))
    }

    /// The merge requests that contain commit `sha` (GitLab lists the MR it
    /// was merged by, and open MRs carrying it).
    pub fn commit_merge_requests(&self, project: &str, sha: &str) -> Result<Vec<MergeRequest>> {
        self.get_all(&format!(
            "{}/repository/commits/{}/merge_requests",
            Self::project_path(project),
            encode(sha)
        ))
    }

    /// Every commit of a merge request (paginated).
    pub fn merge_request_commits(&self, project: &str, iid: u64) -> Result<Vec<Commit>> {
        self.get_all(&format!(
            "{}/merge_requests/{iid}/commits",
            Self::project_path(project)
        ))
    }
}
