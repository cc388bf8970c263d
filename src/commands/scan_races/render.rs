//! How `scan-races` shows its result: the JSON document of SPEC §4 and the
//! human lines, one per race and a summary.

use serde::Serialize;

use crate::ops::races::{FiledRace, Notice};

/// The result on stdout (SPEC §4's JSON).
#[derive(Debug, Serialize)]
pub(super) struct ScanResult {
    pub(super) files: u64,
    pub(super) bytes: u64,
    pub(super) reports: u64,
    pub(super) truncated: u64,
    pub(super) races: Vec<RaceResult>,
}

/// One race in the JSON: what the operation did, and why a race was not filed.
#[derive(Debug, Serialize)]
pub(super) struct RaceResult {
    #[serde(flatten)]
    pub(super) race: FiledRace,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reason: Option<String>,
}

pub(super) fn render_human(
    out: &mut dyn std::io::Write,
    result: &ScanResult,
) -> std::io::Result<()> {
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    if result.reports == 0 {
        return writeln!(
            out,
            "no race reports in {} file{} ({})",
            result.files,
            plural(result.files),
            bytesize::ByteSize(result.bytes)
        );
    }
    for RaceResult { race, reason } in &result.races {
        let issue = race
            .issue
            .as_ref()
            .map(|i| format!("#{} {}", i.iid, i.web_url))
            .or_else(|| reason.as_ref().map(|r| format!("({r})")))
            .unwrap_or_default();
        writeln!(
            out,
            "{:<13} {} ({}×) {issue}",
            race.action.as_str(),
            race.title,
            race.count
        )?;
    }
    writeln!(
        out,
        "{} race report{} ({} truncated) in {} file{} ({}): {} distinct race{}",
        result.reports,
        plural(result.reports),
        result.truncated,
        result.files,
        plural(result.files),
        bytesize::ByteSize(result.bytes),
        result.races.len(),
        plural(result.races.len() as u64),
    )
}

/// A notice of the run, as the warning shows it.
pub(super) fn notice_text(notice: &Notice) -> String {
    match notice {
        Notice::BlameUnavailable { reason } => {
            format!("no \"Last changed\" section in new race issues: {reason}")
        }
        Notice::BlameFailed { path, line, reason } => {
            format!(
                "could not read who last changed {path}:{line} (the issue is filed without it): {reason}"
            )
        }
        Notice::GoModUnreadable { reason } => {
            format!("could not read go.mod to place Go frames in the repository: {reason}")
        }
    }
}
