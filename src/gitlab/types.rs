//! The parts of GitLab's JSON that rp-devops reads. Unknown fields are
//! ignored and optional ones default, so a newer GitLab does not break us.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct User {
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Issue {
    pub id: u64,
    pub iid: u64,
    #[serde(default)]
    pub project_id: u64,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `opened` or `closed`.
    pub state: String,
    #[serde(default)]
    pub labels: Vec<String>,
    pub web_url: String,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub references: Option<References>,
}

impl Issue {
    pub fn is_closed(&self) -> bool {
        self.state == "closed"
    }

    pub fn description(&self) -> &str {
        self.description.as_deref().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Note {
    pub id: u64,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub system: bool,
    pub author: Option<User>,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// A merge request (`GET /projects/:id/merge_requests/:iid`).
#[derive(Debug, Clone, Deserialize)]
pub struct MergeRequest {
    pub id: u64,
    pub iid: u64,
    /// The target project.
    pub project_id: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `opened`, `closed`, `locked` or `merged`.
    pub state: String,
    /// GitLab 14+: `draft`; older ones only `work_in_progress`.
    #[serde(default)]
    pub draft: Option<bool>,
    #[serde(default)]
    pub work_in_progress: Option<bool>,
    pub source_branch: String,
    pub target_branch: String,
    /// The project the source branch lives in (a fork's ID for fork MRs).
    pub source_project_id: u64,
    pub target_project_id: u64,
    #[serde(default)]
    pub sha: Option<String>,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    #[serde(default)]
    pub squash_commit_sha: Option<String>,
    #[serde(default)]
    pub web_url: String,
    #[serde(default)]
    pub references: Option<References>,
}

impl MergeRequest {
    pub fn is_draft(&self) -> bool {
        self.draft.or(self.work_in_progress).unwrap_or(false)
    }

    pub fn description(&self) -> &str {
        self.description.as_deref().unwrap_or_default()
    }

    /// The target project's full path, from `references.full`
    /// (`group/project!12`), when GitLab sent it.
    pub fn project_path(&self) -> Option<&str> {
        let full = &self.references.as_ref()?.full;
        full.rsplit_once('!').map(|(path, _)| path)
    }
}

/// `references` of an issue or merge request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct References {
    #[serde(default)]
    pub short: String,
    #[serde(default)]
    pub full: String,
}

/// A commit as GitLab lists it: a merge request's commits, the compare
/// API, the commits API.
#[derive(Debug, Clone, Deserialize)]
pub struct Commit {
    pub id: String,
    #[serde(default)]
    pub short_id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub parent_ids: Vec<String>,
    #[serde(default)]
    pub web_url: Option<String>,
}

/// A discussion (thread) on a merge request.
#[derive(Debug, Clone, Deserialize)]
pub struct Discussion {
    pub id: String,
    #[serde(default)]
    pub individual_note: bool,
    #[serde(default)]
    pub notes: Vec<DiscussionNote>,
}

impl Discussion {
    /// A thread can be resolved when its notes can (GitLab marks each).
    pub fn is_resolvable(&self) -> bool {
        self.notes.iter().any(|n| n.resolvable)
    }

    /// Resolved: every resolvable note is.
    pub fn is_resolved(&self) -> bool {
        self.is_resolvable()
            && self
                .notes
                .iter()
                .filter(|n| n.resolvable)
                .all(|n| n.resolved.unwrap_or(false))
    }

    pub fn first_note(&self) -> Option<&DiscussionNote> {
        self.notes.first()
    }
}

/// A note inside a discussion.
#[derive(Debug, Clone, Deserialize)]
pub struct DiscussionNote {
    pub id: u64,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub author: Option<User>,
    #[serde(default)]
    pub resolvable: bool,
    #[serde(default)]
    pub resolved: Option<bool>,
}

/// A project (`GET /projects/:id`).
#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub id: u64,
    pub path_with_namespace: String,
    #[serde(default)]
    pub web_url: String,
    #[serde(default)]
    pub default_branch: Option<String>,
}

/// A label (`GET /projects/:id/labels/:name`).
#[derive(Debug, Clone, Deserialize)]
pub struct Label {
    pub id: u64,
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_merge_request_json() {
        let mr: MergeRequest = serde_json::from_str(include_str!(
            "../../tests/fixtures/gitlab/merge_request.json"
        ))
        .unwrap();
        assert_eq!(mr.iid, 35);
        assert_eq!(mr.state, "merged");
        assert_eq!(mr.source_project_id, 856);
        assert_eq!(mr.target_project_id, 855);
        assert_eq!(mr.source_branch, "add_hook-api");
        assert!(!mr.is_draft());
        assert_eq!(mr.description(), "Fixes #5.");
        assert_eq!(mr.project_path(), Some("utils/rust-gitlab"));
    }

    #[test]
    fn real_discussions_json() {
        let discussions: Vec<Discussion> =
            serde_json::from_str(include_str!("../../tests/fixtures/gitlab/discussion.json"))
                .unwrap();
        assert_eq!(discussions.len(), 12);
        let threads: Vec<&Discussion> = discussions.iter().filter(|d| d.is_resolvable()).collect();
        assert_eq!(threads.len(), 2);
        assert!(threads.iter().all(|d| d.is_resolved()));
        assert!(!discussions[0].is_resolvable());
        assert!(!discussions[0].is_resolved());
    }

    #[test]
    fn real_project_and_issue_json() {
        let project: Project =
            serde_json::from_str(include_str!("../../tests/fixtures/gitlab/project.json")).unwrap();
        assert_eq!(project.id, 855);
        let issue: Issue =
            serde_json::from_str(include_str!("../../tests/fixtures/gitlab/issue.json")).unwrap();
        assert!(issue.references.is_some());
    }
}
