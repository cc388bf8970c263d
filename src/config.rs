//! The `rp-devops.yml` config file (SPEC §3): everything that is not per-run.
//!
//! Parsing only: no environment, no defaults from elsewhere (that is
//! `settings`). Unknown keys are an error naming the key, the file and the
//! line. Secrets are never values here: keys ending in `_env` name the
//! environment variable that holds the secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Deserializer};

use crate::error::UsageError;
use crate::versions::{Granularity, VersionSource};

/// The default config file, read when present in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "rp-devops.yml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub gitlab: GitLabConfig,
    #[serde(default)]
    pub races: RacesConfig,
    #[serde(default)]
    pub tag_library: TagLibraryConfig,
    pub release: Option<ReleaseConfig>,
    #[serde(default)]
    pub versions: VersionsConfig,
    #[serde(default)]
    pub workflow: WorkflowConfig,
    pub webhook: Option<WebhookConfig>,
    pub freshdesk: Option<FreshdeskConfig>,
    pub escalation_endpoint: Option<EscalationEndpointConfig>,
    #[serde(default)]
    pub serve: ServeConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitLabConfig {
    pub url: Option<String>,
    pub project: Option<String>,
    /// Name of the environment variable that holds the GitLab token.
    pub token_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RacesConfig {
    /// Labels put on race issues; the first one is used to find them again.
    pub labels: Option<Vec<String>>,
    /// Project that receives race issues (default: the GitLab project).
    pub project: Option<String>,
    /// Reopen a closed issue whose race shows up again (default true).
    pub reopen_closed: Option<bool>,
    /// New issues one run may create (default 20); the rest are reported.
    pub max_new_issues: Option<usize>,
    /// Name the commits that last changed each new race's lines (default
    /// true when a GitLab project is configured).
    pub blame: Option<bool>,
    /// Build directories stripped from frame paths to find them in the
    /// repository.
    #[serde(default)]
    pub source_prefixes: Vec<String>,
}

/// `tag-library` (SPEC §5).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagLibraryConfig {
    /// Create a GitLab release with notes for each new tag (default true
    /// when a GitLab project is configured).
    pub gitlab_release: Option<bool>,
}

/// `check-versions` (SPEC §6).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionsConfig {
    /// Path of the version file in the repository (default `VERSION`).
    pub file: Option<String>,
    /// Regex with a `version` group; default: the file's first line.
    pub pattern: Option<String>,
    /// `major`, `minor` (default) or `patch`.
    pub compare: Option<Granularity>,
    /// Exit 3 on a mismatch nobody has acknowledged (default false).
    pub fail_on_mismatch: Option<bool>,
}

/// `transition-issues` (SPEC §7).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowConfig {
    /// Workflow labels in board order.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Target for the issues of an open (ready) merge request.
    pub on_open: Option<String>,
    /// Target for the issues of a merged merge request.
    pub on_merge: Option<String>,
    /// Never move an issue back along the board (default true).
    pub forward_only: Option<bool>,
    /// A draft MR moves its issues only once it is marked ready (default true).
    pub drafts_wait: Option<bool>,
}

/// `serve`'s GitLab webhook (SPEC §10).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Variable holding the hook's secret token (`X-Gitlab-Token`).
    #[serde(default = "default_webhook_secret_env")]
    pub secret_env: String,
    /// Variable holding the signing token (`whsec_...`) of signed webhooks.
    pub signing_key_env: Option<String>,
}

fn default_webhook_secret_env() -> String {
    "RP_WEBHOOK_SECRET".to_owned()
}

/// `serve`'s release receiver (SPEC §9).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseConfig {
    pub dir: PathBuf,
    #[serde(default = "default_release_secret_env")]
    pub secret_env: String,
    #[serde(default = "default_max_size", deserialize_with = "byte_size")]
    pub max_size: u64,
    /// Metadata fields one upload may carry (413 above).
    #[serde(default = "default_max_fields")]
    pub max_fields: usize,
    #[serde(default)]
    pub products: BTreeMap<String, ProductConfig>,
}

