//! The command line: global flags shared by every command, and the list of
//! commands. Each command's own flags live next to its code in
//! `commands/<name>.rs`; the `///` docs are the `--help` text.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::commands;
use crate::output;
use crate::settings::GlobalOptions;

/// DevOps automation for teams that live in GitLab.
///
/// Settings come from flags, then RP_* environment variables, then GitLab CI
/// variables, then rp-devops.yml, then defaults. Secrets are read only from
/// the environment or files, never from flags.
#[derive(Debug, Parser)]
#[command(
    name = "rp-devops",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    ScanRaces(commands::scan_races::ScanRacesArgs),
    /// Ship release artifacts to a release receiver (`serve`)
    #[command(subcommand)]
    Release(commands::release::ReleaseCommand),
    Serve(commands::serve::ServeArgs),
    TagLibrary(commands::tag_library::TagLibraryArgs),
    CheckVersions(commands::check_versions::CheckVersionsArgs),
    TransitionIssues(commands::transition_issues::TransitionIssuesArgs),
    Escalate(commands::escalate::EscalateArgs),
    Doctor(commands::doctor::DoctorArgs),
    Completions(commands::completions::CompletionsArgs),
    /// Print the manual page, or write one per command
    Man(commands::completions::ManArgs),
}

/// `docs/cli-reference.md`: every command's `--help`, generated from the
/// same definitions as the binary's help (a test keeps the file in step).
pub fn reference_markdown() -> String {
    use clap::CommandFactory;
    // A fixed width, so the file is the same whatever terminal runs the test.
    let mut command = Cli::command().term_width(100);
    command.build();
    let mut out = String::from(
        "# rp-devops command-line reference\n\n\
         Generated from the command definitions (`cargo test --test cli` checks it; \
         `RP_UPDATE_DOCS=1 cargo test --test cli` rewrites it). Shell completions: \
         `rp-devops completions bash|zsh|fish`; manual pages: `rp-devops man`.\n",
    );
    reference_section(&mut command, "rp-devops", &mut out);
    out
}

fn reference_section(command: &mut clap::Command, path: &str, out: &mut String) {
    let level = "#".repeat(path.split(' ').count().min(4) + 1);
    let help = command.render_long_help().to_string();
    out.push_str(&format!(
        "\n{level} `{path}`\n\n```text\n{}\n```\n",
        help.trim_end()
    ));
    let names: Vec<String> = command
        .get_subcommands()
        .filter(|c| c.get_name() != "help")
        .map(|c| c.get_name().to_owned())
        .collect();
    for name in names {
        if let Some(sub) = command.find_subcommand_mut(&name) {
            let mut sub = sub.clone().bin_name(format!("{path} {name}"));
            reference_section(&mut sub, &format!("{path} {name}"), out);
        }
    }
}

/// Flags every command accepts (SPEC §2).
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file [env: RP_DEVOPS_CONFIG] [default: ./rp-devops.yml if present]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// GitLab base URL [env: RP_GITLAB_URL, then CI_SERVER_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub gitlab_url: Option<String>,

    /// File holding the GitLab token [else env: RP_GITLAB_TOKEN, GITLAB_TOKEN,
    /// gitlab.token_env, CI_JOB_TOKEN]
    #[arg(long, global = true, value_name = "FILE")]
    pub gitlab_token_file: Option<PathBuf>,

    /// GitLab project ID or path [env: RP_PROJECT, then CI_PROJECT_ID]
    #[arg(long, global = true, value_name = "ID_OR_PATH")]
    pub project: Option<String>,

    /// Do every read, no write; print each write that would be made [env: RP_DRY_RUN=1]
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// Result format on stdout [env: RP_OUTPUT]
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,

    /// Same as --output json
    #[arg(long, global = true, conflicts_with = "output")]
    pub json: bool,

    /// More detail on stderr (repeat for more)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// Only errors and warnings on stderr
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

impl GlobalArgs {
    /// The plain values settings resolution takes (it knows nothing of clap).
    pub fn to_options(&self) -> GlobalOptions {
        GlobalOptions {
            config: self.config.clone(),
            gitlab_url: self.gitlab_url.clone(),
            gitlab_token_file: self.gitlab_token_file.clone(),
            project: self.project.clone(),
            dry_run: self.dry_run,
            output: if self.json {
                Some(output::OutputFormat::Json)
            } else {
                self.output.map(|format| match format {
                    OutputFormat::Human => output::OutputFormat::Human,
                    OutputFormat::Json => output::OutputFormat::Json,
                })
            },
            verbose: self.verbose,
            quiet: self.quiet,
        }
    }
}
