//! Blame of a repository file: which commit last changed a range of lines
//! (`GET /projects/:id/repository/files/:file_path/blame`).
//!
//! The file path is one URL-encoded segment and the range is asked as
//! `range[start]`/`range[end]`, as GitLab documents; the answer is a list of
//! `{commit, lines}` ranges.

use anyhow::Result;
use serde::Deserialize;

use super::{GitLab, encode, is_status};

/// Consecutive lines last changed by one commit.
#[derive(Debug, Clone, Deserialize)]
pub struct BlameRange {
    pub commit: BlameCommit,
    #[serde(default)]
    pub lines: Vec<String>,
}

/// The commit of a [`BlameRange`].
#[derive(Debug, Clone, Deserialize)]
pub struct BlameCommit {
    pub id: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub author_name: String,
    #[serde(default)]
    pub authored_date: Option<String>,
    #[serde(default)]
    pub committed_date: Option<String>,
}

impl GitLab {
    /// The blame of line `line` of `file` at `reference`; `None` when GitLab
    /// has no such file or line there (404, or 400 for a line past the end).
    pub fn blame_line(
        &self,
        project: &str,
        file: &str,
        reference: &str,
        line: u32,
    ) -> Result<Option<Vec<BlameRange>>> {
        let path = format!(
            "{}/repository/files/{}/blame?ref={}&range%5Bstart%5D={line}&range%5Bend%5D={line}",
            Self::project_path(project),
            encode(file),
            encode(reference)
        );
        match self.get(&path) {
            Ok(ranges) => Ok(Some(ranges)),
            Err(err) if is_status(&err, 404) || is_status(&err, 400) => Ok(None),
            Err(err) => Err(err),
        }
    }
}
