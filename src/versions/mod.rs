//! Product versions read from a file in the repository, and the comparison
//! `check-versions` makes between the two sides of a merge request (SPEC §6).
//!
//! Pure functions over text: no I/O, no GitLab. The file's content comes
//! from the MR's author (the source branch), so it is hostile: only the
//! normalised version (digits, dots and semver identifiers) ever leaves this
//! module, never the raw text, and the input is capped before it is searched.

use std::fmt;

pub mod thread;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

/// At most this much of a version file is looked at.
pub const MAX_FILE_BYTES: usize = 64 * 1024;
/// A version longer than this is not a version.
const MAX_VERSION_CHARS: usize = 64;
/// The capture group a `versions.pattern` must have.
pub const PATTERN_GROUP: &str = "version";

/// How much of a version two branches must share to be merged together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Major,
    #[default]
    Minor,
    Patch,
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Granularity::Major => "major",
            Granularity::Minor => "minor",
            Granularity::Patch => "patch",
        })
    }
}

/// A version as read from a file: `5.4`, `v5.4.1`, `5.4.0-rc1` are all
/// accepted; missing components count as 0. Build metadata is kept for
/// display but, like pre-release tags, never decides a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(semver::Version);

impl Version {
    /// Parse one version leniently; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text
            .strip_prefix('v')
            .or_else(|| text.strip_prefix('V'))
            .unwrap_or(text);
        if text.is_empty() || text.chars().count() > MAX_VERSION_CHARS {
            return None;
        }
        let split = text.find(['-', '+']).unwrap_or(text.len());
        let (core, suffix) = text.split_at(split);
        let mut numbers = [0u64; 3];
        for (index, part) in core.split('.').enumerate() {
            if index == 3 || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            numbers[index] = part.parse().ok()?;
        }
        let [major, minor, patch] = numbers;
        // semver checks the pre-release and build identifiers (and so keeps
        // them to [0-9A-Za-z-.], which is what makes them safe to show).
        semver::Version::parse(&format!("{major}.{minor}.{patch}{suffix}"))
            .ok()
            .map(Self)
    }

    pub fn major(&self) -> u64 {
        self.0.major
    }

    pub fn minor(&self) -> u64 {
        self.0.minor
    }

    pub fn patch(&self) -> u64 {
        self.0.patch
    }

    /// Whether `self` and `other` are the same release line at `granularity`.
    pub fn same_line(&self, other: &Version, granularity: Granularity) -> bool {
        let key = |v: &Version| match granularity {
            Granularity::Major => (v.major(), 0, 0),
            Granularity::Minor => (v.major(), v.minor(), 0),
            Granularity::Patch => (v.major(), v.minor(), v.patch()),
        };
        key(self) == key(other)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Why a version file gave no version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// The pattern matched nowhere in the file.
    NoMatch,
    /// The file (or the pattern's match) is not a version.
    NotAVersion,
    /// The file is empty (or only comments).
    Empty,
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unreadable::NoMatch => "versions.pattern matches nothing in it",
            Unreadable::NotAVersion => "it holds no version like 5.4.1",
            Unreadable::Empty => "it is empty",
        })
    }
}

/// Where the version is in a file: the whole first line (the default), or a
/// regex's `version` group.
#[derive(Debug, Clone)]
pub struct VersionSource {
    pattern: Option<Regex>,
}

impl VersionSource {
    /// The first non-blank line that is not a `#` comment.
    pub fn first_line() -> Self {
        Self { pattern: None }
    }

