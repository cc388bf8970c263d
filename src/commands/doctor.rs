//! `rp-devops doctor`: check a setup the way a person debugging a failed job
//! would. Glue: settings → a typed request → [`crate::ops::doctor`] → one
//! line per check; the settings and where each came from are listed first,
//! secrets as "set" or "not set", never their values.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::error::ExitStatus;
use crate::ops::doctor::{
    Check, CheckStatus, DoctorRequest, FreshdeskTarget, GitLabTarget, LabelsWanted, Use, doctor,
};
use crate::output::{Printer, paint};
use crate::settings::{Settings, ShownSetting};
use crate::versions::VersionSource;

/// Check a setup: settings and where they came from, GitLab, the token and
/// its scopes, the project, labels, version file, Freshdesk, the release
/// receiver.
///
/// Prints the settings as resolved (flag, RP_* variable, CI variable, config
/// file or default; secrets only as set or not set), then one line per
/// check: ok, warn, fail or skipped. Only reads, never writes. Exit 1 when
/// any check fails. The commands set up in the config file (races:,
/// versions:, workflow:, freshdesk:, webhook:) decide which labels, files
/// and token scopes are checked; RP_RELEASE_URL names a release receiver to
/// reach.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rp-devops doctor                      # in a CI job: what the job sees\n  \
    rp-devops --config /etc/rp-devops/rp-devops.yml doctor --json")]
pub struct DoctorArgs {}

#[derive(Debug, Serialize)]
struct DoctorResult<'a> {
    ok: bool,
    settings: &'a [ShownSetting],
    checks: &'a [Check],
}

/// A GitLab that does not answer should not keep a person waiting for the
/// whole retry budget.
const QUICK_RETRY_BUDGET: Duration = Duration::from_secs(10);

