//! Settings resolved once per run (SPEC §2), highest first: command-line flag
//! > `RP_*` environment variable > GitLab CI predefined variable > config file
//! > built-in default.
//!
//! This is the only module that looks at the process environment, and it does
//! so once, through an [`Env`] snapshot that tests can build by hand. Commands
//! read what they need from [`Settings`]; they never call `std::env`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::{Config, DEFAULT_CONFIG_FILE};
use crate::error::UsageError;
use crate::freshdesk::Freshdesk;
use crate::gitlab::{GitLab, RetryPolicy};
use crate::http::tls::{CaFile, TrustStore};
use crate::output::{OutputFormat, Printer};

/// A snapshot of the environment variables, taken once at start-up.
#[derive(Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    /// The process environment (values that are not UTF-8 are replaced lossily).
    pub fn from_process() -> Self {
        Self(
            std::env::vars_os()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned(),
                    )
                })
                .collect(),
        )
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    /// A variable's value; set-but-empty counts as unset, as in CI templates
    /// where `VAR: ""` is how one switches a default off.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// A variable that holds a secret.
    pub fn secret(&self, name: &str) -> Option<Secret> {
        self.get(name).map(|v| Secret::new(v.trim()))
    }

    fn flag(&self, name: &str) -> bool {
        matches!(
            self.get(name)
                .map(|v| v.trim().to_ascii_lowercase())
                .as_deref(),
            Some("1" | "true" | "yes" | "on")
        )
    }
}

impl Env {
    /// Every variable, sorted by name (for building a child's environment).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print values: any of them may be a secret.
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A secret value. It has no `Display`, and its `Debug` is redacted, so it
/// cannot end up in output, logs, errors or panics by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it (an HTTP header, a git
    /// credential, a constant-time comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How the GitLab token is sent, which decides what it may do (SPEC §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A personal, project or group access token: `PRIVATE-TOKEN` header.
    Private,
    /// `CI_JOB_TOKEN`: `JOB-TOKEN` header; can read, cannot create issues,
    /// notes, discussions or labels.
    Job,
}

/// The GitLab token and where it came from (for hints on 401/403).
#[derive(Debug, Clone)]
pub struct GitLabToken {
    pub secret: Secret,
    pub kind: TokenKind,
    /// Which variable or file it was read from, e.g. `RP_GITLAB_TOKEN`.
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct GitLabSettings {
    /// Instance base URL without a trailing slash, e.g. `https://gitlab.example.com`.
    pub url: Option<String>,
    pub token: Option<GitLabToken>,
    /// Project ID or full path, as given (not yet URL-encoded).
    pub project: Option<String>,
    /// Whether `project` came from `--project` or `RP_PROJECT`, which beat a
    /// command's own config key (e.g. `races.project`).
    pub project_explicit: bool,
    /// Which CAs an https:// GitLab URL may be signed by.
    pub trust: TrustStore,
    /// Where `url` came from, to tell a URL someone chose from one that a
    /// file in the working directory chose.
    pub url_source: UrlSource,
}

/// Where the GitLab URL came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UrlSource {
    #[default]
    None,
    Flag,
    /// A variable: `RP_GITLAB_URL` or `CI_SERVER_URL`.
    Env(&'static str),
    /// `gitlab.url` in a config file named by `--config` or
    /// `RP_DEVOPS_CONFIG`.
    NamedConfig(PathBuf),
    /// `gitlab.url` in the `rp-devops.yml` that happened to be in the
    /// working directory: whoever can write there decides where the token
    /// goes.
    FoundConfig(PathBuf),
}

impl GitLabSettings {
    /// The project for a command whose config section may name its own:
    /// `--project`/`RP_PROJECT` > the section's key > `CI_PROJECT_ID` >
    /// `gitlab.project`.
    pub fn project_for(&self, section_project: Option<&str>) -> Option<String> {
        if self.project_explicit {
            return self.project.clone();
        }
        section_project
            .map(str::to_owned)
            .or_else(|| self.project.clone())
    }
}

/// The global options as plain values: what the command line said, before
/// the environment and the config file are consulted.
#[derive(Debug, Clone, Default)]
pub struct GlobalOptions {
    pub config: Option<PathBuf>,
    pub gitlab_url: Option<String>,
    pub gitlab_token_file: Option<PathBuf>,
    pub project: Option<String>,
    pub dry_run: bool,
    /// `None` when no flag chose (then `RP_OUTPUT`, then human).
    pub output: Option<OutputFormat>,
    pub verbose: u8,
    pub quiet: u8,
}

/// A resolved setting as shown: never a secret's value.
#[derive(Debug, serde::Serialize)]
pub struct ShownSetting {
    pub name: &'static str,
    pub value: String,
    pub source: String,
}

/// Everything a command may read about how it was asked to run.
#[derive(Debug)]
pub struct Settings {
    pub config_path: Option<PathBuf>,
    pub config: Config,
    pub gitlab: GitLabSettings,
    pub dry_run: bool,
    pub output: OutputFormat,
    /// -1 quiet, 0 normal, 1+ verbose.
    pub verbosity: i8,
    /// The environment snapshot, for command-specific variables (CI context,
    /// committer identity, secrets named by `*_env` config keys).
    pub env: Env,
    /// How hard the GitLab client retries (`RP_HTTP_RETRY_BUDGET`, e.g. `2m`;
    /// `RP_HTTP_RETRY_BASE`, e.g. `500ms`) and how long one request may take
    /// (`RP_HTTP_TIMEOUT`, e.g. `60s`).
    pub retry: RetryPolicy,
    /// What resolving found worth telling (a token file others can read),
    /// printed once before the command runs.
    pub warnings: Vec<String>,
    token_warning_shown: std::sync::atomic::AtomicBool,
    /// Where each setting came from, for `doctor` (the token's source is in
    /// [`GitLabToken::source`]).
    pub origins: Origins,
}

/// Where a resolved setting came from: a flag, an environment variable, a
/// config key or a default, in words a user can act on (`--gitlab-url`,
/// `CI_SERVER_URL`, `gitlab.url in ./rp-devops.yml`).
#[derive(Debug, Clone, Default)]
pub struct Origins {
    pub config: String,
    pub gitlab_url: String,
    pub project: String,
    pub output: String,
    pub dry_run: String,
}

impl fmt::Display for UrlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlSource::None => f.write_str("unset"),
            UrlSource::Flag => f.write_str("--gitlab-url"),
            UrlSource::Env(name) => f.write_str(name),
            UrlSource::NamedConfig(path) => write!(f, "gitlab.url in {}", path.display()),
            UrlSource::FoundConfig(path) => write!(
                f,
                "gitlab.url in {} (found in the working directory)",
                path.display()
            ),
        }
    }
}

