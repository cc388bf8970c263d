//! The publication rules of the release receiver (SPEC §9), as plain
//! functions over data: where a release lives, what its `.status` file
//! holds, which metadata is missing, and what an upload of a version that
//! already has an artifact does. No I/O; the procedure that applies them is
//! `ops::publish_release`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::script::ScriptOutcome;
use super::{META_VERSION, is_valid_name, name_rule};

/// Where one release lives: `DIR/PRODUCT/VERSION/FILENAME`, with
/// `FILENAME.env` and `FILENAME.status` next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasePaths {
    pub product_dir: PathBuf,
    pub version_dir: PathBuf,
    pub artifact: PathBuf,
    pub env: PathBuf,
    pub status: PathBuf,
}

impl ReleasePaths {
    /// The names must already be valid names (see [`check_file_name`]).
    pub fn new(dir: &Path, product: &str, version: &str, file_name: &str) -> Self {
        let product_dir = dir.join(product);
        let version_dir = product_dir.join(version);
        Self {
            artifact: version_dir.join(file_name),
            env: version_dir.join(format!("{file_name}.env")),
            status: version_dir.join(format!("{file_name}.status")),
            product_dir,
            version_dir,
        }
    }
}

/// Whether a file in a version directory is the release's artifact, not its
/// metadata or something temporary.
pub fn is_artifact_name(name: &str) -> bool {
    !(name.starts_with('.') || name.ends_with(".env") || name.ends_with(".status"))
}

/// Why an artifact's file name cannot be stored: it becomes a path
/// component, and must not collide with the metadata files next to it.
pub fn check_file_name(name: &str) -> Result<(), String> {
    if !is_valid_name(name) {
        return Err(name_rule("file name", name));
    }
    if !is_artifact_name(name) {
        return Err(format!(
            "file name {name:?} is not allowed: .env and .status are kept for the release's metadata"
        ));
    }
    Ok(())
}

/// The metadata keys a product requires (and `version`, always) that `meta`
/// lacks, sorted, each once.
pub fn missing_metadata<'a>(
    meta: &BTreeMap<String, String>,
    required: &'a [String],
) -> Vec<&'a str> {
    let mut missing: Vec<&str> = std::iter::once(META_VERSION)
        .chain(required.iter().map(String::as_str))
        .filter(|key| !meta.contains_key(*key))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    missing
}

/// `FILENAME.status`: what is known about a stored artifact, so an identical
/// re-upload needs neither re-hashing nor a second script run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseStatus {
    /// The artifact's file name: the published artifact is the one its
    /// status file names, whatever else is in the version directory.
    /// (Absent in status files written before it was recorded; the status
    /// file's own name says the same.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub md5: String,
    pub bytes: u64,
    /// `None` until the script has finished (or when there is none): a crash
    /// while it ran leaves `None`, and the next identical upload runs it.
    pub script: Option<ScriptOutcome>,
}

impl ReleaseStatus {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// The status file's content; `None` when it is not one (a crash while
    /// it was written cannot leave half of one, but a person can).
    pub fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// What an upload does when its version already has an artifact of the
/// same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reupload {
    /// Another artifact: a released version never changes.
    Conflict,
    /// The same artifact, fully published: nothing to do.
    Unchanged,
    /// The same artifact, but its publication was cut short (no `.env` or
    /// `.status`) or its script failed: finish it, running the script again.
    Complete,
}

/// The rule for an upload of `md5` where `recorded` is stored; `complete`
/// when both the `.env` and the `.status` were written, `has_script` when
/// the product has a release script.
pub fn reupload(recorded: &ReleaseStatus, complete: bool, md5: &str, has_script: bool) -> Reupload {
    if !recorded.md5.eq_ignore_ascii_case(md5) {
        Reupload::Conflict
    } else if !complete
        || has_script
            && !recorded
                .script
                .as_ref()
                .is_some_and(ScriptOutcome::succeeded)
    {
        Reupload::Complete
    } else {
        Reupload::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD5: &str = "0123456789abcdef0123456789abcdef";

    fn status(script: Option<i32>) -> ReleaseStatus {
        ReleaseStatus {
            file: Some("rp.tgz".to_owned()),
            md5: MD5.to_owned(),
            bytes: 3,
            script: script.map(|code| ScriptOutcome {
                exit_code: Some(code),
                output_tail: String::new(),
                timed_out: false,
                start_error: None,
            }),
        }
    }

    #[test]
    fn paths() {
        let paths = ReleasePaths::new(Path::new("/rel"), "rp", "1.0", "rp.tgz");
        assert_eq!(paths.artifact, Path::new("/rel/rp/1.0/rp.tgz"));
        assert_eq!(paths.env, Path::new("/rel/rp/1.0/rp.tgz.env"));
        assert_eq!(paths.status, Path::new("/rel/rp/1.0/rp.tgz.status"));
        assert_eq!(paths.product_dir, Path::new("/rel/rp"));
    }

    #[test]
    fn file_names() {
        assert_eq!(check_file_name("rp-1.0.tgz"), Ok(()));
        for bad in ["../x", "x/y", ".hidden", "a.env", "a.tgz.status"] {
            assert!(check_file_name(bad).is_err(), "{bad}");
        }
        assert!(!is_artifact_name(".rp-upload-x"));
    }

    #[test]
    fn missing_required_fields_are_named_once_and_sorted() {
        let required = [
            "version".to_owned(),
            "channel".to_owned(),
            "arch".to_owned(),
        ];
        let meta = BTreeMap::from([("arch".to_owned(), "x86".to_owned())]);
        assert_eq!(missing_metadata(&meta, &required), ["channel", "version"]);
        let meta = BTreeMap::from([("version".to_owned(), "1".to_owned())]);
        assert!(missing_metadata(&meta, &[]).is_empty());
    }

    #[test]
    fn reupload_rules() {
        let other = "ffffffffffffffffffffffffffffffff";
        // A different artifact is a conflict, whatever state the first is in.
        assert_eq!(
            reupload(&status(None), false, other, true),
            Reupload::Conflict
        );
        assert_eq!(
            reupload(&status(Some(0)), true, other, false),
            Reupload::Conflict
        );
        // The same one: nothing to do once complete and its script succeeded.
        assert_eq!(
            reupload(&status(Some(0)), true, MD5, true),
            Reupload::Unchanged
        );
        assert_eq!(
            reupload(&status(None), true, MD5, false),
            Reupload::Unchanged
        );
        assert_eq!(
            reupload(&status(None), true, &MD5.to_uppercase(), false),
            Reupload::Unchanged
        );
        // Its script failed, or never finished: run it again.
        assert_eq!(
            reupload(&status(Some(7)), true, MD5, true),
            Reupload::Complete
        );
        assert_eq!(reupload(&status(None), true, MD5, true), Reupload::Complete);
        // A crash before .env/.status: complete it, script or not.
        assert_eq!(
            reupload(&status(Some(0)), false, MD5, true),
            Reupload::Complete
        );
        assert_eq!(
            reupload(&status(None), false, MD5, false),
            Reupload::Complete
        );
    }

    #[test]
    fn status_file_round_trip() {
        let status = status(Some(0));
        assert_eq!(ReleaseStatus::from_json(&status.to_json()), Some(status));
        assert_eq!(ReleaseStatus::from_json("{\"md5\": 1"), None);
        // Status files from before the file name was recorded still read.
        let old = ReleaseStatus::from_json(r#"{"md5": "x", "bytes": 1, "script": null}"#).unwrap();
        assert_eq!(old.file, None);
    }
}
