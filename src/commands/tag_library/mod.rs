//! `rp-devops tag-library`: flags → [`TagRequest`] → [`ops::tag_library`] →
//! printed outcome. The work (versions, the tag, the push, races, the GitLab
//! release) is the operation's; this file resolves credentials, the tagger's
//! identity and whether a release is wanted from settings, renders progress
//! and the result, and turns the errors below into ones that name the flag
//! to change.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::error::{ExitStatus, UsageError};
use crate::git::version::{self, Bump};
use crate::git::{self, GitAuth, GitRepo, NotARepository, UnknownRemote};
use crate::ops::tag_library::{
    self as ops, GoMajorVersion, PartialIdentity, ReleasePolicy, TagRequest, TaggerSources,
};
use crate::output::Printer;
use crate::settings::Settings;

mod render;
use render::{finish, show};

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
/// When a GitLab URL and project are known (in CI: always), the tag also
/// gets a GitLab release named after it, with the commits since the previous
/// tag as its notes; a tag already on HEAD without a release gets one too.
///
/// Credentials for http(s) remotes: RP_GIT_TOKEN, else the GitLab token, as
/// the password of user oauth2. Tagger: GIT_COMMITTER_NAME/EMAIL, git config
/// user.name/email, GITLAB_USER_NAME/EMAIL, else rp-devops <rp-devops@localhost>.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rp-devops tag-library                      # v1.4.2 -> v1.4.3, pushed to origin\n  \
    rp-devops tag-library --bump auto --json   # feat: -> minor, fix!: -> major\n  \
    rp-devops tag-library --prefix tools/v     # Go module in tools/: tools/v0.3.1\n  \
    rp-devops tag-library --dry-run            # show the tag and the notes, create nothing")]
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

    /// No GitLab release for the tag (tag_library.gitlab_release: false in
    /// the config does the same)
    #[arg(long)]
    pub no_release: bool,
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

pub fn run(args: &TagLibraryArgs, settings: &Settings) -> Result<ExitStatus> {
    let printer = Printer::new(settings);
    let env = |name: &str| settings.env.get(name).map(str::to_owned);
    let identity = |name, email| PartialIdentity {
        name: env(name),
        email: env(email),
    };
    let request = TagRequest {
        remote: args.remote.clone(),
        prefix: check_prefix(&args.prefix)?,
        initial: version::parse_plain_release(&args.initial).ok_or_else(|| {
            let text = &args.initial;
            UsageError::new(format!(
                "--initial {text:?} is not a release version like 0.1.0 or 1.0.0"
            ))
        })?,
        bump: match args.bump {
            BumpArg::Patch => Bump::Patch,
            BumpArg::Minor => Bump::Minor,
            BumpArg::Major => Bump::Major,
            BumpArg::Auto => Bump::Auto,
        },
        push: !args.no_push,
        auth: GitAuth::resolve(
            settings
                .env
                .secret("RP_GIT_TOKEN")
                .map(|t| (t, "RP_GIT_TOKEN".into())),
            settings.gitlab.token.as_ref(),
            settings.gitlab.url.as_deref(),
        ),
        tagger: TaggerSources {
            committer: identity("GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"),
            ci_user: identity("GITLAB_USER_NAME", "GITLAB_USER_EMAIL"),
        },
        release: release_policy(args, settings)?,
    };
    if request.auth.token.is_some() {
        settings.warn_token_destination(&printer, request.auth.source.as_deref());
    }
    let gitlab = match request.release {
        ReleasePolicy::Create { .. } => Some(settings.gitlab_client(&printer)?),
        _ => None,
    };
    let mut git = GitRepo::open(&args.repo)
        .map_err(with_flag_hints)?
        .trusting(&settings.gitlab.trust.extra);
    if settings.dry_run {
        git = git.planning();
    }
    let section = printer.section("tag_library", "tag-library: reading tags, tagging, pushing");
    let outcome = ops::tag_library(&git, gitlab.as_ref(), &request, &mut |e| show(&printer, e));
    drop(section);
    let outcome = outcome.map_err(with_flag_hints)?;
    printer.planned(&git.planned());
    printer.planned(&gitlab.map(|g| g.planned()).unwrap_or_default());
    finish(&printer, &outcome)?;
    Ok(ExitStatus::Success)
}

fn check_prefix(prefix: &str) -> Result<String> {
    if !git::is_valid_tag_name(&format!("{prefix}1.0.0")) {
        let message =
            format!("--prefix {prefix:?} does not make valid tag names (e.g. {prefix}1.0.0)");
        return Err(UsageError::new(message).into());
    }
    Ok(prefix.to_owned())
}

/// A release when a GitLab URL and project are known, unless turned off. A
/// release that cannot be made (no token) is refused before any tag is.
fn release_policy(args: &TagLibraryArgs, settings: &Settings) -> Result<ReleasePolicy> {
    let gitlab = &settings.gitlab;
    if args.no_release || settings.config.tag_library.gitlab_release == Some(false) {
        return Ok(ReleasePolicy::Off);
    }
    let (Some(_), Some(project)) = (&gitlab.url, &gitlab.project) else {
        return Ok(ReleasePolicy::NotConfigured);
    };
    if gitlab.token.is_none() && !settings.dry_run {
        let message = format!("no GitLab token to create the release in project {project}");
        return Err(UsageError::new(message)
            .with_hint(
                "set RP_GITLAB_TOKEN to a token with the `api` scope (in CI, CI_JOB_TOKEN is \
                 used), or pass --no-release (tag_library.gitlab_release: false)",
            )
            .into());
    }
    let project = project.clone();
    Ok(ReleasePolicy::Create { project })
}

/// Errors from below name what is wrong; here they get the flag that fixes it.
fn with_flag_hints(err: anyhow::Error) -> anyhow::Error {
    let hint = if err.downcast_ref::<NotARepository>().is_some() {
        "run in the library's clone or pass --repo DIR".to_owned()
    } else if err.downcast_ref::<UnknownRemote>().is_some() {
        "pass the remote's name with --remote (see `git remote -v`)".to_owned()
    } else if let Some(rule) = err.downcast_ref::<GoMajorVersion>() {
        format!(
            "Go requires major version N >= 2 to live at a module path ending in /vN: change \
             the module line of {} to {}/v{} (and the imports), or choose another --bump",
            rule.go_mod.display(),
            rule.module,
            rule.major
        )
    } else {
        return err;
    };
    UsageError::new(err.to_string()).with_hint(hint).into()
}
