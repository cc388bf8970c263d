//! Checking a setup the way a person debugging a failed job would: does
//! GitLab answer (and which version), is the token valid and does it have
//! the scopes the configured commands need (and what `CI_JOB_TOKEN` cannot
//! do), do the project and the configured labels exist, can the version
//! file be read on the default branch, does Freshdesk take the key, does the
//! release receiver answer `/healthz`.
//!
//! Every check is a read; nothing is written anywhere. One [`Check`] per
//! line of the report, each `ok`, `warn`, `fail` or `skipped`. Checks that
//! need an answer from GitLab are skipped once GitLab does not answer, so
//! one cause gives one failure.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use ureq::tls::TlsConfig;

use crate::freshdesk::Freshdesk;
use crate::gitlab::{ApiError, FileContent, GitLab, is_status};
use crate::release::upload::receiver_health;
use crate::settings::TokenKind;
use crate::versions::VersionSource;

/// A command the configuration sets up, for the token check: what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    ScanRaces,
    TagLibraryRelease,
    CheckVersions,
    TransitionIssues,
    Escalate,
    Webhook,
}

impl Use {
    pub fn name(self) -> &'static str {
        match self {
            Use::ScanRaces => "scan-races",
            Use::TagLibraryRelease => "tag-library (GitLab release)",
            Use::CheckVersions => "check-versions",
            Use::TransitionIssues => "transition-issues",
            Use::Escalate => "escalate",
            Use::Webhook => "serve (webhook)",
        }
    }

    /// Whether `CI_JOB_TOKEN` can do it: it can read merge requests and
    /// files and use the Releases API, but not write issues, notes or threads.
    fn job_token_can(self) -> bool {
        matches!(self, Use::TagLibraryRelease)
    }
}

/// Labels that must exist in a project.
#[derive(Debug, Clone)]
pub struct LabelsWanted {
    pub project: String,
    /// The config key that names them, e.g. `races.labels`.
    pub key: &'static str,
    pub names: Vec<String>,
}

/// The GitLab side of the check.
#[derive(Debug)]
pub enum GitLabTarget<'a> {
    /// No URL is configured.
    NoUrl,
    Client(&'a GitLab),
}

/// The Freshdesk side of the check.
#[derive(Debug)]
pub enum FreshdeskTarget<'a> {
    NotConfigured,
    /// Configured, but no client could be made (no key, a bad domain): why.
    Unusable(String),
    Client(&'a Freshdesk),
}

#[derive(Debug)]
pub struct DoctorRequest<'a> {
    pub gitlab: GitLabTarget<'a>,
    /// How the token is sent and where it came from; `None`: no token.
    pub token: Option<(TokenKind, String)>,
    pub project: Option<String>,
    pub uses: Vec<Use>,
    pub labels: Vec<LabelsWanted>,
    /// `versions.file` and how to read it, when check-versions is set up.
    pub version_file: Option<(String, VersionSource)>,
    pub freshdesk: FreshdeskTarget<'a>,
    /// The release receiver's base URL, when one is configured, and the
    /// TLS settings (trust store) to reach it with.
    pub release_receiver: Option<(String, TlsConfig)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Warn,
    Fail,
    Skipped,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "fail",
            CheckStatus::Skipped => "skipped",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: CheckStatus,
    pub detail: String,
}

fn check(check: &'static str, status: CheckStatus, detail: impl Into<String>) -> Check {
    Check {
        check,
        status,
        detail: detail.into(),
    }
}

/// Run every check, in report order.
pub fn doctor(request: &DoctorRequest) -> Vec<Check> {
    let mut checks = Vec::new();
    let gitlab = match request.gitlab {
        GitLabTarget::NoUrl => {
            checks.push(check(
                "gitlab",
                CheckStatus::Fail,
                "no GitLab URL is configured",
            ));
            None
        }
        GitLabTarget::Client(client) => {
            let answered = instance(client, request, &mut checks);
            answered.then_some(client)
        }
    };
    match gitlab {
        Some(client) => {
            checks.push(token(client, request));
            let default_branch = project(client, request, &mut checks);
            for wanted in &request.labels {
                checks.push(labels(client, wanted));
            }
            checks.push(version_file(client, request, default_branch.as_deref()));
        }
        None => {
            for name in ["token", "project"] {
                checks.push(check(name, CheckStatus::Skipped, "GitLab did not answer"));
            }
        }
    }
    checks.push(freshdesk(&request.freshdesk));
    checks.push(receiver(request.release_receiver.as_ref()));
    checks
}

