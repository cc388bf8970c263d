//! `rp-devops release upload`: send a release artifact, its MD5 and its
//! metadata to a release receiver (SPEC §9). The wire format and the body
//! are `release::upload`; this file gathers the inputs, retries and reports.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::error::{ExitStatus, HintedError, UsageError};
use crate::output::Printer;
use crate::release::upload::{Attempt, SendError, is_retryable_status};
use crate::release::{
    CI_DEFAULTS, META_VERSION, is_valid_meta_key, is_valid_meta_value, is_valid_name,
    meta_key_rule, name_rule, parse_meta_file,
};
use crate::settings::Settings;

/// The environment variable holding the shared release secret.
pub const SECRET_ENV: &str = "RP_RELEASE_SECRET";
/// Attempts in all: the first one plus three retries.
const ATTEMPTS: u32 = 4;

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
/// times on connection errors and 502/503/504; any other answer is final.
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
    let base = args
        .url
        .as_deref()
        .or_else(|| settings.env.get("RP_RELEASE_URL"))
        .ok_or_else(|| {
            UsageError::new("no receiver URL").with_hint("pass --url or set RP_RELEASE_URL")
        })?;
    let endpoint = endpoint(base)?;
    if !is_valid_name(&args.product) {
        return Err(UsageError::new(name_rule("product", &args.product)).into());
    }
    let file_name = args
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    if !is_valid_name(&file_name) {
        return Err(UsageError::new(name_rule("file name", &file_name))
            .with_hint("the server keeps the file name; rename the artifact")
            .into());
    }
    let meta = metadata(args, settings)?;
    let metadata = std::fs::metadata(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    if !metadata.is_file() {
        return Err(UsageError::new(format!("{} is not a file", args.file.display())).into());
    }
    let secret = settings.env.secret(SECRET_ENV);

    if settings.dry_run {
        if secret.is_none() {
            printer.warn(format!(
                "{SECRET_ENV} is not set; a real upload would stop here"
            ));
        }
        let fields: Vec<String> = meta.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        printer.would(
            "POST",
            &endpoint,
            format!(
                "product={}, {}, file={file_name} ({}), md5 computed while sending",
                args.product,
                fields.join(", "),
                bytesize::ByteSize(metadata.len())
            ),
        );
        let plan = serde_json::json!({
            "dry_run": true,
            "url": endpoint,
            "product": args.product,
            "file": file_name,
            "bytes": metadata.len(),
            "meta": meta,
        });
        printer.result(&plan, |out| {
            writeln!(out, "dry run: nothing sent to {endpoint}")
        })?;
        return Ok(ExitStatus::Success);
    }

    let secret = secret.ok_or_else(|| {
        UsageError::new(format!("{SECRET_ENV} is not set")).with_hint(format!(
            "set {SECRET_ENV} to the receiver's release secret (a masked CI/CD variable in GitLab); \
             it is never accepted as a flag"
        ))
    })?;
    let attempt = Attempt {
        url: &endpoint,
        secret: &secret,
        product: &args.product,
        meta: &meta,
        file: &args.file,
        file_name: &file_name,
    };
    printer.info(format!(
        "uploading {} ({}) to {endpoint}",
        args.file.display(),
        bytesize::ByteSize(metadata.len())
    ));
    let answer = send_with_retries(&attempt, &printer, settings.retry.base, metadata.len())?;
    report(&answer.json, answer.status, &printer, &args.product)
}

/// Send, retrying connection errors and 502/503/504 with exponential backoff.
fn send_with_retries(
    attempt: &Attempt<'_>,
    printer: &Printer,
    base: Duration,
    len: u64,
) -> Result<crate::release::upload::Answer> {
    let mut failure = String::new();
    for n in 1..=ATTEMPTS {
        if n > 1 {
            let delay = base
                .saturating_mul(1 << (n - 2))
                .min(Duration::from_secs(30));
            let delay = delay.mul_f64(0.5 + fastrand::f64() / 2.0);
            printer.warn(format!(
                "attempt {} of {ATTEMPTS} failed ({failure}); retrying in {}",
                n - 1,
                humantime::format_duration(Duration::from_millis(delay.as_millis() as u64))
            ));
            std::thread::sleep(delay);
        }
        let progress = printer.progress(len, &format!("uploading {}", attempt.file_name));
        let result = attempt.send(&progress);
        progress.finish();
        match result {
            Ok(answer) if is_retryable_status(answer.status) && n < ATTEMPTS => {
                failure = format!(
                    "HTTP {}{}",
                    answer.status,
                    answer
                        .error_message()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                );
            }
            Ok(answer) => return Ok(answer),
            Err(SendError::File(e)) => {
                return Err(
                    anyhow::Error::new(e).context(format!("reading {}", attempt.file.display()))
                );
            }
            Err(SendError::Transport(e)) => failure = e,
        }
    }
    Err(HintedError::new(
        format!(
            "upload to {} failed after {ATTEMPTS} attempts: {failure}",
            attempt.url
        ),
        "check that the receiver is running (`rp-devops serve`) and reachable from here",
    )
    .into())
}

