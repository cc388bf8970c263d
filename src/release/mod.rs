//! Releases (SPEC §9): the rules both ends of `POST /api/v1/releases` share.
//!
//! Pure logic only (no I/O, no HTTP): which names may become paths, which
//! metadata keys may become shell variables, how values are quoted in the
//! `FILENAME.env` file, and how a `--meta-file` is read; the artifact's MD5
//! both ends compute is [`digest`]. The wire format's client half is
//! [`upload`], the publication rules are [`publish`], the
//! script runner is [`script`]. The procedures that use them are
//! `ops::release_upload` and `ops::publish_release`; the HTTP receiver is
//! `serve::release`.

pub mod digest;
pub mod publish;
pub mod script;
pub mod upload;

use std::collections::BTreeMap;

/// The receiver's route, below the receiver's base URL.
pub const ROUTE: &str = "/api/v1/releases";

/// Multipart field names with a fixed meaning; every other field is metadata.
pub const FIELD_PRODUCT: &str = "product";
pub const FIELD_MD5: &str = "md5";
pub const FIELD_FILE: &str = "file";
/// The metadata key that names the version directory; always required.
pub const META_VERSION: &str = "version";

/// Longest product, version or file name accepted (a common file-system limit).
const MAX_NAME_LEN: usize = 255;

/// Whether `name` may be a product, version or file name: it becomes one path
/// component, so `[A-Za-z0-9][A-Za-z0-9._-]*`, no `..`, at most 255 bytes.
/// The first character rules out `.`/`..`, hidden files and option-like `-x`.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    name.len() <= MAX_NAME_LEN
        && first.is_ascii_alphanumeric()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !name.contains("..")
}

/// Why a name was refused, for a 422 or a usage error.
pub fn name_rule(what: &str, name: &str) -> String {
    format!(
        "{what} {name:?} is not allowed: use letters, digits, '.', '_' and '-', \
         starting with a letter or digit, no '..', at most {MAX_NAME_LEN} characters"
    )
}

/// Whether `key` may be a metadata key. Keys become shell variables in the
/// `.env` file and environment variables of the release script, so they must
/// be shell identifiers; they must also be lower-case, which keeps uploaders
/// away from `PATH`, `LD_PRELOAD`, `BASH_ENV`, `IFS` and our own `RELEASE_*`
/// names without a deny-list that could miss one.
///
/// Lower case is not enough for a few names programs read in lower case:
/// `http_proxy` and its kin would send the script's downloads through an
/// uploader's proxy, so every [denied variable](is_denied_script_variable)
/// is refused too.
pub fn is_valid_meta_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && key.len() <= 64
        && !is_denied_script_variable(key)
}

pub fn meta_key_rule(key: &str) -> String {
    if is_denied_script_variable(key) {
        return format!(
            "metadata key {key:?} is not allowed: proxy and dynamic-loader variables \
             (*proxy*, LD_*, DYLD_*, GCONV_PATH, in any case) would redirect or alter the \
             release script"
        );
    }
    format!(
        "metadata key {key:?} is not allowed: use lower-case letters, digits and '_', \
         starting with a letter, at most 64 characters (it becomes a shell variable)"
    )
}

/// Whether an environment variable must never reach a release script,
/// whoever set it (an uploader's metadata or the server's own
/// environment): proxy settings (`http_proxy`, `HTTPS_PROXY`, `ALL_PROXY`,
/// `no_proxy`, `GIT_PROXY_COMMAND`: any name containing `proxy`), which
/// redirect its traffic, and dynamic-loader settings (`LD_PRELOAD`,
/// `LD_LIBRARY_PATH`, every `LD_*` and `DYLD_*`, `GCONV_PATH`), which load
/// code into it. Names compare without regard to case.
pub fn is_denied_script_variable(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.contains("PROXY")
        || upper.starts_with("LD_")
        || upper.starts_with("DYLD_")
        || upper == "GCONV_PATH"
}

/// Whether a metadata value can be stored: anything but NUL (which neither a
/// shell variable nor an environment variable can hold).
pub fn is_valid_meta_value(value: &str) -> bool {
    !value.contains('\0')
}

/// `value` as one single-quoted shell word. Inside single quotes nothing is
/// special except `'` itself, which is written as `'\''` (close, escaped
/// quote, reopen), so `$(rm -rf /)`, backticks and `'; reboot` stay text.
pub fn shell_quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