/// `GET /version`; whether GitLab answered at all.
fn instance(client: &GitLab, request: &DoctorRequest, checks: &mut Vec<Check>) -> bool {
    let url = client.base_url();
    match client.instance_version() {
        Ok(version) => {
            checks.push(check(
                "gitlab",
                CheckStatus::Ok,
                format!("GitLab {} answers at {url}", version.version),
            ));
            true
        }
        Err(err) => match api_status(&err) {
            Some(status) => {
                let why = match request.token {
                    Some((TokenKind::Job, _)) => "CI_JOB_TOKEN may not read it",
                    Some(_) => "see the token check",
                    None => "it needs a token",
                };
                checks.push(check(
                    "gitlab",
                    CheckStatus::Ok,
                    format!("GitLab answers at {url} (its version: {status}, {why})"),
                ));
                true
            }
            None => {
                checks.push(check(
                    "gitlab",
                    CheckStatus::Fail,
                    format!("no answer from GitLab at {url}: {}", root_message(&err)),
                ));
                false
            }
        },
    }
}

fn api_status(err: &anyhow::Error) -> Option<u16> {
    err.downcast_ref::<ApiError>().and_then(|e| e.status)
}

fn root_message(err: &anyhow::Error) -> String {
    match err.downcast_ref::<ApiError>() {
        Some(api) => api.message.clone(),
        None => format!("{err:#}"),
    }
}

/// The token: valid, active, its scopes against what the set-up commands need.
fn token(client: &GitLab, request: &DoctorRequest) -> Check {
    let Some((kind, source)) = &request.token else {
        return check(
            "token",
            CheckStatus::Fail,
            "no GitLab token is configured: every command but release upload needs one",
        );
    };
    if *kind == TokenKind::Job {
        let cannot: Vec<&str> = request
            .uses
            .iter()
            .filter(|u| !u.job_token_can())
            .map(|u| u.name())
            .collect();
        let what = "CI_JOB_TOKEN reads merge requests and files and creates releases, but cannot \
                    create issues, notes or threads or edit issues";
        return if cannot.is_empty() {
            check("token", CheckStatus::Warn, what)
        } else {
            check(
                "token",
                CheckStatus::Fail,
                format!(
                    "{what}: {} need(s) an access token with the `api` scope",
                    cannot.join(", ")
                ),
            )
        };
    }
    match client.token_info() {
        Ok(Some(info)) => {
            if info.revoked == Some(true) || info.active == Some(false) {
                return check(
                    "token",
                    CheckStatus::Fail,
                    format!(
                        "the token from {source} ({}) is revoked or expired",
                        info.name
                    ),
                );
            }
            let scopes = if info.scopes.is_empty() {
                "none".to_owned()
            } else {
                info.scopes.join(", ")
            };
            let expiry = info
                .expires_at
                .as_deref()
                .map_or_else(|| "never expires".to_owned(), |d| format!("expires {d}"));
            let described = format!(
                "the token from {source} ({}): scopes {scopes}; {expiry}",
                info.name
            );
            let has_api = info.scopes.iter().any(|s| s == "api");
            if !has_api {
                let can_read = info.scopes.iter().any(|s| s == "read_api");
                let needs: Vec<&str> = request.uses.iter().map(|u| u.name()).collect();
                let detail = format!(
                    "{described}; without `api` it can{} read but write nothing{}",
                    if can_read { "" } else { "not even" },
                    if needs.is_empty() {
                        String::new()
                    } else {
                        format!(": {} need(s) `api`", needs.join(", "))
                    }
                );
                let status = if needs.is_empty() && can_read {
                    CheckStatus::Warn
                } else {
                    CheckStatus::Fail
                };
                return check("token", status, detail);
            }
            match info.expires_at.as_deref().and_then(days_until) {
                Some(days) if days < 14 => check(
                    "token",
                    CheckStatus::Warn,
                    format!("{described} (in {days} days: renew it)"),
                ),
                _ => check("token", CheckStatus::Ok, described),
            }
        }
        Ok(None) => match client.current_user() {
            Ok(user) => check(
                "token",
                CheckStatus::Warn,
                format!(
                    "the token from {source} is valid (acts as @{}); this GitLab does not say \
                     its scopes: the commands need `api`",
                    user.username
                ),
            ),
            Err(err) => token_refused(source, &err),
        },
        Err(err) => token_refused(source, &err),
    }
}

fn token_refused(source: &str, err: &anyhow::Error) -> Check {
    let detail = match api_status(err) {
        Some(401) => {
            format!("GitLab rejected the token from {source}: invalid, expired or revoked")
        }
        _ => format!("the token from {source} could not be checked: {err:#}"),
    };
    check("token", CheckStatus::Fail, detail)
}