    /// A pattern with a named `version` group. `^` and `$` match at line
    /// boundaries, so `^(?P<version>\d+\.\d+\.\d+)` finds the version on
    /// whichever line starts with one.
    pub fn pattern(pattern: &str) -> Result<Self, String> {
        let regex = RegexBuilder::new(pattern)
            .multi_line(true)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("versions.pattern {pattern:?} is not a valid regex: {e}"))?;
        if !regex.capture_names().any(|n| n == Some(PATTERN_GROUP)) {
            return Err(format!(
                "versions.pattern {pattern:?} has no `(?P<{PATTERN_GROUP}>...)` group"
            ));
        }
        Ok(Self {
            pattern: Some(regex),
        })
    }

    /// The version in a file's content.
    pub fn extract(&self, content: &str) -> Result<Version, Unreadable> {
        let content = cap(content, MAX_FILE_BYTES);
        let found = match &self.pattern {
            Some(regex) => regex
                .captures(content)
                .and_then(|c| c.name(PATTERN_GROUP))
                .map(|m| m.as_str())
                .ok_or(Unreadable::NoMatch)?,
            None => content
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .ok_or(Unreadable::Empty)?,
        };
        Version::parse(found).ok_or(Unreadable::NotAVersion)
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cap(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap_or_else(|| panic!("{text:?} should parse"))
    }

    #[test]
    fn lenient_parsing() {
        assert_eq!(v("5.4.1").to_string(), "5.4.1");
        assert_eq!(v("5.4").to_string(), "5.4.0");
        assert_eq!(v("5").to_string(), "5.0.0");
        assert_eq!(v("v5.4.1").to_string(), "5.4.1");
        assert_eq!(v(" 5.4.0-rc1 \n").to_string(), "5.4.0-rc1");
        assert_eq!(v("5.4-rc.2").to_string(), "5.4.0-rc.2");
        assert_eq!(v("5.4.0+build.7").to_string(), "5.4.0+build.7");
        for bad in [
            "",
            "five",
            "5.4.1.2",
            "5..4",
            "5.4.x",
            "5.4.1 rc",
            "5.4.0-rc 1",
            "-5.4",
            "5.4.0-<b>",
            "5.4.0-\n/close",
            // Nothing that could end our marker's comment or start a
            // quick action or a mention.
            "5.4.0-->",
            "5.4.0-x -->",
            "5.4.0-/close",
            "5.4.0-@all",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
        let long = format!("5.4.0-{}", "a".repeat(100));
        assert_eq!(Version::parse(&long), None);
    }

    #[test]
    fn granularity() {
        let (a, b) = (v("5.3.1"), v("5.4.0"));
        assert!(a.same_line(&b, Granularity::Major));
        assert!(!a.same_line(&b, Granularity::Minor));
        assert!(!a.same_line(&b, Granularity::Patch));
        // The SPEC's example: 5.4.1 into 5.4.0 is not a mismatch at minor.
        let (a, b) = (v("5.4.1"), v("5.4.0"));
        assert!(a.same_line(&b, Granularity::Minor));
        assert!(!a.same_line(&b, Granularity::Patch));
        assert!(!v("4.9.9").same_line(&v("5.0.0"), Granularity::Major));
        // Pre-release tags never decide: 5.4.0-rc1 is on the 5.4.0 line.
        assert!(v("5.4.0-rc1").same_line(&v("5.4.0"), Granularity::Patch));
        assert!(v("5.4").same_line(&v("5.4.0"), Granularity::Patch));
        assert_eq!(Granularity::default(), Granularity::Minor);
    }

    #[test]
    fn first_line_source() {
        let s = VersionSource::first_line();
        assert_eq!(s.extract("5.4.0\n").unwrap().to_string(), "5.4.0");
        assert_eq!(
            s.extract("# product version\n\n  5.4\n")
                .unwrap()
                .to_string(),
            "5.4.0"
        );
        assert_eq!(s.extract("\r\n5.4.2\r\n").unwrap().to_string(), "5.4.2");
        assert_eq!(s.extract(""), Err(Unreadable::Empty));
        assert_eq!(s.extract("# nothing\n"), Err(Unreadable::Empty));
        assert_eq!(s.extract("VERSION=5.4.0\n"), Err(Unreadable::NotAVersion));
    }

    #[test]
    fn pattern_source() {
        let s = VersionSource::pattern(r#"^const Version = "(?P<version>[^"]+)""#).unwrap();
        let go = "package version\n\n// Version of the product.\nconst Version = \"5.4.1\"\n";
        assert_eq!(s.extract(go).unwrap().to_string(), "5.4.1");
        assert_eq!(s.extract("package x\n"), Err(Unreadable::NoMatch));
        let s = VersionSource::pattern(r"^(?P<version>\d+\.\d+\.\d+)").unwrap();
        assert_eq!(
            s.extract("# c\n5.3.9 (lts)\n").unwrap().to_string(),
            "5.3.9"
        );
        let s = VersionSource::pattern(r"version: (?P<version>\S+)").unwrap();
        assert_eq!(s.extract("version: banana"), Err(Unreadable::NotAVersion));
    }

    #[test]
    fn pattern_must_be_valid_and_have_the_group() {
        let err = VersionSource::pattern(r"(\d+").unwrap_err();
        assert!(err.contains("not a valid regex"), "{err}");
        let err = VersionSource::pattern(r"(\d+\.\d+)").unwrap_err();
        assert!(err.contains("(?P<version>...)"), "{err}");
    }

    #[test]
    fn huge_files_are_capped() {
        let mut content = "x".repeat(MAX_FILE_BYTES);
        content.push_str("\n5.4.0\n");
        let s = VersionSource::pattern(r"^(?P<version>\d+\.\d+\.\d+)").unwrap();
        assert_eq!(s.extract(&content), Err(Unreadable::NoMatch));
        // A multi-byte character across the cap does not panic.
        let content = format!("{}é5.4.0", "x".repeat(MAX_FILE_BYTES - 1));
        assert!(s.extract(&content).is_err());
    }

    #[test]
    fn serialised_as_text() {
        assert_eq!(
            serde_json::to_string(&v("5.4.0-rc1")).unwrap(),
            "\"5.4.0-rc1\""
        );
        assert_eq!(
            serde_json::from_str::<Granularity>("\"patch\"").unwrap(),
            Granularity::Patch
        );
    }
}