pub fn run(_args: &DoctorArgs, settings: &Settings) -> Result<ExitStatus> {
    let printer = Printer::new(settings);
    let shown = settings.shown();

    let client = match settings.gitlab.url {
        Some(_) => Some(
            settings
                .gitlab_client(&printer)?
                .with_retry_budget(QUICK_RETRY_BUDGET),
        ),
        None => None,
    };
    let freshdesk_client;
    let freshdesk = match &settings.config.freshdesk {
        None => FreshdeskTarget::NotConfigured,
        Some(_) => match settings.freshdesk_client(&printer) {
            Ok(client) => {
                freshdesk_client = client;
                FreshdeskTarget::Client(&freshdesk_client)
            }
            Err(err) => FreshdeskTarget::Unusable(format!("{err:#}")),
        },
    };
    let request = DoctorRequest {
        gitlab: client
            .as_ref()
            .map_or(GitLabTarget::NoUrl, GitLabTarget::Client),
        token: settings
            .gitlab
            .token
            .as_ref()
            .map(|t| (t.kind, t.source.clone())),
        project: settings.gitlab.project.clone(),
        uses: uses(settings),
        labels: labels_wanted(settings),
        version_file: version_file(settings),
        freshdesk,
        // The trust store only for https, as release upload reads it.
        release_receiver: match settings.env.get("RP_RELEASE_URL") {
            Some(url) if url.trim().to_ascii_lowercase().starts_with("https://") => {
                Some((url.to_owned(), settings.gitlab.trust.tls_config()?))
            }
            Some(url) => Some((url.to_owned(), ureq::tls::TlsConfig::default())),
            None => None,
        },
    };
    let checks = doctor(&request);
    let ok = checks.iter().all(|c| c.status != CheckStatus::Fail);

    let result = DoctorResult {
        ok,
        settings: &shown,
        checks: &checks,
    };
    let colour = printer.stdout_colour(&settings.env);
    printer.result(&result, |out| {
        render(out, &shown, &checks, colour)?;
        writeln!(out, "{}", summary(&checks))
    })?;
    printer.summary(summary(&checks));
    Ok(if ok {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

fn render(
    out: &mut dyn Write,
    shown: &[ShownSetting],
    checks: &[Check],
    colour: bool,
) -> std::io::Result<()> {
    writeln!(out, "settings:")?;
    for s in shown {
        writeln!(out, "  {:<22} {}  ({})", s.name, s.value, s.source)?;
    }
    writeln!(out, "checks:")?;
    for c in checks {
        let status = format!("{:<8}", c.status.as_str());
        let sgr = match c.status {
            CheckStatus::Ok => "32",
            CheckStatus::Warn => "33",
            CheckStatus::Fail => "31",
            CheckStatus::Skipped => "2",
        };
        writeln!(
            out,
            "  {} {:<17} {}",
            paint(&status, sgr, colour),
            c.check,
            c.detail
        )?;
    }
    Ok(())
}

fn summary(checks: &[Check]) -> String {
    let count = |status| checks.iter().filter(|c| c.status == status).count();
    format!(
        "doctor: {} ok, {} warning(s), {} failed, {} skipped",
        count(CheckStatus::Ok),
        count(CheckStatus::Warn),
        count(CheckStatus::Fail),
        count(CheckStatus::Skipped)
    )
}

/// The commands the config file sets up.
fn uses(settings: &Settings) -> Vec<Use> {
    let config = &settings.config;
    let mut uses = Vec::new();
    let races = &config.races;
    if races.labels.is_some() || races.project.is_some() || races.reopen_closed.is_some() {
        uses.push(Use::ScanRaces);
    }
    if config.tag_library.gitlab_release == Some(true) {
        uses.push(Use::TagLibraryRelease);
    }
    if versions_set_up(settings) {
        uses.push(Use::CheckVersions);
    }
    if !config.workflow.labels.is_empty() {
        uses.push(Use::TransitionIssues);
    }
    if config.freshdesk.is_some() {
        uses.push(Use::Escalate);
    }
    if config.webhook.is_some() {
        uses.push(Use::Webhook);
    }
    uses
}

fn versions_set_up(settings: &Settings) -> bool {
    let v = &settings.config.versions;
    v.file.is_some() || v.pattern.is_some() || v.compare.is_some() || v.fail_on_mismatch.is_some()
}

fn labels_wanted(settings: &Settings) -> Vec<LabelsWanted> {
    let config = &settings.config;
    let mut wanted = Vec::new();
    let uses = uses(settings);
    if uses.contains(&Use::ScanRaces) {
        if let Some(project) = settings.gitlab.project_for(config.races.project.as_deref()) {
            wanted.push(LabelsWanted {
                project,
                key: "races.labels",
                names: config
                    .races
                    .labels
                    .clone()
                    .unwrap_or_else(|| vec![crate::races::issue::DEFAULT_LABEL.to_owned()]),
            });
        }
    }
    if !config.workflow.labels.is_empty() {
        if let Some(project) = settings.gitlab.project.clone() {
            wanted.push(LabelsWanted {
                project,
                key: "workflow.labels",
                names: config.workflow.labels.clone(),
            });
        }
    }
    if let Some(freshdesk) = &config.freshdesk {
        if let Ok(project) = settings.escalation_project() {
            wanted.push(LabelsWanted {
                project,
                key: "freshdesk.labels",
                names: freshdesk
                    .labels
                    .clone()
                    .unwrap_or_else(|| vec!["freshdesk".to_owned()]),
            });
        }
    }
    wanted
}

fn version_file(settings: &Settings) -> Option<(String, VersionSource)> {
    if !versions_set_up(settings) && settings.config.webhook.is_none() {
        return None;
    }
    let versions = &settings.config.versions;
    let source = match &versions.pattern {
        // The config file was checked when it was loaded: the pattern compiles.
        Some(pattern) => VersionSource::pattern(pattern).ok()?,
        None => VersionSource::first_line(),
    };
    Some((
        versions
            .file
            .clone()
            .unwrap_or_else(|| "VERSION".to_owned()),
        source,
    ))
}