/// What the receiver knows about a finished artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseFacts<'a> {
    pub product: &'a str,
    pub version: &'a str,
    pub file: &'a str,
    pub md5: &'a str,
}

/// Every variable of the `.env` file and the script's environment, in file
/// order: the metadata (sorted), then `RELEASE_PRODUCT`, `RELEASE_VERSION`,
/// `RELEASE_FILE` (the file name) and `RELEASE_MD5`.
pub fn release_variables(
    facts: &ReleaseFacts<'_>,
    metadata: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.push(("RELEASE_PRODUCT".into(), facts.product.into()));
    vars.push(("RELEASE_VERSION".into(), facts.version.into()));
    vars.push(("RELEASE_FILE".into(), facts.file.into()));
    vars.push(("RELEASE_MD5".into(), facts.md5.into()));
    vars
}

/// The text of a `FILENAME.env` file: one `KEY='value'` line per variable,
/// safe to `.`/`source` from sh or bash.
pub fn env_file_text(vars: &[(String, String)]) -> String {
    let mut text = String::from("# Written by rp-devops serve; safe to source from sh or bash.\n");
    for (key, value) in vars {
        text.push_str(key);
        text.push('=');
        text.push_str(&shell_quote(value));
        text.push('\n');
    }
    text
}

/// Whether `s` is an MD5 digest in hex (either case).
pub fn is_md5_hex(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Parse a `--meta-file`: a YAML mapping (`.yml`/`.yaml`, or text whose
/// first meaningful line looks like `key: value`) or a `.env` file
/// (`KEY=VALUE`, optional `export `, optional single or double quotes,
/// `#` comments). Keys are returned as written.
pub fn parse_meta_file(text: &str, file_name: &str) -> Result<Vec<(String, String)>, String> {
    let lower = file_name.to_ascii_lowercase();
    let is_yaml = if lower.ends_with(".yml") || lower.ends_with(".yaml") {
        true
    } else if lower.ends_with(".env") {
        false
    } else {
        // No telling extension: the first meaningful line decides.
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#') && l != &"---")
            .is_some_and(|l| match (l.find(':'), l.find('=')) {
                (Some(colon), Some(eq)) => colon < eq,
                (Some(_), None) => true,
                _ => false,
            })
    };
    if is_yaml {
        parse_yaml_meta(text)
    } else {
        parse_env_meta(text)
    }
}

fn parse_yaml_meta(text: &str) -> Result<Vec<(String, String)>, String> {
    let value: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| format!("not a YAML mapping: {e}"))?;
    let serde_norway::Value::Mapping(map) = value else {
        return Err("expected a YAML mapping of key: value".into());
    };
    map.into_iter()
        .map(|(k, v)| {
            let key = match k {
                serde_norway::Value::String(s) => s,
                other => return Err(format!("key {other:?} is not a string")),
            };
            let value = match v {
                serde_norway::Value::String(s) => s,
                serde_norway::Value::Number(n) => n.to_string(),
                serde_norway::Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(format!(
                        "value of {key:?} is not a string, number or boolean"
                    ));
                }
            };
            Ok((key, value))
        })
        .collect()
}

fn parse_env_meta(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, raw)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY=VALUE", n + 1));
        };
        let raw = raw.trim();
        let value = if raw.len() >= 2
            && ((raw.starts_with('\'') && raw.ends_with('\''))
                || (raw.starts_with('"') && raw.ends_with('"')))
        {
            &raw[1..raw.len() - 1]
        } else {
            raw
        };
        pairs.push((key.trim().to_owned(), value.to_owned()));
    }
    Ok(pairs)
}