/// Print the answer; 2xx is success, anything else exits 1 with the
/// server's message (and the full answer on stdout when it is a release).
fn report(json: &Value, status: u16, printer: &Printer, product: &str) -> Result<ExitStatus> {
    let is_release = json.get("md5").is_some();
    // JSON output is the server's answer, whatever it was; people get the
    // release summary, and errors on stderr.
    if printer.is_json() || is_release {
        printer.result(json, |out| {
            let field = |k: &str| json.get(k).and_then(Value::as_str).unwrap_or("?");
            let verb = if status == 201 {
                "released"
            } else {
                "already released"
            };
            writeln!(
                out,
                "{verb} {} {}: {} (md5 {}, {} bytes)",
                field("product"),
                field("version"),
                field("path"),
                field("md5"),
                json.get("bytes").and_then(Value::as_u64).unwrap_or(0)
            )?;
            if let Some(script) = json.get("script").filter(|s| !s.is_null()) {
                match script.get("exit_code").and_then(Value::as_i64) {
                    Some(code) => writeln!(out, "release script: exit {code}")?,
                    None => writeln!(out, "release script: killed or timed out")?,
                }
                if let Some(tail) = script.get("output_tail").and_then(Value::as_str) {
                    for line in tail.lines() {
                        writeln!(out, "  | {line}")?;
                    }
                }
            }
            Ok(())
        })?;
    }
    if (200..300).contains(&status) {
        return Ok(ExitStatus::Success);
    }
    let message = json
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            if is_release {
                "the artifact was stored, but the release script failed or timed out".to_owned()
            } else {
                "no message".to_owned()
            }
        });
    let message = format!("the receiver answered HTTP {status}: {message}");
    let hint = match status {
        401 => Some(format!(
            "{SECRET_ENV} must match the secret the receiver reads (its release.secret_env)"
        )),
        404 => Some(format!(
            "add {product:?} under release.products in the receiver's rp-devops.yml, or check --product"
        )),
        409 => Some("a released version cannot change: bump the version".to_owned()),
        413 => Some("the receiver's release.max_size is smaller than the artifact".to_owned()),
        422 => {
            Some("check the --meta fields and the names against the receiver's rules".to_owned())
        }
        500 if is_release => Some("the script's output is in the answer above".to_owned()),
        _ => None,
    };
    Err(match hint {
        Some(hint) => HintedError::new(message, hint).into(),
        None => anyhow::anyhow!(message),
    })
}

/// `https://h/base` or `https://h/base/` → `https://h/base/api/v1/releases`.
fn endpoint(base: &str) -> Result<String> {
    let base = base.trim().trim_end_matches('/');
    let base = base
        .strip_suffix(crate::serve::release::ROUTE)
        .unwrap_or(base);
    if !(base.starts_with("http://") || base.starts_with("https://"))
        || base.len() <= "https://".len()
    {
        return Err(UsageError::new(format!(
            "release URL {base:?} is not an http:// or https:// URL"
        ))
        .into());
    }
    if base.contains('?') || base.contains('#') {
        return Err(UsageError::new(format!(
            "release URL {base:?} must not have a query or fragment (the secret goes in a header)"
        ))
        .into());
    }
    Ok(format!("{base}{}", crate::serve::release::ROUTE))
}

/// CI defaults < --meta-file < --meta; every key and the version validated.
fn metadata(args: &UploadArgs, settings: &Settings) -> Result<BTreeMap<String, String>> {
    let mut meta = BTreeMap::new();
    for (key, var) in CI_DEFAULTS {
        if let Some(value) = settings.env.get(var) {
            meta.insert((*key).to_owned(), value.to_owned());
        }
    }
    if let Some(path) = &args.meta_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| UsageError::new(format!("cannot read {}: {e}", path.display())))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let pairs = parse_meta_file(&text, name)
            .map_err(|e| UsageError::new(format!("{}: {e}", path.display())))?;
        for (key, value) in pairs {
            meta.insert(key, value);
        }
    }
    for pair in &args.meta {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(UsageError::new(format!("--meta {pair:?} is not KEY=VALUE")).into());
        };
        meta.insert(key.trim().to_owned(), value.to_owned());
    }
    for (key, value) in &meta {
        if key == "product" || key == "md5" || key == "file" {
            return Err(UsageError::new(format!(
                "metadata key {key:?} is reserved (it is a field of its own)"
            ))
            .into());
        }
        if !is_valid_meta_key(key) {
            return Err(UsageError::new(meta_key_rule(key)).into());
        }
        if !is_valid_meta_value(value) {
            return Err(UsageError::new(format!("metadata {key:?} contains a NUL byte")).into());
        }
    }
    match meta.get(META_VERSION) {
        None => {
            return Err(UsageError::new("no version")
                .with_hint("pass --meta version=X.Y.Z (or put version in --meta-file)")
                .into());
        }
        Some(version) if !is_valid_name(version) => {
            return Err(UsageError::new(name_rule("version", version)).into());
        }
        Some(_) => {}
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint("https://u.example.com/").unwrap(),
            "https://u.example.com/api/v1/releases"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:8080/api/v1/releases").unwrap(),
            "http://127.0.0.1:8080/api/v1/releases"
        );
        assert!(endpoint("u.example.com").is_err());
        assert!(endpoint("https://u.example.com/?token=x").is_err());
    }
}
