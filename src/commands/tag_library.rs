//! `rp-devops tag-library`: flags → [`TagRequest`] → [`ops::tag_library`] →
//! printed outcome. The work (versions, the tag, the push, races) is the
//! operation's; this file resolves credentials and the tagger's identity
//! from settings, renders progress and the result, and turns the errors
//! below into ones that name the flag to change.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use semver::Version;
use serde::Serialize;

use crate::error::{ExitStatus, UsageError};
use crate::git::version::Bump;
use crate::git::{GitAuth, GitRepo, NotARepository, UnknownRemote};
use crate::ops::tag_library::{
    self as ops, Action, GoMajorVersion, PartialIdentity, TagEvent, TagOutcome, TagRequest,
    TaggerSources,
};
use crate::output::Printer;
use crate::settings::Settings;

/// Tag HEAD with the next semantic version and push that tag.
///
/// The latest version is the highest PREFIX<semver> tag on the remote (read
/// like `git ls-remote`, so shallow clones without tags work) or local, by
/// semver precedence; pre-releases and build metadata are ignored. If a
/// release tag already points at HEAD, it is printed and nothing is created.
/// The new tag is annotated with HEAD's full commit message and pushed alone,
/// never forced. If another pipeline pushed the same tag first, the remote is
/// read again and the next version is tried (at most 3 times).
///
/// Credentials for http(s) remotes: RP_GIT_TOKEN, else the GitLab token, as
/// the password of user oauth2. Tagger: GIT_COMMITTER_NAME/EMAIL, git config
/// user.name/email, GITLAB_USER_NAME/EMAIL, else rp-devops <rp-devops@localhost>.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rp-devops tag-library                      # v1.4.2 -> v1.4.3, pushed to origin\n  \
    rp-devops tag-library --bump auto --json   # feat: -> minor, fix!: -> major\n  \
    rp-devops tag-library --prefix tools/v     # Go module in tools/: tools/v0.3.1\n  \
    rp-devops tag-library --dry-run            # show the tag, create nothing")]
pub struct TagLibraryArgs {
    /// The library's clone
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub repo: PathBuf,

    /// Remote to read tags from and push the tag to
    #[arg(long, value_name = "NAME", default_value = "origin")]
    pub remote: String,

    /// Tag prefix; a Go module in a subdirectory uses DIR/v (e.g. tools/v)
    #[arg(long, value_name = "P", default_value = "v")]
    pub prefix: String,

    /// Version of the first tag, when there is none yet
    #[arg(long, value_name = "V", default_value = "0.1.0")]
    pub initial: String,

    /// Which part to raise; auto reads the commits since the last tag
    /// (BREAKING CHANGE, type!: or [major] → major; feat: or [minor] → minor)
    #[arg(long, value_enum, value_name = "PART", default_value_t = BumpArg::Patch)]
    pub bump: BumpArg,

    /// Create the tag locally only
    #[arg(long)]
    pub no_push: bool,
}

/// `--bump`'s values; the domain's [`Bump`] knows nothing of clap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BumpArg {
    Patch,
    Minor,
    Major,
    /// Decide from the commits since the last tag (conventional commits).
    Auto,
}

impl From<BumpArg> for Bump {
    fn from(arg: BumpArg) -> Self {
        match arg {
            BumpArg::Patch => Bump::Patch,
            BumpArg::Minor => Bump::Minor,
            BumpArg::Major => Bump::Major,
            BumpArg::Auto => Bump::Auto,
        }
    }
}

/// The JSON result (SPEC §5).
#[derive(Debug, Serialize)]
struct TagResult<'a> {
    tag: &'a str,
    previous: Option<&'a str>,
    commit: String,
    action: Action,
    pushed: bool,
}

pub fn run(args: &TagLibraryArgs, settings: &Settings) -> Result<ExitStatus> {
    let printer = Printer::new(settings);
    let request = TagRequest {
        remote: args.remote.clone(),
        prefix: check_prefix(&args.prefix)?,
        initial: parse_initial(&args.initial)?,
        bump: args.bump.into(),
        push: !args.no_push,
        auth: GitAuth::resolve(
            settings
                .env
                .secret("RP_GIT_TOKEN")
                .map(|t| (t, "RP_GIT_TOKEN".to_owned())),
            settings.gitlab.token.as_ref(),
        ),
        tagger: tagger_sources(settings),
    };
    let git = GitRepo::open(&args.repo).map_err(with_flag_hints)?;
    let git = if settings.dry_run {
        git.planning()
    } else {
        git
    };

    let outcome = ops::tag_library(&git, &request, &mut |event| show(&printer, event))
        .map_err(with_flag_hints)?;
    printer.planned(&git.planned());
    finish(&printer, &outcome)?;
    Ok(ExitStatus::Success)
}

