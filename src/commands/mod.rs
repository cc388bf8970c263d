//! One module per command: its `#[derive(Args)]` struct and one `run`.
//! Commands talk to service clients and the printer; they never build URLs,
//! read environment variables or print directly.

pub mod completions;
pub mod release;
pub mod scan_races;
pub mod serve;
pub mod tag_library;

use anyhow::Result;

use crate::cli::Command;
use crate::error::ExitStatus;
use crate::settings::Settings;

pub fn run(command: Command, settings: &Settings) -> Result<ExitStatus> {
    match command {
        Command::ScanRaces(args) => scan_races::run(&args, settings),
        Command::Release(args) => release::run(&args, settings),
        Command::Serve(args) => serve::run(&args, settings),
        Command::TagLibrary(args) => tag_library::run(&args, settings),
        Command::Completions(args) => completions::completions(&args),
        Command::Man(args) => completions::man(&args),
    }
}
