//! Commits of a project's repository, read through the API so that a
//! depth-1 CI clone needs no more history: the compare API for the commits
//! between two revisions, the commits API for a history from its root.

use anyhow::{Context, Result};
use serde::Deserialize;

use super::{Commit, GitLab, encode};

#[derive(Debug, Deserialize)]
struct Compare {
    #[serde(default)]
    commits: Vec<Commit>,
}

/// Commits read back from a revision, up to a bound.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Newest first.
    pub commits: Vec<Commit>,
    /// The bound was reached: older commits exist that were not read.
    pub more: bool,
}

impl GitLab {
    /// The commits reachable from `to` and not from `from`, like
    /// `git log from..to` (`straight=false`: from the merge base).
    pub fn compare(&self, project: &str, from: &str, to: &str) -> Result<Vec<Commit>> {
        if self.is_offline() {
            return Ok(Vec::new());
        }
        let path = format!(
            "{}/repository/compare?from={}&to={}&straight=false",
            Self::project_path(project),
            encode(from),
            encode(to)
        );
        let compare: Compare = self
            .get(&path)
            .with_context(|| format!("reading the commits between {from} and {to}"))?;
        Ok(compare.commits)
    }

    /// The history of `reference` back to the root, newest first, at most
    /// `limit` commits (read 100 per page).
    pub fn history(&self, project: &str, reference: &str, limit: usize) -> Result<History> {
        let mut history = History::default();
        if self.is_offline() {
            return Ok(history);
        }
        for page in 1.. {
            let path = format!(
                "{}/repository/commits?ref_name={}&per_page=100&page={page}",
                Self::project_path(project),
                encode(reference)
            );
            let mut commits: Vec<Commit> = self
                .get(&path)
                .with_context(|| format!("reading the history of {reference}"))?;
            let last_page = commits.len() < 100;
            history.commits.append(&mut commits);
            if history.commits.len() >= limit {
                history.more = !last_page || history.commits.len() > limit;
                history.commits.truncate(limit);
                break;
            }
            if last_page {
                break;
            }
        }
        Ok(history)
    }
}
