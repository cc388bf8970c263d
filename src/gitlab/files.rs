//! Repository files: one file's raw content at a ref.
//!
//! The file path and the ref are each one URL-encoded segment or value
//! (`src/VERSION` → `src%2FVERSION`, `release/5.4` → `release%2F5.4`), as
//! GitLab's files API requires.

use anyhow::Result;

use super::{ApiError, GitLab, Method, encode};

/// What reading a file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileContent {
    Found(String),
    /// GitLab answered 404: no such file, ref or project (its message says
    /// which).
    Missing(String),
}

impl GitLab {
    /// The raw content of `file` at `reference` (branch, tag or SHA) in
    /// `project` — for a fork MR's source branch, the fork's ID.
    pub fn raw_file(&self, project: &str, file: &str, reference: &str) -> Result<FileContent> {
        let path = format!(
            "{}/repository/files/{}/raw?ref={}",
            Self::project_path(project),
            encode(file.trim_start_matches('/')),
            encode(reference)
        );
        if self.is_offline() {
            return Err(self.offline_read(&path));
        }
        match self.request(Method::Get, &path, super::Payload::None, &mut || Ok(false)) {
            Ok(response) => Ok(FileContent::Found(response.body)),
            Err(err) => match err.downcast_ref::<ApiError>() {
                Some(api) if api.status == Some(404) => {
                    Ok(FileContent::Missing(api.message.clone()))
                }
                _ => Err(err),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_and_refs_are_single_segments() {
        assert_eq!(super::encode("sub/dir/VERSION"), "sub%2Fdir%2FVERSION");
        assert_eq!(super::encode("release/5.4"), "release%2F5.4");
        assert_eq!(super::encode("feature/a b#c"), "feature%2Fa%20b%23c");
    }
}