impl Settings {
    /// This machine's host name, for saying where a log came from.
    pub fn hostname(&self) -> String {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| self.env.get("HOSTNAME").map(str::to_owned))
            .unwrap_or_else(|| "unknown-host".to_owned())
    }

    /// A warning for when a token is about to be sent, outside CI (no `CI`
    /// variable: a cron job, a person's shell), to a GitLab host that only
    /// an `rp-devops.yml` found in the working directory names: whoever
    /// can write that directory decides where the token goes. `None` when
    /// there is no token, or the URL came from a flag, a variable or a
    /// config file named on purpose.
    pub fn token_destination_warning(&self, token_source: Option<&str>) -> Option<String> {
        let UrlSource::FoundConfig(path) = &self.gitlab.url_source else {
            return None;
        };
        if self.env.get("CI").is_some() {
            return None;
        }
        let url = self.gitlab.url.as_deref()?;
        let source = token_source?;
        Some(format!(
            "the token from {source} goes to {url}, which only {} (found in the working \
             directory) names; pass --gitlab-url, set RP_GITLAB_URL, or name the config with \
             --config or RP_DEVOPS_CONFIG if that is intended",
            path.display()
        ))
    }

    /// Print [`Settings::token_destination_warning`] for a token about to
    /// be sent, once per run.
    pub fn warn_token_destination(&self, printer: &Printer, token_source: Option<&str>) {
        if let Some(warning) = self.token_destination_warning(token_source) {
            if !self
                .token_warning_shown
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                printer.warn(warning);
            }
        }
    }

    /// The one factory of GitLab clients: live, or in dry-run mode planning
    /// its writes; with `--dry-run` and no GitLab URL at all, the offline
    /// client (nothing read, everything new). Retries are reported on stderr.
    pub fn gitlab_client(&self, printer: &Printer) -> Result<GitLab> {
        if self.dry_run && self.gitlab.url.is_none() {
            return Ok(GitLab::offline());
        }
        self.warn_token_destination(
            printer,
            self.gitlab.token.as_ref().map(|t| t.source.as_str()),
        );
        let warn = printer.clone();
        let client = GitLab::new(&self.gitlab, self.retry)?.on_retry(move |m| warn.warn(m));
        Ok(if self.dry_run {
            client.planning()
        } else {
            client
        })
    }

    /// Resolve the global flags, the environment and the config file.
    pub fn resolve(args: &GlobalOptions, env: Env, cwd: &Path) -> Result<Self> {
        let config_named = args.config.is_some() || env.get("RP_DEVOPS_CONFIG").is_some();
        let config_path = match (&args.config, env.get("RP_DEVOPS_CONFIG")) {
            (Some(path), _) => Some(cwd.join(path)),
            (None, Some(path)) => Some(cwd.join(path)),
            (None, None) => Some(cwd.join(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
        };
        let config = match &config_path {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };

        let from_config = |url: &String| {
            let path = config_path.clone().unwrap_or_default();
            let source = if config_named {
                UrlSource::NamedConfig(path)
            } else {
                UrlSource::FoundConfig(path)
            };
            (url.clone(), source)
        };
        let (url, url_source) = match args
            .gitlab_url
            .clone()
            .map(|u| (u, UrlSource::Flag))
            .or_else(|| {
                env.get("RP_GITLAB_URL")
                    .map(|u| (u.to_owned(), UrlSource::Env("RP_GITLAB_URL")))
            })
            .or_else(|| {
                env.get("CI_SERVER_URL")
                    .map(|u| (u.to_owned(), UrlSource::Env("CI_SERVER_URL")))
            })
            .or_else(|| config.gitlab.url.as_ref().map(from_config))
        {
            Some((url, source)) => (Some(normalize_url(&url)?), source),
            None => (None, UrlSource::None),
        };

        let mut warnings = Vec::new();
        let token = resolve_token(args, &env, &config, cwd, &mut warnings)?;
        let trust = trust_store(&env, cwd);

        let in_config = |key: &str| match &config_path {
            Some(path) => format!("{key} in {}", path.display()),
            None => key.to_owned(),
        };
        let mut origins = Origins {
            config: match (&args.config, env.get("RP_DEVOPS_CONFIG"), &config_path) {
                (Some(_), _, _) => "--config".to_owned(),
                (None, Some(_), _) => "RP_DEVOPS_CONFIG".to_owned(),
                (None, None, Some(_)) => format!("./{DEFAULT_CONFIG_FILE} (found)"),
                (None, None, None) => format!("none (no ./{DEFAULT_CONFIG_FILE})"),
            },
            gitlab_url: url_source.to_string(),
            ..Origins::default()
        };

        let project_explicit = args.project.is_some() || env.get("RP_PROJECT").is_some();
        let (project, project_origin) = first_of([
            (args.project.clone(), "--project".to_owned()),
            (
                env.get("RP_PROJECT").map(str::to_owned),
                "RP_PROJECT".to_owned(),
            ),
            (
                env.get("CI_PROJECT_ID").map(str::to_owned),
                "CI_PROJECT_ID".to_owned(),
            ),
            (config.gitlab.project.clone(), in_config("gitlab.project")),
        ]);
        origins.project = project_origin;
        origins.output = match (args.output, env.get("RP_OUTPUT")) {
            (Some(_), _) => "--output/--json",
            (None, Some(_)) => "RP_OUTPUT",
            (None, None) => "default",
        }
        .to_owned();
        origins.dry_run = if args.dry_run {
            "--dry-run"
        } else if env.flag("RP_DRY_RUN") {
            "RP_DRY_RUN"
        } else {
            "default"
        }
        .to_owned();

        let output = if let Some(format) = args.output {
            format
        } else {
            match env.get("RP_OUTPUT") {
                None => OutputFormat::Human,
                Some(v) if v.eq_ignore_ascii_case("human") => OutputFormat::Human,
                Some(v) if v.eq_ignore_ascii_case("json") => OutputFormat::Json,
                Some(v) => {
                    return Err(UsageError::new(format!(
                        "RP_OUTPUT={v:?} is not an output format (human or json)"
                    ))
                    .into());
                }
            }
        };

        let verbosity = (args.verbose as i8).min(3) - (args.quiet as i8).min(1);

        Ok(Self {
            config_path,
            config,
            gitlab: GitLabSettings {
                url,
                token,
                project,
                project_explicit,
                trust,
                url_source,
            },
            dry_run: args.dry_run || env.flag("RP_DRY_RUN"),
            output,
            verbosity,
            retry: retry_policy(&env)?,
            env,
            warnings,
            token_warning_shown: Default::default(),
            origins,
        })
    }
}

/// The first value that is set, and where it came from ("unset" for none).
fn first_of<const N: usize>(candidates: [(Option<String>, String); N]) -> (Option<String>, String) {
    candidates
        .into_iter()
        .find(|(value, _)| value.is_some())
        .unwrap_or((None, "unset".to_owned()))
}

/// Every secret this program knows about: the variables that hold one and
/// the values (see [`Settings::known_secrets`]).
#[derive(Debug, Clone, Default)]
pub struct KnownSecrets {
    /// Names of variables holding a secret, set or not, sorted, each once.
    pub names: Vec<String>,
    /// The values that are set (including a token read from a file).
    pub values: Vec<Secret>,
}

impl KnownSecrets {
    /// A redactor for every value, in every spelling.
    pub fn redactor(&self) -> crate::redact::Redactor {
        crate::redact::Redactor::new(self.values.iter().map(Secret::expose))
    }
}

/// Variables that hold a secret whatever the config says.
const SECRET_VARIABLES: &[&str] = &[
    "RP_GITLAB_TOKEN",
    "GITLAB_TOKEN",
    "CI_JOB_TOKEN",
    "RP_GIT_TOKEN",
    "RP_RELEASE_SECRET",
    "RP_WEBHOOK_SECRET",
    "RP_WEBHOOK_SIGNING_KEY",
    "RP_ESCALATE_TOKEN",
    "RP_FRESHDESK_API_KEY",
];

impl Settings {
    /// Every secret rp-devops knows about: the GitLab token from whichever
    /// source it came (a `--gitlab-token-file` included), `CI_JOB_TOKEN`,
    /// `RP_GIT_TOKEN`, and the variables the config names for the GitLab
    /// token, the release secret, the webhook's secret and signing key, the
    /// escalation endpoint's token and the Freshdesk API key (with their
    /// default names too). What a child process must not inherit and an
    /// answer must not carry.
    pub fn known_secrets(&self) -> KnownSecrets {
        let config = &self.config;
        let mut names: Vec<String> = SECRET_VARIABLES.iter().map(|s| (*s).to_owned()).collect();
        names.extend(config.gitlab.token_env.clone());
        names.extend(config.release.as_ref().map(|r| r.secret_env.clone()));
        if let Some(webhook) = &config.webhook {
            names.push(webhook.secret_env.clone());
            names.extend(webhook.signing_key_env.clone());
        }
        names.extend(
            config
                .escalation_endpoint
                .as_ref()
                .map(|e| e.token_env.clone()),
        );
        names.extend(config.freshdesk.as_ref().map(|f| f.api_key_env.clone()));
        names.retain(|n| !n.trim().is_empty());
        names.sort();
        names.dedup();
        let mut values: Vec<Secret> = names.iter().filter_map(|n| self.env.secret(n)).collect();
        values.extend(self.gitlab.token.as_ref().map(|t| t.secret.clone()));
        values.dedup();
        KnownSecrets { names, values }
    }
}

impl Settings {
    /// The Freshdesk client for `escalate` and the escalation endpoint, from
    /// the `freshdesk:` section and the API key in the variable it names;
    /// in dry-run mode it reads as usual and plans its writes.
    pub fn freshdesk_client(&self, printer: &Printer) -> Result<Freshdesk> {
        let config = self.config.freshdesk.as_ref().ok_or_else(|| {
            UsageError::new("no freshdesk: section in the config file").with_hint(
                "add freshdesk: with domain (or url) and api_key_env; see examples/rp-devops.yml",
            )
        })?;
        let base_url = match (&config.domain, &config.url) {
            (Some(_), Some(_)) => {
                return Err(UsageError::new(
                    "freshdesk.domain and freshdesk.url are both set: keep one",
                )
                .into());
            }
            (Some(domain), None) => freshdesk_domain_url(domain)?,
            (None, Some(url)) => url.clone(),
            (None, None) => {
                return Err(UsageError::new(
                    "freshdesk: needs domain (e.g. acme.freshdesk.com) or url",
                )
                .into());
            }
        };
        let name = &config.api_key_env;
        let key = self.env.secret(name).ok_or_else(|| {
            UsageError::new(format!(
                "no Freshdesk API key: {name} (freshdesk.api_key_env) is not set"
            ))
            .with_hint("put the API key of the agent rp-devops acts as (Freshdesk profile settings → Your API Key) in that variable")
        })?;
        let warn = printer.clone();
        Ok(Freshdesk::new(
            &base_url,
            &key,
            &format!("{name} (freshdesk.api_key_env)"),
            self.retry,
            &self.gitlab.trust,
        )?
        .dry_run(self.dry_run)
        .on_retry(move |m| warn.warn(m)))
    }
}

impl Settings {
    /// The project that receives escalated tickets: `--project`/`RP_PROJECT`
    /// > `freshdesk.project` > `CI_PROJECT_ID` > `gitlab.project`.
    pub fn escalation_project(&self) -> Result<String> {
        let section = self
            .config
            .freshdesk
            .as_ref()
            .and_then(|f| f.project.as_deref());
        match self.gitlab.project_for(section) {
            Some(project) => Ok(project),
            None if self.dry_run && self.gitlab.url.is_none() => Ok("(project)".to_owned()),
            None => Err(UsageError::new(
                "no GitLab project for escalations: set freshdesk.project, gitlab.project, --project or RP_PROJECT",
            )
            .into()),
        }
    }
}

/// `acme.freshdesk.com` → `https://acme.freshdesk.com`; a bare `acme` is
/// `acme.freshdesk.com`.
fn freshdesk_domain_url(domain: &str) -> Result<String> {
    let domain = domain.trim().trim_end_matches('/');
    let valid = !domain.is_empty()
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !valid {
        return Err(UsageError::new(format!(
            "freshdesk.domain {domain:?} is not a host name like acme.freshdesk.com (use freshdesk.url for a full URL)"
        ))
        .into());
    }
    Ok(if domain.contains('.') {
        format!("https://{domain}")
    } else {
        format!("https://{domain}.freshdesk.com")
    })
}

/// `SSL_CERT_FILE`/`SSL_CERT_DIR` replace the system's CA bundle (as in
/// OpenSSL and curl); `CI_SERVER_TLS_CA_FILE`, which GitLab Runner sets when
/// the instance uses a custom CA, is added to it.
fn trust_store(env: &Env, cwd: &Path) -> TrustStore {
    let path = |name: &str| env.get(name).map(|v| cwd.join(v.trim()));
    let extra = path("CI_SERVER_TLS_CA_FILE")
        .map(|path| CaFile {
            path,
            source: "CI_SERVER_TLS_CA_FILE",
        })
        .into_iter()
        .collect();
    TrustStore::new(path("SSL_CERT_FILE"), path("SSL_CERT_DIR"), extra)
}

fn retry_policy(env: &Env) -> Result<RetryPolicy> {
    let mut policy = RetryPolicy::default();
    let parse = |name: &str| -> Result<Option<std::time::Duration>> {
        env.get(name)
            .map(|v| {
                humantime::parse_duration(v.trim()).map_err(|e| {
                    UsageError::new(format!(
                        "{name}={v:?} is not a duration like 90s or 2m: {e}"
                    ))
                    .into()
                })
            })
            .transpose()
    };
    if let Some(budget) = parse("RP_HTTP_RETRY_BUDGET")? {
        policy.budget = budget;
    }
    if let Some(base) = parse("RP_HTTP_RETRY_BASE")? {
        policy.base = base;
    }
    if let Some(timeout) = parse("RP_HTTP_TIMEOUT")? {
        policy.timeout = timeout;
    }
    Ok(policy)
}

/// `https://gitlab.example.com/` → `https://gitlab.example.com`; anything that
/// is not http(s) is a configuration error.
fn normalize_url(url: &str) -> Result<String> {
    let trimmed = url.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/api/v4").unwrap_or(trimmed);
    let shown = crate::git::redact_url(trimmed);
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://"))
        || trimmed.len() <= "https://".len()
    {
        return Err(UsageError::new(format!(
            "GitLab URL {shown:?} is not an http:// or https:// URL"
        ))
        .into());
    }
    if shown != trimmed {
        // It would be repeated in every error and hint, and the token goes
        // in a header anyway.
        return Err(UsageError::new(format!(
            "the GitLab URL carries credentials (user:password@): give it as {shown:?} and the \
             token in RP_GITLAB_TOKEN or --gitlab-token-file"
        ))
        .into());
    }
    Ok(trimmed.to_owned())
}

/// Token precedence: `--gitlab-token-file` > `RP_GITLAB_TOKEN` >
/// `GITLAB_TOKEN` > the variable named by `gitlab.token_env` > `CI_JOB_TOKEN`.
///
/// The config's `token_env` ranks above `CI_JOB_TOKEN` (unlike the generic
/// "CI variable > config" rule): `CI_JOB_TOKEN` is present in every CI job
/// and cannot write, so letting it shadow a token the user named on purpose
/// would break every write in CI.
fn resolve_token(
    args: &GlobalOptions,
    env: &Env,
    config: &Config,
    cwd: &Path,
    warnings: &mut Vec<String>,
) -> Result<Option<GitLabToken>> {
    let private = |secret: Secret, source: String| GitLabToken {
        secret,
        kind: TokenKind::Private,
        source,
    };
    if let Some(file) = &args.gitlab_token_file {
        let path = cwd.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            UsageError::new(format!(
                "cannot read GitLab token file {}: {e}",
                path.display()
            ))
        })?;
        let value = text.trim();
        if value.is_empty() {
            return Err(
                UsageError::new(format!("GitLab token file {} is empty", path.display())).into(),
            );
        }
        if let Some(mode) = readable_by_others(&path) {
            warnings.push(format!(
                "GitLab token file {} can be read by other users (mode {mode:04o}): \
                 chmod 600 it, and rotate the token if others may have read it",
                path.display()
            ));
        }
        return Ok(Some(private(
            Secret::new(value),
            format!("--gitlab-token-file {}", path.display()),
        )));
    }
    for name in ["RP_GITLAB_TOKEN", "GITLAB_TOKEN"] {
        if let Some(secret) = env.secret(name) {
            return Ok(Some(private(secret, name.to_owned())));
        }
    }
    if let Some(name) = &config.gitlab.token_env {
        if let Some(secret) = env.secret(name) {
            return Ok(Some(private(secret, format!("{name} (gitlab.token_env)"))));
        }
    }
    Ok(env.secret("CI_JOB_TOKEN").map(|secret| GitLabToken {
        secret,
        kind: TokenKind::Job,
        source: "CI_JOB_TOKEN".to_owned(),
    }))
}

