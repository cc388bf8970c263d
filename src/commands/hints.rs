//! The command line's words for what went wrong below it. Services and
//! operations say what is wrong in their own terms (`serve` logs those);
//! here the hint gains the flags, environment variables and config keys that
//! fix it, for the `hint:` line under a command's error.

use crate::error::{self, Setting, UsageError};
use crate::gitlab::{ApiError, ApiProblem};

/// The hint under an error (found as [`error::hint`] finds it), in
/// command-line terms where a flag, variable or config key is the fix.
pub fn hint(err: &anyhow::Error) -> Option<String> {
    error::find_hint(err, cause_hint)
}

fn cause_hint(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(api) = cause.downcast_ref::<ApiError>() {
        return api.problem().map(|problem| api_hint(&problem));
    }
    if let Some(usage) = cause.downcast_ref::<UsageError>() {
        if let Some(setting) = usage.setting() {
            return Some(setting_hint(setting, usage.hint()));
        }
    }
    error::cause_hint(cause)
}

fn api_hint(problem: &ApiProblem) -> String {
    match problem {
        ApiProblem::NoToken => "no GitLab token was set: put a token with the `api` scope in \
            RP_GITLAB_TOKEN (or GITLAB_TOKEN, --gitlab-token-file, or the variable named by \
            gitlab.token_env)"
            .to_owned(),
        ApiProblem::JobTokenCannotWrite => "CI_JOB_TOKEN can read merge requests and files but \
            cannot create issues, notes, discussions or labels, edit issues or resolve threads: \
            set RP_GITLAB_TOKEN to a project access token with the `api` scope (Reporter role or \
            higher; Developer to resolve merge-request threads) as a masked CI/CD variable"
            .to_owned(),
        ApiProblem::NotFound => "check the project ID or path (--project / RP_PROJECT / \
            gitlab.project) and that the token's user can see the project"
            .to_owned(),
        ApiProblem::Unreachable { .. } => {
            format!(
                "{} (--gitlab-url / RP_GITLAB_URL / gitlab.url)",
                problem.hint()
            )
        }
        // These name where the token came from, or the variables to set, already.
        ApiProblem::TokenRejected { .. }
        | ApiProblem::TokenNotAllowed { .. }
        | ApiProblem::UntrustedCertificate => problem.hint(),
    }
}

/// How to set what was missing, then the service's own hint (or, without
/// one, the usual way round it).
fn setting_hint(setting: Setting, service_hint: Option<&str>) -> String {
    let (how, otherwise) = match setting {
        Setting::GitLabUrl => (
            "set --gitlab-url, RP_GITLAB_URL or gitlab.url (in GitLab CI, CI_SERVER_URL is used \
             automatically)",
            "to try without GitLab, add --dry-run",
        ),
    };
    format!("{how}; {}", service_hint.unwrap_or(otherwise))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_setting_is_named_by_its_flag_variable_and_key() {
        let err = anyhow::Error::new(
            UsageError::new("no GitLab URL is configured").for_setting(Setting::GitLabUrl),
        )
        .context("filing races");
        let hint = hint(&err).unwrap();
        assert!(
            hint.starts_with("set --gitlab-url, RP_GITLAB_URL or gitlab.url"),
            "{hint}"
        );
        assert!(
            hint.ends_with("to try without GitLab, add --dry-run"),
            "{hint}"
        );
        // What serve would log: no flag.
        assert_eq!(error::hint(&err), None);
    }

    #[test]
    fn the_service_hint_follows_how_to_set_it() {
        let err = anyhow::Error::new(
            UsageError::new("a dry run without a GitLab URL cannot read GET x")
                .with_hint("a dry run with a GitLab URL still writes nothing")
                .for_setting(Setting::GitLabUrl),
        );
        let hint = hint(&err).unwrap();
        assert!(hint.starts_with("set --gitlab-url"), "{hint}");
        assert!(hint.ends_with("; a dry run with a GitLab URL still writes nothing"));
        assert_eq!(
            error::hint(&err).as_deref(),
            Some("a dry run with a GitLab URL still writes nothing")
        );
    }

    #[test]
    fn a_missing_setting_attached_as_context_is_found_too() {
        let err = anyhow::anyhow!("cannot start").context(
            UsageError::new("no GitLab URL is configured").for_setting(Setting::GitLabUrl),
        );
        assert!(hint(&err).unwrap().starts_with("set --gitlab-url"));
        assert_eq!(error::hint(&err), None);
    }

    #[test]
    fn other_hints_pass_through() {
        let err = anyhow::Error::new(UsageError::new("bad").with_hint("do this"));
        assert_eq!(hint(&err).as_deref(), Some("do this"));
        assert_eq!(hint(&anyhow::anyhow!("plain")), None);
    }
}
