//! `rp-devops completions SHELL` and `rp-devops man`: shell completions and
//! manual pages, generated from the same clap definitions as `--help`, so
//! they can never disagree with the binary that prints them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::ExitStatus;

/// Print a shell completion script on stdout.
///
/// Load it for the current shell, or install it where your shell looks.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    source <(rp-devops completions bash)\n  \
    rp-devops completions bash > /etc/bash_completion.d/rp-devops\n  \
    rp-devops completions zsh > \"${fpath[1]}/_rp-devops\"\n  \
    rp-devops completions fish > ~/.config/fish/completions/rp-devops.fish")]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// Print the manual page (roff) on stdout, or write one page per command.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rp-devops man | man -l -\n  \
    rp-devops man --dir /usr/local/share/man/man1")]
pub struct ManArgs {
    /// Write rp-devops.1 and rp-devops-COMMAND.1 for every command into DIR
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn completions(args: &CompletionsArgs) -> Result<ExitStatus> {
    let mut command = Cli::command();
    // Into memory first: clap_complete panics on a write error, and a
    // closed pipe (`| head`) is not a reason to panic.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "rp-devops", &mut script);
    write_stdout(&script, "the completion script")
}

/// Write to stdout; a reader that went away (`| head`) is not an error.
fn write_stdout(bytes: &[u8], what: &str) -> Result<ExitStatus> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).with_context(|| format!("writing {what}"))
        }
        _ => Ok(ExitStatus::Success),
    }
}

pub fn man(args: &ManArgs) -> Result<ExitStatus> {
    let command = Cli::command();
    match &args.dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .context("rendering the manual page")?;
            return write_stdout(&page, "the manual page");
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("writing manual pages into {}", dir.display()))?;
        }
    }
    Ok(ExitStatus::Success)
}