/// `serve` itself (SPEC §3, §10).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on; `--listen` and `RP_LISTEN` win.
    pub listen: Option<String>,
    /// PEM certificate chain and private key: serve HTTPS without a proxy.
    /// Relative paths are relative to the config file.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Open connections at most; past it the oldest idle one is closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// How long the body of a rejected request is read and discarded.
    #[serde(default = "default_linger", deserialize_with = "duration")]
    pub linger: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: None,
            tls_cert: None,
            tls_key: None,
            max_connections: default_max_connections(),
            linger: default_linger(),
        }
    }
}

fn default_max_connections() -> usize {
    1024
}

fn default_linger() -> Duration {
    Duration::from_secs(30)
}

fn default_max_fields() -> usize {
    64
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductConfig {
    #[serde(default)]
    pub required: Vec<String>,
    pub script: Option<PathBuf>,
    #[serde(default = "default_script_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

/// `escalate` (SPEC §8): where the tickets are and where they go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshdeskConfig {
    /// `acme.freshdesk.com` (HTTPS); or `url:` for any base URL.
    pub domain: Option<String>,
    pub url: Option<String>,
    /// Name of the environment variable that holds the API key.
    #[serde(default = "default_freshdesk_key_env")]
    pub api_key_env: String,
    /// Project that receives escalations (default: the GitLab project).
    pub project: Option<String>,
    /// Labels put on escalated issues; the first one is how they are found.
    pub labels: Option<Vec<String>>,
    /// Tag added to an escalated ticket (default `escalated`).
    pub tag: Option<String>,
    /// Ticket custom field that receives the issue URL (optional).
    pub link_field: Option<String>,
    /// Attachments above this are linked to Freshdesk instead of uploaded
    /// (GitLab's default maximum attachment size is 100 MiB).
    #[serde(default = "default_attachment_limit", deserialize_with = "byte_size")]
    pub max_attachment_size: u64,
}

/// `serve`: the endpoint behind the userscript's button (SPEC §8, §10).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationEndpointConfig {
    /// Name of the environment variable holding the bearer token.
    #[serde(default = "default_escalate_token_env")]
    pub token_env: String,
    /// The Freshdesk origin allowed to call the endpoint from a page (CORS).
    pub allowed_origin: Option<String>,
}

fn default_freshdesk_key_env() -> String {
    "RP_FRESHDESK_API_KEY".to_owned()
}

fn default_escalate_token_env() -> String {
    "RP_ESCALATE_TOKEN".to_owned()
}

fn default_attachment_limit() -> u64 {
    100 * 1024 * 1024
}

fn default_release_secret_env() -> String {
    "RP_RELEASE_SECRET".to_owned()
}

fn default_max_size() -> u64 {
    8 * 1024 * 1024 * 1024
}

fn default_script_timeout() -> Duration {
    Duration::from_secs(15 * 60)
}

/// `8GiB`, `500 MB`, `1048576`.
fn byte_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Number(n) => Ok(n),
        Raw::Text(text) => text
            .trim()
            .parse::<bytesize::ByteSize>()
            .map(|size| size.as_u64())
            .map_err(|e| serde::de::Error::custom(format!("invalid size {text:?}: {e}"))),
    }
}

/// `15m`, `90s`, `1h 30m`.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(text.trim())
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
}

/// An environment variable name as the environment of services and CI jobs
/// has them: capital letters, digits and `_`, not starting with a digit.
/// (Tokens and keys are mixed case or hold `-`, `.`, `+`, `/`, `=`: a
/// secret pasted where its variable's name belongs is refused, unrepeated.)
fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && name.len() <= 128
}