/// Metadata filled in from GitLab CI's predefined variables when the user did
/// not give the key: (metadata key, CI variable).
pub const CI_DEFAULTS: &[(&str, &str)] = &[
    ("commit", "CI_COMMIT_SHA"),
    ("tag", "CI_COMMIT_TAG"),
    ("ref", "CI_COMMIT_REF_NAME"),
    ("pipeline_url", "CI_PIPELINE_URL"),
    ("job_url", "CI_JOB_URL"),
    ("project", "CI_PROJECT_PATH"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["restorepoint", "1.2.3", "rp-5.0_rc1.tgz", "A", "a.b", "9"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in [
            "", ".", "..", "../x", "a/b", "/abs", "a..b", ".hidden", "-rf", "a b", "a\\b", "é",
            "x\0",
        ] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
        assert!(!is_valid_name(&"a".repeat(256)));
    }

    #[test]
    fn denied_script_variables() {
        for denied in [
            "http_proxy",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "no_proxy",
            "GIT_PROXY_COMMAND",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "LD_AUDIT",
            "DYLD_INSERT_LIBRARIES",
            "GCONV_PATH",
        ] {
            assert!(is_denied_script_variable(denied), "{denied}");
        }
        for allowed in ["PATH", "HOME", "channel", "LDAP_URI", "version"] {
            assert!(!is_denied_script_variable(allowed), "{allowed}");
        }
        assert!(meta_key_rule("http_proxy").contains("proxy"));
    }

    #[test]
    fn meta_keys() {
        for ok in ["version", "channel", "pipeline_url", "a1"] {
            assert!(is_valid_meta_key(ok), "{ok}");
        }
        for bad in [
            "",
            "PATH",
            "LD_PRELOAD",
            "RELEASE_MD5",
            "1x",
            "_x",
            "a-b",
            "a.b",
            "a b",
            // Read in lower case by curl, wget, git and most HTTP clients.
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "no_proxy",
            "ftp_proxy",
            "ld_preload",
            "dyld_insert_libraries",
            "gconv_path",
        ] {
            assert!(!is_valid_meta_key(bad), "{bad}");
        }
    }

    #[test]
    fn quoting_keeps_hostile_values_inert() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("'; reboot"), r#"''\''; reboot'"#);
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn env_file_is_sourceable_and_exact() {
        let hostile = [
            "$(touch pwned)",
            "'; touch pwned; '",
            "`touch pwned`",
            "a\nb",
            "back\\slash \"dq\" $HOME ${x} !",
            "",
        ];
        let dir = tempfile::tempdir().unwrap();
        let mut meta = BTreeMap::new();
        for (i, v) in hostile.iter().enumerate() {
            meta.insert(format!("v{i}"), (*v).to_owned());
        }
        let facts = ReleaseFacts {
            product: "p",
            version: "1",
            file: "f.tgz",
            md5: "0123",
        };
        let text = env_file_text(&release_variables(&facts, &meta));
        let env = dir.path().join("f.env");
        std::fs::write(&env, text).unwrap();
        let mut script = String::from(". ./f.env\n");
        for i in 0..hostile.len() {
            script.push_str(&format!("printf '%s\\0' \"$v{i}\"\n"));
        }
        script.push_str("printf '%s\\0' \"$RELEASE_FILE\"\n");
        for shell in ["sh", "bash"] {
            let out = std::process::Command::new(shell)
                .arg("-c")
                .arg(&script)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "{shell}: {out:?}");
            let got: Vec<&[u8]> = out.stdout.split(|b| *b == 0).collect();
            for (i, v) in hostile.iter().enumerate() {
                assert_eq!(got[i], v.as_bytes(), "{shell} v{i}");
            }
            assert_eq!(got[hostile.len()], b"f.tgz");
            assert!(!dir.path().join("pwned").exists(), "{shell} ran a value");
        }
    }

    #[test]
    fn meta_files() {
        let env = "# c\nexport channel=stable\nversion='1.2.3'\nnote=\"a b\"\n";
        assert_eq!(
            parse_meta_file(env, "build.env").unwrap(),
            vec![
                ("channel".into(), "stable".into()),
                ("version".into(), "1.2.3".into()),
                ("note".into(), "a b".into())
            ]
        );
        let yaml = "version: 1.2.3\nchannel: stable\nbuild: 42\n";
        let got = parse_meta_file(yaml, "meta").unwrap();
        assert!(got.contains(&("build".into(), "42".into())), "{got:?}");
        assert!(parse_meta_file("- a\n- b\n", "m.yml").is_err());
        assert!(parse_meta_file("just words\n", "m.env").is_err());
        // `url=http://x:1` is .env even though it has a colon.
        assert_eq!(
            parse_meta_file("url=http://x:1\n", "meta").unwrap(),
            vec![("url".into(), "http://x:1".into())]
        );
    }

    #[test]
    fn md5_hex() {
        assert!(is_md5_hex("d41d8cd98f00b204e9800998ecf8427e"));
        assert!(is_md5_hex("D41D8CD98F00B204E9800998ECF8427E"));
        assert!(!is_md5_hex("d41d8cd98f00b204e9800998ecf8427"));
        assert!(!is_md5_hex("g41d8cd98f00b204e9800998ecf8427e"));
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
