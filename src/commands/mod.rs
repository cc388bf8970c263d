//! One module per command: its `#[derive(Args)]` struct and one `run`.
//! Commands talk to service clients and the printer; they never build URLs,
//! read environment variables or print directly.

pub mod check_versions;
pub mod escalate;
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
    match command {
        Command::Escalate(args) => escalate::run(&args, settings),
        Command::ScanRaces(args) => scan_races::run(&args, settings),
        Command::Release(args) => release::run(&args, settings),
        Command::Serve(args) => serve::run(&args, settings),
        Command::TagLibrary(args) => tag_library::run(&args, settings),
        Command::CheckVersions(args) => check_versions::run(&args, settings),
        Command::TransitionIssues(args) => transition_issues::run(&args, settings),
    }
}