/// The permission bits of a file that its group or others may read.
fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o044 != 0).then_some(mode)
}

impl Settings {
    /// Every setting as resolved and where it came from, for `doctor`:
    /// secrets only as set or not set, never their values.
    pub fn shown(&self) -> Vec<ShownSetting> {
        let settings = self;
        let origins = &settings.origins;
        let set = |present: bool| if present { "set" } else { "not set" }.to_owned();
        let mut shown = vec![
            ShownSetting {
                name: "config file",
                value: settings
                    .config_path
                    .as_ref()
                    .map_or_else(|| "none".to_owned(), |p| p.display().to_string()),
                source: origins.config.clone(),
            },
            ShownSetting {
                name: "GitLab URL",
                value: settings
                    .gitlab
                    .url
                    .clone()
                    .unwrap_or_else(|| "not set".to_owned()),
                source: origins.gitlab_url.clone(),
            },
            ShownSetting {
                name: "GitLab token",
                value: match &settings.gitlab.token {
                    Some(t) if t.kind == TokenKind::Job => "set, sent as JOB-TOKEN".to_owned(),
                    Some(_) => "set, sent as PRIVATE-TOKEN".to_owned(),
                    None => "not set".to_owned(),
                },
                source: settings
                    .gitlab
                    .token
                    .as_ref()
                    .map_or_else(|| "unset".to_owned(), |t| t.source.clone()),
            },
            ShownSetting {
                name: "project",
                value: settings
                    .gitlab
                    .project
                    .clone()
                    .unwrap_or_else(|| "not set".to_owned()),
                source: origins.project.clone(),
            },
            ShownSetting {
                name: "dry run",
                value: settings.dry_run.to_string(),
                source: origins.dry_run.clone(),
            },
            ShownSetting {
                name: "output",
                value: if settings.output == crate::output::OutputFormat::Json {
                    "json"
                } else {
                    "human"
                }
                .to_owned(),
                source: origins.output.clone(),
            },
            ShownSetting {
                name: "HTTP retries",
                value: format!(
                    "budget {}, first delay {}, request timeout {}",
                    humantime::format_duration(settings.retry.budget),
                    humantime::format_duration(settings.retry.base),
                    humantime::format_duration(settings.retry.timeout)
                ),
                source: "RP_HTTP_RETRY_BUDGET, RP_HTTP_RETRY_BASE, RP_HTTP_TIMEOUT or defaults"
                    .to_owned(),
            },
            ShownSetting {
                name: "git push token",
                value: set(settings.env.get("RP_GIT_TOKEN").is_some()),
                source: "RP_GIT_TOKEN (else the GitLab token)".to_owned(),
            },
            ShownSetting {
                name: "release receiver",
                value: settings
                    .env
                    .get("RP_RELEASE_URL")
                    .map_or_else(|| "not set".to_owned(), str::to_owned),
                source: "RP_RELEASE_URL".to_owned(),
            },
            ShownSetting {
                name: "release secret",
                value: set(settings.env.get("RP_RELEASE_SECRET").is_some()),
                source: "RP_RELEASE_SECRET".to_owned(),
            },
        ];
        // The secrets of the serve routes whose sections are present.
        let config = &settings.config;
        let serve_secrets = [
            config
                .release
                .as_ref()
                .map(|r| ("receiver secret", &r.secret_env, "release.secret_env")),
            config
                .webhook
                .as_ref()
                .map(|w| ("webhook secret", &w.secret_env, "webhook.secret_env")),
            config.escalation_endpoint.as_ref().map(|e| {
                (
                    "escalation token",
                    &e.token_env,
                    "escalation_endpoint.token_env",
                )
            }),
        ];
        for (name, variable, key) in serve_secrets.into_iter().flatten() {
            shown.push(ShownSetting {
                name,
                value: set(settings.env.get(variable).is_some()),
                source: format!("{variable} ({key})"),
            });
        }
        if let Some(freshdesk) = &settings.config.freshdesk {
            shown.push(ShownSetting {
                name: "Freshdesk API key",
                value: set(settings.env.get(&freshdesk.api_key_env).is_some()),
                source: format!("{} (freshdesk.api_key_env)", freshdesk.api_key_env),
            });
        }
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn resolve(argv: &[&str], env: &[(&str, &str)], config: Option<&str>) -> Result<Settings> {
        let dir = tempfile::tempdir()?;
        if let Some(text) = config {
            std::fs::write(dir.path().join(DEFAULT_CONFIG_FILE), text)?;
        }
        let mut full = vec!["rp-devops"];
        full.extend_from_slice(argv);
        full.extend_from_slice(&["scan-races", "-"]);
        let cli = crate::cli::Cli::try_parse_from(full)?;
        Settings::resolve(
            &cli.global.to_options(),
            Env::from_pairs(env.iter().copied()),
            dir.path(),
        )
    }

    const CONFIG: &str = "gitlab:\n  url: https://config.example.com\n  project: cfg/project\n  token_env: MY_TOKEN\n";

    #[test]
    fn a_gitlab_url_with_credentials_is_refused_without_repeating_them() {
        let err = resolve(
            &[],
            &[(
                "RP_GITLAB_URL",
                "https://oauth2:glpat-s3cr3t@gitlab.example.com/",
            )],
            None,
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("\"https://gitlab.example.com\""), "{msg}");
        assert!(!msg.contains("s3cr3t"), "{msg}");
        assert_eq!(
            crate::error::exit_status(&err),
            crate::error::ExitStatus::Usage
        );
        let err = resolve(&[], &[("RP_GITLAB_URL", "ftp://u:s3cr3t@x")], None).unwrap_err();
        assert!(!format!("{err:#}").contains("s3cr3t"));
    }

    #[test]
    fn flag_beats_env_beats_ci_beats_config() {
        let env = [
            ("RP_GITLAB_URL", "https://env.example.com/"),
            ("CI_SERVER_URL", "https://ci.example.com"),
            ("RP_PROJECT", "env/project"),
            ("CI_PROJECT_ID", "42"),
        ];
        let s = resolve(
            &["--gitlab-url", "https://flag.example.com"],
            &env,
            Some(CONFIG),
        )
        .unwrap();
        assert_eq!(s.gitlab.url.as_deref(), Some("https://flag.example.com"));
        assert_eq!(s.gitlab.project.as_deref(), Some("env/project"));

        let ci_only = [
            ("CI_SERVER_URL", "https://ci.example.com"),
            ("CI_PROJECT_ID", "42"),
        ];
        let s = resolve(&[], &ci_only, Some(CONFIG)).unwrap();
        assert_eq!(s.gitlab.url.as_deref(), Some("https://ci.example.com"));
        assert_eq!(s.gitlab.project.as_deref(), Some("42"));

        let s = resolve(&[], &[], Some(CONFIG)).unwrap();
        assert_eq!(s.gitlab.url.as_deref(), Some("https://config.example.com"));
        assert_eq!(s.gitlab.project.as_deref(), Some("cfg/project"));

        let s = resolve(&[], &[], None).unwrap();
        assert_eq!(s.gitlab.url, None);
    }

    #[test]
    fn token_precedence_and_kinds() {
        let s = resolve(
            &[],
            &[("CI_JOB_TOKEN", "job"), ("MY_TOKEN", "mine")],
            Some(CONFIG),
        )
        .unwrap();
        let token = s.gitlab.token.unwrap();
        assert_eq!(token.secret.expose(), "mine");
        assert_eq!(token.kind, TokenKind::Private);

        let s = resolve(&[], &[("CI_JOB_TOKEN", "job")], None).unwrap();
        let token = s.gitlab.token.unwrap();
        assert_eq!(token.kind, TokenKind::Job);
        assert_eq!(token.source, "CI_JOB_TOKEN");

        let s = resolve(
            &[],
            &[("GITLAB_TOKEN", "g"), ("RP_GITLAB_TOKEN", "rp")],
            None,
        )
        .unwrap();
        assert_eq!(s.gitlab.token.unwrap().source, "RP_GITLAB_TOKEN");
    }

    #[test]
    fn a_token_file_others_can_read_gets_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "glpat-from-file\n").unwrap();
        let resolve_with_file = |mode: u32| {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let cli = crate::cli::Cli::try_parse_from([
                "rp-devops",
                "--gitlab-token-file",
                "token",
                "scan-races",
                "-",
            ])
            .unwrap();
            Settings::resolve(&cli.global.to_options(), Env::default(), dir.path()).unwrap()
        };
        let s = resolve_with_file(0o644);
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("can be read by other users (mode 0644)"));
        assert!(!s.warnings[0].contains("glpat"));
        assert_eq!(resolve_with_file(0o640).warnings.len(), 1);
        assert!(resolve_with_file(0o600).warnings.is_empty());
        assert!(resolve_with_file(0o400).warnings.is_empty());
    }

    #[test]
    fn known_secrets_cover_every_source_and_name() {
        let config = "gitlab:\n  token_env: TEAM_TOKEN\n\
                      release:\n  dir: /srv/r\n  secret_env: REL_SECRET\n\
                      webhook:\n  secret_env: HOOK_SECRET\n  signing_key_env: HOOK_SIGNING\n\
                      escalation_endpoint:\n  token_env: ESC_TOKEN\n\
                      freshdesk:\n  domain: acme.freshdesk.com\n  api_key_env: FD_KEY\n";
        let env = [
            ("TEAM_TOKEN", "team-token"),
            ("CI_JOB_TOKEN", "job-token"),
            ("RP_GIT_TOKEN", "git-token"),
            ("REL_SECRET", "rel-secret"),
            ("FD_KEY", "fd-key"),
            ("HOME", "/home/x"),
        ];
        let s = resolve(&[], &env, Some(config)).unwrap();
        let known = s.known_secrets();
        for name in [
            "TEAM_TOKEN",
            "CI_JOB_TOKEN",
            "RP_GIT_TOKEN",
            "RP_GITLAB_TOKEN",
            "GITLAB_TOKEN",
            "REL_SECRET",
            "RP_RELEASE_SECRET",
            "HOOK_SECRET",
            "HOOK_SIGNING",
            "ESC_TOKEN",
            "FD_KEY",
        ] {
            assert!(known.names.iter().any(|n| n == name), "{name}");
        }
        assert!(!known.names.iter().any(|n| n == "HOME"));
        let mut values: Vec<&str> = known.values.iter().map(Secret::expose).collect();
        values.sort();
        values.dedup();
        assert_eq!(
            values,
            [
                "fd-key",
                "git-token",
                "job-token",
                "rel-secret",
                "team-token"
            ]
        );
    }

    #[test]
    fn a_url_only_a_found_config_names_gets_a_warning_outside_ci() {
        let env = [("RP_GITLAB_TOKEN", "glpat-x")];
        let found = resolve(&[], &env, Some(CONFIG)).unwrap();
        let warning = found
            .token_destination_warning(Some("RP_GITLAB_TOKEN"))
            .unwrap();
        assert!(
            warning.contains("https://config.example.com") && warning.contains("rp-devops.yml"),
            "{warning}"
        );
        // No token to send, or in CI, or the URL chosen some other way: quiet.
        assert!(found.token_destination_warning(None).is_none());
        let ci = resolve(
            &[],
            &[("RP_GITLAB_TOKEN", "x"), ("CI", "true")],
            Some(CONFIG),
        )
        .unwrap();
        assert!(ci.token_destination_warning(Some("t")).is_none());
        let flag = resolve(
            &["--gitlab-url", "https://g.example.com"],
            &env,
            Some(CONFIG),
        )
        .unwrap();
        assert!(flag.token_destination_warning(Some("t")).is_none());
        let env_url = resolve(
            &[],
            &[("RP_GITLAB_URL", "https://config.example.com")],
            Some(CONFIG),
        )
        .unwrap();
        assert!(env_url.token_destination_warning(Some("t")).is_none());
        let named = resolve(&["--config", "rp-devops.yml"], &env, Some(CONFIG)).unwrap();
        assert!(named.token_destination_warning(Some("t")).is_none());
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = resolve(&[], &[("RP_GITLAB_TOKEN", "glpat-supersecret")], None).unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("supersecret"), "{debug}");
    }

    #[test]
    fn output_and_dry_run_from_env() {
        let s = resolve(&[], &[("RP_OUTPUT", "json"), ("RP_DRY_RUN", "1")], None).unwrap();
        assert_eq!(s.output, OutputFormat::Json);
        assert!(s.dry_run);
        let err = resolve(&[], &[("RP_OUTPUT", "yaml")], None).unwrap_err();
        assert_eq!(
            crate::error::exit_status(&err),
            crate::error::ExitStatus::Usage
        );
    }

    #[test]
    fn bad_url_is_a_usage_error() {
        let err = resolve(&["--gitlab-url", "gitlab.example.com"], &[], None).unwrap_err();
        assert_eq!(
            crate::error::exit_status(&err),
            crate::error::ExitStatus::Usage
        );
    }
}
