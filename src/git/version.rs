//! Release versions from tag names: which tags are releases, which one is the
//! latest, what comes next, and the Go module-path rule. Pure functions over
//! strings, no I/O, so every rule is unit tested on plain data.

use std::fmt;

use regex::Regex;
use semver::Version;

/// A release tag: `PREFIX<semver>` with no pre-release and no build metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseTag {
    /// The tag name as on the remote, without `refs/tags/`, e.g. `tools/v1.2.3`.
    pub name: String,
    pub version: Version,
}

/// `v1.2.3` with prefix `v` → 1.2.3. Anything else is not a release tag:
/// other prefixes (`tools/v1.2.3` when the prefix is `v`), pre-releases
/// (`v1.3.0-rc.1`), build metadata (`v1.2.3+meta`), leading zeros and
/// non-semver names (`v1.2`, `latest`).
pub fn parse_release(tag: &str, prefix: &str) -> Option<Version> {
    let rest = tag.strip_prefix(prefix)?;
    let version = Version::parse(rest).ok()?;
    if !version.pre.is_empty() || !version.build.is_empty() {
        return None;
    }
    Some(version)
}

/// A release version as a person writes it: `1.2.3` or `v1.2.3`, with no
/// pre-release and no build metadata.
pub fn parse_plain_release(text: &str) -> Option<Version> {
    let trimmed = text.trim();
    parse_release(trimmed.strip_prefix('v').unwrap_or(trimmed), "")
}

/// The highest release among `names`, by semver precedence (never lexically).
pub fn latest_release<'a>(
    names: impl IntoIterator<Item = &'a str>,
    prefix: &str,
) -> Option<ReleaseTag> {
    names
        .into_iter()
        .filter_map(|name| {
            parse_release(name, prefix).map(|version| ReleaseTag {
                name: name.to_owned(),
                version,
            })
        })
        .max_by(|a, b| a.version.cmp(&b.version))
}

/// Which part of the version to raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bump {
    Patch,
    Minor,
    Major,
    /// Decide from the commits since the last tag (conventional commits).
    Auto,
}

impl fmt::Display for Bump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bump::Patch => "patch",
            Bump::Minor => "minor",
            Bump::Major => "major",
            Bump::Auto => "auto",
        })
    }
}

/// The version after `latest`. `Auto` must be resolved first; it counts as a
/// patch here so the function stays total.
pub fn next_version(latest: &Version, bump: Bump) -> Version {
    match bump {
        Bump::Major => Version::new(latest.major + 1, 0, 0),
        Bump::Minor => Version::new(latest.major, latest.minor + 1, 0),
        Bump::Patch | Bump::Auto => Version::new(latest.major, latest.minor, latest.patch + 1),
    }
}

/// The bump that a set of commit messages asks for, conventional-commit
/// style: `BREAKING CHANGE:` footer, `type!:` or `[major]` → major; `feat:`
/// or `[minor]` → minor; anything else → patch. The strongest one wins.
pub struct CommitClassifier {
    breaking_subject: Regex,
    breaking_footer: Regex,
    feature_subject: Regex,
}

impl Default for CommitClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl CommitClassifier {
    pub fn new() -> Self {
        // The patterns are constants, so failing to compile is a bug caught
        // by the unit tests, not something outside input can cause.
        let re = |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("bad built-in regex {p}: {e}"));
        Self {
            breaking_subject: re(r"^[A-Za-z][\w-]*(\([^)]*\))?!:"),
            breaking_footer: re(r"(?m)^BREAKING[ -]CHANGE:"),
            feature_subject: re(r"^(?i:feat)(\([^)]*\))?:"),
        }
    }

    pub fn classify(&self, message: &str) -> Bump {
        let subject = message.lines().next().unwrap_or("").trim_start();
        if self.breaking_subject.is_match(subject)
            || self.breaking_footer.is_match(message)
            || message.contains("[major]")
        {
            Bump::Major
        } else if self.feature_subject.is_match(subject) || message.contains("[minor]") {
            Bump::Minor
        } else {
            Bump::Patch
        }
    }

    pub fn classify_all<'a>(&self, messages: impl IntoIterator<Item = &'a str>) -> Bump {
        messages
            .into_iter()
            .map(|m| self.classify(m))
            .max()
            .unwrap_or(Bump::Patch)
    }
}

/// The directory (relative to the repository root) of the Go module that
/// tags with `prefix` belong to: `v` → root, `tools/v` → `tools`.
pub fn module_dir(prefix: &str) -> &str {
    match prefix.rfind('/') {
        Some(i) => &prefix[..i],
        None => "",
    }
}

/// The module path from a `go.mod` file's `module` directive.
pub fn go_module_path(go_mod: &str) -> Option<String> {
    go_mod.lines().find_map(|line| {
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let rest = line.trim().strip_prefix("module")?;
        if !rest.starts_with(char::is_whitespace) {
            return None;
        }
        let path = rest.trim().trim_matches(|c| c == '"' || c == '`');
        (!path.is_empty()).then(|| path.to_owned())
    })
}

