//! Project releases: one per tag, name and description (the notes).
//!
//! GitLab refuses a second release for a tag (409), so creating one is
//! idempotent by the tag name itself: after an attempt whose answer was
//! lost, or a 409 from a concurrent run, the release is read back by tag.

use anyhow::Result;
use serde::Deserialize;
use serde_json::json;

use super::{GitLab, Method, Written, encode, is_status};
use crate::error::HintedError;
use crate::settings::TokenKind;

/// The parts of a release rp-devops reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Release {
    pub tag_name: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, rename = "_links")]
    links: ReleaseLinks,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ReleaseLinks {
    #[serde(default, rename = "self")]
    web: Option<String>,
}

impl Release {
    /// The release's page.
    pub fn web_url(&self) -> Option<&str> {
        self.links.web.as_deref()
    }
}

/// What creating a release found.
#[derive(Debug, Clone)]
pub enum ReleaseWrite {
    Created(Release),
    /// Someone (a concurrent run) created it first.
    Existed(Release),
}

impl GitLab {
    /// The release of `tag`, if there is one.
    pub fn release(&self, project: &str, tag: &str) -> Result<Option<Release>> {
        if self.is_offline() {
            return Ok(None);
        }
        let path = format!("{}/releases/{}", Self::project_path(project), encode(tag));
        match self.get(&path) {
            Ok(release) => Ok(Some(release)),
            Err(err) if is_status(&err, 404) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Create the release of the existing tag `tag`, named after it, with
    /// `notes` as its description. In dry-run mode, only planned.
    pub fn create_release(
        &self,
        project: &str,
        tag: &str,
        notes: &str,
        summary: &str,
    ) -> Result<Written<ReleaseWrite>> {
        let path = format!("{}/releases", Self::project_path(project));
        let body = json!({ "tag_name": tag, "name": tag, "description": notes });
        match self.write(Method::Post, &path, &body, summary, || {
            self.release(project, tag)
        }) {
            Ok(written) => Ok(match written {
                Written::Sent(release) => Written::Sent(ReleaseWrite::Created(release)),
                Written::Planned => Written::Planned,
            }),
            Err(err) if is_status(&err, 409) => match self.release(project, tag)? {
                Some(release) => Ok(Written::Sent(ReleaseWrite::Existed(release))),
                None => Err(err),
            },
            Err(err) if is_status(&err, 403) => Err(err.context(HintedError::new(
                format!("GitLab refused to create the release of {tag}"),
                self.release_rights_hint(),
            ))),
            Err(err) => Err(err),
        }
    }

    /// What creating a release takes, for the token in use.
    fn release_rights_hint(&self) -> String {
        let rights = "creating a release needs at least the Developer role on the project, \
                      and for a protected tag a role allowed to create that tag \
                      (Settings > Repository > Protected tags)";
        match self.token.as_ref().map(|t| (t.kind, t.source.as_str())) {
            Some((TokenKind::Job, _)) => format!(
                "{rights}; with CI_JOB_TOKEN the release is created as the user who started \
                 the pipeline, so that user needs the role (or use an access token with the \
                 `api` scope)"
            ),
            Some((TokenKind::Private, source)) => format!(
                "{rights}; the token from {source} needs the `api` scope and its user that role"
            ),
            None => format!("{rights}, and a token with the `api` scope"),
        }
    }

    /// Whether the token is `CI_JOB_TOKEN`, which GitLab accepts on fewer
    /// routes (the Releases API, not the repository's commits).
    pub fn uses_job_token(&self) -> bool {
        self.token
            .as_ref()
            .is_some_and(|t| t.kind == TokenKind::Job)
    }
}
