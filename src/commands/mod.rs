//! The command layer: one module per command, its `#[derive(Args)]` struct
//! (the `///` docs are the `--help` text) and one `run` that is glue: args →
//! a typed request → clients from the one factory on
//! [`Settings`](crate::settings::Settings) → an operation in
//! [`crate::ops`] → the outcome rendered by the [`Printer`](crate::output::Printer).
//!
//! Commands are the only modules that name flags; [`hints`] turns the
//! service layer's errors into hints that name them. The aim is that a
//! command never builds URLs, reads environment variables or prints
//! directly; `release`, `serve` and `tag_library` still resolve some of their
//! own settings (`RP_RELEASE_URL`, `RP_LISTEN`, git credentials) until their
//! work moves into `ops/`.

pub mod check_versions;
pub mod completions;
pub mod doctor;
pub mod escalate;
pub mod hints;
pub mod release;
pub mod scan_races;
pub mod serve;
pub mod tag_library;
pub mod transition_issues;

use anyhow::Result;

use crate::cli::Command;
use crate::error::ExitStatus;
use crate::settings::Settings;

pub fn run(command: Command, settings: &Settings) -> Result<ExitStatus> {
    let printer = crate::output::Printer::new(settings);
    for warning in &settings.warnings {
        printer.warn(warning);
    }
    match command {
        Command::Escalate(args) => escalate::run(&args, settings),
        Command::ScanRaces(args) => scan_races::run(&args, settings),
        Command::Release(args) => release::run(&args, settings),
        Command::Serve(args) => serve::run(&args, settings),
        Command::TagLibrary(args) => tag_library::run(&args, settings),
        Command::CheckVersions(args) => check_versions::run(&args, settings),
        Command::TransitionIssues(args) => transition_issues::run(&args, settings),
        Command::Doctor(args) => doctor::run(&args, settings),
        Command::Completions(args) => completions::completions(&args),
        Command::Man(args) => completions::man(&args),
    }
}
