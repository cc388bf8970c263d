//! `rp-devops escalate TICKET_ID [--sync]` (SPEC §8): glue between the
//! command line and `ops::escalate`.

use anyhow::Result;
use clap::Args;

use crate::error::ExitStatus;
use crate::ops::escalate::{EscalateRequest, Escalation, escalate};
use crate::output::{Printer, SummaryLine, summary_of};
use crate::settings::Settings;

/// Copy a Freshdesk ticket, with every conversation and attachment, into one
/// GitLab issue, and link the two both ways.
///
/// Re-running is safe: an escalated ticket (found by freshdesk.link_field,
/// by rp-devops's note on the ticket, or by the marker in the issue) never
/// gets a second issue; a run finishes what an earlier run left undone.
/// Needs the freshdesk: section of the config file and the API key in the
/// variable it names (freshdesk.api_key_env, default RP_FRESHDESK_API_KEY).
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rp-devops escalate 4711\n  \
    rp-devops escalate 4711 --sync --json\n  \
    rp-devops escalate 4711 --dry-run")]
pub struct EscalateArgs {
    /// The Freshdesk ticket number
    #[arg(value_name = "TICKET_ID")]
    pub ticket: u64,

    /// Also copy conversations added to the ticket since it was escalated
    #[arg(long)]
    pub sync: bool,
}

pub fn run(args: &EscalateArgs, settings: &Settings) -> Result<ExitStatus> {
    let printer = Printer::new(settings);
    let freshdesk = settings.freshdesk_client(&printer)?;
    let gitlab = settings.gitlab_client(&printer)?;
    let project = settings.escalation_project()?;
    let config = settings
        .config
        .freshdesk
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no freshdesk: section"))?;
    if gitlab.is_offline() {
        printer.info("dry-run without a GitLab URL: nothing is read from GitLab; the ticket is shown as not yet escalated");
    }
    let request = EscalateRequest::new(args.ticket, args.sync, project, config);
    let detail = printer.clone();
    let section = printer.section("escalate", format!("escalate: ticket {}", args.ticket));
    let outcome = escalate(&request, &gitlab, &freshdesk, &move |line| {
        detail.detail(line)
    });
    // What a dry run would have written, even when it stopped on an error.
    printer.planned(&gitlab.planned());
    printer.planned(&freshdesk.planned());
    drop(section);
    let escalation = outcome?;
    printer.result(&escalation, |out| render_human(out, &escalation))?;
    printer.summary(summary_of(SummaryLine::First, |out| {
        render_human(out, &escalation)
    }));
    Ok(ExitStatus::Success)
}

fn render_human(out: &mut dyn std::io::Write, e: &Escalation) -> std::io::Result<()> {
    let issue = e.issue.as_ref().map_or_else(
        || "a new issue".to_owned(),
        |i| format!("#{} {}", i.iid, i.web_url),
    );
    writeln!(
        out,
        "{:<12} ticket {} → {issue} ({} note{} added, {} attachment{})",
        e.action.as_str(),
        e.ticket,
        e.notes_added,
        if e.notes_added == 1 { "" } else { "s" },
        e.attachments,
        if e.attachments == 1 { "" } else { "s" },
    )
}