impl Config {
    /// Parse a config file's text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let config: Self = serde_norway::from_str(text).map_err(|e| {
            // serde_norway's message already names the key and the line;
            // prefix the file so the user knows where to look.
            let at = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            UsageError::new(format!("config file {}{at}: {e}", origin.display()))
                .with_hint("see examples/rp-devops.yml for every key this version knows")
        })?;
        config.validate().map_err(|message| {
            UsageError::new(format!("config file {}: {message}", origin.display()))
                .with_hint("see examples/rp-devops.yml for every key this version knows")
        })?;
        Ok(config)
    }

    /// Checks serde cannot make: every `*_env` key names an environment
    /// variable, the pattern compiles and has its group, the workflow targets
    /// are on the board, label names can be sent.
    fn validate(&self) -> std::result::Result<(), String> {
        for (key, name) in self.env_names() {
            if !is_env_name(name) {
                // Never repeat the value: a `*_env` key that does not hold a
                // variable name most likely holds the secret itself.
                return Err(format!(
                    "{key} must be the name of an environment variable (capital letters, digits \
                     and _, like RP_GITLAB_TOKEN); what it holds is not one, and is not shown in \
                     case it is the secret itself: secrets go in the environment, never in this file"
                ));
            }
        }
        if let Some(pattern) = &self.versions.pattern {
            VersionSource::pattern(pattern)?;
        }
        if self.serve.tls_cert.is_some() != self.serve.tls_key.is_some() {
            return Err("serve.tls_cert and serve.tls_key go together: set both or neither".into());
        }
        if self.serve.max_connections == 0 {
            return Err("serve.max_connections must be at least 1".into());
        }
        if self.release.as_ref().is_some_and(|r| r.max_fields == 0) {
            return Err("release.max_fields must be at least 1".into());
        }
        let workflow = &self.workflow;
        for label in &workflow.labels {
            if label.trim().is_empty() || label.contains(',') {
                return Err(format!(
                    "workflow.labels: {label:?} is not a label name (empty, or holds a comma)"
                ));
            }
        }
        for (key, target) in [
            ("workflow.on_open", &workflow.on_open),
            ("workflow.on_merge", &workflow.on_merge),
        ] {
            if let Some(target) = target {
                let on_board = workflow
                    .labels
                    .iter()
                    .any(|l| l.eq_ignore_ascii_case(target));
                if !on_board {
                    return Err(format!(
                        "{key}: {target:?} is not one of workflow.labels {:?}",
                        workflow.labels
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every `*_env` key that is set: (key, the variable it names).
    fn env_names(&self) -> Vec<(&'static str, &str)> {
        let mut names = Vec::new();
        if let Some(name) = &self.gitlab.token_env {
            names.push(("gitlab.token_env", name.as_str()));
        }
        if let Some(webhook) = &self.webhook {
            names.push(("webhook.secret_env", webhook.secret_env.as_str()));
            if let Some(name) = &webhook.signing_key_env {
                names.push(("webhook.signing_key_env", name.as_str()));
            }
        }
        if let Some(release) = &self.release {
            names.push(("release.secret_env", release.secret_env.as_str()));
        }
        if let Some(freshdesk) = &self.freshdesk {
            names.push(("freshdesk.api_key_env", freshdesk.api_key_env.as_str()));
        }
        if let Some(endpoint) = &self.escalation_endpoint {
            names.push(("escalation_endpoint.token_env", endpoint.token_env.as_str()));
        }
        names
    }

    /// Read and parse a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            UsageError::new(format!("cannot read config file {}: {e}", path.display()))
        })?;
        let mut config = Self::parse(&text, path)?;
        config.resolve_relative_paths(path.parent().unwrap_or(Path::new("")));
        Ok(config)
    }

    /// Relative `release.products.*.script` paths are relative to the
    /// directory of the config file that names them, not to wherever the
    /// server happens to be started from.
    fn resolve_relative_paths(&mut self, base: &Path) {
        let Some(release) = &mut self.release else {
            return;
        };
        for product in release.products.values_mut() {
            if let Some(script) = &mut product.script {
                if script.is_relative() {
                    *script = base.join(&*script);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_script_paths_are_relative_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/rp-devops.yml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            "release:\n  dir: /srv/releases\n  products:\n    \
             a:\n      script: scripts/a.sh\n    \
             b:\n      script: /opt/b.sh\n    \
             c: {}\n",
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        let products = config.release.unwrap().products;
        assert_eq!(
            products["a"].script.as_deref(),
            Some(dir.path().join("etc/scripts/a.sh").as_path())
        );
        assert_eq!(
            products["b"].script.as_deref(),
            Some(Path::new("/opt/b.sh"))
        );
        assert_eq!(products["c"].script, None);
    }

    #[test]
    fn a_secret_pasted_into_an_env_key_is_refused_and_never_repeated() {
        for (key, text) in [
            (
                "gitlab.token_env",
                "gitlab:\n  token_env: glpat-AbCd1234secret\n",
            ),
            (
                "freshdesk.api_key_env",
                "freshdesk:\n  url: http://x\n  api_key_env: sFbbSE4p3bLWKg3TMmm\n",
            ),
            (
                "release.secret_env",
                "release:\n  dir: d\n  secret_env: s3cr3t.value\n",
            ),
            (
                "webhook.signing_key_env",
                "webhook:\n  signing_key_env: whsec_MfKQ9r8+w==\n",
            ),
            (
                "escalation_endpoint.token_env",
                "escalation_endpoint:\n  token_env: esc-token-1\n",
            ),
        ] {
            let err = Config::parse(text, Path::new("rp-devops.yml")).unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains(key), "{msg}");
            for secret in ["AbCd1234", "sFbbSE4p3", "s3cr3t", "MfKQ9r8", "esc-token"] {
                assert!(!msg.contains(secret), "{msg}");
            }
            assert_eq!(
                crate::error::exit_status(&err),
                crate::error::ExitStatus::Usage
            );
        }
        let ok = "gitlab:\n  token_env: MY_TOKEN_2\nwebhook:\n  secret_env: _HOOK\n";
        assert!(Config::parse(ok, Path::new("rp-devops.yml")).is_ok());
    }

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let text = "gitlab:\n  url: https://gitlab.example.com\n  tokn_env: X\n";
        let err = Config::parse(text, Path::new("conf/rp-devops.yml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("conf/rp-devops.yml:3"), "{msg}");
        assert!(msg.contains("tokn_env"), "{msg}");
        assert_eq!(
            crate::error::exit_status(&err),
            crate::error::ExitStatus::Usage
        );
    }

    #[test]
    fn unknown_section_is_an_error() {
        let err =
            Config::parse("gitlab: {}\nrace:\n  labels: [x]\n", Path::new("c.yml")).unwrap_err();
        assert!(err.to_string().contains("race"), "{err}");
    }

    #[test]
    fn the_example_config_is_valid_and_complete() {
        let config = Config::parse(
            include_str!("../examples/rp-devops.yml"),
            Path::new("examples/rp-devops.yml"),
        )
        .unwrap();
        assert_eq!(config.gitlab.token_env.as_deref(), Some("RP_GITLAB_TOKEN"));
        assert_eq!(
            config.races.labels.as_deref(),
            Some(&["race condition".to_owned()][..])
        );
        assert_eq!(config.races.max_new_issues, Some(20));
        assert_eq!(config.races.blame, Some(true));
        assert_eq!(config.races.source_prefixes, ["/home/ci/restorepoint/"]);
        assert_eq!(config.tag_library.gitlab_release, Some(true));
        let release = config.release.unwrap();
        assert!(release.products.contains_key("restorepoint"));
        let freshdesk = config.freshdesk.unwrap();
        assert_eq!(freshdesk.api_key_env, "RP_FRESHDESK_API_KEY");
        assert_eq!(freshdesk.link_field.as_deref(), Some("cf_gitlab_issue"));
        let endpoint = config.escalation_endpoint.unwrap();
        assert_eq!(endpoint.token_env, "RP_ESCALATE_TOKEN");
        assert_eq!(config.versions.compare, Some(Granularity::Minor));
        assert!(config.versions.pattern.is_some());
        assert_eq!(config.workflow.on_open.as_deref(), Some("in review"));
        assert_eq!(config.workflow.labels.len(), 5);
        let webhook = config.webhook.unwrap();
        assert_eq!(webhook.secret_env, "RP_WEBHOOK_SECRET");
        assert_eq!(config.serve.max_connections, 1024);
        assert_eq!(config.serve.linger, Duration::from_secs(30));
        assert!(config.serve.tls_cert.is_some() && config.serve.tls_key.is_some());
    }

    #[test]
    fn serve_keys_have_defaults_and_are_checked() {
        let config = Config::parse("gitlab: {}\n", Path::new("c.yml")).unwrap();
        assert_eq!(config.serve.max_connections, 1024);
        assert_eq!(config.serve.linger, Duration::from_secs(30));
        let config = Config::parse(
            "serve:\n  linger: 5s\n  max_connections: 8\nrelease:\n  dir: /r\n  max_fields: 3\n",
            Path::new("c.yml"),
        )
        .unwrap();
        assert_eq!(config.serve.linger, Duration::from_secs(5));
        assert_eq!(config.serve.max_connections, 8);
        assert_eq!(config.release.unwrap().max_fields, 3);
        for (text, key) in [
            ("serve:\n  tls_cert: a.pem\n", "tls_key"),
            ("serve:\n  max_connection: 8\n", "max_connection"),
            ("serve:\n  max_connections: 0\n", "max_connections"),
        ] {
            let err = Config::parse(text, Path::new("c.yml")).unwrap_err();
            assert!(err.to_string().contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn tag_library_release_can_be_turned_off() {
        let text = "tag_library:\n  gitlab_release: false\n";
        let config = Config::parse(text, Path::new("c.yml")).unwrap();
        assert_eq!(config.tag_library.gitlab_release, Some(false));
        let err =
            Config::parse("tag_library:\n  release: false\n", Path::new("c.yml")).unwrap_err();
        assert!(err.to_string().contains("release"), "{err}");
    }

    #[test]
    fn freshdesk_defaults() {
        let text = "freshdesk:\n  domain: acme.freshdesk.com\nescalation_endpoint: {}\n";
        let config = Config::parse(text, Path::new("c.yml")).unwrap();
        let freshdesk = config.freshdesk.unwrap();
        assert_eq!(freshdesk.max_attachment_size, 100 * 1024 * 1024);
        assert_eq!(freshdesk.api_key_env, "RP_FRESHDESK_API_KEY");
        let endpoint = config.escalation_endpoint.unwrap();
        assert_eq!(endpoint.token_env, "RP_ESCALATE_TOKEN");
        assert!(endpoint.allowed_origin.is_none());
    }

    #[test]
    fn empty_file_is_defaults() {
        let config = Config::parse("\n# nothing yet\n", Path::new("c.yml")).unwrap();
        assert!(config.gitlab.url.is_none());
        assert!(config.release.is_none());
    }

    #[test]
    fn release_sizes_and_durations() {
        let text = "release:\n  dir: /srv/releases\n  max_size: 8GiB\n  products:\n    rp:\n      required: [version]\n      timeout: 90s\n";
        let config = Config::parse(text, Path::new("c.yml")).unwrap();
        let release = config.release.unwrap();
        assert_eq!(release.max_size, 8 * 1024 * 1024 * 1024);
        assert_eq!(release.secret_env, "RP_RELEASE_SECRET");
        assert_eq!(release.products["rp"].timeout, Duration::from_secs(90));
    }

    #[test]
    fn bad_size_is_a_usage_error() {
        let text = "release:\n  dir: /srv\n  max_size: lots\n";
        let err = Config::parse(text, Path::new("c.yml")).unwrap_err();
        assert!(err.to_string().contains("invalid size"), "{err}");
    }

    #[test]
    fn merge_request_sections() {
        let text = "versions:\n  file: sub/VERSION\n  pattern: '^(?P<version>\\d+\\.\\d+)'\n  compare: patch\n  fail_on_mismatch: true\n\
workflow:\n  labels: [\"workflow::to do\", \"workflow::in review\", \"workflow::test\"]\n  on_open: \"workflow::in review\"\n  on_merge: \"workflow::test\"\n\
webhook:\n  signing_key_env: MY_SIGNING_KEY\n";
        let config = Config::parse(text, Path::new("c.yml")).unwrap();
        assert_eq!(config.versions.compare, Some(Granularity::Patch));
        assert_eq!(config.versions.file.as_deref(), Some("sub/VERSION"));
        assert_eq!(config.workflow.labels.len(), 3);
        let webhook = config.webhook.unwrap();
        assert_eq!(webhook.secret_env, "RP_WEBHOOK_SECRET");
        assert_eq!(webhook.signing_key_env.as_deref(), Some("MY_SIGNING_KEY"));
    }

    #[test]
    fn merge_request_sections_are_checked() {
        for (text, expected) in [
            ("versions:\n  compare: minr\n", "minr"),
            ("versions:\n  pattern: '(\\d+)'\n", "(?P<version>...)"),
            (
                "workflow:\n  labels: [a, b]\n  on_open: c\n",
                "workflow.on_open",
            ),
            ("workflow:\n  labels: ['a,b']\n", "comma"),
            ("webhook:\n  secret: x\n", "secret"),
        ] {
            let err = Config::parse(text, Path::new("c.yml")).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(expected) && msg.contains("c.yml"), "{msg}");
            assert_eq!(
                crate::error::exit_status(&err),
                crate::error::ExitStatus::Usage
            );
        }
    }
}