/// The project exists and the token's user can see it; its default branch.
fn project(client: &GitLab, request: &DoctorRequest, checks: &mut Vec<Check>) -> Option<String> {
    let Some(project) = &request.project else {
        checks.push(check(
            "project",
            CheckStatus::Fail,
            "no GitLab project is configured",
        ));
        return None;
    };
    match client.project(project) {
        Ok(found) => {
            let branch = found.default_branch.clone();
            checks.push(check(
                "project",
                CheckStatus::Ok,
                format!(
                    "{} (id {}), default branch {}",
                    found.path_with_namespace,
                    found.id,
                    branch.as_deref().unwrap_or("(none: empty repository)")
                ),
            ));
            branch
        }
        Err(err) if is_status(&err, 404) => {
            checks.push(check(
                "project",
                CheckStatus::Fail,
                format!("project {project} not found, or the token's user cannot see it"),
            ));
            None
        }
        Err(err) => {
            checks.push(check(
                "project",
                CheckStatus::Fail,
                format!("project {project}: {}", root_message(&err)),
            ));
            None
        }
    }
}

fn labels(client: &GitLab, wanted: &LabelsWanted) -> Check {
    let mut missing = Vec::new();
    for name in &wanted.names {
        match client.label(&wanted.project, name) {
            Ok(Some(_)) => {}
            Ok(None) => missing.push(name.as_str()),
            Err(err) => {
                return check(
                    "labels",
                    CheckStatus::Fail,
                    format!(
                        "{} in {}: {}",
                        wanted.key,
                        wanted.project,
                        root_message(&err)
                    ),
                );
            }
        }
    }
    if missing.is_empty() {
        check(
            "labels",
            CheckStatus::Ok,
            format!(
                "{} exist in {}: {}",
                wanted.key,
                wanted.project,
                wanted.names.join(", ")
            ),
        )
    } else {
        check(
            "labels",
            CheckStatus::Fail,
            format!(
                "{} missing in {} (rp-devops never creates labels): {}",
                wanted.key,
                wanted.project,
                missing.join(", ")
            ),
        )
    }
}

fn version_file(client: &GitLab, request: &DoctorRequest, branch: Option<&str>) -> Check {
    let Some((file, source)) = &request.version_file else {
        return check(
            "version-file",
            CheckStatus::Skipped,
            "check-versions is not set up (no versions: section)",
        );
    };
    let (Some(project), Some(branch)) = (&request.project, branch) else {
        return check(
            "version-file",
            CheckStatus::Skipped,
            "no project or default branch to read it from",
        );
    };
    match client.raw_file(project, file, branch) {
        Ok(FileContent::Found(text)) => match source.extract(&text) {
            Ok(version) => check(
                "version-file",
                CheckStatus::Ok,
                format!("{file} on {branch} reads {version}"),
            ),
            Err(why) => check(
                "version-file",
                CheckStatus::Fail,
                format!("{file} on {branch}: {why}"),
            ),
        },
        Ok(FileContent::Missing(message)) => check(
            "version-file",
            CheckStatus::Fail,
            format!("{file} on {branch}: not found ({message})"),
        ),
        Err(err) => check(
            "version-file",
            CheckStatus::Fail,
            format!("{file} on {branch}: {}", root_message(&err)),
        ),
    }
}

fn freshdesk(target: &FreshdeskTarget) -> Check {
    match target {
        FreshdeskTarget::NotConfigured => check(
            "freshdesk",
            CheckStatus::Skipped,
            "escalate is not set up (no freshdesk: section)",
        ),
        FreshdeskTarget::Unusable(why) => check("freshdesk", CheckStatus::Fail, why.clone()),
        FreshdeskTarget::Client(client) => match client.me() {
            Ok(agent) => {
                let who = agent
                    .contact
                    .and_then(|c| c.email.or(c.name))
                    .unwrap_or_else(|| format!("agent {}", agent.id));
                check(
                    "freshdesk",
                    CheckStatus::Ok,
                    format!(
                        "Freshdesk answers at {} and takes the API key (agent {who})",
                        client.base_url()
                    ),
                )
            }
            Err(err) => check("freshdesk", CheckStatus::Fail, format!("{err:#}")),
        },
    }
}

fn receiver(target: Option<&(String, TlsConfig)>) -> Check {
    let Some((url, tls)) = target else {
        return check(
            "release-receiver",
            CheckStatus::Skipped,
            "no release receiver URL is configured",
        );
    };
    match receiver_health(url, tls.clone(), Duration::from_secs(10)) {
        Ok(200) => check(
            "release-receiver",
            CheckStatus::Ok,
            format!("{url} answers /healthz"),
        ),
        Ok(status) => check(
            "release-receiver",
            CheckStatus::Fail,
            format!("{url}/healthz answered {status}: is it rp-devops serve?"),
        ),
        Err(why) => check(
            "release-receiver",
            CheckStatus::Fail,
            format!("no answer from {url}: {why}"),
        ),
    }
}

/// Days from today to `YYYY-MM-DD` (negative once past).
fn days_until(date: &str) -> Option<i64> {
    let mut parts = date.get(..10)?.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    let today = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs() as i64 / 86_400;
    Some(days_from_civil(year, month, day) - today)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 12, 2), 20_789);
        assert!(days_until("not a date").is_none());
    }
}