/// The major version suffix a module path carries: `example.com/lib/v3` → 3,
/// `gopkg.in/yaml.v2` → 2, `example.com/lib` → none.
fn path_major(path: &str) -> Option<u64> {
    let last = path.rsplit('/').next()?;
    let digits = if let Some(d) = last.strip_prefix('v').filter(|_| path.contains('/')) {
        d
    } else if path.starts_with("gopkg.in/") {
        last.rsplit_once(".v")?.1
    } else {
        return None;
    };
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Go's semantic import versioning: a module at major N ≥ 2 must have a path
/// ending in `/vN`, and a path ending in `/vN` only takes major N. `Err`
/// carries what is wrong, in words.
pub fn check_go_major(module_path: &str, version: &Version) -> Result<(), String> {
    let suffix = path_major(module_path).filter(|n| *n >= 2);
    match (version.major, suffix) {
        (major, Some(n)) if major == n => Ok(()),
        (0 | 1, None) => Ok(()),
        (major, None) => Err(format!(
            "version {version} has major version {major}, but the module path {module_path:?} does not end in /v{major}"
        )),
        (major, Some(n)) => Err(format!(
            "version {version} has major version {major}, but the module path {module_path:?} is for major version {n}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn semver_precedence_not_lexical() {
        let latest = latest_release(["v1.9.9", "v1.10.0", "v1.2.0"], "v").unwrap();
        assert_eq!(latest.name, "v1.10.0");
    }

    #[test]
    fn prereleases_build_metadata_and_junk_are_not_releases() {
        let names = [
            "v1.2.3",
            "v1.3.0-rc.1",
            "v1.4.0+build.7",
            "v2",
            "v1.5",
            "latest",
            "v01.6.0",
            "tools/v9.0.0",
        ];
        assert_eq!(latest_release(names, "v").unwrap().name, "v1.2.3");
    }

    #[test]
    fn prefixes_keep_modules_apart() {
        let names = ["v1.0.0", "tools/v0.3.0", "tools/v0.10.1", "v3.0.0"];
        assert_eq!(
            latest_release(names, "tools/v").unwrap().name,
            "tools/v0.10.1"
        );
        assert_eq!(latest_release(names, "v").unwrap().name, "v3.0.0");
        assert!(latest_release(names, "api/v").is_none());
    }

    #[test]
    fn plain_release_versions() {
        assert_eq!(parse_plain_release("1.0.0"), Some(v("1.0.0")));
        assert_eq!(parse_plain_release(" v0.1.0 "), Some(v("0.1.0")));
        for bad in ["1.0", "1.0.0-rc.1", "1.0.0+b", "vv1.0.0", ""] {
            assert_eq!(parse_plain_release(bad), None, "{bad}");
        }
    }

    #[test]
    fn bumps() {
        assert_eq!(next_version(&v("1.2.3"), Bump::Patch), v("1.2.4"));
        assert_eq!(next_version(&v("1.2.3"), Bump::Minor), v("1.3.0"));
        assert_eq!(next_version(&v("1.2.3"), Bump::Major), v("2.0.0"));
    }

    #[test]
    fn conventional_commits() {
        let c = CommitClassifier::new();
        assert_eq!(c.classify("fix: off by one"), Bump::Patch);
        assert_eq!(c.classify("feat: new option"), Bump::Minor);
        assert_eq!(c.classify("feat(cli): new option"), Bump::Minor);
        assert_eq!(c.classify("Add thing [minor]"), Bump::Minor);
        assert_eq!(c.classify("fix!: drop old API"), Bump::Major);
        assert_eq!(c.classify("refactor(core)!: rename"), Bump::Major);
        assert_eq!(c.classify("Rework\n\nBREAKING CHANGE: gone"), Bump::Major);
        assert_eq!(c.classify("Rework [major]"), Bump::Major);
        // A feature mentioned in the body is not a feature commit.
        assert_eq!(c.classify("fix: x\n\nfeat: y was wrong"), Bump::Patch);
        assert_eq!(
            c.classify("docs: mention BREAKING CHANGE: policy"),
            Bump::Patch
        );
        assert_eq!(
            c.classify_all(["fix: a", "feat: b", "chore: c"]),
            Bump::Minor
        );
        assert_eq!(c.classify_all([]), Bump::Patch);
    }

    #[test]
    fn go_mod_paths() {
        let text = "// comment\nmodule   example.com/lib/v2 // trailing\n\ngo 1.22\n";
        assert_eq!(go_module_path(text).as_deref(), Some("example.com/lib/v2"));
        assert_eq!(
            go_module_path("module \"example.com/q\"\n").as_deref(),
            Some("example.com/q")
        );
        assert_eq!(go_module_path("modules x\n"), None);
        assert_eq!(module_dir("v"), "");
        assert_eq!(module_dir("tools/v"), "tools");
        assert_eq!(module_dir("a/b/v"), "a/b");
    }

    #[test]
    fn go_major_rule() {
        assert!(check_go_major("example.com/lib", &v("1.9.0")).is_ok());
        assert!(check_go_major("example.com/lib", &v("2.0.0")).is_err());
        assert!(check_go_major("example.com/lib/v2", &v("2.0.0")).is_ok());
        assert!(check_go_major("example.com/lib/v2", &v("3.0.0")).is_err());
        assert!(check_go_major("example.com/lib/v2", &v("1.0.0")).is_err());
        assert!(check_go_major("gopkg.in/yaml.v3", &v("3.0.1")).is_ok());
        // `v0` and `v1` are ordinary path elements, not major suffixes.
        assert!(check_go_major("example.com/v1", &v("1.0.0")).is_ok());
    }
}
