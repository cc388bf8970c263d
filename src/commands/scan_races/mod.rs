//! `rp-devops scan-races`: race-detector reports in logs → one GitLab issue
//! per distinct race, a note when it shows up again (SPEC §4).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::error::{ExitStatus, UsageError};
use crate::gitlab::{GitLab, PROJECT_PLACEHOLDER};
use crate::ops::races::{
    Action, BlameRequest, DEFAULT_MAX_NEW_ISSUES, FileRacesRequest, file_races,
};
use crate::output::{Printer, Progress, SummaryLine, summary_of};
use crate::races::Scan;
use crate::races::input::KEPT_TEXT_BUDGET;
use crate::races::input::expand_inputs;
use crate::races::issue::{DEFAULT_LABEL, RaceLabels};
use crate::settings::Settings;

mod render;

use render::{RaceResult, ScanResult, notice_text, render_human};

/// Turn Go race-detector and ThreadSanitizer reports in logs into GitLab
/// issues: one issue per distinct race, a note on it when it shows up again.
///
/// Reads plain or gzipped files, whole directories, or `-` for stdin.
/// Existing race issues are found by their label (one paginated listing),
/// and each sighting is noted once, so re-running on the same logs adds
/// nothing. At most races.max_new_issues (default 20) new issues per run;
/// each names the commits that last changed the racing lines.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rp-devops scan-races /var/log/restorepoint/ --dry-run\n  \
    journalctl -u restorepoint --since yesterday | rp-devops scan-races --host testbox-07 -\n  \
    rp-devops scan-races --json --fail-on-race build/test-output.log")]
pub struct ScanRacesArgs {
    /// Log files, directories (every regular file below) or - for stdin; .gz is read transparently
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Label for race issues, repeatable [default: races.labels, else "race condition"]
    #[arg(long = "label", value_name = "L")]
    pub labels: Vec<String>,

    /// Host name reported as the logs' origin [default: this machine's]
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,

    /// Comment on a closed issue whose race shows up again, but leave it closed
    #[arg(long)]
    pub no_reopen: bool,

    /// Do not ask GitLab which commits last changed the racing lines [default: races.blame, else on]
    #[arg(long)]
    pub no_blame: bool,

    /// Exit with code 3 when any race report was found
    #[arg(long)]
    pub fail_on_race: bool,
}

/// Show a progress bar or lines only for inputs at least this large.
const PROGRESS_THRESHOLD: u64 = 64 * 1024 * 1024;

pub fn run(args: &ScanRacesArgs, settings: &Settings) -> Result<ExitStatus> {
    let printer = Printer::new(settings);
    let host = args.host.clone().unwrap_or_else(|| settings.hostname());
    let labels = race_labels(args, settings)?;
    let reopen = !args.no_reopen && settings.config.races.reopen_closed.unwrap_or(true);
    let max_new_issues = settings
        .config
        .races
        .max_new_issues
        .unwrap_or(DEFAULT_MAX_NEW_ISSUES);

    let section = printer.section(
        "scan_races",
        "scan-races: reading logs, filing races in GitLab",
    );
    let (scan, unreadable) = read_inputs(&args.paths, &host, &printer)?;
    let mut result = ScanResult {
        files: scan.files,
        bytes: scan.bytes,
        reports: scan.reports,
        truncated: scan.truncated,
        races: Vec::new(),
    };
    if scan.texts_dropped > 0 {
        printer.warn(format!(
            "{} race reports were not kept in full: over {} MiB of report text in one run; \
             their issues and notes say so",
            scan.texts_dropped,
            KEPT_TEXT_BUDGET / (1024 * 1024)
        ));
    }
    if !scan.is_empty() {
        // Only now: a run that found no race needs no GitLab at all.
        let client = settings.gitlab_client(&printer)?;
        let request = FileRacesRequest {
            project: race_project(settings, &client)?,
            labels,
            reopen,
            max_new_issues,
            blame: blame_request(args, settings, &client),
            sightings: scan.into_sightings(),
        };
        if client.is_offline() {
            printer.info(
                "dry-run without a GitLab URL: nothing is read from GitLab; every race is shown as new",
            );
        }
        let filed = file_races(&client, &request);
        printer.planned(&client.planned());
        let outcome = filed?;
        for notice in &outcome.notices {
            printer.warn(notice_text(notice));
        }
        let not_filed = outcome.not_filed();
        if not_filed > 0 {
            printer.warn(format!(
                "{not_filed} new race{} not filed: races.max_new_issues={max_new_issues}; \
                 the next run that sees {} files {}",
                if not_filed == 1 { " was" } else { "s were" },
                if not_filed == 1 { "it" } else { "them" },
                if not_filed == 1 { "it" } else { "them" },
            ));
        }
        for race in outcome.races.iter().filter(|r| r.action == Action::Created) {
            if let Some(issue) = &race.issue {
                printer.detail(format!("created #{} {}", issue.iid, issue.web_url));
            }
        }
        result.races = outcome
            .races
            .into_iter()
            .map(|race| RaceResult {
                reason: (race.action == Action::NotFiled)
                    .then(|| format!("races.max_new_issues={max_new_issues} reached")),
                race,
            })
            .collect();
    }

    drop(section);
    printer.result(&result, |out| render_human(out, &result))?;
    printer.summary(summary_of(SummaryLine::Last, |out| {
        render_human(out, &result)
    }));

    if !unreadable.is_empty() {
        anyhow::bail!(
            "could not read {} of {} inputs:\n  {}",
            unreadable.len(),
            unreadable.len() as u64 + result.files,
            unreadable.join("\n  ")
        );
    }
    if args.fail_on_race && result.reports > 0 {
        return Ok(ExitStatus::Found);
    }
    Ok(ExitStatus::Success)
}

