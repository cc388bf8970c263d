//! `rp-devops release upload`: send a release artifact, its MD5 and its
//! metadata to a release receiver (SPEC §9). Glue: the flags and the
//! environment become an [`UploadRequest`], `ops::release_upload` does the
//! work, and its outcome is rendered here, with hints that name our flags.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::error::{ExitStatus, HintedError, UsageError};
use crate::http::tls::UNTRUSTED_HINT;
use crate::ops::release_upload::{
    self, DEFAULT_STATUS_WAIT, UploadError, UploadEvents, UploadPlan, UploadRequest,
};
use crate::output::{Printer, Progress};
use crate::release::parse_meta_file;
use crate::release::upload::{MetaProblem, merge_meta};
use crate::settings::Settings;

mod render;

use render::{dry_run, report};

/// The environment variable holding the shared release secret.
pub const SECRET_ENV: &str = "RP_RELEASE_SECRET";

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    Upload(UploadArgs),
}

/// Upload a release artifact to the release receiver (`rp-devops serve`).
///
/// Streams FILE as multipart/form-data with an exact Content-Length, reading
/// it once and sending its MD5 after it. The secret comes from
/// RP_RELEASE_SECRET. In GitLab CI, commit, tag, ref, pipeline_url, job_url
/// and project are filled in from CI_* variables unless given. Retries 3
/// times on connection errors and 502/503/504; when such a failure comes
/// after the whole artifact was sent, asks the receiver what became of it
/// (waiting while it publishes, up to RP_RELEASE_WAIT, default 20m) and
/// sends it again only if the receiver has no trace of it. Any other answer
/// is final. An https:// receiver is trusted through the system store,
/// SSL_CERT_FILE and CI_SERVER_TLS_CA_FILE.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rp-devops release upload dist/restorepoint-5.2.0.tgz --url https://updates.example.com \\\n      \
    --product restorepoint --meta version=5.2.0 --meta channel=stable\n  \
    rp-devops release upload build/rp.tgz --product restorepoint --meta-file build/release.env --json")]
pub struct UploadArgs {
    /// The artifact; its file name is kept on the server
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Base URL of the receiver [env: RP_RELEASE_URL]
    #[arg(long, value_name = "BASE_URL")]
    pub url: Option<String>,

    /// Product name, as configured on the receiver
    #[arg(long, value_name = "P")]
    pub product: String,

    /// Metadata field (repeatable); `version` is required
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,

    /// Metadata from a .env (KEY=VALUE) or YAML (key: value) file; --meta wins
    #[arg(long, value_name = "FILE")]
    pub meta_file: Option<PathBuf>,
}

pub fn run(command: &ReleaseCommand, settings: &Settings) -> Result<ExitStatus> {
    match command {
        ReleaseCommand::Upload(args) => upload(args, settings),
    }
}

fn upload(args: &UploadArgs, settings: &Settings) -> Result<ExitStatus> {
    let printer = Printer::new(settings);
    let url = args
        .url
        .as_deref()
        .or_else(|| settings.env.get("RP_RELEASE_URL"))
        .ok_or_else(|| {
            UsageError::new("no receiver URL").with_hint("pass --url or set RP_RELEASE_URL")
        })?;
    // The one trust store (system, SSL_CERT_FILE, CI_SERVER_TLS_CA_FILE),
    // read only when it is needed.
    let tls = if url.trim().to_ascii_lowercase().starts_with("https://") {
        settings.gitlab.trust.tls_config()?
    } else {
        ureq::tls::TlsConfig::default()
    };
    let status_wait = match settings.env.get("RP_RELEASE_WAIT") {
        None => DEFAULT_STATUS_WAIT,
        Some(text) => humantime::parse_duration(text.trim()).map_err(|e| {
            UsageError::new(format!("RP_RELEASE_WAIT={text:?} is not a duration: {e}"))
                .with_hint("e.g. RP_RELEASE_WAIT=30m")
        })?,
    };
    let request = UploadRequest {
        url: url.to_owned(),
        product: args.product.clone(),
        meta: metadata(args, settings)?,
        file: args.file.clone(),
        secret: settings.env.secret(SECRET_ENV),
        tls,
        status_wait,
    };
    if settings.dry_run {
        let plan = request.plan().map_err(with_hint)?;
        return dry_run(&request, &plan, &printer);
    }
    let section = printer.section("release_upload", "release upload: sending the artifact");
    let outcome = release_upload::upload(&request, &settings.retry, &Events(&printer));
    drop(section);
    report(&outcome.map_err(with_hint)?, &printer, &args.product)
}

