//! How `release upload` shows the receiver's answer: the JSON document on
//! stdout, or the human lines and the summary.

use anyhow::Result;
use serde_json::Value;

use super::SECRET_ENV;
use crate::error::{ExitStatus, HintedError};
use crate::ops::release_upload::{UploadOutcome, UploadPlan, UploadRequest, Verdict};
use crate::output::{Printer, SummaryLine, summary_of};

/// Print the answer; success exits 0, anything else exits 1 with the
/// server's message (and the full answer on stdout when it is a release).
pub(super) fn report(
    outcome: &UploadOutcome,
    printer: &Printer,
    product: &str,
) -> Result<ExitStatus> {
    let json = &outcome.answer;
    // JSON output is the server's answer, whatever it was; people get the
    // release summary, and errors on stderr.
    if printer.is_json() || outcome.is_release() {
        let render = |out: &mut dyn std::io::Write| -> std::io::Result<()> {
            let field = |k: &str| json.get(k).and_then(Value::as_str).unwrap_or("?");
            let (verb, stored) = match outcome.verdict {
                Verdict::Released => ("released", field("path")),
                Verdict::Confirmed => (
                    "released (confirmed by the receiver's status)",
                    field("file"),
                ),
                Verdict::ScriptFailed if outcome.lost_answer.is_some() => ("stored", field("file")),
                _ => ("already released", field("path")),
            };
            writeln!(
                out,
                "{verb} {} {}: {stored} (md5 {}, {} bytes)",
                field("product"),
                field("version"),
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
        };
        printer.result(json, render)?;
        if outcome.is_release() {
            printer.summary(summary_of(SummaryLine::First, render));
        }
    }
    if outcome.succeeded() {
        return Ok(ExitStatus::Success);
    }
    let message = outcome.failure();
    if let Some(proxy) = &outcome.proxy {
        let hint = match outcome.status {
            413 => Some(format!(
                "{proxy} refused the body itself: raise its limit (nginx: client_max_body_size) \
                 to at least the receiver's release.max_size"
            )),
            502..=504 => Some(format!(
                "{proxy} got no answer from the receiver: check that `rp-devops serve` runs behind \
                 it and that its timeouts (nginx: proxy_read_timeout) outlast the release script"
            )),
            _ => None,
        };
        return Err(match hint {
            Some(hint) => HintedError::new(message, hint).into(),
            None => anyhow::anyhow!(message),
        });
    }
    let hint = match outcome.status {
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
        500 if outcome.verdict == Verdict::ScriptFailed && outcome.lost_answer.is_some() => Some(
            "running the job again runs the script again (an identical upload completes a failed publication)"
                .to_owned(),
        ),
        500 if outcome.verdict == Verdict::ScriptFailed => {
            Some("the script's output is in the answer above".to_owned())
        }
        _ => None,
    };
    Err(match hint {
        Some(hint) => HintedError::new(message, hint).into(),
        None => anyhow::anyhow!(message),
    })
}

/// What `--dry-run` would send, without sending it.
pub(super) fn dry_run(
    request: &UploadRequest,
    plan: &UploadPlan,
    printer: &Printer,
) -> Result<ExitStatus> {
    if request.secret.is_none() {
        printer.warn(format!(
            "{SECRET_ENV} is not set; a real upload would stop here"
        ));
    }
    let fields: Vec<String> = request
        .meta
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    let endpoint = &plan.endpoint;
    printer.would(
        "POST",
        endpoint,
        format!(
            "product={}, {}, file={} ({}), md5 computed while sending",
            request.product,
            fields.join(", "),
            plan.file_name,
            bytesize::ByteSize(plan.bytes)
        ),
    );
    let json = serde_json::json!({
        "dry_run": true,
        "url": endpoint,
        "product": request.product,
        "file": plan.file_name,
        "bytes": plan.bytes,
        "meta": request.meta,
    });
    printer.result(&json, |out| {
        writeln!(out, "dry run: nothing sent to {endpoint}")
    })?;
    Ok(ExitStatus::Success)
}