/// Blame is on unless `--no-blame` or `races.blame: false`, and needs GitLab
/// (an offline dry run has none). Frame paths are looked for under
/// `races.source_prefixes` and `CI_PROJECT_DIR`, besides a runner's build
/// directory and the Go module path.
fn blame_request(
    args: &ScanRacesArgs,
    settings: &Settings,
    client: &GitLab,
) -> Option<BlameRequest> {
    let races = &settings.config.races;
    if args.no_blame || !races.blame.unwrap_or(true) || client.is_offline() {
        return None;
    }
    let mut source_prefixes = races.source_prefixes.clone();
    if let Some(dir) = settings
        .env
        .get("CI_PROJECT_DIR")
        .filter(|d| d.starts_with('/'))
    {
        source_prefixes.push(dir.to_owned());
    }
    Some(BlameRequest { source_prefixes })
}

fn race_labels(args: &ScanRacesArgs, settings: &Settings) -> Result<RaceLabels> {
    let labels = if !args.labels.is_empty() {
        args.labels.clone()
    } else {
        settings
            .config
            .races
            .labels
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_LABEL.to_owned()])
    };
    Ok(RaceLabels::new(labels)?)
}

/// `--project`/`RP_PROJECT` > `races.project` > `CI_PROJECT_ID` >
/// `gitlab.project`; an offline dry run may have none.
fn race_project(settings: &Settings, client: &GitLab) -> Result<String> {
    let project = settings
        .gitlab
        .project_for(settings.config.races.project.as_deref());
    match project {
        Some(project) => Ok(project),
        None if client.is_offline() => Ok(PROJECT_PLACEHOLDER.to_owned()),
        None => Err(UsageError::new(
            "no GitLab project for race issues: set --project, RP_PROJECT, races.project or gitlab.project",
        )
        .into()),
    }
}

/// Every input read into one scan, with progress for large inputs; an input
/// that cannot be read is warned about and listed, and the others still read.
fn read_inputs(paths: &[PathBuf], host: &str, printer: &Printer) -> Result<(Scan, Vec<String>)> {
    let inputs = expand_inputs(paths)?;
    let total: u64 = inputs.iter().filter_map(|i| i.size).sum();
    let progress = if total >= PROGRESS_THRESHOLD {
        printer.progress(total, "scanning logs")
    } else {
        Progress::hidden()
    };
    let mut scan = Scan::default();
    let mut unreadable = Vec::new();
    for input in &inputs {
        if let Err(err) = scan.read(input, host, &|n| progress.inc(n)) {
            printer.warn(format!("{err:#}"));
            unreadable.push(format!("{}: {err:#}", input.display));
        }
    }
    progress.finish();
    Ok((scan, unreadable))
}