/// Progress and retries on stderr.
struct Events<'a>(&'a Printer);

impl UploadEvents for Events<'_> {
    fn starting(&self, request: &UploadRequest, plan: &UploadPlan) {
        self.0.info(format!(
            "uploading {} ({}) to {}",
            request.file.display(),
            bytesize::ByteSize(plan.bytes),
            plan.endpoint
        ));
    }

    fn sending(&self, file_name: &str, bytes: u64) -> Progress {
        self.0.progress(bytes, &format!("uploading {file_name}"))
    }

    fn retrying(&self, failed: u32, of: u32, reason: &str, delay: Duration) {
        self.0.warn(format!(
            "attempt {failed} of {of} failed ({reason}); retrying in {}",
            humantime::format_duration(Duration::from_millis(delay.as_millis() as u64))
        ));
    }

    fn settling(&self, lost: &str) {
        self.0.warn(format!(
            "the artifact was sent, but its answer was lost ({lost}); asking the receiver what became of it"
        ));
    }

    fn still_in_progress(&self, waited: Duration, delay: Duration) {
        self.0.info(format!(
            "the receiver is still publishing it ({} so far); asking again in {}",
            humantime::format_duration(Duration::from_secs(waited.as_secs())),
            humantime::format_duration(delay)
        ));
    }

    fn no_trace(&self) {
        self.0
            .warn("the receiver has no trace of the upload; it will be sent again");
    }

    fn broken_while_sending(&self, reason: &str) {
        self.0.warn(format!(
            "the connection broke while sending ({reason}); asking the receiver whether it refuses the upload"
        ));
    }
}

/// The operation's error in CLI terms: exit code 2 for what the user must
/// fix in the invocation, with the flag or variable to change.
fn with_hint(error: UploadError) -> anyhow::Error {
    let usage = UsageError::new(error.to_string());
    match error {
        UploadError::BadMeta(MetaProblem::NoVersion) => usage
            .with_hint("pass --meta version=X.Y.Z (or put version in --meta-file)")
            .into(),
        UploadError::BadFileName(_) => usage
            .with_hint("the server keeps the file name; rename the artifact")
            .into(),
        UploadError::NoSecret => UsageError::new(format!("{SECRET_ENV} is not set"))
            .with_hint(format!(
                "set {SECRET_ENV} to the receiver's release secret (a masked CI/CD variable in \
                 GitLab); it is never accepted as a flag"
            ))
            .into(),
        UploadError::Read { .. } => anyhow::Error::new(error),
        UploadError::Unreachable {
            ref last_failure, ..
        } => {
            let hint = if crate::http::tls::is_untrusted_certificate(last_failure) {
                UNTRUSTED_HINT
            } else {
                "check that the receiver is running (`rp-devops serve`) and reachable from here"
            };
            HintedError::new(error.to_string(), hint).into()
        }
        UploadError::Tls { .. } => HintedError::new(error.to_string(), UNTRUSTED_HINT).into(),
        UploadError::OutcomeUnknown { .. } => HintedError::new(
            error.to_string(),
            "the receiver's log says what happened; running the job again is safe: \
             an identical upload of a released version answers 200 and changes nothing",
        )
        .into(),
        _ => usage.into(),
    }
}

/// CI defaults < --meta-file < --meta. The rules for keys and values are
/// checked by the operation.
fn metadata(args: &UploadArgs, settings: &Settings) -> Result<BTreeMap<String, String>> {
    let file_pairs = match &args.meta_file {
        None => Vec::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| UsageError::new(format!("cannot read {}: {e}", path.display())))?;
            let name = path.file_name().and_then(|n| n.to_str());
            parse_meta_file(&text, name.unwrap_or_default())
                .map_err(|e| UsageError::new(format!("{}: {e}", path.display())))?
        }
    };
    merge_meta(|var| settings.env.get(var), file_pairs, &args.meta)
        .map_err(|pair| UsageError::new(format!("--meta {pair:?} is not KEY=VALUE")).into())
}
