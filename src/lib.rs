//! rp-devops: DevOps automation for a weekly-release product that lives in
//! GitLab. The binary is a thin shell over [`main`]; every command is a module
//! under [`commands`] with its flags and one `run` function.

pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod escalation;
pub mod freshdesk;
pub mod git;
pub mod gitlab;
pub mod http;
pub mod ops;
pub mod output;
pub mod planned;
pub mod races;
pub mod redact;
pub mod references;
pub mod release;
pub mod serve;
pub mod settings;
pub mod versions;
pub mod workflow;

use clap::Parser;

use crate::error::ExitStatus;

/// Parse the command line, resolve settings once, run the command, and map
/// the outcome to an exit code. Errors are printed here and nowhere else.
pub fn main() -> ExitStatus {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to
            // stderr (exit 2).
            let _ = e.print();
            return if e.use_stderr() {
                ExitStatus::Usage
            } else {
                ExitStatus::Success
            };
        }
    };
    let outcome = std::env::current_dir()
        .map_err(anyhow::Error::from)
        .and_then(|cwd| {
            settings::Settings::resolve(
                &cli.global.to_options(),
                settings::Env::from_process(),
                &cwd,
            )
        })
        .and_then(|settings| commands::run(cli.command, &settings));
    match outcome {
        Ok(status) => status,
        Err(err) => {
            use std::io::IsTerminal;
            let colour = output::use_colour(
                std::io::stderr().is_terminal(),
                &settings::Env::from_process(),
            );
            error::report(
                &err,
                commands::hints::hint(&err),
                colour,
                &mut std::io::stderr().lock(),
            );
            error::exit_status(&err)
        }
    }
}