/// `--initial`: a release version (`v` prefix tolerated).
fn parse_initial(text: &str) -> Result<Version> {
    let trimmed = text.trim();
    let bare = trimmed.strip_prefix('v').unwrap_or(trimmed);
    match Version::parse(bare) {
        Ok(v) if v.pre.is_empty() && v.build.is_empty() => Ok(v),
        _ => Err(UsageError::new(format!(
            "--initial {text:?} is not a release version like 0.1.0 or 1.0.0"
        ))
        .into()),
    }
}

fn check_prefix(prefix: &str) -> Result<String> {
    if !git2::Reference::is_valid_name(&format!("refs/tags/{prefix}1.0.0")) {
        return Err(UsageError::new(format!(
            "--prefix {prefix:?} does not make valid tag names (e.g. {prefix}1.0.0)"
        ))
        .into());
    }
    Ok(prefix.to_owned())
}

fn tagger_sources(settings: &Settings) -> TaggerSources {
    let from_env = |name: &str, email: &str| PartialIdentity {
        name: settings.env.get(name).map(str::to_owned),
        email: settings.env.get(email).map(str::to_owned),
    };
    TaggerSources {
        committer: from_env("GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"),
        ci_user: from_env("GITLAB_USER_NAME", "GITLAB_USER_EMAIL"),
    }
}

/// Errors from below name what is wrong; here they get the flag that fixes it.
fn with_flag_hints(err: anyhow::Error) -> anyhow::Error {
    let usage = |hint: String| UsageError::new(err.to_string()).with_hint(hint).into();
    if err.downcast_ref::<NotARepository>().is_some() {
        return usage("run in the library's clone or pass --repo DIR".to_owned());
    }
    if err.downcast_ref::<UnknownRemote>().is_some() {
        return usage("pass the remote's name with --remote (see `git remote -v`)".to_owned());
    }
    if let Some(rule) = err.downcast_ref::<GoMajorVersion>() {
        return usage(format!(
            "Go requires major version N >= 2 to live at a module path ending in /vN: \
             change the module line of {} to {}/v{} (and the imports), \
             or choose another --bump",
            rule.go_mod.display(),
            rule.module,
            rule.major
        ));
    }
    err
}

fn show(printer: &Printer, event: TagEvent) {
    match event {
        TagEvent::ReadingTags { head, remote, url } => {
            printer.detail(format!("HEAD is {head}; reading tags of {remote} ({url})"));
        }
        TagEvent::AutoBump {
            bump,
            commits,
            since,
        } => printer.detail(format!(
            "--bump auto: {bump} from {commits} commit(s) since {since}"
        )),
        TagEvent::HistoryCutShort {
            read,
            since,
            shallow,
        } => printer.warn(format!(
            "--bump auto read {read} commit{} back from HEAD without reaching {since}{}; \
             commits before that are not counted (set GIT_DEPTH: 0 in the job to see them all)",
            if read == 1 { "" } else { "s" },
            if shallow { " (shallow clone)" } else { "" },
        )),
        TagEvent::LocalTagCreated { tag, tagger } => printer.detail(format!(
            "created local tag {tag} by {} <{}>",
            tagger.name, tagger.email
        )),
        TagEvent::LostRace { tag } => printer.info(format!(
            "{tag} was pushed by someone else first; reading the remote's tags again"
        )),
    }
}

fn finish(printer: &Printer, outcome: &TagOutcome) -> Result<()> {
    let commit = outcome.commit.to_string();
    let result = TagResult {
        tag: &outcome.tag,
        previous: outcome.previous.as_deref(),
        commit: commit.clone(),
        action: outcome.action,
        pushed: outcome.pushed,
    };
    printer.result(&result, |out| {
        let short = &commit[..commit.len().min(7)];
        let previous = match &outcome.previous {
            Some(p) => format!("previous {p}"),
            None => "first release".to_owned(),
        };
        let tag = &outcome.tag;
        match outcome.action {
            Action::Exists => writeln!(
                out,
                "{tag} already tags {short} ({previous}), nothing created{}",
                if outcome.pushed {
                    format!("; pushed the local tag to {}", outcome.remote)
                } else {
                    String::new()
                }
            ),
            Action::WouldCreate => writeln!(out, "would create {tag} ({previous}) at {short}"),
            Action::Created => writeln!(
                out,
                "created {tag} ({previous}) at {short}, {}",
                if outcome.pushed {
                    format!("pushed to {}", outcome.remote)
                } else {
                    "not pushed (--no-push)".to_owned()
                }
            ),
        }
    })
}
